package osdp

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/punchclock/punchclock/reader"
)

// ErrParity is wrapped by DecodeBits when a Wiegand format's parity bits
// do not match: the read is a bad frame, not a card.
var ErrParity = errors.New("osdp: card parity error")

// ErrCard is wrapped for card data that is not what its length says, and
// for card values the twin cannot encode.
var ErrCard = errors.New("osdp: bad card data")

// Wiegand layouts (bit 0 is the first bit on the wire, the leading even
// parity bit):
//
//	26-bit H10301: P(even over 1–12) | facility 8 (1–8)  | card 16 (9–24)  | P(odd over 13–24)
//	34-bit:        P(even over 1–16) | facility 16 (1–16) | card 16 (17–32) | P(odd over 17–32)
//	37-bit H10304: P(even over 1–18) | facility 16 (1–16) | card 19 (17–35) | P(odd over 18–35)
//
// H10304's two parity ranges share bit 18.
type wiegandFormat struct {
	bits              int
	facBits, cardBits int
	evenFrom, evenTo  int // bits covered by the leading even parity
	oddFrom, oddTo    int // bits covered by the trailing odd parity
	format            string
}

var wiegandFormats = []wiegandFormat{
	{bits: 26, facBits: 8, cardBits: 16, evenFrom: 1, evenTo: 12, oddFrom: 13, oddTo: 24, format: reader.FormatWiegand26},
	{bits: 34, facBits: 16, cardBits: 16, evenFrom: 1, evenTo: 16, oddFrom: 17, oddTo: 32, format: reader.FormatWiegand34},
	{bits: 37, facBits: 16, cardBits: 19, evenFrom: 1, evenTo: 18, oddFrom: 18, oddTo: 35, format: reader.FormatWiegand37},
}

func formatFor(bits int) (wiegandFormat, bool) {
	for _, w := range wiegandFormats {
		if w.bits == bits {
			return w, true
		}
	}
	return wiegandFormat{}, false
}

func bit(data []byte, i int) int { return int(data[i/8]>>(7-i%8)) & 1 }

func field(data []byte, from, n int) uint64 {
	var v uint64
	for i := from; i < from+n; i++ {
		v = v<<1 | uint64(bit(data, i))
	}
	return v
}

func ones(data []byte, from, to int) int {
	c := 0
	for i := from; i <= to; i++ {
		c += bit(data, i)
	}
	return c
}

// DecodeBits turns card bits (bitCount bits, first bit in the high bit of
// data[0], as osdp_RAW carries them) into a card format and value:
// 26-, 34- and 37-bit Wiegand become "facility:card" in decimal after
// their parity checks; any other length is reader.FormatRaw "bits:HEX"
// (the bits beyond bitCount in the last byte cleared). It is pure.
func DecodeBits(bitCount int, data []byte) (format, value string, err error) {
	nbytes := (bitCount + 7) / 8
	if bitCount <= 0 || len(data) < nbytes {
		return "", "", fmt.Errorf("%w: %d bits in %d bytes", ErrCard, bitCount, len(data))
	}
	data = data[:nbytes]
	if w, ok := formatFor(bitCount); ok {
		if (bit(data, 0)+ones(data, w.evenFrom, w.evenTo))%2 != 0 {
			return "", "", fmt.Errorf("%w: %d-bit even parity", ErrParity, bitCount)
		}
		if (bit(data, bitCount-1)+ones(data, w.oddFrom, w.oddTo))%2 != 1 {
			return "", "", fmt.Errorf("%w: %d-bit odd parity", ErrParity, bitCount)
		}
		fac := field(data, 1, w.facBits)
		card := field(data, 1+w.facBits, w.cardBits)
		return w.format, strconv.FormatUint(fac, 10) + ":" + strconv.FormatUint(card, 10), nil
	}
	clean := append([]byte(nil), data...)
	if r := bitCount % 8; r != 0 {
		clean[nbytes-1] &= 0xFF << (8 - r)
	}
	return reader.FormatRaw, strconv.Itoa(bitCount) + ":" + strings.ToUpper(hex.EncodeToString(clean)), nil
}

// EncodeWiegand returns the bits of facility:card in the bits-long
// Wiegand format (26, 34 or 37), parity bits set, packed as DecodeBits
// reads them.
func EncodeWiegand(bits int, facility, card uint64) ([]byte, error) {
	w, ok := formatFor(bits)
	if !ok {
		return nil, fmt.Errorf("%w: no %d-bit Wiegand format", ErrCard, bits)
	}
	if facility >= 1<<w.facBits || card >= 1<<w.cardBits {
		return nil, fmt.Errorf("%w: %d:%d does not fit %d-bit Wiegand", ErrCard, facility, card, bits)
	}
	data := make([]byte, (bits+7)/8)
	set := func(i int) { data[i/8] |= 0x80 >> (i % 8) }
	v := facility<<w.cardBits | card
	for i := 0; i < w.facBits+w.cardBits; i++ {
		if v>>(w.facBits+w.cardBits-1-i)&1 != 0 {
			set(1 + i)
		}
	}
	if ones(data, w.evenFrom, w.evenTo)%2 != 0 {
		set(0)
	}
	if ones(data, w.oddFrom, w.oddTo)%2 == 0 {
		set(bits - 1)
	}
	return data, nil
}

// ParseFacCard parses "facility:card" in decimal.
func ParseFacCard(s string) (facility, card uint64, err error) {
	f, c, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("%w: %q is not facility:card", ErrCard, s)
	}
	if facility, err = strconv.ParseUint(f, 10, 32); err != nil {
		return 0, 0, fmt.Errorf("%w: facility %q", ErrCard, f)
	}
	if card, err = strconv.ParseUint(c, 10, 32); err != nil {
		return 0, 0, fmt.Errorf("%w: card %q", ErrCard, c)
	}
	return facility, card, nil
}
