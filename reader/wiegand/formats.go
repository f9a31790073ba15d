package wiegand

import (
	"fmt"
	"strconv"

	"github.com/punchclock/punchclock/reader"
)

// A Credential is what one frame carries: a card or one key press.
type Credential struct {
	Type   string // reader.TypeCard or reader.TypeKey
	Format string // for cards: reader.FormatWiegand26, ...
	Value  string
}

// The card formats decoded, with their parity ranges (0-based bit
// positions, parity bit included) and fields. From the HID format
// descriptions: H10301 "PFFFFFFFFCCCCCCCCCCCCCCCCP", even parity over
// bits 0–12, odd over 13–25; H10304 "P + 16 F + 19 C + P", even parity
// over bits 0–18, odd over 18–36 (bit 18 is in both); the 34-bit format
// has even parity over the first half (0–16) and odd over the second
// (17–33), with a 16-bit facility and a 16-bit card number.
type cardFormat struct {
	len               int
	format            string
	evenTo, oddFrom   int // even parity over [0, evenTo], odd over [oddFrom, len-1]
	facBits, cardBits int
}

var cardFormats = []cardFormat{
	{26, reader.FormatWiegand26, 12, 13, 8, 16},
	{34, reader.FormatWiegand34, 16, 17, 16, 16},
	{37, reader.FormatWiegand37, 18, 18, 16, 19},
}

func formatOf(n int) (cardFormat, bool) {
	for _, f := range cardFormats {
		if f.len == n {
			return f, true
		}
	}
	return cardFormat{}, false
}

// Keypad codes: readers send each key as 4 bits (0–9, 0xA for '*', 0xB
// for '#'), or as 8 bits with the code's complement in the high nibble.
var keyLabels = [12]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#"}

// MinRawBits: frames shorter than this that are not key presses are
// noise, not cards.
const MinRawBits = 24

// Interpret decodes a frame. Its errors wrap reader.ErrBadFrame: a
// parity or complement error, a length one bit off a known card format
// (a bit lost or invented on the wire: rejected rather than reported as
// another format), a frame too short or too long. Other lengths are
// reader.FormatRaw "bits:hex".
func Interpret(f Frame) (Credential, error) {
	bad := func(format string, args ...any) (Credential, error) {
		return Credential{}, fmt.Errorf("wiegand: %d-bit frame: %s: %w", f.Len, fmt.Sprintf(format, args...), reader.ErrBadFrame)
	}
	if f.Len > MaxBits || f.Bits == nil || len(f.Bits) != f.Len {
		return bad("longer than %d bits", MaxBits)
	}
	b := f.Bits
	switch n := f.Len; {
	case n == 4:
		k := field(b, 0, 4)
		if k >= uint64(len(keyLabels)) {
			return bad("key code %#x", k)
		}
		return Credential{Type: reader.TypeKey, Value: keyLabels[k]}, nil
	case n == 8:
		hi, lo := field(b, 0, 4), field(b, 4, 4)
		if hi != ^lo&0xF {
			return bad("high nibble %#x is not the complement of %#x", hi, lo)
		}
		if lo >= uint64(len(keyLabels)) {
			return bad("key code %#x", lo)
		}
		return Credential{Type: reader.TypeKey, Value: keyLabels[lo]}, nil
	}
	if cf, ok := formatOf(f.Len); ok {
		if ones(b[:cf.evenTo+1])%2 != 0 {
			return bad("even parity fails")
		}
		if ones(b[cf.oddFrom:])%2 != 1 {
			return bad("odd parity fails")
		}
		fac := field(b, 1, cf.facBits)
		card := field(b, 1+cf.facBits, cf.cardBits)
		return Credential{Type: reader.TypeCard, Format: cf.format, Value: strconv.FormatUint(fac, 10) + ":" + strconv.FormatUint(card, 10)}, nil
	}
	for _, cf := range cardFormats {
		if f.Len == cf.len-1 || f.Len == cf.len+1 {
			return bad("one bit off the %d-bit format", cf.len)
		}
	}
	if f.Len < MinRawBits {
		return bad("too short for a card")
	}
	return Credential{Type: reader.TypeCard, Format: reader.FormatRaw, Value: rawValue(b)}, nil
}

// rawValue spells bits as "len:hex", the value in upper-case hex, most
// significant bit first, padded to whole digits at the top.
func rawValue(b []bool) string {
	digits := (len(b) + 3) / 4
	out := make([]byte, 0, 4+digits)
	out = strconv.AppendInt(out, int64(len(b)), 10)
	out = append(out, ':')
	pad := digits*4 - len(b)
	for d := range digits {
		v := 0
		for i := range 4 {
			p := d*4 + i - pad
			v <<= 1
			if p >= 0 && b[p] {
				v |= 1
			}
		}
		out = append(out, "0123456789ABCDEF"[v])
	}
	return string(out)
}

func field(b []bool, from, n int) uint64 {
	var v uint64
	for _, x := range b[from : from+n] {
		v <<= 1
		if x {
			v |= 1
		}
	}
	return v
}

func ones(b []bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

// ErrRange is returned by EncodeCard for a facility or card number that
// does not fit its format.
var ErrRange = fmt.Errorf("wiegand: value out of range: %w", reader.ErrConfig)

// EncodeCard returns the bits of a card in format bits (26, 34 or 37),
// with correct parity.
func EncodeCard(bits int, facility, card uint64) ([]bool, error) {
	cf, ok := formatOf(bits)
	if !ok {
		return nil, fmt.Errorf("wiegand: no %d-bit card format (26, 34, 37): %w", bits, ErrRange)
	}
	if facility >= 1<<cf.facBits || card >= 1<<cf.cardBits {
		return nil, fmt.Errorf("wiegand: %d-bit: facility %d must be below %d and card %d below %d: %w",
			bits, facility, uint64(1)<<cf.facBits, card, uint64(1)<<cf.cardBits, ErrRange)
	}
	b := make([]bool, bits)
	put(b, 1, cf.facBits, facility)
	put(b, 1+cf.facBits, cf.cardBits, card)
	b[0] = ones(b[1:cf.evenTo+1])%2 == 1
	b[bits-1] = ones(b[cf.oddFrom:bits-1])%2 == 0
	return b, nil
}

// EncodeKey returns a key's bits: 4 bits, or 8 with the complement in the
// high nibble. ok is false for a label with no code.
func EncodeKey(label string, eight bool) (b []bool, ok bool) {
	for k, l := range keyLabels {
		if l != label {
			continue
		}
		if !eight {
			b = make([]bool, 4)
			put(b, 0, 4, uint64(k))
			return b, true
		}
		b = make([]bool, 8)
		put(b, 0, 4, uint64(^k&0xF))
		put(b, 4, 4, uint64(k))
		return b, true
	}
	return nil, false
}

func put(b []bool, from, n int, v uint64) {
	for i := range n {
		b[from+n-1-i] = v>>i&1 == 1
	}
}
