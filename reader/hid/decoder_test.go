package hid

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
)

// t0 stamps the events of the vectors: 2023-11-14 22:13:20.000123 UTC.
var t0 = time.Unix(1_700_000_000, 123_000)

// Literal records, as a 64-bit process reads them from /dev/input/event*
// on a little-endian machine (every Raspberry Pi, amd64): a real USB
// keyboard's '1' key (HID usage 0x1E) going down then up, and Enter.
const press1Enter64 = "" +
	// MSC_SCAN 0x7001E
	"00f1536500000000" + "7b00000000000000" + "0400" + "0400" + "1e000700" +
	// sec 1700000000       usec 123            EV_MSC  MSC_SCAN  value 0x7001E
	// EV_KEY KEY_1 down
	"00f1536500000000" + "7b00000000000000" + "0100" + "0200" + "01000000" +
	// EV_SYN SYN_REPORT
	"00f1536500000000" + "7b00000000000000" + "0000" + "0000" + "00000000" +
	// EV_KEY KEY_1 up, SYN_REPORT
	"00f1536500000000" + "e703000000000000" + "0100" + "0200" + "00000000" +
	"00f1536500000000" + "e703000000000000" + "0000" + "0000" + "00000000" +
	// EV_KEY KEY_ENTER (28 = 0x1c) down, up
	"01f1536500000000" + "0000000000000000" + "0100" + "1c00" + "01000000" +
	"01f1536500000000" + "0000000000000000" + "0100" + "1c00" + "00000000"

// The same as a 32-bit process (GOARCH=arm) reads it: 4-byte seconds and
// microseconds, 16 bytes a record.
const press1Enter32 = "" +
	"00f15365" + "7b000000" + "0400" + "0400" + "1e000700" + // MSC_SCAN
	"00f15365" + "7b000000" + "0100" + "0200" + "01000000" + // KEY_1 down
	"00f15365" + "7b000000" + "0000" + "0000" + "00000000" + // SYN_REPORT
	"00f15365" + "e7030000" + "0100" + "0200" + "00000000" + // KEY_1 up
	"00f15365" + "e7030000" + "0000" + "0000" + "00000000" + // SYN_REPORT
	"01f15365" + "00000000" + "0100" + "1c00" + "01000000" + // KEY_ENTER down
	"01f15365" + "00000000" + "0100" + "1c00" + "00000000" //   KEY_ENTER up

func unhex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func isLittleEndian() bool {
	return binary.NativeEndian.Uint16([]byte{1, 0}) == 1
}

// A stream builds input for the decoder, one event at a time.
type stream struct {
	l Layout
	b []byte
}

func (s *stream) ev(typ, code uint16, value int32) *stream {
	s.b = appendEvent(s.b, s.l, event{sec: 1_700_000_000, usec: 5, typ: typ, code: code, value: value})
	return s
}

func (s *stream) down(code uint16) *stream { return s.ev(evKey, code, keyDown).ev(evSyn, synReport, 0) }
func (s *stream) up(code uint16) *stream   { return s.ev(evKey, code, keyUp).ev(evSyn, synReport, 0) }
func (s *stream) press(codes ...uint16) *stream {
	for _, c := range codes {
		s.down(c).up(c)
	}
	return s
}
func (s *stream) enter() *stream { return s.press(keyEnter) }

// typed appends what a reader sends for value: see typist.
func (s *stream) typed(value string) *stream {
	ty := typist{l: s.l, t: t0}
	b, err := ty.typeValue(s.b, value, false)
	if err != nil {
		panic(err)
	}
	s.b = b
	return s
}

func (s *stream) bytes(b ...byte) *stream { s.b = append(s.b, b...); return s }

func ev64() *stream { return &stream{l: Layout64} }

const keyQ = 16 // KEY_Q: not a key a wedge reader types

type decCase struct {
	name    string
	l       Layout
	in      []byte
	want    []string
	bad     uint64
	garbage uint64
}

func decCases(t testing.TB) []decCase {
	digits := func(n int) []uint16 {
		var c []uint16
		for i := range n {
			c = append(c, key1+uint16(i%10)) // 1…9 then KEY_0
		}
		return c
	}
	cases := []decCase{
		{name: "empty", in: nil},
		{
			// What a wedge reader types for an EM card 0A00123456: the
			// ten-digit decimal of its last four bytes, then Enter.
			name: "EM card decimal",
			in:   ev64().typed("0001193046").b,
			want: []string{"0001193046"},
		},
		{
			name: "keypad digits and keypad Enter",
			in:   ev64().press(keyKP0, keyKP4, keyKP2, keyKPEnter).b,
			want: []string{"042"},
		},
		{
			// Hex readers: letters with shift are upper case, without
			// lower case, as typed.
			name: "hex with and without shift",
			in: ev64().down(keyLeftShift).press(keyA).up(keyLeftShift).
				press(keyB, keyC).down(keyRightShift).press(keyD, keyE, keyF).up(keyRightShift).
				press(key0).enter().b,
			want: []string{"AbcDEF0"},
		},
		{
			name: "typist's upper-case hex",
			in:   ev64().typed("00FF12ab").b,
			want: []string{"00FF12ab"},
		},
		{
			// A reader set up for an AZERTY host holds shift to type
			// digits; key codes are positions, so they are digits.
			name: "digits with shift held",
			in:   ev64().down(keyLeftShift).press(key1, key1+1).up(keyLeftShift).enter().b,
			want: []string{"12"},
		},
		{
			name: "autorepeat ignored",
			in:   ev64().down(key1+4).ev(evKey, key1+4, keyRepeat).ev(evKey, key1+4, keyRepeat).up(key1 + 4).enter().b,
			want: []string{"5"},
		},
		{
			name: "Enter alone types nothing",
			in:   ev64().enter().enter().b,
		},
		{
			name: "Num Lock ignored",
			in:   ev64().press(keyNumLock, keyKP1, keyNumLock, keyKP2, keyKPEnter).b,
			want: []string{"12"},
		},
		{
			// EV_LED (0x11) NumLock on, EV_REL (0x02), EV_MSC: no keys.
			name: "other event types ignored",
			in:   ev64().ev(0x11, 0, 1).press(key1).ev(0x02, 0, 5).ev(evMsc, mscScan, 0x70028).enter().b,
			want: []string{"1"},
		},
		{
			// KEY_Q goes down after "12": the value is discarded, "3"
			// with it, up to Enter; the next value is read.
			name:    "unknown key discards the value",
			in:      ev64().press(key1, key1+1, keyQ, key1+2).enter().typed("77").b,
			want:    []string{"77"},
			bad:     1,
			garbage: 4,
		},
		{
			name:    "unknown key alone",
			in:      ev64().press(keyEsc).enter().typed("9").b,
			want:    []string{"9"},
			bad:     1,
			garbage: 1,
		},
		{
			name:    "Ctrl is an unknown key",
			in:      ev64().down(keyLeftCtrl).press(key1).up(keyLeftCtrl).enter().b,
			bad:     1,
			garbage: 2,
		},
		{
			name: "64 characters is a value",
			in:   ev64().press(digits(64)...).enter().b,
			want: []string{strings.Repeat("1234567890", 7)[:64]},
		},
		{
			// The 65th key makes it garbage; the keys after it up to
			// Enter too.
			name:    "65 characters is garbage",
			in:      ev64().press(digits(66)...).enter().typed("12").b,
			want:    []string{"12"},
			bad:     1,
			garbage: 66,
		},
		{
			// The kernel's buffer overflowed: "12" is discarded and so
			// is "34", since its Enter may be what was lost.
			name:    "SYN_DROPPED discards up to Enter",
			in:      ev64().press(key1, key1+1).ev(evSyn, synDropped, 0).press(key1+2, key1+3).enter().typed("56").b,
			want:    []string{"56"},
			bad:     1,
			garbage: 4,
		},
		{
			// The shift key went up during the overflow, unseen.
			name:    "SYN_DROPPED releases shift",
			in:      ev64().down(keyLeftShift).ev(evSyn, synDropped, 0).enter().press(keyA).enter().b,
			want:    []string{"a"},
			bad:     1,
			garbage: 0,
		},
		{
			// A key event with value 7 cannot come from the kernel: the
			// stream is misaligned; the decoder slides byte by byte
			// through that record (24 bytes of garbage, the last slide
			// lands on the next record) and drops the value it was in.
			name:    "implausible key value",
			in:      ev64().press(key1).ev(evKey, key1, 7).press(key1 + 1).enter().typed("3").b,
			want:    []string{"3"},
			bad:     1,
			garbage: 24 + 2,
		},
		{
			// Three stray bytes misalign the stream: the decoder slides
			// three bytes to realign (no plausible record in between),
			// drops "11" (its beginning might have been lost) and reads
			// "22".
			name:    "misaligned by stray bytes",
			in:      ev64().bytes(0xff, 0xff, 0xff).typed("11").typed("22").b,
			want:    []string{"22"},
			bad:     1,
			garbage: 3 + 2,
		},
		{
			name: "two values back to back",
			in:   ev64().typed("0001193046").typed("0001193046").b,
			want: []string{"0001193046", "0001193046"},
		},
		{
			// A pending value is neither emitted nor counted.
			name: "partial value pending",
			in:   ev64().press(key1, key1+1).b,
		},
		{
			name: "partial record pending",
			in:   ev64().typed("1").bytes(1, 2, 3).b,
			want: []string{"1"},
		},
		{
			name: "32-bit layout",
			l:    Layout32,
			in:   (&stream{l: Layout32}).typed("0001193046").press(keyKP1, keyKPEnter).b,
			want: []string{"0001193046", "1"},
		},
	}
	if isLittleEndian() {
		cases = append(cases,
			decCase{name: "literal 64-bit records", l: Layout64, in: unhex(t, press1Enter64), want: []string{"1"}},
			decCase{name: "literal 32-bit records", l: Layout32, in: unhex(t, press1Enter32), want: []string{"1"}},
		)
	}
	for i := range cases {
		if cases[i].l == 0 {
			cases[i].l = Layout64
		}
	}
	return cases
}

func feedAll(d *Decoder, chunks ...[]byte) []string {
	var got []string
	for _, c := range chunks {
		d.Feed(c, func(v string) { got = append(got, v) })
	}
	return got
}

func TestDecoderVectors(t *testing.T) {
	for _, tc := range decCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			d := Decoder{Layout: tc.l}
			got := feedAll(&d, tc.in)
			if !slices.Equal(got, tc.want) {
				t.Errorf("values = %q, want %q", got, tc.want)
			}
			want := reader.Stats{Frames: uint64(len(tc.want)), BadFrames: tc.bad, Garbage: tc.garbage}
			if s := d.Stats(); s != want {
				t.Errorf("stats = %+v, want %+v", s, want)
			}
		})
	}
}

// The literal vectors are what appendEvent writes.
func TestLiteralVectorsMatchEncoder(t *testing.T) {
	if !isLittleEndian() {
		t.Skip("the literal vectors are little-endian; this machine is not")
	}
	for _, l := range []Layout{Layout64, Layout32} {
		s := &stream{l: l}
		at := func(sec, usec uint64, typ, code uint16, v int32) {
			s.b = appendEvent(s.b, l, event{sec: sec, usec: usec, typ: typ, code: code, value: v})
		}
		at(1_700_000_000, 123, evMsc, mscScan, 0x7001E)
		at(1_700_000_000, 123, evKey, key1, keyDown)
		at(1_700_000_000, 123, evSyn, synReport, 0)
		at(1_700_000_000, 999, evKey, key1, keyUp)
		at(1_700_000_000, 999, evSyn, synReport, 0)
		at(1_700_000_001, 0, evKey, keyEnter, keyDown)
		at(1_700_000_001, 0, evKey, keyEnter, keyUp)
		want := press1Enter64
		if l == Layout32 {
			want = press1Enter32
		}
		if got := hex.EncodeToString(s.b); got != want {
			t.Errorf("layout %d:\n got %s\nwant %s", l, got, want)
		}
	}
}

// NativeLayout is the build's: 24 bytes on 64-bit, 16 on 32-bit.
func TestNativeLayout(t *testing.T) {
	want := Layout64
	if ^uint(0) == 1<<32-1 {
		want = Layout32
	}
	if NativeLayout != want || Layout(0).bytes() != int(want) {
		t.Errorf("NativeLayout = %d, want %d", NativeLayout, want)
	}
}

// Splitting the input at any position, or feeding it byte by byte, gives
// the same values and counters as feeding it whole.
func TestDecoderSplitAnywhere(t *testing.T) {
	for _, tc := range decCases(t) {
		whole := Decoder{Layout: tc.l}
		wantVals := feedAll(&whole, tc.in)
		for i := 0; i <= len(tc.in); i++ {
			d := Decoder{Layout: tc.l}
			got := feedAll(&d, tc.in[:i], tc.in[i:])
			if !slices.Equal(got, wantVals) || d.Stats() != whole.Stats() {
				t.Fatalf("%s: split at %d: %q %+v, want %q %+v", tc.name, i, got, d.Stats(), wantVals, whole.Stats())
			}
		}
		d := Decoder{Layout: tc.l}
		var chunks [][]byte
		for i := range tc.in {
			chunks = append(chunks, tc.in[i:i+1])
		}
		got := feedAll(&d, chunks...)
		if !slices.Equal(got, wantVals) || d.Stats() != whole.Stats() {
			t.Errorf("%s: byte by byte: %q %+v, want %q %+v", tc.name, got, d.Stats(), wantVals, whole.Stats())
		}
	}
}

func TestDecoderReset(t *testing.T) {
	d := Decoder{Layout: Layout64}
	in := ev64().down(keyLeftShift).press(key1, key1+1).bytes(9, 9).b
	feedAll(&d, in)
	d.Reset()
	d.Reset() // nothing pending: not counted again
	got := feedAll(&d, ev64().press(keyA).enter().b)
	if !slices.Equal(got, []string{"a"}) { // shift forgotten
		t.Errorf("values = %q", got)
	}
	if s := d.Stats(); s != (reader.Stats{Frames: 1, BadFrames: 1, Garbage: 2}) {
		t.Errorf("stats = %+v, want 1 frame, 1 bad, 2 garbage", s)
	}
}

func TestTypistRejects(t *testing.T) {
	ty := typist{l: Layout64, t: t0}
	for _, v := range []string{"", "12g", "A B", strings.Repeat("1", MaxValueLen+1)} {
		if _, err := ty.typeValue(nil, v, false); err == nil {
			t.Errorf("typeValue(%q) did not fail", v)
		}
	}
	if _, err := ty.typeValue(nil, "12ab", true); err != nil {
		t.Errorf("keypad digits and letters: %v", err)
	}
}

func validValue(v string) bool {
	if len(v) == 0 || len(v) > MaxValueLen {
		return false
	}
	for _, c := range []byte(v) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// fuzzKeys are the key codes the structured half of FuzzEvents draws
// from, so that the fuzzer reaches every branch quickly.
var fuzzKeys = []uint16{key1, key1 + 5, key0, keyKP0, keyKP9, keyA, keyF, keyEnter, keyKPEnter,
	keyLeftShift, keyRightShift, keyNumLock, keyQ, keyEsc, keyLeftCtrl, keyMax}

// structured reads data three bytes an event: a type, a code and a value
// chosen from the interesting ones.
func structured(l Layout, data []byte) []byte {
	s := &stream{l: l}
	for i := 0; i+2 < len(data); i += 3 {
		t, c, v := data[i], data[i+1], data[i+2]
		switch t % 4 {
		case 0:
			s.ev(evSyn, uint16(c%4), 0) // SYN_REPORT … SYN_DROPPED
		case 1:
			s.ev(evKey, fuzzKeys[int(c)%len(fuzzKeys)], int32(v%3))
		case 2:
			s.ev(evMsc, mscScan, int32(v))
		case 3:
			s.ev(0x11, uint16(c), int32(v%2)) // EV_LED
		}
	}
	return s.b
}

func FuzzEvents(f *testing.F) {
	for _, tc := range decCases(f) {
		f.Add(tc.in, uint16(len(tc.in)/2), uint64(1193046), false)
	}
	f.Add([]byte("\x01\x07\x01\x01\x08\x00\x01\x03\x01"), uint16(3), uint64(42), true)
	f.Fuzz(func(t *testing.T, data []byte, cut uint16, id uint64, as32 bool) {
		l := Layout64
		if as32 {
			l = Layout32
		}
		for _, in := range [][]byte{data, structured(l, data)} {
			// Never panics; every value is 1 to 64 characters a
			// reader can type.
			d1 := Decoder{Layout: l}
			vals := feedAll(&d1, in)
			for _, v := range vals {
				if !validValue(v) {
					t.Fatalf("emitted %q", v)
				}
			}
			s := d1.Stats()
			if s.Frames != uint64(len(vals)) {
				t.Fatalf("Frames = %d, emitted %d", s.Frames, len(vals))
			}
			// A value takes at least a key down and an Enter down; a
			// garbage unit, at least a byte.
			if s.Garbage > uint64(len(in)) || s.Frames*2*uint64(l) > uint64(len(in)) {
				t.Fatalf("stats %+v impossible for %d bytes", s, len(in))
			}

			// Splitting anywhere changes nothing.
			c := int(cut) % (len(in) + 1)
			d2 := Decoder{Layout: l}
			if got := feedAll(&d2, in[:c], in[c:]); !slices.Equal(got, vals) || d2.Stats() != s {
				t.Fatalf("split at %d: %q %+v, whole %q %+v", c, got, d2.Stats(), vals, s)
			}

			x := fmt.Sprintf("%010d", id%10_000_000_000)
			if len(in) > 0 && &in[0] != &data[0] {
				// In a stream of whole plausible records an Enter ends
				// whatever came before (at most one more value), and x
				// typed after it is read as typed.
				got := feedAll(&d2, (&stream{l: l}).enter().typed(x).b)
				if len(got) == 0 || len(got) > 2 || got[len(got)-1] != x {
					t.Fatalf("after %x, Enter and %q yielded %q", in, x, got)
				}
			}

			// After a Reset (a reopen), a value is read as typed.
			d1.Reset()
			hx := fmt.Sprintf("%X%x", id, id)
			if got := feedAll(&d1, (&stream{l: l}).typed(hx).b); !slices.Equal(got, []string{hx}) {
				t.Fatalf("after %x and Reset, %q yielded %q", in, hx, got)
			}
		}
	})
}
