package osdp

import (
	"encoding/binary"
	"fmt"

	"github.com/punchclock/punchclock/reader"
)

// PDID is the osdp_PDID reply (§7.4): who the PD is.
type PDID struct {
	Vendor   [3]byte // IEEE OUI
	Model    byte
	Version  byte
	Serial   uint32
	Firmware [3]byte // major, minor, build
}

// DecodePDID decodes osdp_PDID data (12 bytes; the serial number low
// byte first).
func DecodePDID(d []byte) (PDID, error) {
	var id PDID
	if len(d) < 12 {
		return id, fmt.Errorf("%w: osdp_PDID of %d bytes", reader.ErrBadFrame, len(d))
	}
	copy(id.Vendor[:], d[0:3])
	id.Model, id.Version = d[3], d[4]
	id.Serial = binary.LittleEndian.Uint32(d[5:9])
	copy(id.Firmware[:], d[9:12])
	return id, nil
}

// Encode returns osdp_PDID data.
func (id PDID) Encode() []byte {
	d := append([]byte(nil), id.Vendor[:]...)
	d = append(d, id.Model, id.Version)
	d = binary.LittleEndian.AppendUint32(d, id.Serial)
	return append(d, id.Firmware[:]...)
}

// A Capability is one entry of osdp_PDCAP (§7.5).
type Capability struct {
	Function, Compliance, Items byte
}

// DecodePDCAP decodes osdp_PDCAP data: three bytes per capability.
func DecodePDCAP(d []byte) ([]Capability, error) {
	if len(d)%3 != 0 {
		return nil, fmt.Errorf("%w: osdp_PDCAP of %d bytes", reader.ErrBadFrame, len(d))
	}
	caps := make([]Capability, 0, len(d)/3)
	for i := 0; i < len(d); i += 3 {
		caps = append(caps, Capability{d[i], d[i+1], d[i+2]})
	}
	return caps, nil
}

// A CardRead is a decoded osdp_RAW or osdp_FMT reply.
type CardRead struct {
	Format, Value string
}

// DecodeRAW decodes osdp_RAW data (§7.10): reader number, format code,
// bit count (2 bytes, low first), then the bits, first bit in the high
// bit. The Wiegand parity checks apply whatever the format code says.
func DecodeRAW(d []byte) (CardRead, error) {
	if len(d) < 4 {
		return CardRead{}, fmt.Errorf("%w: osdp_RAW of %d bytes", reader.ErrBadFrame, len(d))
	}
	bits := int(binary.LittleEndian.Uint16(d[2:4]))
	if len(d)-4 != (bits+7)/8 {
		return CardRead{}, fmt.Errorf("%w: osdp_RAW says %d bits, carries %d bytes", reader.ErrBadFrame, bits, len(d)-4)
	}
	f, v, err := DecodeBits(bits, d[4:])
	if err != nil {
		return CardRead{}, fmt.Errorf("%w: %w", reader.ErrBadFrame, err)
	}
	return CardRead{Format: f, Value: v}, nil
}

// EncodeRAW returns osdp_RAW data for reader 0 with format code 0
// (unspecified raw bits).
func EncodeRAW(bits int, data []byte) []byte {
	d := []byte{0, 0, byte(bits), byte(bits >> 8)}
	return append(d, data...)
}

// DecodeFMT decodes osdp_FMT data (§7.11): reader number, read direction,
// character count, characters. The value is the characters as given.
func DecodeFMT(d []byte) (CardRead, error) {
	if len(d) < 3 || len(d)-3 != int(d[2]) || d[2] == 0 {
		return CardRead{}, fmt.Errorf("%w: osdp_FMT of %d bytes", reader.ErrBadFrame, len(d))
	}
	for _, c := range d[3:] {
		if c < 0x20 || c > 0x7E {
			return CardRead{}, fmt.Errorf("%w: osdp_FMT character %#x", reader.ErrBadFrame, c)
		}
	}
	return CardRead{Format: reader.FormatTyped, Value: string(d[3:])}, nil
}

// DecodeKeypad decodes osdp_KEYPPAD data (§7.12): reader number, digit
// count, digits; each key becomes its label: '0'…'9', "#" for 0x0D or
// '#', "*" for 0x7F or '*', "A"…"D" for function keys sent as letters.
// A key it does not know makes the whole reply bad.
func DecodeKeypad(d []byte) ([]string, error) {
	if len(d) < 2 || len(d)-2 != int(d[1]) {
		return nil, fmt.Errorf("%w: osdp_KEYPPAD of %d bytes", reader.ErrBadFrame, len(d))
	}
	keys := make([]string, 0, d[1])
	for _, c := range d[2:] {
		switch {
		case '0' <= c && c <= '9', 'A' <= c && c <= 'D':
			keys = append(keys, string(rune(c)))
		case c == 0x0D || c == '#':
			keys = append(keys, "#")
		case c == 0x7F || c == '*':
			keys = append(keys, "*")
		default:
			return nil, fmt.Errorf("%w: osdp_KEYPPAD key %#x", reader.ErrBadFrame, c)
		}
	}
	return keys, nil
}

// EncodeKeypad returns osdp_KEYPPAD data for reader 0: '#' is sent as
// 0x0D and '*' as 0x7F, as keypads do.
func EncodeKeypad(keys string) []byte {
	d := []byte{0, byte(len(keys))}
	for _, c := range []byte(keys) {
		switch c {
		case '#':
			c = 0x0D
		case '*':
			c = 0x7F
		}
		d = append(d, c)
	}
	return d
}

// LED colours (§6.10).
const (
	ColorBlack = 0
	ColorRed   = 1
	ColorGreen = 2
	ColorAmber = 3
)

// An LED is one osdp_LED record (§6.10, 14 bytes): a temporary state
// (control 2: set and start the timer) and a permanent one. Times are in
// units of 100 ms.
type LED struct {
	Reader, LED                  byte
	TempControl, TempOn, TempOff byte
	TempOnColor, TempOffColor    byte
	Timer                        uint16
	PermControl, PermOn, PermOff byte
	PermOnColor, PermOffColor    byte
}

// Encode returns the 14-byte record.
func (l LED) Encode() []byte {
	return []byte{l.Reader, l.LED, l.TempControl, l.TempOn, l.TempOff, l.TempOnColor, l.TempOffColor,
		byte(l.Timer), byte(l.Timer >> 8), l.PermControl, l.PermOn, l.PermOff, l.PermOnColor, l.PermOffColor}
}

// DecodeLED decodes the first record of osdp_LED data.
func DecodeLED(d []byte) (LED, error) {
	if len(d) < 14 || len(d)%14 != 0 {
		return LED{}, fmt.Errorf("%w: osdp_LED of %d bytes", reader.ErrBadFrame, len(d))
	}
	return LED{d[0], d[1], d[2], d[3], d[4], d[5], d[6], binary.LittleEndian.Uint16(d[7:9]), d[9], d[10], d[11], d[12], d[13]}, nil
}

// A Buzzer is one osdp_BUZ record (§6.11, 5 bytes): tone 2 is the
// default tone; times in units of 100 ms.
type Buzzer struct {
	Reader, Tone, On, Off, Count byte
}

// Encode returns the 5-byte record.
func (b Buzzer) Encode() []byte { return []byte{b.Reader, b.Tone, b.On, b.Off, b.Count} }

// DecodeBuzzer decodes osdp_BUZ data.
func DecodeBuzzer(d []byte) (Buzzer, error) {
	if len(d) != 5 {
		return Buzzer{}, fmt.Errorf("%w: osdp_BUZ of %d bytes", reader.ErrBadFrame, len(d))
	}
	return Buzzer{d[0], d[1], d[2], d[3], d[4]}, nil
}

// Feedback returns the LED and buzzer commands that show a decision: a
// temporary green (accept) or red (deny) LED, flashing 500 ms on, 200 ms
// off, for 2 s, then back to the permanent state; one short beep for
// accept, three for deny.
func Feedback(s reader.Signal) (LED, Buzzer) {
	l := LED{TempControl: 2, TempOn: 5, TempOff: 2, TempOnColor: ColorRed, TempOffColor: ColorBlack, Timer: 20}
	b := Buzzer{Tone: 2, On: 2, Off: 1, Count: 3}
	if s.Accepted {
		l.TempOnColor = ColorGreen
		b.On, b.Count = 1, 1
	}
	return l, b
}
