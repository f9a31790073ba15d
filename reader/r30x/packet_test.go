package r30x_test

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/r30x"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Byte vectors from the ZFM-20 user manual (ver. 2.0) and the R503
// manual, which print the checksum of every command without parameters;
// the others follow the rule both state: the checksum is the sum of the
// PID, the two length bytes and the payload, carries past 16 bits
// dropped, big-endian. Address FFFFFFFF (the factory default).
var vectors = []struct {
	name    string
	wire    string
	pid     byte
	payload string
}{
	// Manual: GenImg "01H 0003H 01H 0005H".
	{"GenImg", "EF01 FFFFFFFF 01 0003 01 0005", r30x.PIDCommand, "01"},
	// Manual: RegModel "01H 03H 05H 09H".
	{"RegModel", "EF01 FFFFFFFF 01 0003 05 0009", r30x.PIDCommand, "05"},
	// Manual: ReadSysPara, checksum 0x0013.
	{"ReadSysPara", "EF01 FFFFFFFF 01 0003 0F 0013", r30x.PIDCommand, "0F"},
	// Manual: DownImage "01H 03H 0bH 000fH".
	{"DownImage", "EF01 FFFFFFFF 01 0003 0B 000F", r30x.PIDCommand, "0B"},
	// R503 manual: TempleteNum "01H 0003H 1dH 0021H".
	{"TemplateNum", "EF01 FFFFFFFF 01 0003 1D 0021", r30x.PIDCommand, "1D"},
	// Img2Tz into CharBuffer1: 01+00+04+02+01.
	{"Img2Tz 1", "EF01 FFFFFFFF 01 0004 02 01 0008", r30x.PIDCommand, "0201"},
	// VfyPwd with the default password 00000000: 01+07+13.
	{"VfyPwd", "EF01 FFFFFFFF 01 0007 13 00000000 001B", r30x.PIDCommand, "1300000000"},
	// Search buffer 1 from page 0 over 0xA3 (163, a ZFM-20's
	// library): 01+08+04+01+A3 = B1.
	{"Search", "EF01 FFFFFFFF 01 0008 04 01 0000 00A3 00B1", r30x.PIDCommand, "04010000 00A3"},
	// Store buffer 1 at page 17: 01+06+06+01+11 = 1F.
	{"Store", "EF01 FFFFFFFF 01 0006 06 01 0011 001F", r30x.PIDCommand, "06010011"},
	// DeleteChar page 17, one page: 01+07+0C+11+01 = 26.
	{"DeleteChar", "EF01 FFFFFFFF 01 0007 0C 0011 0001 0026", r30x.PIDCommand, "0C00110001"},
	// ReadIndexTable index page 0: 01+04+1F = 24.
	{"ReadIndexTable", "EF01 FFFFFFFF 01 0004 1F 00 0024", r30x.PIDCommand, "1F00"},
	// Acks: GenImg success and "no finger" (confirmation 02).
	{"ack OK", "EF01 FFFFFFFF 07 0003 00 000A", r30x.PIDAck, "00"},
	{"ack no finger", "EF01 FFFFFFFF 07 0003 02 000C", r30x.PIDAck, "02"},
	// Search ack: page 17, score 100: 07+07+11+64 = 83.
	{"ack search", "EF01 FFFFFFFF 07 0007 00 0011 0064 0083", r30x.PIDAck, "0000110064"},
	// Index table with every page used: the sum carries into the
	// high byte: 07 + 23 + 32×FF = 0x200A.
	{"ack index full", "EF01 FFFFFFFF 07 0023 00" + strings.Repeat("FF", 32) + "200A", r30x.PIDAck, "00" + strings.Repeat("FF", 32)},
	// Another module address (12345678).
	{"address", "EF01 12345678 07 0003 00 000A", r30x.PIDAck, "00"},
}

func addrOf(t testing.TB, wire []byte) uint32 {
	t.Helper()
	return uint32(wire[2])<<24 | uint32(wire[3])<<16 | uint32(wire[4])<<8 | uint32(wire[5])
}

func TestVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			wire := unhex(t, v.wire)
			payload := unhex(t, v.payload)
			got, err := r30x.Encode(addrOf(t, wire), v.pid, payload)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, wire) {
				t.Errorf("Encode = % X\nwant     % X", got, wire)
			}
			var f r30x.Framer
			var pkts []r30x.Packet
			f.Feed(wire, func(p r30x.Packet) { pkts = append(pkts, p) })
			want := r30x.Packet{Addr: addrOf(t, wire), PID: v.pid, Payload: payload}
			if len(pkts) != 1 || !samePacket(pkts[0], want) {
				t.Fatalf("decoded %+v, want %+v", pkts, want)
			}
			if s := f.Stats(); s != (reader.Stats{Frames: 1}) {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

func samePacket(a, b r30x.Packet) bool {
	return a.Addr == b.Addr && a.PID == b.PID && bytes.Equal(a.Payload, b.Payload)
}

func feedAll(f *r30x.Framer, chunks ...[]byte) []r30x.Packet {
	var pkts []r30x.Packet
	emit := func(p r30x.Packet) { pkts = append(pkts, p) }
	for _, c := range chunks {
		f.Feed(c, emit)
	}
	f.Expire(emit)
	return pkts
}

func TestRejects(t *testing.T) {
	good := "EF01 FFFFFFFF 07 0003 00 000A"
	cases := []struct {
		name        string
		in          string
		frames      int
		bad, garbge uint64
	}{
		// A bad checksum: the candidate is rejected, its 11 other bytes
		// rescanned as garbage, the good packet after it read.
		{"checksum", "EF01 FFFFFFFF 07 0003 00 000B" + good, 1, 1, 11},
		// PID 03 is no packet identifier.
		{"pid", "EF01 FFFFFFFF 03 0003 00 0009" + good, 1, 1, 11},
		// Length 2: no payload at all.
		{"length 2", "EF01 FFFFFFFF 07 0002 0009" + good, 1, 1, 10},
		// Length past the largest packet.
		{"length", "EF01 FFFFFFFF 07 0103" + good, 1, 1, 8},
		// A wrong second header byte, and lone bytes.
		{"header", "EF02 00 FF" + good, 1, 0, 4},
		// A candidate cut short and a good packet that follows: the
		// short one swallows the start of the good one until its length
		// is in, then the good one is found again.
		{"truncated", "EF01 FFFFFFFF 07 0005 00" + good, 1, 1, 9},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var f r30x.Framer
			pkts := feedAll(&f, unhex(t, c.in))
			if len(pkts) != c.frames {
				t.Fatalf("%d packets, want %d: %+v", len(pkts), c.frames, pkts)
			}
			s := f.Stats()
			if s.Frames != uint64(c.frames) || s.BadFrames != c.bad || s.Garbage != c.garbge {
				t.Errorf("stats %+v, want %d bad, %d garbage", s, c.bad, c.garbge)
			}
		})
	}
}

// The whole vector table as one stream, with garbage between, fed split
// at every byte position and byte by byte, decodes the same.
func TestSplitAtEveryByte(t *testing.T) {
	var stream []byte
	var want []r30x.Packet
	for i, v := range vectors {
		if i%3 == 0 {
			stream = append(stream, 0x00, 0xEF, 0x55)
		}
		wire := unhex(t, v.wire)
		stream = append(stream, wire...)
		want = append(want, r30x.Packet{Addr: addrOf(t, wire), PID: v.pid, Payload: unhex(t, v.payload)})
	}
	check := func(t *testing.T, got []r30x.Packet) {
		t.Helper()
		if !slices.EqualFunc(got, want, samePacket) {
			t.Fatalf("got %d packets, want %d", len(got), len(want))
		}
	}
	var whole r30x.Framer
	check(t, feedAll(&whole, stream))
	for i := range stream {
		var f r30x.Framer
		check(t, feedAll(&f, stream[:i], stream[i:]))
		if f.Stats() != whole.Stats() {
			t.Fatalf("split at %d: stats %+v, whole %+v", i, f.Stats(), whole.Stats())
		}
	}
	var f r30x.Framer
	var chunks [][]byte
	for i := range stream {
		chunks = append(chunks, stream[i:i+1])
	}
	check(t, feedAll(&f, chunks...))
}

// Random bytes interleaved with valid packets: every valid packet is
// read, in order, and none is invented.
func TestMixedGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var stream []byte
		var want []r30x.Packet
		for range 20 {
			g := make([]byte, rng.IntN(40))
			for i := range g {
				g[i] = byte(rng.Uint32())
			}
			stream = append(stream, g...)
			pl := make([]byte, 1+rng.IntN(40))
			for i := range pl {
				pl[i] = byte(rng.Uint32())
			}
			pids := []byte{r30x.PIDCommand, r30x.PIDData, r30x.PIDAck, r30x.PIDEnd}
			p := r30x.Packet{Addr: rng.Uint32(), PID: pids[rng.IntN(4)], Payload: pl}
			wire, err := r30x.Encode(p.Addr, p.PID, p.Payload)
			if err != nil {
				t.Fatal(err)
			}
			stream = append(stream, wire...)
			want = append(want, p)
		}
		var f r30x.Framer
		got := feedAll(&f, stream)
		if !slices.EqualFunc(got, want, samePacket) {
			t.Fatalf("round %d: got %d packets, want %d", round, len(got), len(want))
		}
	}
}

func TestEncodeTooLong(t *testing.T) {
	if _, err := r30x.Encode(r30x.DefaultAddress, r30x.PIDData, make([]byte, r30x.MaxPayload+1)); err == nil {
		t.Fatal("no error for a payload past MaxPayload")
	}
	b, err := r30x.Encode(r30x.DefaultAddress, r30x.PIDData, make([]byte, r30x.MaxPayload))
	if err != nil || len(b) != r30x.MaxPacket {
		t.Fatalf("Encode of MaxPayload: %d bytes, %v", len(b), err)
	}
	var f r30x.Framer
	if pkts := feedAll(&f, b); len(pkts) != 1 {
		t.Fatalf("a MaxPacket packet decoded as %d", len(pkts))
	}
}

// FuzzPackets: no panic on any input; every packet emitted is valid and
// appears in the input byte for byte; splitting the input anywhere
// changes nothing.
func FuzzPackets(f *testing.F) {
	for _, v := range vectors {
		f.Add(unhex(f, v.wire), uint16(3))
	}
	f.Add(unhex(f, "EF01EF01FFFFFFFF07000300000A"), uint16(5))
	f.Add(unhex(f, "EF01FFFFFFFF0700FF"), uint16(0))
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		var f1 r30x.Framer
		got := feedAll(&f1, in)
		for _, p := range got {
			wire, err := r30x.Encode(p.Addr, p.PID, p.Payload)
			if err != nil {
				t.Fatalf("emitted an unencodable packet %+v: %v", p, err)
			}
			if !bytes.Contains(in, wire) {
				t.Fatalf("emitted % X, not in the input", wire)
			}
		}
		at := int(split) % (len(in) + 1)
		var f2 r30x.Framer
		if got2 := feedAll(&f2, in[:at], in[at:]); !slices.EqualFunc(got, got2, samePacket) {
			t.Fatalf("split at %d: %d packets, whole %d", at, len(got2), len(got))
		}
		if f1.Stats() != f2.Stats() {
			t.Fatalf("split at %d: stats %+v, whole %+v", at, f2.Stats(), f1.Stats())
		}
		s := f1.Stats()
		if s.Frames != uint64(len(got)) {
			t.Fatalf("Frames %d, emitted %d", s.Frames, len(got))
		}
	})
}
