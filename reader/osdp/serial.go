package osdp

import (
	"fmt"
	"io"

	"go.bug.st/serial"
)

// This file is the only one that imports go.bug.st/serial. It is used
// rather than tarm/serial (reader/serialport) because an RS-485
// transceiver without automatic direction control needs RTS raised while
// the UART sends and dropped when the last bit has left; tarm/serial
// cannot set RTS, and go.bug.st/serial can (SetRTS) and can wait for the
// transmitter to empty (Drain, i.e. tcdrain). Its Close also unblocks a
// pending Read, so the port needs no read timeout.

// openSerial opens name at baud, 8N1, raw. With rtsDirection, every
// Write raises RTS, writes, waits for the last byte to leave the UART and
// drops RTS again, so that the transceiver drives the bus only while the
// CP talks.
func openSerial(name string, baud int, rtsDirection bool) (Port, error) {
	mode := &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit}
	if rtsDirection {
		mode.InitialStatusBits = &serial.ModemOutputBits{RTS: false}
	}
	p, err := serial.Open(name, mode)
	if err != nil {
		return nil, fmt.Errorf("osdp: open %s at %d baud: %w", name, baud, err)
	}
	if !rtsDirection {
		return p, nil
	}
	return &rtsPort{Port: p}, nil
}

type rtsPort struct {
	serial.Port
}

var _ io.ReadWriteCloser = (*rtsPort)(nil)

func (p *rtsPort) Write(b []byte) (int, error) {
	if err := p.SetRTS(true); err != nil {
		return 0, fmt.Errorf("osdp: raise RTS: %w", err)
	}
	n, err := p.Port.Write(b)
	if err == nil {
		err = p.Drain()
	}
	if rerr := p.SetRTS(false); err == nil && rerr != nil {
		err = fmt.Errorf("osdp: drop RTS: %w", rerr)
	}
	return n, err
}
