package osdp

import (
	"errors"
	"testing"

	"github.com/punchclock/punchclock/reader"
)

func TestDecodeBits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bits   int
		data   string
		format string
		value  string
		err    error
	}{
		// 26-bit H10301, facility 123, card 45678:
		//   P 01111011 1011001001101110 P
		//   even parity over 0111 1011 1011 (9 ones): P=1
		//   odd parity over 0010 0110 1110 (6 ones): P=1
		//   1 01111011 1011001001101110 1 + 000000 = BD D9 37 40
		{"H10301 123:45678", 26, "BD D9 37 40", reader.FormatWiegand26, "123:45678", nil},
		// Facility 0, card 0: even P 0, odd P 1: 0…01 → 00 00 00 40.
		{"H10301 0:0", 26, "00 00 00 40", reader.FormatWiegand26, "0:0", nil},
		// Facility 255, card 65535: 12 ones (even P 0), 12 ones (odd P
		// 1): 0 11111111 1111111111111111 1 → 7F FF FF C0.
		{"H10301 255:65535", 26, "7F FF FF C0", reader.FormatWiegand26, "255:65535", nil},
		// The first byte with the even parity bit flipped.
		{"H10301 even parity error", 26, "3D D9 37 40", "", "", ErrParity},
		// The last bit (odd parity) cleared.
		{"H10301 odd parity error", 26, "BD D9 37 00", "", "", ErrParity},
		// 34-bit, facility 1, card 1: bits 1–16 = 0…01 (one 1: even
		// P 1), bits 17–32 = 0…01 (one 1: odd P 0): bits 0, 16 and 32
		// set → 80 00 80 00 80 (bit 32 is the high bit of byte 4).
		{"34-bit 1:1", 34, "80 00 80 00 80", reader.FormatWiegand34, "1:1", nil},
		// 37-bit H10304, facility 1, card 1: bits 1–16 = 0…01, bits
		// 17–35 = 0…01. Even over 1–18: one 1 (bit 16) → P 1. Odd over
		// 18–35: one 1 (bit 35) → P 0.
		// Bits 0, 16 and 35 set → 80 00 80 00 10 (bit 35 is byte 4's
		// fourth bit).
		{"H10304 1:1", 37, "80 00 80 00 10", reader.FormatWiegand37, "1:1", nil},
		{"H10304 parity error", 37, "00 00 80 00 10", "", "", ErrParity},
		// 32 bits: no Wiegand format of that length.
		{"raw 32 bits", 32, "0A 1B 2C 3D", reader.FormatRaw, "32:0A1B2C3D", nil},
		// 12 bits: the 4 bits past the count are cleared.
		{"raw 12 bits", 12, "AB CF", reader.FormatRaw, "12:ABC0", nil},
		{"too few bytes", 26, "BD D9 37", "", "", ErrCard},
		{"no bits", 0, "", "", "", ErrCard},
	} {
		f, v, err := DecodeBits(tc.bits, hx(t, tc.data))
		if f != tc.format || v != tc.value || !errors.Is(err, tc.err) {
			t.Errorf("%s: %q %q %v; want %q %q %v", tc.name, f, v, err, tc.format, tc.value, tc.err)
		}
	}
}

func TestEncodeWiegandRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		bits      int
		fac, card uint64
	}{
		{26, 123, 45678}, {26, 0, 0}, {26, 255, 65535}, {26, 1, 2},
		{34, 1, 1}, {34, 65535, 65535}, {34, 4242, 31337},
		{37, 1, 1}, {37, 65535, 1<<19 - 1}, {37, 1234, 300000},
	} {
		d, err := EncodeWiegand(tc.bits, tc.fac, tc.card)
		if err != nil {
			t.Fatal(err)
		}
		_, v, err := DecodeBits(tc.bits, d)
		want := ParseOrDie(t, tc.fac, tc.card)
		if err != nil || v != want {
			t.Errorf("%d-bit %s: decoded %q, %v", tc.bits, want, v, err)
		}
		// Every single-bit error is caught by one of the parities.
		for i := range tc.bits {
			c := append([]byte(nil), d...)
			c[i/8] ^= 0x80 >> (i % 8)
			if _, _, err := DecodeBits(tc.bits, c); !errors.Is(err, ErrParity) {
				t.Errorf("%d-bit %s with bit %d flipped: %v", tc.bits, want, i, err)
			}
		}
	}
	if d, _ := EncodeWiegand(26, 123, 45678); string(d) != string(hx(t, "BD D9 37 40")) {
		t.Errorf("EncodeWiegand(26, 123, 45678) = % X", d)
	}
	for _, bad := range []struct {
		bits      int
		fac, card uint64
	}{{26, 256, 0}, {26, 0, 65536}, {37, 0, 1 << 19}, {30, 1, 1}} {
		if _, err := EncodeWiegand(bad.bits, bad.fac, bad.card); !errors.Is(err, ErrCard) {
			t.Errorf("EncodeWiegand(%v) error %v", bad, err)
		}
	}
}

func ParseOrDie(t *testing.T, fac, card uint64) string {
	t.Helper()
	s := formatUint(fac) + ":" + formatUint(card)
	f, c, err := ParseFacCard(s)
	if err != nil || f != fac || c != card {
		t.Fatalf("ParseFacCard(%q) = %d, %d, %v", s, f, c, err)
	}
	return s
}

func formatUint(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for v > 0 {
		b = append([]byte{byte('0' + v%10)}, b...)
		v /= 10
	}
	return string(b)
}

func TestDecodeReplies(t *testing.T) {
	cr, err := DecodeRAW(hx(t, "00 01 1A 00 BD D9 37 40"))
	if err != nil || cr != (CardRead{reader.FormatWiegand26, "123:45678"}) {
		t.Errorf("RAW: %+v, %v", cr, err)
	}
	if _, err := DecodeRAW(hx(t, "00 01 1A 00 BD D9 37")); !errors.Is(err, reader.ErrBadFrame) {
		t.Errorf("short RAW: %v", err)
	}
	if _, err := DecodeRAW(hx(t, "00 01 1A 00 3D D9 37 40")); !errors.Is(err, reader.ErrBadFrame) || !errors.Is(err, ErrParity) {
		t.Errorf("RAW with a parity error: %v", err)
	}
	// osdp_FMT: reader 0, forward, 10 characters.
	cr, err = DecodeFMT(append(hx(t, "00 00 0A"), "0001193046"...))
	if err != nil || cr != (CardRead{reader.FormatTyped, "0001193046"}) {
		t.Errorf("FMT: %+v, %v", cr, err)
	}
	if _, err := DecodeFMT(hx(t, "00 00 02 41")); err == nil {
		t.Error("FMT with a wrong count accepted")
	}
	keys, err := DecodeKeypad(hx(t, "00 07 34 38 32 31 0D 7F 2A"))
	if err != nil || len(keys) != 7 || keys[4] != "#" || keys[5] != "*" || keys[6] != "*" || keys[0] != "4" {
		t.Errorf("KEYPPAD: %q, %v", keys, err)
	}
	if _, err := DecodeKeypad(hx(t, "00 01 07")); err == nil {
		t.Error("KEYPPAD with a control character accepted")
	}
	if got := EncodeKeypad("4821#*"); string(got) != string(hx(t, "00 06 34 38 32 31 0D 7F")) {
		t.Errorf("EncodeKeypad = % X", got)
	}
	id, err := DecodePDID(hx(t, "5C 26 0A 01 02 78 56 34 12 01 02 03"))
	if err != nil || id.Serial != 0x12345678 || id.Model != 1 || id.Firmware != [3]byte{1, 2, 3} {
		t.Errorf("PDID: %+v, %v", id, err)
	}
	caps, err := DecodePDCAP(hx(t, "01 01 04 03 01 01"))
	if err != nil || len(caps) != 2 || caps[1] != (Capability{3, 1, 1}) {
		t.Errorf("PDCAP: %+v, %v", caps, err)
	}
}

// The feedback records, byte by byte (§6.10, §6.11).
func TestFeedback(t *testing.T) {
	l, b := Feedback(reader.Signal{Accepted: true})
	// reader 0, LED 0, temporary: control 2 (set, start timer), on 5
	// (500 ms), off 2, on colour 2 (green), off colour 0, timer 20
	// (2 s, 14 00); permanent: no change.
	if got := l.Encode(); string(got) != string(hx(t, "00 00 02 05 02 02 00 14 00 00 00 00 00 00")) {
		t.Errorf("accept LED % X", got)
	}
	// reader 0, tone 2 (default), on 1, off 1, once.
	if got := b.Encode(); string(got) != string(hx(t, "00 02 01 01 01")) {
		t.Errorf("accept BUZ % X", got)
	}
	l, b = Feedback(reader.Signal{Accepted: false})
	if l.TempOnColor != ColorRed || l.TempOn == 0 || l.TempOff == 0 || l.Timer == 0 || b.Tone != 2 || b.On == 0 {
		t.Errorf("deny: %+v %+v", l, b)
	}
	if back, err := DecodeLED(l.Encode()); err != nil || back != l {
		t.Errorf("LED round trip: %+v, %v", back, err)
	}
	if back, err := DecodeBuzzer(b.Encode()); err != nil || back != b {
		t.Errorf("BUZ round trip: %+v, %v", back, err)
	}
}
