package rdm6300

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/punchclock/punchclock/reader"
)

// Reference frames, checksums worked by hand:
//
//	0A00123456: 0A^00^12^34^56 = 7A
//	1A2B3C4D5E: 1A^2B^3C^4D^5E = 1E
const (
	frameA    = "\x02" + "0A00123456" + "7A" + "\x03"
	frameB    = "\x02" + "1A2B3C4D5E" + "1E" + "\x03"
	frameBLow = "\x02" + "1a2b3c4d5e" + "1e" + "\x03"
)

// Datasheet frames.
//
// Seeed's RDM630/RDM6300 datasheet, "Output Data Format": card number
// 62E3086CED, checksum 62^E3^08^6C^ED = 08.
//
// ID-Innovations' ID-2/12/20(LA) datasheet, "Output Data Structure -
// ASCII": STX (02h), DATA (10 ASCII), CHECK SUM (2 ASCII), CR, LF, ETX
// (03h). Its checksum example: output data 0C000621A58E, data bytes
// 0C 00 06 21 A5, XOR of the bit columns 10001110 = 8E. (The datasheet's
// prose lists an extra 00 byte and "checksum 6E"; the worked columns and
// the output data agree on 8E.)
const (
	frameSeeed    = "\x02" + "62E3086CED" + "08" + "\x03"
	frameID12     = "\x02" + "0C000621A5" + "8E" + "\r\n\x03"
	frameID12Low  = "\x02" + "0c000621a5" + "8e" + "\r\n\x03"
	frameID12BadS = "\x02" + "0C000621A5" + "6E" + "\r\n\x03" // the prose's checksum
	frameAID12    = "\x02" + "0A00123456" + "7A" + "\r\n\x03"
)

type framerCase struct {
	name    string
	in      string
	want    []string
	bad     uint64
	garbage uint64
}

var framerCases = []framerCase{
	{name: "empty", in: ""},
	{name: "good frame", in: frameA, want: []string{"0A00123456"}},
	{
		name: "lower-case hex is accepted and upper-cased",
		in:   frameBLow,
		want: []string{"1A2B3C4D5E"},
	},
	{
		name: "mixed case",
		in:   "\x02" + "1A2b3C4d5E" + "1E" + "\x03",
		want: []string{"1A2B3C4D5E"},
	},
	{
		name: "two frames back to back (the module repeating)",
		in:   frameA + frameA,
		want: []string{"0A00123456", "0A00123456"},
	},
	{
		// 7B instead of 7A: rejected, then the 12 digits and ETX after
		// its STX are rescanned and skipped as garbage.
		name:    "bad checksum",
		in:      "\x02" + "0A00123456" + "7B" + "\x03",
		bad:     1,
		garbage: 13,
	},
	{
		name:    "bad checksum then good frame",
		in:      "\x02" + "0A00123456" + "7B" + "\x03" + frameB,
		want:    []string{"1A2B3C4D5E"},
		bad:     1,
		garbage: 13,
	},
	{
		// 0x04 where ETX belongs.
		name:    "missing ETX",
		in:      "\x02" + "0A00123456" + "7A" + "\x04",
		bad:     1,
		garbage: 13,
	},
	{
		// The next frame's STX arrives where ETX belongs: the rescan
		// finds it.
		name:    "missing ETX followed by good frame",
		in:      "\x02" + "0A00123456" + "7A" + frameB,
		want:    []string{"1A2B3C4D5E"},
		bad:     1,
		garbage: 12,
	},
	{
		// 'G' is not a hex digit: rejected at once; "0A00G234567A" and
		// ETX are garbage.
		name:    "non-hex digit",
		in:      "\x02" + "0A00G23456" + "7A" + "\x03",
		bad:     1,
		garbage: 13,
	},
	{
		name:    "garbage before frame",
		in:      "xyz\r\n" + frameA,
		want:    []string{"0A00123456"},
		garbage: 5,
	},
	{
		name:    "garbage between frames",
		in:      frameA + "\xff\x00\x03" + frameB,
		want:    []string{"0A00123456", "1A2B3C4D5E"},
		garbage: 3,
	},
	{
		name:    "garbage after frame",
		in:      frameA + "\x00\x00",
		want:    []string{"0A00123456"},
		garbage: 2,
	},
	{
		// "ab" skipped; STX 'z' is a bad frame whose 'z' is rescanned
		// as garbage; the second 'z' is garbage; then a real frame.
		name:    "STX inside garbage",
		in:      "ab\x02zz" + frameA,
		want:    []string{"0A00123456"},
		bad:     1,
		garbage: 4,
	},
	{
		// The first STX's frame is rejected at the second STX, which
		// starts the real frame.
		name: "double STX",
		in:   "\x02" + frameA,
		want: []string{"0A00123456"},
		bad:  1,
	},
	{
		// Six bytes of a frame, then a real frame: the truncated one is
		// bad, its five digits garbage.
		name:    "truncated frame followed by good one",
		in:      "\x02" + "0A001" + frameB,
		want:    []string{"1A2B3C4D5E"},
		bad:     1,
		garbage: 5,
	},
	{
		// A real frame hides after a bogus STX and some digits; the
		// rescan after the bogus STX finds it.
		name:    "frame starting inside a rejected frame",
		in:      "\x02" + "12" + frameA,
		want:    []string{"0A00123456"},
		bad:     1,
		garbage: 2,
	},
	{
		// Value 0000000000 has checksum 00.
		name: "all zero card",
		in:   "\x02" + "0000000000" + "00" + "\x03",
		want: []string{"0000000000"},
	},
	{
		name: "all ones card",
		in:   "\x02" + "FFFFFFFFFF" + "FF" + "\x03",
		want: []string{"FFFFFFFFFF"},
	},
	{
		name:    "lone ETX and CR LF",
		in:      "\x03\r\n",
		garbage: 3,
	},
	{
		// A pending partial frame is neither emitted nor counted yet.
		name: "partial frame pending",
		in:   "\x02" + "0A0012",
	},
	{name: "RDM630 datasheet frame", in: frameSeeed, want: []string{"62E3086CED"}},
	{name: "ID-12 datasheet frame", in: frameID12, want: []string{"0C000621A5"}},
	{name: "ID-12 lower case", in: frameID12Low, want: []string{"0C000621A5"}},
	{
		name: "ID-12 frames repeating",
		in:   frameID12 + frameID12,
		want: []string{"0C000621A5", "0C000621A5"},
	},
	{
		// Either form at any time: a board may carry either module.
		name: "RDM6300 and ID-12 frames mixed",
		in:   frameA + frameID12 + frameB + frameAID12,
		want: []string{"0A00123456", "0C000621A5", "1A2B3C4D5E", "0A00123456"},
	},
	{
		// CR LF framing does not excuse a bad checksum: rejected at ETX;
		// the 12 digits, CR, LF and ETX after its STX are garbage.
		name:    "ID-12 bad checksum",
		in:      frameID12BadS,
		bad:     1,
		garbage: 15,
	},
	{
		name:    "ID-12 bad checksum then good frame",
		in:      frameID12BadS + frameID12,
		want:    []string{"0C000621A5"},
		bad:     1,
		garbage: 15,
	},
	{
		// CR not followed by LF: rejected at the ETX in LF's place.
		name:    "ID-12 CR without LF",
		in:      "\x02" + "0C000621A5" + "8E" + "\r\x03",
		bad:     1,
		garbage: 14,
	},
	{
		// LF without CR: rejected at LF.
		name:    "ID-12 LF without CR",
		in:      "\x02" + "0C000621A5" + "8E" + "\n\x03",
		bad:     1,
		garbage: 14,
	},
	{
		// CR LF and then no ETX but the next frame's STX: rescanned.
		name:    "ID-12 missing ETX followed by good frame",
		in:      "\x02" + "0C000621A5" + "8E" + "\r\n" + frameA,
		want:    []string{"0A00123456"},
		bad:     1,
		garbage: 14,
	},
	{
		// LF CR is not CR LF.
		name:    "ID-12 LF CR swapped",
		in:      "\x02" + "0C000621A5" + "8E" + "\n\r\x03",
		bad:     1,
		garbage: 15,
	},
	{
		// Garbage and a truncated ID-12 frame before an RDM6300 one.
		name:    "truncated ID-12 frame followed by RDM6300 frame",
		in:      "\r\n" + "\x02" + "0C000621A5" + "8E" + "\r" + frameB,
		want:    []string{"1A2B3C4D5E"},
		bad:     1,
		garbage: 2 + 13,
	},
	{
		// An ID-12 frame whose CR LF ETX are lost after its checksum.
		name: "partial ID-12 frame pending",
		in:   "\x02" + "0C000621A5" + "8E" + "\r\n",
	},
}

func feedAll(f *Framer, chunks ...[]byte) []string {
	var got []string
	for _, c := range chunks {
		f.Feed(c, func(v string) { got = append(got, v) })
	}
	return got
}

func TestFramerVectors(t *testing.T) {
	for _, tc := range framerCases {
		t.Run(tc.name, func(t *testing.T) {
			var f Framer
			got := feedAll(&f, []byte(tc.in))
			if !slices.Equal(got, tc.want) {
				t.Errorf("values = %q, want %q", got, tc.want)
			}
			want := reader.Stats{Frames: uint64(len(tc.want)), BadFrames: tc.bad, Garbage: tc.garbage}
			if s := f.Stats(); s != want {
				t.Errorf("stats = %+v, want %+v", s, want)
			}
		})
	}
}

// Splitting the input at any position, or feeding it byte by byte, gives
// the same values and counters as feeding it whole.
func TestFramerSplitAnywhere(t *testing.T) {
	for _, tc := range framerCases {
		in := []byte(tc.in)
		var whole Framer
		wantVals := feedAll(&whole, in)
		for i := 0; i <= len(in); i++ {
			var f Framer
			got := feedAll(&f, in[:i], in[i:])
			if !slices.Equal(got, wantVals) || f.Stats() != whole.Stats() {
				t.Errorf("%s: split at %d: %q %+v, want %q %+v", tc.name, i, got, f.Stats(), wantVals, whole.Stats())
			}
		}
		var f Framer
		var chunks [][]byte
		for i := range in {
			chunks = append(chunks, in[i:i+1])
		}
		got := feedAll(&f, chunks...)
		if !slices.Equal(got, wantVals) || f.Stats() != whole.Stats() {
			t.Errorf("%s: byte by byte: %q %+v, want %q %+v", tc.name, got, f.Stats(), wantVals, whole.Stats())
		}
	}
}

func TestFramerReset(t *testing.T) {
	var f Framer
	feedAll(&f, []byte("\x02"+"0A00"))
	f.Reset()
	f.Reset() // nothing pending: not counted again
	got := feedAll(&f, []byte("123456"+"7A"+"\x03"+frameB))
	if !slices.Equal(got, []string{"1A2B3C4D5E"}) {
		t.Errorf("values = %q", got)
	}
	if s := f.Stats(); s.BadFrames != 1 || s.Garbage != 9 || s.Frames != 1 {
		t.Errorf("stats = %+v, want 1 bad, 9 garbage, 1 frame", s)
	}
}

func TestEncode(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  string
	}{
		{"0A00123456", frameA},
		{"1a2b3c4d5e", frameB}, // lower case in, upper case on the wire
		{"0000000000", "\x02000000000000\x03"},
	} {
		got, err := Encode(tc.value)
		if err != nil || string(got) != tc.want {
			t.Errorf("Encode(%q) = %q, %v; want %q", tc.value, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "0A0012345", "0A001234567", "0A0012345G", " A00123456", "0x00123456"} {
		if _, err := Encode(bad); !errors.Is(err, ErrBadValue) {
			t.Errorf("Encode(%q) error = %v, want ErrBadValue", bad, err)
		}
	}
}

func TestEncodeID12(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  string
	}{
		{"0C000621A5", frameID12},
		{"0c000621a5", frameID12}, // lower case in, upper case on the wire
		{"0A00123456", frameAID12},
	} {
		got, err := EncodeID12(tc.value)
		if err != nil || string(got) != tc.want {
			t.Errorf("EncodeID12(%q) = %q, %v; want %q", tc.value, got, err, tc.want)
		}
		if len(got) != ID12FrameLen {
			t.Errorf("EncodeID12(%q) has %d bytes, want %d", tc.value, len(got), ID12FrameLen)
		}
	}
	for _, bad := range []string{"", "0A0012345", "0A0012345G"} {
		if _, err := EncodeID12(bad); !errors.Is(err, ErrBadValue) {
			t.Errorf("EncodeID12(%q) error = %v, want ErrBadValue", bad, err)
		}
	}
	// Encode's frame is not changed by EncodeID12 of the same value.
	a, _ := Encode("0A00123456")
	if _, err := EncodeID12("0A00123456"); err != nil || string(a) != frameA {
		t.Errorf("Encode = %q after EncodeID12", a)
	}
}

func TestDecimalID(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"0A00123456", "0001193046"},
		{"0a00123456", "0001193046"},
		{"FF00000001", "0000000001"}, // the version byte is not part of it
		{"00FFFFFFFF", "4294967295"},
		{"0000000000", "0000000000"},
	} {
		got, err := DecimalID(tc.value)
		if err != nil || got != tc.want {
			t.Errorf("DecimalID(%q) = %q, %v; want %q", tc.value, got, err, tc.want)
		}
	}
	if _, err := DecimalID("12345"); !errors.Is(err, ErrBadValue) {
		t.Errorf("DecimalID(short) error = %v, want ErrBadValue", err)
	}
}

func TestCanonical(t *testing.T) {
	if got, err := Canonical("0a00bc34ef"); err != nil || got != "0A00BC34EF" {
		t.Errorf("Canonical = %q, %v", got, err)
	}
	if _, err := Canonical("0a00bc34eg"); !errors.Is(err, ErrBadValue) {
		t.Errorf("Canonical(bad) error = %v, want ErrBadValue", err)
	}
}

func isUpperHex10(v string) bool {
	if len(v) != ValueLen {
		return false
	}
	for _, c := range []byte(v) {
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func FuzzFramer(f *testing.F) {
	for _, tc := range framerCases {
		f.Add([]byte(tc.in), uint64(0x0A00123456), uint16(len(tc.in)/2), false)
	}
	f.Add([]byte("\x02\x02\x02"), uint64(0xFFFFFFFFFF), uint16(1), true)
	f.Add([]byte("\x02"+"0C000621A5"+"8E"+"\r"), uint64(0x0C000621A5), uint16(13), false)
	f.Fuzz(func(t *testing.T, data []byte, id uint64, cut uint16, lower bool) {
		// Never panics; every value is ten upper hex digits whose
		// encoding is a valid frame.
		var f1 Framer
		vals := feedAll(&f1, data)
		for _, v := range vals {
			if !isUpperHex10(v) {
				t.Fatalf("emitted %q, not ten upper-case hex digits", v)
			}
			for _, enc := range []func(string) ([]byte, error){Encode, EncodeID12} {
				fr, err := enc(v)
				if err != nil {
					t.Fatalf("encode %q: %v", v, err)
				}
				if got, ok := decode(fr); !ok || got != v {
					t.Fatalf("frame %q of %q does not decode back (%q, %v)", fr, v, got, ok)
				}
			}
		}
		s := f1.Stats()
		if s.Frames != uint64(len(vals)) {
			t.Fatalf("Frames = %d, emitted %d", s.Frames, len(vals))
		}
		if s.Garbage > uint64(len(data)) || s.Frames*FrameLen > uint64(len(data)) {
			t.Fatalf("stats %+v impossible for %d bytes", s, len(data))
		}

		// Splitting anywhere changes nothing.
		c := int(cut) % (len(data) + 1)
		var f2 Framer
		if got := feedAll(&f2, data[:c], data[c:]); !slices.Equal(got, vals) || f2.Stats() != s {
			t.Fatalf("split at %d: %q %+v, whole %q %+v", c, got, f2.Stats(), vals, s)
		}

		// Encode(x) after any garbage yields exactly x: a partial frame
		// left pending is rejected at its STX and rescanned.
		x := fmt.Sprintf("%010X", id&0xFF_FFFF_FFFF)
		in := x
		if lower {
			in = strings.ToLower(x)
		}
		fr, err := Encode(in)
		if err != nil {
			t.Fatalf("Encode(%q): %v", in, err)
		}
		if !strings.HasPrefix(string(fr), "\x02"+x) {
			t.Fatalf("Encode(%q) = %q, want upper case", in, fr)
		}
		got := feedAll(&f1, fr)
		if len(got) != 1 || got[0] != x {
			t.Fatalf("after %q, Encode(%q) yielded %q", data, x, got)
		}

		// And so does EncodeID12(x), after the same garbage.
		fr, err = EncodeID12(in)
		if err != nil {
			t.Fatalf("EncodeID12(%q): %v", in, err)
		}
		got = feedAll(&f2, fr)
		if len(got) != 1 || got[0] != x {
			t.Fatalf("after %q, EncodeID12(%q) yielded %q", data, x, got)
		}
	})
}
