package r30x

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/punchclock/punchclock/reader"
)

// Wire constants of a ZFM-20 / R30x packet:
//
//	EF 01 | address (4, big-endian) | PID (1) | length (2) | payload | checksum (2)
//
// length counts the payload and the checksum; the checksum is the low 16
// bits of the sum of the PID, both length bytes and every payload byte.
// Every multi-byte field is big-endian.
const (
	Header0 = 0xEF
	Header1 = 0x01

	PIDCommand = 0x01 // host → module: instruction code and parameters
	PIDData    = 0x02 // a data packet with more to follow
	PIDAck     = 0x07 // module → host: confirmation code and results
	PIDEnd     = 0x08 // the last data packet

	headerLen   = 2 + 4 + 1 + 2 // EF01, address, PID, length
	checksumLen = 2

	// MaxPayload is the largest payload a module sends: a 256-byte data
	// packet (packet size code 3). Acks are far shorter.
	MaxPayload = 256
	// MaxPacket is the longest packet on the wire.
	MaxPacket = headerLen + MaxPayload + checksumLen
)

// Instruction codes this driver uses (ZFM-20 manual, 5.x; R503 manual,
// "Instruction set"). UpChar (0x08) and DownChar (0x09) are deliberately
// absent: templates never leave the sensor.
const (
	CmdGenImg         = 0x01 // capture an image; confirmation 0x02: no finger
	CmdImg2Tz         = 0x02 // image → character file in buffer 1 or 2
	CmdSearch         = 0x04 // buffer, start page, page count → page, score
	CmdRegModel       = 0x05 // merge buffers 1 and 2 into a template
	CmdStore          = 0x06 // buffer, page: store the template
	CmdDeleteChar     = 0x0C // page, count: delete templates
	CmdReadSysPara    = 0x0F // system parameters (library size)
	CmdVfyPwd         = 0x13 // 4-byte password
	CmdReadIndexTable = 0x1F // index page 0..3 → 32-byte bitmap of used pages
)

// Confirmation codes (first payload byte of an ack).
const (
	ConfOK           = 0x00
	ConfRecvError    = 0x01 // the module received a bad packet
	ConfNoFinger     = 0x02
	ConfImageFail    = 0x03 // failed to capture an image
	ConfDisorderly   = 0x06 // Img2Tz: image too messy
	ConfTooFew       = 0x07 // Img2Tz: too few feature points
	ConfNoMatch      = 0x09 // Search: nothing found
	ConfMergeFail    = 0x0A // RegModel: the two captures do not match
	ConfBadPage      = 0x0B // page beyond the library
	ConfDeleteFail   = 0x10
	ConfWrongPwd     = 0x13
	ConfNoImage      = 0x15 // Img2Tz: no valid image in the buffer
	ConfFlashError   = 0x18
	ConfMustVerifyPw = 0x21 // R503: the password has not been verified
)

// DefaultAddress is the factory module address, and the broadcast one.
const DefaultAddress = 0xFFFFFFFF

// A Packet is one decoded packet.
type Packet struct {
	Addr    uint32
	PID     byte
	Payload []byte // for an ack, Payload[0] is the confirmation code
}

// Checksum returns the packet checksum of pid and payload: the low 16
// bits of the sum of the PID, the two length bytes and the payload.
func Checksum(pid byte, payload []byte) uint16 {
	n := len(payload) + checksumLen
	sum := uint16(pid) + uint16(n>>8&0xFF) + uint16(n&0xFF)
	for _, b := range payload {
		sum += uint16(b)
	}
	return sum
}

// ErrTooLong is returned by Encode for a payload past MaxPayload.
var ErrTooLong = errors.New("r30x: payload too long")

// Encode returns the wire bytes of a packet.
func Encode(addr uint32, pid byte, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLong, len(payload))
	}
	b := make([]byte, 0, headerLen+len(payload)+checksumLen)
	b = append(b, Header0, Header1)
	b = binary.BigEndian.AppendUint32(b, addr)
	b = append(b, pid)
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)+checksumLen))
	b = append(b, payload...)
	b = binary.BigEndian.AppendUint16(b, Checksum(pid, payload))
	return b, nil
}

// mustEncode is Encode for payloads known to fit.
func mustEncode(addr uint32, pid byte, payload []byte) []byte {
	b, err := Encode(addr, pid, payload)
	if err != nil {
		panic(err) // unreachable: every caller's payload is short
	}
	return b
}

// A Framer turns a byte stream into packets. It is pure: no I/O, no
// clock, no goroutines. Bytes may be fed split at any position.
//
// It looks for EF 01, reads the address, PID and length, and checks the
// checksum once the whole packet is in. A candidate with an unknown PID,
// an impossible length or a bad checksum is rejected, and the bytes after
// its first one are scanned again, so a real packet that began inside
// garbage is still found. Its buffer never holds more than one packet.
//
// The zero value is ready to use. A Framer is not safe for concurrent use.
type Framer struct {
	// MaxPayload bounds the payload a candidate may claim; zero means
	// the package's MaxPayload. A host that reads no data packets sets
	// it to its longest ack, so that garbage claiming a long packet
	// swallows fewer of the bytes behind it.
	MaxPayload int

	buf [MaxPacket]byte
	n   int

	frames, bad, garbage uint64
}

// Feed consumes p and calls emit, synchronously and in order, for each
// good packet. emit owns the Packet's Payload.
func (f *Framer) Feed(p []byte, emit func(Packet)) {
	for _, b := range p {
		// scan leaves at most an incomplete candidate, shorter than
		// MaxPacket, so there is always room for one more byte.
		f.buf[f.n] = b
		f.n++
		f.scan(emit)
	}
}

// Expire tells the framer that the line has gone quiet: a packet still
// incomplete will never be completed, so it is rejected and the bytes
// after its first one are scanned again (a good packet among them is
// emitted). The driver calls it when a reply is overdue and before each
// request, when nothing valid can be in flight.
func (f *Framer) Expire(emit func(Packet)) {
	for f.n > 0 { // each round drops at least one byte
		f.reject()
		f.scan(emit)
	}
}

// Reset discards a partially received packet, counting it as bad. The
// driver calls it when the port is reopened.
func (f *Framer) Reset() {
	if f.n > 0 {
		f.bad++
		f.n = 0
	}
}

// Stats returns the framer's counters: Frames, BadFrames and Garbage.
func (f *Framer) Stats() reader.Stats {
	return reader.Stats{Frames: f.frames, BadFrames: f.bad, Garbage: f.garbage}
}

func (f *Framer) maxPayload() int {
	if f.MaxPayload <= 0 || f.MaxPayload > MaxPayload {
		return MaxPayload
	}
	return f.MaxPayload
}

// scan advances over the buffer until it is empty or holds the start of
// a candidate still waiting for bytes.
func (f *Framer) scan(emit func(Packet)) {
	for f.n > 0 {
		switch f.check() {
		case need:
			return
		case skip:
			// Not the start of a header: one byte of garbage.
			f.garbage++
			f.drop(1)
		case bad:
			f.reject()
		case good:
			n := f.total()
			pl := make([]byte, n-headerLen-checksumLen)
			copy(pl, f.buf[headerLen:n-checksumLen])
			pkt := Packet{Addr: binary.BigEndian.Uint32(f.buf[2:6]), PID: f.buf[6], Payload: pl}
			f.frames++
			f.drop(n)
			emit(pkt)
		}
	}
}

type verdict int

const (
	need verdict = iota // a candidate waiting for more bytes
	skip                // buf[0] starts no candidate
	bad                 // a rejected candidate
	good                // a complete, valid packet
)

// check judges the buffer's start as far as the bytes in allow.
func (f *Framer) check() verdict {
	b := f.buf[:f.n]
	if b[0] != Header0 {
		return skip
	}
	if len(b) < 2 {
		return need
	}
	if b[1] != Header1 {
		return skip
	}
	if len(b) < 7 {
		return need
	}
	switch b[6] {
	case PIDCommand, PIDData, PIDAck, PIDEnd:
	default:
		return bad
	}
	if len(b) < headerLen {
		return need
	}
	l := int(binary.BigEndian.Uint16(b[7:9]))
	// Every packet carries at least one payload byte (an instruction or
	// confirmation code, or data).
	if l < checksumLen+1 || l > checksumLen+f.maxPayload() {
		return bad
	}
	n := headerLen + l
	if len(b) < n {
		return need
	}
	pl := b[headerLen : n-checksumLen]
	if binary.BigEndian.Uint16(b[n-checksumLen:n]) != Checksum(b[6], pl) {
		return bad
	}
	return good
}

// total is the length of the packet at the buffer's start; only valid
// once check has passed the length.
func (f *Framer) total() int {
	return headerLen + int(binary.BigEndian.Uint16(f.buf[7:9]))
}

// reject counts the candidate at the buffer's start as bad and drops its
// first byte; the rest is scanned again.
func (f *Framer) reject() {
	f.bad++
	f.drop(1)
}

func (f *Framer) drop(k int) {
	copy(f.buf[:], f.buf[k:f.n])
	f.n -= k
}
