package osdp

import (
	"errors"
	"fmt"
	"io"

	"go.bug.st/serial"
	"golang.org/x/sys/unix"
)

// This file is the only one that imports go.bug.st/serial. It is used
// rather than tarm/serial (reader/serialport) because an RS-485
// transceiver without automatic direction control needs RTS raised while
// the UART sends and dropped when the last bit has left; tarm/serial
// cannot set RTS, and go.bug.st/serial can (SetRTS) and can wait for the
// transmitter to empty (Drain, i.e. tcdrain). Its Close also unblocks a
// pending Read, so the port needs no read timeout.

// openSerial opens name at baud, 8N1, raw. With direction control,
// every Write sets RTS to its sending state, writes, waits for the last
// byte to leave the UART and sets RTS back to its idle state, so that the
// transceiver drives the bus only while the CP talks.
//
// A device without modem lines (a pseudo-terminal: the simulator) cannot
// set RTS (ENOTTY); it is used without direction control, which it does
// not need, so that one configuration serves both. The returned port then
// reports NoRTS, for the bus to say so.
func openSerial(name string, baud int, rts RTSMode) (Port, error) {
	mode := &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit}
	p, err := serial.Open(name, mode)
	if err != nil {
		return nil, fmt.Errorf("osdp: open %s at %d baud: %w", name, baud, err)
	}
	if rts == RTSOff {
		return p, nil
	}
	rp := &rtsPort{Port: p, sending: rts == RTSAssert}
	if err := p.SetRTS(!rp.sending); err != nil {
		if errors.Is(err, unix.ENOTTY) {
			return noRTSPort{p}, nil
		}
		p.Close()
		return nil, fmt.Errorf("osdp: %s: set RTS: %w", name, err)
	}
	return rp, nil
}

// noRTSPort is a port without modem lines, used without direction
// control.
type noRTSPort struct{ serial.Port }

// NoRTS reports that rts_direction could not be applied.
func (noRTSPort) NoRTS() bool { return true }

type rtsPort struct {
	serial.Port
	sending bool // RTS while sending; the opposite when idle
}

var _ io.ReadWriteCloser = (*rtsPort)(nil)

func (p *rtsPort) Write(b []byte) (int, error) {
	if err := p.SetRTS(p.sending); err != nil {
		return 0, fmt.Errorf("osdp: set RTS: %w", err)
	}
	n, err := p.Port.Write(b)
	if err == nil {
		err = p.Drain()
	}
	if rerr := p.SetRTS(!p.sending); err == nil && rerr != nil {
		err = fmt.Errorf("osdp: reset RTS: %w", rerr)
	}
	return n, err
}
