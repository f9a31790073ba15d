package wiegand

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/gpioline"
)

const us = time.Microsecond

func bitsOf(s string) []bool {
	b := make([]bool, 0, len(s))
	for _, c := range strings.ReplaceAll(s, " ", "") {
		b = append(b, c == '1')
	}
	return b
}

// Frames worked from the format descriptions (P = parity, E even over
// the first half, O odd over the second):
var formatCases = []struct {
	name string
	bits string
	want Credential
	err  bool
}{
	// H10301, facility 123 = 0111 1011, card 45678 = 1011 0010 0110 1110.
	// Bits 1-12 "0111 1011 1011" have 9 ones: E = 1; bits 13-24
	// "0010 0110 1110" have 6: O = 1.
	{"26-bit H10301", "1 01111011 1011001001101110 1", Credential{reader.TypeCard, reader.FormatWiegand26, "123:45678"}, false},
	{"26-bit facility 0 card 0", "0 00000000 0000000000000000 1", Credential{reader.TypeCard, reader.FormatWiegand26, "0:0"}, false},
	{"26-bit all ones", "0 11111111 1111111111111111 1", Credential{reader.TypeCard, reader.FormatWiegand26, "255:65535"}, false},
	{"26-bit even parity wrong", "0 01111011 1011001001101110 1", Credential{}, true},
	{"26-bit odd parity wrong", "1 01111011 1011001001101110 0", Credential{}, true},
	{"26-bit one data bit flipped", "1 01111011 1011001001101111 1", Credential{}, true},
	// 34-bit: a reader manual's example, card 1234567890 = 0x499602D2:
	// E = 1 over 0100 1001 1001 0110, O = 0 over 0000 0010 1101 0010.
	// Facility 0x4996 = 18838, card 0x02D2 = 722.
	{"34-bit", "1 0100100110010110 0000001011010010 0", Credential{reader.TypeCard, reader.FormatWiegand34, "18838:722"}, false},
	{"34-bit odd parity wrong", "1 0100100110010110 0000001011010010 1", Credential{}, true},
	// H10304, facility 1234 = 0000 0100 1101 0010, card 98765 =
	// 001 1000 0001 1100 1101 (19 bits). E over bits 1-18 (the
	// facility and the card's first two bits): 5 ones, E = 1. O over
	// bits 18-35: 8 ones, O = 1.
	{"37-bit H10304", "1 0000010011010010 0011000000111001101 1", Credential{reader.TypeCard, reader.FormatWiegand37, "1234:98765"}, false},
	{"37-bit parity wrong", "0 0000010011010010 0011000000111001101 1", Credential{}, true},
	// Keypad, 4 bits per key.
	{"key 0", "0000", Credential{reader.TypeKey, "", "0"}, false},
	{"key 9", "1001", Credential{reader.TypeKey, "", "9"}, false},
	{"key * (0xA)", "1010", Credential{reader.TypeKey, "", "*"}, false},
	{"key # (0xB)", "1011", Credential{reader.TypeKey, "", "#"}, false},
	{"4-bit code 0xC is no key", "1100", Credential{}, true},
	// Keypad, 8 bits per key: the complement in the high nibble.
	{"8-bit key 1", "1110 0001", Credential{reader.TypeKey, "", "1"}, false},
	{"8-bit key #", "0100 1011", Credential{reader.TypeKey, "", "#"}, false},
	{"8-bit key, complement wrong", "1111 0001", Credential{}, true},
	// Other lengths.
	{"32 bits raw", "0000 1010 0001 1011 0010 1100 0011 1101", Credential{reader.TypeCard, reader.FormatRaw, "32:0A1B2C3D"}, false},
	{"30 bits raw, padded at the top", "11 1111 1111 1111 1111 1111 1111 1111", Credential{reader.TypeCard, reader.FormatRaw, "30:3FFFFFFF"}, false},
	{"25 bits: a 26-bit frame that lost a bit", "1 01111011 101100100110111 1", Credential{}, true},
	{"27 bits: one bit invented", "1 01111011 1011001001101110 11", Credential{}, true},
	{"33 bits", strings.Repeat("1", 33), Credential{}, true},
	{"36 and 38 bits", strings.Repeat("0", 36), Credential{}, true},
	{"a few bits of noise", "101", Credential{}, true},
	{"23 bits", strings.Repeat("1", 23), Credential{}, true},
}

func TestInterpretVectors(t *testing.T) {
	for _, tc := range formatCases {
		t.Run(tc.name, func(t *testing.T) {
			b := bitsOf(tc.bits)
			got, err := Interpret(Frame{Len: len(b), Bits: b})
			if tc.err {
				if !errors.Is(err, reader.ErrBadFrame) {
					t.Fatalf("Interpret = %+v, %v; want ErrBadFrame", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Interpret = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestEncodeMatchesVectors(t *testing.T) {
	for _, tc := range []struct {
		n         int
		fac, card uint64
		bits      string
	}{
		{26, 123, 45678, "1 01111011 1011001001101110 1"},
		{34, 18838, 722, "1 0100100110010110 0000001011010010 0"},
		{37, 1234, 98765, "1 0000010011010010 0011000000111001101 1"},
	} {
		b, err := EncodeCard(tc.n, tc.fac, tc.card)
		if err != nil || !slices.Equal(b, bitsOf(tc.bits)) {
			t.Errorf("EncodeCard(%d, %d, %d) = %v, %v", tc.n, tc.fac, tc.card, b, err)
		}
	}
	for _, bad := range [][3]uint64{{26, 256, 0}, {26, 0, 65536}, {34, 65536, 0}, {37, 0, 1 << 19}, {35, 1, 1}} {
		if _, err := EncodeCard(int(bad[0]), bad[1], bad[2]); !errors.Is(err, ErrRange) {
			t.Errorf("EncodeCard(%v) = %v, want ErrRange", bad, err)
		}
	}
	for _, k := range []string{"0", "5", "9", "*", "#"} {
		for _, eight := range []bool{false, true} {
			b, ok := EncodeKey(k, eight)
			c, err := Interpret(Frame{Len: len(b), Bits: b})
			if !ok || err != nil || c.Value != k || c.Type != reader.TypeKey {
				t.Errorf("key %q (8 bits %v) = %v → %+v, %v", k, eight, b, c, err)
			}
		}
	}
	if _, ok := EncodeKey("A", false); ok {
		t.Error("EncodeKey(A) ok")
	}
}

// decode feeds edges and a final Flush, returning the credentials and
// the number of rejected frames.
func decode(d *Decoder, edges []gpioline.Edge) (got []Credential, bad int) {
	emit := func(f Frame) {
		c, err := Interpret(f)
		if err != nil {
			bad++
			return
		}
		got = append(got, c)
	}
	for _, e := range edges {
		d.Edge(e, emit)
	}
	d.Flush(emit)
	return got, bad
}

// jittered sends bits as a real reader does: 50–100 µs pulses starting
// 1–2.5 ms apart.
func jittered(rng *rand.Rand, bits []bool, start time.Duration) ([]gpioline.Edge, time.Duration) {
	var edges []gpioline.Edge
	at := start
	for _, b := range bits {
		line := D0
		if b {
			line = D1
		}
		w := 50*us + time.Duration(rng.Int64N(int64(50*us)))
		edges = append(edges, gpioline.Edge{Line: line, At: at}, gpioline.Edge{Line: line, Rising: true, At: at + w})
		at += time.Millisecond + time.Duration(rng.Int64N(int64(1500*us)))
	}
	return edges, at
}

func card26(t testing.TB) []bool {
	b, err := EncodeCard(26, 123, 45678)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecoderEdgeStreams(t *testing.T) {
	want26 := Credential{reader.TypeCard, reader.FormatWiegand26, "123:45678"}
	rng := rand.New(rand.NewPCG(7, 7))

	t.Run("exact timing", func(t *testing.T) {
		var d Decoder
		got, bad := decode(&d, Pulses(card26(t), 0, 80*us, 2*time.Millisecond))
		if bad != 0 || !slices.Equal(got, []Credential{want26}) {
			t.Fatalf("got %+v, %d bad", got, bad)
		}
	})
	t.Run("jitter, two frames split by silence and no Flush between", func(t *testing.T) {
		var d Decoder
		e1, end := jittered(rng, card26(t), 5*time.Second)
		b34, _ := EncodeCard(34, 18838, 722)
		e2, _ := jittered(rng, b34, end+FrameGap)
		got, bad := decode(&d, append(e1, e2...))
		want := []Credential{want26, {reader.TypeCard, reader.FormatWiegand34, "18838:722"}}
		if bad != 0 || !slices.Equal(got, want) || d.Garbage() != 0 {
			t.Fatalf("got %+v, %d bad, %d garbage", got, bad, d.Garbage())
		}
	})
	t.Run("silence just under the gap does not split", func(t *testing.T) {
		var d Decoder
		b := card26(t)
		e := append(Pulses(b[:10], 0, 80*us, 2*time.Millisecond),
			Pulses(b[10:], 18*time.Millisecond+FrameGap-80*us-us, 80*us, 2*time.Millisecond)...)
		if got, bad := decode(&d, e); bad != 0 || !slices.Equal(got, []Credential{want26}) {
			t.Fatalf("got %+v, %d bad", got, bad)
		}
	})
	t.Run("glitches around a frame are filtered", func(t *testing.T) {
		var d Decoder
		e, _ := jittered(rng, card26(t), 0)
		noisy := []gpioline.Edge{
			// A 1 µs spike on D1 between bits 3 and 4.
			{Line: D1, At: e[5].At + 300*us}, {Line: D1, Rising: true, At: e[5].At + 301*us},
			// D0 and D1 low at once: neither pulse is a bit.
			{Line: D0, At: e[9].At + 400*us}, {Line: D1, At: e[9].At + 410*us},
			{Line: D1, Rising: true, At: e[9].At + 450*us}, {Line: D0, Rising: true, At: e[9].At + 460*us},
			// A rise on a line already high.
			{Line: D0, Rising: true, At: e[15].At + 500*us},
			// An edge on a line that is neither D0 nor D1.
			{Line: 2, At: e[15].At + 501*us},
		}
		all := append(slices.Clone(e), noisy...)
		slices.SortStableFunc(all, func(a, b gpioline.Edge) int { return int(a.At - b.At) })
		got, bad := decode(&d, all)
		if bad != 0 || !slices.Equal(got, []Credential{want26}) {
			t.Fatalf("got %+v, %d bad", got, bad)
		}
		if d.Garbage() != 5 {
			t.Fatalf("garbage %d, want 5", d.Garbage())
		}
	})
	t.Run("a missing bit is rejected, never a wrong card", func(t *testing.T) {
		b := card26(t)
		for i := range b {
			var d Decoder
			e, _ := jittered(rng, b, 0)
			e = slices.Delete(e, 2*i, 2*i+2) // pulse i never arrived
			got, bad := decode(&d, e)
			if len(got) != 0 || bad != 1 {
				t.Fatalf("without bit %d: got %+v, %d bad", i, got, bad)
			}
		}
	})
	t.Run("a lost rising edge loses that bit only", func(t *testing.T) {
		var d Decoder
		e := Pulses(card26(t), 0, 80*us, 2*time.Millisecond)
		e = slices.Delete(e, 7, 8) // bit 3's rise
		got, bad := decode(&d, e)
		if len(got) != 0 || bad != 1 {
			t.Fatalf("got %+v, %d bad", got, bad)
		}
	})
	t.Run("every bit flipped in turn is rejected", func(t *testing.T) {
		for i := range 26 {
			var d Decoder
			b := card26(t)
			b[i] = !b[i]
			if got, bad := decode(&d, Pulses(b, 0, 80*us, 2*time.Millisecond)); len(got) != 0 || bad != 1 {
				t.Fatalf("bit %d flipped: got %+v, %d bad", i, got, bad)
			}
		}
	})
	t.Run("time going backwards ends the frame", func(t *testing.T) {
		var d Decoder
		b := card26(t)
		e := append(Pulses(b[:13], time.Hour, 80*us, 2*time.Millisecond), Pulses(b, 0, 80*us, 2*time.Millisecond)...)
		got, bad := decode(&d, e)
		if bad != 1 || !slices.Equal(got, []Credential{want26}) {
			t.Fatalf("got %+v, %d bad", got, bad)
		}
	})
	t.Run("a pulse across a silence is no bit", func(t *testing.T) {
		var d Decoder
		var n int
		d.Edge(gpioline.Edge{Line: D0, At: 0}, func(Frame) { n++ })
		d.Flush(func(Frame) { n++ })
		d.Edge(gpioline.Edge{Line: D0, Rising: true, At: time.Second}, func(Frame) { n++ })
		d.Flush(func(Frame) { n++ })
		if n != 0 || d.Garbage() != 1 {
			t.Fatalf("%d frames, %d garbage", n, d.Garbage())
		}
	})
	t.Run("an endless frame is bounded and rejected", func(t *testing.T) {
		var d Decoder
		var frames []Frame
		for _, e := range Pulses(make([]bool, 10*MaxBits), 0, 80*us, time.Millisecond) {
			d.Edge(e, func(f Frame) { frames = append(frames, f) })
		}
		d.Flush(func(f Frame) { frames = append(frames, f) })
		if len(frames) != 1 || frames[0].Len != MaxBits+1 || frames[0].Bits != nil {
			t.Fatalf("frames %+v", frames)
		}
		if _, err := Interpret(frames[0]); !errors.Is(err, reader.ErrBadFrame) {
			t.Fatal(err)
		}
	})
	t.Run("keypad: one frame per key", func(t *testing.T) {
		var d Decoder
		var e []gpioline.Edge
		at := time.Duration(0)
		for _, k := range "4821#" {
			b, _ := EncodeKey(string(k), k == '8')
			var more []gpioline.Edge
			more, at = jittered(rng, b, at)
			e = append(e, more...)
			at += 60 * time.Millisecond
		}
		got, bad := decode(&d, e)
		var keys string
		for _, c := range got {
			keys += c.Value
		}
		if bad != 0 || keys != "4821#" {
			t.Fatalf("keys %q, %d bad", keys, bad)
		}
	})
}

// FuzzDecoder: any edge stream. Never panics; frames stay bounded; every
// credential is well formed; the counts add up.
func FuzzDecoder(f *testing.F) {
	enc := func(edges []gpioline.Edge) []byte {
		var b []byte
		var last time.Duration
		for _, e := range edges {
			flags := byte(e.Line & 1)
			if e.Rising {
				flags |= 2
			}
			dt := uint16(min((e.At-last)/us, 0xFFFF))
			last = e.At
			b = append(b, flags, byte(dt>>8), byte(dt))
		}
		return b
	}
	f.Add(enc(Pulses(card26(f), 0, 80*us, 2*time.Millisecond)))
	b34, _ := EncodeCard(34, 1, 2)
	f.Add(enc(Pulses(b34, 0, 80*us, 2*time.Millisecond)))
	k, _ := EncodeKey("#", true)
	f.Add(enc(Pulses(k, 0, 80*us, 2*time.Millisecond)))
	f.Add([]byte{0, 0, 1, 1, 0, 1, 2, 0, 1, 3, 0, 1, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Decoder
		var at time.Duration
		var frames, bits int
		emit := func(fr Frame) {
			frames++
			if fr.Len < 1 || fr.Len > MaxBits+1 || (fr.Len <= MaxBits) != (len(fr.Bits) == fr.Len) {
				t.Fatalf("frame %+v", fr)
			}
			bits += min(fr.Len, MaxBits)
			c, err := Interpret(fr)
			if err != nil {
				if !errors.Is(err, reader.ErrBadFrame) {
					t.Fatalf("error %v is no ErrBadFrame", err)
				}
				return
			}
			switch {
			case c.Type == reader.TypeKey && len(c.Value) == 1 && strings.Contains("0123456789*#", c.Value):
			case c.Type == reader.TypeCard && c.Format == reader.FormatRaw && strings.HasPrefix(c.Value, strconv.Itoa(fr.Len)+":"):
			case c.Type == reader.TypeCard && strings.Count(c.Value, ":") == 1:
				b, err := EncodeCard(fr.Len, parse(c.Value, 0), parse(c.Value, 1))
				if err != nil || !slices.Equal(b, fr.Bits) {
					t.Fatalf("%+v does not encode back to %v", c, fr.Bits)
				}
			default:
				t.Fatalf("credential %+v from %d bits", c, fr.Len)
			}
		}
		n := 0
		for ; len(data) >= 3; data = data[3:] {
			flags := data[0]
			dt := time.Duration(uint16(data[1])<<8|uint16(data[2])) * us
			if flags&4 != 0 {
				at -= dt // time may go backwards
			} else {
				at += dt
			}
			d.Edge(gpioline.Edge{Line: int(flags & 1), Rising: flags&2 != 0, At: at}, emit)
			n++
		}
		d.Flush(emit)
		if uint64(bits)+d.Garbage() > uint64(n) {
			t.Fatalf("%d bits and %d garbage from %d edges", bits, d.Garbage(), n)
		}
	})
}

func parse(v string, i int) uint64 {
	var n uint64
	for _, c := range strings.Split(v, ":")[i] {
		n = n*10 + uint64(c-'0')
	}
	return n
}

// BenchmarkDecode26: a 26-bit frame's 52 edges through the decoder, the
// silence flush and Interpret: the CPU part of the time from the last
// edge to the Read (the 25 ms of silence that ends a frame is the rest).
func BenchmarkDecode26(b *testing.B) {
	edges := Pulses(card26(b), 0, 80*us, 2*time.Millisecond)
	var d Decoder
	var c Credential
	emit := func(f Frame) { c, _ = Interpret(f) }
	b.ReportAllocs()
	for b.Loop() {
		for _, e := range edges {
			d.Edge(e, emit)
		}
		d.Flush(emit)
	}
	if c.Value != "123:45678" {
		b.Fatal(c)
	}
}
