package osdp

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
)

// hx decodes hex with spaces, for vectors written byte by byte.
func hx(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestCRC16(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want uint16
	}{
		// The catalogue check value of CRC-16/AUG-CCITT over "123456789".
		{"check value", hex.EncodeToString([]byte("123456789")), 0xE5CC},
		// SIA OSDP v2.2 Annex E, CRC example 1: osdp_COMSET to the
		// broadcast address; the CRC goes on the wire as 6E 38.
		{"Annex E CRC example 1", "53 7F 0D 00 04 6E 00 80 25 00 00", 0x386E},
		// Annex E, CRC example 2: osdp_ID to address 0, sent C0 66.
		{"Annex E CRC example 2", "53 00 09 00 04 61 00", 0x66C0},
		{"empty: the initial value", "", 0x1D0F},
	} {
		if got := CRC16(hx(t, tc.in)); got != tc.want {
			t.Errorf("%s: CRC16 = %#04x, want %#04x", tc.name, got, tc.want)
		}
	}
}

func TestChecksum(t *testing.T) {
	// Annex E, checksum examples 1 and 2.
	if got := Checksum(hx(t, "53 7F 0C 00 00 6E 00 80 25 00 00")); got != 0x0F {
		t.Errorf("example 1: %#02x, want 0x0F", got)
	}
	if got := Checksum(hx(t, "53 00 08 00 00 61 00")); got != 0x44 {
		t.Errorf("example 2: %#02x, want 0x44", got)
	}
}

// Packet vectors. The Annex E ones are the spec's; the others were
// computed by an independent implementation of the same CRC (checked
// against the Annex E values above), byte by byte:
type frameCase struct {
	name  string
	wire  string
	frame Frame
}

var frameCases = []frameCase{
	{
		// Annex E: osdp_ID (0x61, data 00) to address 0, CRC, SQN 0.
		name:  "ID with CRC (Annex E)",
		wire:  "53 00 09 00 04 61 00 C0 66",
		frame: Frame{Addr: 0, SQN: 0, UseCRC: true, Code: CmdID, Data: []byte{0}},
	},
	{
		// Annex E: the same with a checksum: LEN 8, CTRL 00, sum 44.
		name:  "ID with checksum (Annex E)",
		wire:  "53 00 08 00 00 61 00 44",
		frame: Frame{Addr: 0, SQN: 0, Code: CmdID, Data: []byte{0}},
	},
	{
		// osdp_POLL to address 0: SOM, ADDR 00, LEN 0008, CTRL 04
		// (SQN 0, CRC), 60, CRC AAEB low byte first.
		name:  "POLL with CRC",
		wire:  "53 00 08 00 04 60 EB AA",
		frame: Frame{Addr: 0, SQN: 0, UseCRC: true, Code: CmdPOLL},
	},
	{
		// osdp_POLL to address 1 with a checksum: LEN 7, CTRL 01 (SQN
		// 1), 53+01+07+01+60 = BC, two's complement 44.
		name:  "POLL with checksum",
		wire:  "53 01 07 00 01 60 44",
		frame: Frame{Addr: 1, SQN: 1, Code: CmdPOLL},
	},
	{
		// osdp_ACK from address 0: ADDR 80 (reply flag).
		name:  "ACK",
		wire:  "53 80 08 00 04 40 59 AC",
		frame: Frame{Addr: 0, Reply: true, UseCRC: true, Code: ReplyACK},
	},
	{
		// osdp_PDID: vendor 5C 26 0A, model 1, version 2, serial
		// 0x12345678 low byte first, firmware 1.2.3.
		name:  "PDID",
		wire:  "53 80 14 00 05 45 5C 26 0A 01 02 78 56 34 12 01 02 03 A9 9F",
		frame: Frame{Addr: 0, Reply: true, SQN: 1, UseCRC: true, Code: ReplyPDID, Data: []byte{0x5C, 0x26, 0x0A, 1, 2, 0x78, 0x56, 0x34, 0x12, 1, 2, 3}},
	},
	{
		// osdp_PDCAP: (1,1,4) contact status, (3,1,1) card format, (4,1,1)
		// LED, (9,1,1) communication security.
		name:  "PDCAP",
		wire:  "53 80 14 00 06 46 01 01 04 03 01 01 04 01 01 09 01 01 9C B1",
		frame: Frame{Addr: 0, Reply: true, SQN: 2, UseCRC: true, Code: ReplyPDCAP, Data: []byte{1, 1, 4, 3, 1, 1, 4, 1, 1, 9, 1, 1}},
	},
	{
		// osdp_RAW: reader 0, format 1 (Wiegand), 26 bits (1A 00), data
		// BD D9 37 40 = 1 01111011 1011001001101110 1 + 6 pad bits:
		// facility 123, card 45678, both parity bits 1.
		name:  "RAW 26-bit 123:45678",
		wire:  "53 80 10 00 07 50 00 01 1A 00 BD D9 37 40 BF 5B",
		frame: Frame{Addr: 0, Reply: true, SQN: 3, UseCRC: true, Code: ReplyRAW, Data: []byte{0, 1, 26, 0, 0xBD, 0xD9, 0x37, 0x40}},
	},
	{
		// osdp_KEYPPAD from address 5: reader 0, 5 keys "4821" and
		// 0x0D (the enter key, '#').
		name:  "KEYPPAD 4821#",
		wire:  "53 85 0F 00 05 53 00 05 34 38 32 31 0D E3 B5",
		frame: Frame{Addr: 5, Reply: true, SQN: 1, UseCRC: true, Code: ReplyKEYPPAD, Data: []byte{0, 5, '4', '8', '2', '1', 0x0D}},
	},
	{
		// osdp_NAK, error 04: unexpected sequence number.
		name:  "NAK sequence",
		wire:  "53 80 09 00 05 41 04 B2 C3",
		frame: Frame{Addr: 0, Reply: true, SQN: 1, UseCRC: true, Code: ReplyNAK, Data: []byte{NakSequence}},
	},
}

func sameFrame(a, b Frame) bool {
	return a.Addr == b.Addr && a.Reply == b.Reply && a.SQN == b.SQN && a.UseCRC == b.UseCRC &&
		bytes.Equal(a.SCB, b.SCB) && a.Code == b.Code && bytes.Equal(a.Data, b.Data) && bytes.Equal(a.MAC, b.MAC)
}

func feedFrames(f *Framer, chunks ...[]byte) []Frame {
	var got []Frame
	for _, c := range chunks {
		f.Feed(c, func(fr Frame) { got = append(got, fr) })
	}
	return got
}

func TestFrameVectors(t *testing.T) {
	for _, tc := range frameCases {
		t.Run(tc.name, func(t *testing.T) {
			wire := hx(t, tc.wire)
			enc, err := tc.frame.Encode()
			if err != nil || !bytes.Equal(enc, wire) {
				t.Errorf("Encode = % X, %v; want % X", enc, err, wire)
			}
			var f Framer
			got := feedFrames(&f, wire)
			if len(got) != 1 || !sameFrame(got[0], tc.frame) || !bytes.Equal(got[0].Raw, wire) {
				t.Fatalf("decoded %+v, want %+v", got, tc.frame)
			}
			if s := f.Stats(); s != (reader.Stats{Frames: 1}) {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

type streamCase struct {
	name    string
	in      string
	frames  int
	bad     uint64
	garbage uint64
}

func streamCases(t testing.TB) []streamCase {
	poll := "53 00 08 00 04 60 EB AA"
	ack := "53 80 08 00 04 40 59 AC"
	raw := "53 80 10 00 07 50 00 01 1A 00 BD D9 37 40 BF 5B"
	return []streamCase{
		{name: "empty"},
		{name: "three frames back to back", in: poll + ack + raw, frames: 3},
		{name: "noise before and between", in: "00 FF 12" + poll + "AA" + ack, frames: 2, garbage: 4},
		{
			// CRC AB instead of AA: rejected; its 7 bytes after SOM
			// are garbage on the rescan.
			name: "bad CRC", in: "53 00 08 00 04 60 EB AB" + ack, frames: 1, bad: 1, garbage: 7,
		},
		{
			// A length of 2: too short for any packet; rejected at once.
			name: "length too short", in: "53 00 02 00" + ack, frames: 1, bad: 1, garbage: 3,
		},
		{
			// A length of 0xFFFF: over MaxFrame; rejected at once.
			name: "length too long", in: "53 00 FF FF" + ack, frames: 1, bad: 1, garbage: 3,
		},
		{
			// A lone SOM before a frame: 53 53 80 10 reads as LEN
			// 0x1080, over MaxFrame; the rescan finds the frame.
			name: "double SOM", in: "53" + raw, frames: 1, bad: 1,
		},
		{
			// SCB flag set, SCB length 1 (< 2): structurally bad even
			// with a good CRC.
			name: "bad security block", in: "53 00 0A 00 0C 01 60 00" + crcOf(t, "53 00 0A 00 0C 01 60 00"), frames: 0, bad: 1, garbage: 9,
		},
		{
			// Control byte 30: reserved bits set; refused though its
			// checksum is good.
			name: "reserved control bits", in: "53 30 08 00 30 40 59 AC" + ack, frames: 1, bad: 1, garbage: 7,
		},
		{name: "partial frame pending", in: "53 80 10 00 07 50 00"},
	}
}

func crcOf(t testing.TB, s string) string {
	c := CRC16(hx(t, s))
	return hex.EncodeToString([]byte{byte(c), byte(c >> 8)})
}

func TestFramerStreams(t *testing.T) {
	for _, tc := range streamCases(t) {
		var f Framer
		got := feedFrames(&f, hx(t, tc.in))
		want := reader.Stats{Frames: uint64(tc.frames), BadFrames: tc.bad, Garbage: tc.garbage}
		if len(got) != tc.frames || f.Stats() != want {
			t.Errorf("%s: %d frames, stats %+v; want %d, %+v", tc.name, len(got), f.Stats(), tc.frames, want)
		}
	}
}

// Splitting the input anywhere, or feeding it byte by byte, changes
// nothing.
func TestFramerSplitAnywhere(t *testing.T) {
	cases := streamCases(t)
	for _, fc := range frameCases {
		cases = append(cases, streamCase{name: fc.name, in: fc.wire})
	}
	for _, tc := range cases {
		in := hx(t, tc.in)
		var whole Framer
		want := feedFrames(&whole, in)
		check := func(how string, f *Framer, got []Frame) {
			if len(got) != len(want) || f.Stats() != whole.Stats() {
				t.Fatalf("%s: %s: %d frames %+v, want %d %+v", tc.name, how, len(got), f.Stats(), len(want), whole.Stats())
			}
			for i := range got {
				if !sameFrame(got[i], want[i]) {
					t.Fatalf("%s: %s: frame %d differs", tc.name, how, i)
				}
			}
		}
		for i := 0; i <= len(in); i++ {
			var f Framer
			check("split", &f, feedFrames(&f, in[:i], in[i:]))
		}
		var f Framer
		var chunks [][]byte
		for i := range in {
			chunks = append(chunks, in[i:i+1])
		}
		check("byte by byte", &f, feedFrames(&f, chunks...))
	}
}

// A length field that promises more than will come holds a real frame
// back until Flush gives up on it.
func TestFramerFlush(t *testing.T) {
	var f Framer
	// SOM, address, LEN 0x0100, CTRL 04: waits for 256 bytes; the
	// ACK follows.
	in := append(hx(t, "53 01 00 01 04"), hx(t, "53 80 08 00 04 40 59 AC")...)
	if got := feedFrames(&f, in); len(got) != 0 {
		t.Fatalf("decoded %d frames before the flush", len(got))
	}
	var got []Frame
	f.Flush(func(fr Frame) { got = append(got, fr) })
	if len(got) != 1 || got[0].Code != ReplyACK {
		t.Fatalf("flush gave %+v", got)
	}
	if s := f.Stats(); s.BadFrames != 1 || s.Garbage != 4 {
		t.Errorf("stats %+v, want 1 bad, 4 garbage", s)
	}
	f.Flush(func(Frame) { t.Error("a second flush found a frame") })
}

func TestEncodeRejects(t *testing.T) {
	for _, f := range []Frame{
		{Addr: 0x80},
		{SQN: 4},
		{SCB: []byte{3, SCS15}},        // length byte says 3
		{SCB: []byte{2, SCS15}},        // MAC missing
		{MAC: []byte{1, 2, 3, 4}},      // MAC without a block
		{Data: make([]byte, MaxFrame)}, // too long
	} {
		if _, err := f.Encode(); err == nil {
			t.Errorf("Encode(%+v) succeeded", f)
		}
	}
}

func TestNextSQN(t *testing.T) {
	got := []byte{0}
	for range 7 {
		got = append(got, nextSQN(got[len(got)-1]))
	}
	if !bytes.Equal(got, []byte{0, 1, 2, 3, 1, 2, 3, 1}) {
		t.Errorf("sequence %v, want 0 1 2 3 1 2 3 1", got)
	}
}

func FuzzFrames(f *testing.F) {
	for _, tc := range streamCases(f) {
		f.Add(hx(f, tc.in), uint16(3))
	}
	for _, tc := range frameCases {
		f.Add(hx(f, tc.wire), uint16(5))
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		var f1 Framer
		got := feedFrames(&f1, data)
		s := f1.Stats()
		if s.Frames != uint64(len(got)) || s.Garbage > uint64(len(data)) || len(f1.buf) > MaxFrame {
			t.Fatalf("stats %+v, %d frames, %d buffered, for %d bytes", s, len(got), len(f1.buf), len(data))
		}
		for _, fr := range got {
			// Every frame decoded is a valid packet that encodes back
			// to the bytes received.
			enc, err := fr.Encode()
			if err != nil || !bytes.Equal(enc, fr.Raw) {
				t.Fatalf("frame % X re-encodes to % X, %v", fr.Raw, enc, err)
			}
			// The PD and the CP take it without panicking, in clear
			// and in a secure session.
			k := Key{1}
			for _, scbk := range []*Key{nil, &k} {
				pd := newPDSim(fr.Addr, scbk, counter(), time.Now)
				pd.lastSQN = 1
				pd.sess = &session{}
				pd.handle(fr)
				c := newCP(fr.Addr, scbk, counter())
				c.state, c.sqn, c.pending = stOnline, fr.SQN, []byte{0}
				c.sess = &session{}
				_, _ = c.handle(fr)
				c.state, c.sqn, c.pending, c.sess = stChlng, fr.SQN, []byte{0}, nil
				_, _ = c.handle(fr)
			}
			// Its payloads decode without panicking.
			_, _ = DecodeRAW(fr.Data)
			_, _ = DecodeFMT(fr.Data)
			_, _ = DecodeKeypad(fr.Data)
			_, _ = DecodePDID(fr.Data)
			_, _ = DecodePDCAP(fr.Data)
			_, _ = DecodeLED(fr.Data)
		}
		c := int(cut) % (len(data) + 1)
		var f2 Framer
		if got2 := feedFrames(&f2, data[:c], data[c:]); len(got2) != len(got) || f2.Stats() != s {
			t.Fatalf("split at %d: %d frames %+v, whole %d %+v", c, len(got2), f2.Stats(), len(got), s)
		}
		// After any noise, Flush and then a good packet yields it.
		f1.Flush(func(Frame) {})
		ack := []byte{0x53, 0x80, 0x08, 0x00, 0x04, 0x40, 0x59, 0xAC}
		if g := feedFrames(&f1, ack); len(g) != 1 || g[0].Code != ReplyACK {
			t.Fatalf("after % X, the ACK gave %+v", data, g)
		}
	})
}
