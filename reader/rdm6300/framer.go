package rdm6300

import (
	"errors"
	"fmt"

	"github.com/punchclock/punchclock/reader"
)

// Wire constants of an RDM6300 frame, and of the ID-12/ID-20 frame
// (ID-Innovations modules), which has CR LF between checksum and ETX.
const (
	STX          = 0x02 // start of frame
	ETX          = 0x03 // end of frame
	CR           = 0x0D // ID-12/ID-20: after the checksum
	LF           = 0x0A // ID-12/ID-20: after CR
	FrameLen     = 14   // STX, 10 data digits, 2 checksum digits, ETX
	ID12FrameLen = 16   // STX, 10 data digits, 2 checksum digits, CR, LF, ETX
	ValueLen     = 10   // hex digits of the credential value
	dataStart    = 1
	sumStart     = dataStart + ValueLen // first checksum digit
	etxPos       = FrameLen - 1         // ETX, or CR in an ID-12 frame
	lfPos        = etxPos + 1           // ID-12: LF
	id12ETXPos   = ID12FrameLen - 1     // ID-12: ETX
)

// ErrBadValue is wrapped by Encode and DecimalID when the value is not
// ten hex digits.
var ErrBadValue = errors.New("rdm6300: value must be ten hex digits")

// A Framer turns the RDM6300 byte stream into credential values. It is
// pure: no I/O, no clock, no goroutines. Bytes may be fed split at any
// position. It decodes both frame forms, either of them at any time: the
// RDM6300's 14 bytes (STX, 12 hex digits, ETX) and the ID-12/ID-20's 16
// (STX, 12 hex digits, CR, LF, ETX); the checksum is the same. After
// garbage or a bad frame it resynchronises on the next STX; a rejected
// frame is rescanned from the byte after its STX, so a real frame
// starting inside garbage is still found.
//
// The zero value is ready to use. A Framer is not safe for concurrent use.
type Framer struct {
	buf [ID12FrameLen]byte // buf[0] == STX whenever n > 0
	n   int

	frames, bad, garbage uint64
}

// Feed consumes p and calls emit, synchronously and in order, with the
// value of each good frame as its ETX is processed. Values are ten
// upper-case hex digits.
func (f *Framer) Feed(p []byte, emit func(value string)) {
	for _, b := range p {
		f.feed(b, emit)
	}
}

func (f *Framer) feed(b byte, emit func(value string)) {
	if f.n == 0 {
		if b == STX {
			f.buf[0] = b
			f.n = 1
		} else {
			f.garbage++
		}
		return
	}
	f.buf[f.n] = b
	f.n++
	pos := f.n - 1
	switch {
	case pos < etxPos:
		if _, ok := unhex(b); ok {
			return // keep collecting
		}
	case pos == etxPos && b == CR, pos == lfPos && b == LF:
		return // an ID-12 frame: keep collecting
	case b == ETX && (pos == etxPos || pos == id12ETXPos):
		if v, ok := decode(f.buf[:f.n]); ok {
			f.frames++
			f.n = 0
			emit(v)
			return
		}
	}
	f.reject(emit)
}

// reject counts the pending frame as bad and rescans it from the byte
// after its STX. Each rescan is shorter than the last, so the recursion is
// at most ID12FrameLen deep.
func (f *Framer) reject(emit func(value string)) {
	f.bad++
	var rest [ID12FrameLen - 1]byte
	m := copy(rest[:], f.buf[1:f.n])
	f.n = 0
	for _, c := range rest[:m] {
		f.feed(c, emit)
	}
}

// Reset discards a partially received frame, counting it as bad. The
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

// decode checks a complete frame, 14 bytes (RDM6300) or 16 (ID-12), and
// returns its value.
func decode(fr []byte) (string, bool) {
	switch {
	case len(fr) == FrameLen && fr[0] == STX && fr[etxPos] == ETX:
	case len(fr) == ID12FrameLen && fr[0] == STX && fr[etxPos] == CR && fr[lfPos] == LF && fr[id12ETXPos] == ETX:
	default:
		return "", false
	}
	var bytes [6]byte // five data bytes and the checksum
	for i := range bytes {
		hi, ok1 := unhex(fr[dataStart+2*i])
		lo, ok2 := unhex(fr[dataStart+2*i+1])
		if !ok1 || !ok2 {
			return "", false
		}
		bytes[i] = hi<<4 | lo
	}
	if xor5(bytes[:5]) != bytes[5] {
		return "", false
	}
	var v [ValueLen]byte
	for i, c := range fr[dataStart:sumStart] {
		v[i] = upper(c)
	}
	return string(v[:]), true
}

// Encode returns the 14-byte wire frame the module sends for value (ten
// hex digits, either case), in upper case as the module writes it.
func Encode(value string) ([]byte, error) {
	data, err := parseValue(value)
	if err != nil {
		return nil, err
	}
	const digits = "0123456789ABCDEF"
	fr := make([]byte, 0, FrameLen)
	fr = append(fr, STX)
	for _, b := range data {
		fr = append(fr, digits[b>>4], digits[b&0xF])
	}
	sum := xor5(data[:])
	fr = append(fr, digits[sum>>4], digits[sum&0xF], ETX)
	return fr, nil
}

// EncodeID12 returns the 16-byte frame an ID-12 or ID-20 module sends for
// value: Encode's frame with CR LF before ETX.
func EncodeID12(value string) ([]byte, error) {
	fr, err := Encode(value)
	if err != nil {
		return nil, err
	}
	return append(fr[:etxPos:etxPos], CR, LF, ETX), nil
}

// DecimalID returns the ten-digit, zero-padded decimal number printed on
// EM4100 cards: the four ID bytes (the value without its version byte)
// read as a big-endian uint32. DecimalID("0A00123456") is "0001193046".
func DecimalID(value string) (string, error) {
	data, err := parseValue(value)
	if err != nil {
		return "", err
	}
	id := uint32(data[1])<<24 | uint32(data[2])<<16 | uint32(data[3])<<8 | uint32(data[4])
	return fmt.Sprintf("%010d", id), nil
}

// Canonical returns value in canonical form (ten upper-case hex digits).
func Canonical(value string) (string, error) {
	if _, err := parseValue(value); err != nil {
		return "", err
	}
	b := []byte(value)
	for i, c := range b {
		b[i] = upper(c)
	}
	return string(b), nil
}

func parseValue(value string) ([5]byte, error) {
	var data [5]byte
	if len(value) != ValueLen {
		return data, fmt.Errorf("%w: %q has %d characters", ErrBadValue, value, len(value))
	}
	for i := range data {
		hi, ok1 := unhex(value[2*i])
		lo, ok2 := unhex(value[2*i+1])
		if !ok1 || !ok2 {
			return data, fmt.Errorf("%w: %q", ErrBadValue, value)
		}
		data[i] = hi<<4 | lo
	}
	return data, nil
}

func xor5(b []byte) byte {
	var x byte
	for _, c := range b {
		x ^= c
	}
	return x
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}
