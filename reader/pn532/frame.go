package pn532

import (
	"errors"
	"fmt"

	"github.com/punchclock/punchclock/reader"
)

// Frame bytes (PN532 User Manual UM0701-02 §6.2.1).
const (
	Preamble   = 0x00
	StartCode1 = 0x00
	StartCode2 = 0xFF
	Postamble  = 0x00

	TFIHost   = 0xD4 // frame from the host controller to the PN532
	TFIPN532  = 0xD5 // frame from the PN532 to the host controller
	TFIError  = 0x7F // application-level error frame (§6.2.1.5)
	MaxNormal = 255  // LEN of a normal frame: TFI and data

	// MaxExtended bounds the LEN of an extended frame the framer
	// accepts: the PN532's frame buffer holds 264 data bytes, so TFI
	// and data never exceed 265. A longer LEN is rejected, so that a
	// corrupted length never makes the framer wait for or hold 64 KiB.
	MaxExtended = 265
)

// Fixed frames (UM0701-02 §6.2.1): ACK, NACK and the syntax error frame.
var (
	ACK        = []byte{0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00}
	NACK       = []byte{0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00}
	ErrorFrame = []byte{0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00}
)

// ErrTooLong is wrapped by Encode for data that no frame can carry.
var ErrTooLong = errors.New("pn532: frame data too long")

// Kind tells the frames apart.
type Kind uint8

const (
	KindInfo  Kind = iota + 1 // normal or extended information frame
	KindACK                   // 00 00 FF 00 FF 00
	KindNACK                  // 00 00 FF FF 00 00
	KindError                 // information frame with TFI 7F, LEN 1
)

func (k Kind) String() string {
	switch k {
	case KindInfo:
		return "info"
	case KindACK:
		return "ack"
	case KindNACK:
		return "nack"
	case KindError:
		return "error"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// A Frame is one decoded frame. For KindInfo, TFI is D4 or D5 (or any
// other byte a peer sent) and Data the bytes after it, the command or
// response code first; for the others TFI and Data are empty.
type Frame struct {
	Kind     Kind
	TFI      byte
	Data     []byte
	Extended bool // the information frame used the extended LEN
}

// Encode returns the information frame carrying tfi and data: a normal
// frame when TFI and data fit in 255 bytes, an extended one otherwise.
func Encode(tfi byte, data []byte) ([]byte, error) {
	n := 1 + len(data)
	if n > MaxExtended {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLong, len(data))
	}
	fr := make([]byte, 0, n+10)
	fr = append(fr, Preamble, StartCode1, StartCode2)
	if n <= MaxNormal {
		fr = append(fr, byte(n), -byte(n))
	} else {
		m, l := byte(n>>8), byte(n)
		fr = append(fr, 0xFF, 0xFF, m, l, -(m + l))
	}
	sum := tfi
	fr = append(fr, tfi)
	for _, b := range data {
		sum += b
	}
	fr = append(fr, data...)
	return append(fr, -sum, Postamble), nil
}

// Framer states.
const (
	stIdle   = iota // looking for the start code
	stZero          // saw 00, which may start a start code
	stLen           // saw 00 FF; next is LEN (or 00 of ACK, FF of NACK/extended)
	stLCS           // saw LEN; next is LCS (or FF of ACK, 00 of NACK, FF of extended)
	stExtM          // extended: LENM
	stExtL          // extended: LENL
	stExtLCS        // extended: LCS
	stBody          // TFI and data
	stDCS           // data checksum
)

// A Framer turns a PN532 HSU byte stream into frames. It is pure: no I/O,
// no clock, no goroutines, and it holds at most one frame (MaxExtended
// bytes and its header). Bytes may be fed split at any position.
//
// The preamble and postamble (00) are optional, as UM0701-02 allows; a
// frame is emitted as soon as its DCS checks, and 00 bytes between frames
// are not garbage. After garbage or a rejected frame (bad LCS or DCS, a
// LEN of 0 or over MaxExtended) it resynchronises on the next 00 FF; a
// rejected frame is rescanned from the byte after its start code, so a
// real frame that began inside it is still found. The 55 bytes of an
// HSU wake-up preamble are garbage to it.
//
// The zero value is ready to use. A Framer is not safe for concurrent use.
type Framer struct {
	st     int
	buf    [MaxExtended + 8]byte // from the FF of the start code on
	n      int
	need   int // body bytes still expected
	length int // body length (TFI and data)
	ext    bool

	frames, bad, garbage uint64
}

// Feed consumes p and calls emit, synchronously and in order, with each
// good frame as its last checked byte is processed. Frame.Data is a fresh
// slice the callee may keep.
func (f *Framer) Feed(p []byte, emit func(Frame)) {
	for _, b := range p {
		f.feed(b, emit)
	}
}

func (f *Framer) feed(b byte, emit func(Frame)) {
	switch f.st {
	case stIdle:
		if b == StartCode1 {
			f.st = stZero
		} else {
			f.garbage++
		}
		return
	case stZero:
		switch b {
		case StartCode2:
			f.st = stLen
			f.n = 0
			f.push(b)
		case StartCode1: // more preamble
		default:
			f.garbage++
			f.st = stIdle
		}
		return
	}
	f.push(b)
	switch f.st {
	case stLen:
		f.st = stLCS
	case stLCS:
		l := f.buf[1]
		switch {
		case l == 0x00 && b == 0xFF:
			f.done(Frame{Kind: KindACK}, emit)
		case l == 0xFF && b == 0x00:
			f.done(Frame{Kind: KindNACK}, emit)
		case l == 0xFF && b == 0xFF:
			f.st = stExtM
		case l != 0 && l+b == 0:
			f.ext = false
			f.body(int(l))
		default:
			f.reject(emit)
		}
	case stExtM:
		f.st = stExtL
	case stExtL:
		f.st = stExtLCS
	case stExtLCS:
		m, l := f.buf[3], f.buf[4]
		n := int(m)<<8 | int(l)
		if m+l+b != 0 || n == 0 || n > MaxExtended {
			f.reject(emit)
			return
		}
		f.ext = true
		f.body(n)
	case stBody:
		f.need--
		if f.need == 0 {
			f.st = stDCS
		}
	case stDCS:
		body := f.buf[f.n-1-f.length : f.n-1]
		var sum byte
		for _, c := range body {
			sum += c
		}
		if sum+b != 0 {
			f.reject(emit)
			return
		}
		fr := Frame{Kind: KindInfo, TFI: body[0], Data: append([]byte(nil), body[1:]...), Extended: f.ext}
		if fr.TFI == TFIError && len(body) == 1 {
			fr = Frame{Kind: KindError}
		}
		f.done(fr, emit)
	}
}

func (f *Framer) push(b byte) {
	f.buf[f.n] = b
	f.n++
}

func (f *Framer) body(n int) {
	f.length, f.need = n, n
	f.st = stBody
}

func (f *Framer) done(fr Frame, emit func(Frame)) {
	f.frames++
	f.st, f.n = stIdle, 0
	emit(fr)
}

// reject counts the pending frame as bad and rescans the bytes after its
// start code. Each rescan is shorter than the frame it came from, so the
// recursion is bounded by the frame size.
func (f *Framer) reject(emit func(Frame)) {
	f.bad++
	var rest [len(Framer{}.buf)]byte
	m := copy(rest[:], f.buf[1:f.n])
	f.st, f.n = stIdle, 0
	for _, c := range rest[:m] {
		f.feed(c, emit)
	}
}

// Pending reports whether a frame has started (its start code was seen)
// but is not complete.
func (f *Framer) Pending() bool { return f.st >= stLen }

// Flush gives up on a pending frame, as the driver does when an answer
// is overdue: the frame counts as bad and the bytes after its start code
// are rescanned (a frame hidden in it is emitted), until nothing is
// pending.
func (f *Framer) Flush(emit func(Frame)) {
	for f.Pending() {
		f.reject(emit)
	}
}

// Reset discards a pending frame, counting it as bad. The driver calls it
// when the port is reopened.
func (f *Framer) Reset() {
	if f.Pending() {
		f.bad++
	}
	f.st, f.n = stIdle, 0
}

// Stats returns the framer's counters: Frames, BadFrames and Garbage.
func (f *Framer) Stats() reader.Stats {
	return reader.Stats{Frames: f.frames, BadFrames: f.bad, Garbage: f.garbage}
}
