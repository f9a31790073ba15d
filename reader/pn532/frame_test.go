package pn532

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/punchclock/punchclock/reader"
)

// h turns "00 00 FF ..." into bytes.
func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// Datasheet byte vectors (PN532 User Manual UM0701-02 §6.2 frame formats,
// §7 commands). Frame layout: 00 (preamble) 00 FF (start code) LEN LCS
// TFI data... DCS 00 (postamble), with LEN+LCS = 0 and TFI+data+DCS = 0
// (mod 256). Checksums worked by hand in the comments.
const (
	// GetFirmwareVersion: LEN 02, LCS FE; D4+02 = D6, DCS 2A.
	vGetFirmwareCmd = "00 00 FF 02 FE D4 02 2A 00"
	// Its response, PN532 v1.6 support 07 (the manual's example):
	// LEN 06, LCS FA; D5+03+32+01+06+07 = 118, DCS E8.
	vGetFirmwareResp = "00 00 FF 06 FA D5 03 32 01 06 07 E8 00"
	// SAMConfiguration normal mode, timeout 14, IRQ 01: LEN 05, LCS FB;
	// D4+14+01+14+01 = FE, DCS 02.
	vSAMCmd = "00 00 FF 05 FB D4 14 01 14 01 02 00"
	// Its response D5 15: D5+15 = EA, DCS 16.
	vSAMResp = "00 00 FF 02 FE D5 15 16 00"
	// RFConfiguration MaxRetries FF 01 FF: LEN 06; D4+32+05+FF+01+FF =
	// 30A, DCS F6.
	vRFCmd  = "00 00 FF 06 FA D4 32 05 FF 01 FF F6 00"
	vRFResp = "00 00 FF 02 FE D5 33 F8 00" // D5+33 = 108, DCS F8
	// InListPassiveTarget MaxTg 1, BrTy 00: LEN 04, LCS FC; D4+4A+01+00
	// = 11F, DCS E1.
	vInListCmd = "00 00 FF 04 FC D4 4A 01 00 E1 00"
	// No target: D5 4B 00; D5+4B = 120, DCS E0.
	vInListNone = "00 00 FF 03 FD D5 4B 00 E0 00"
	// One MIFARE Classic 1K: Tg 01, SENS_RES 00 04, SEL_RES 08, NFCID
	// length 04, UID DE AD BE EF. LEN 0C, LCS F4; sum 46A, DCS 96.
	vInList4 = "00 00 FF 0C F4 D5 4B 01 01 00 04 08 04 DE AD BE EF 96 00"
	// One MIFARE Ultralight / NTAG: SENS_RES 00 44, SEL_RES 00, NFCID
	// length 07, UID 04 A1 B2 C3 D4 E5 F6. LEN 0F, LCS F1; sum 636,
	// DCS CA.
	vInList7 = "00 00 FF 0F F1 D5 4B 01 01 00 44 00 07 04 A1 B2 C3 D4 E5 F6 CA 00"
	// A triple-size UID: NFCID length 0A, UID 01..0A. LEN 12, LCS EE;
	// sum 1E7, DCS 19.
	vInList10 = "00 00 FF 12 EE D5 4B 01 01 00 84 00 0A 01 02 03 04 05 06 07 08 09 0A 19 00"
	// An ISO 14443-4 card (DESFire EV1: SENS_RES 03 44, SEL_RES 20), so
	// its ATS follows the UID: 06 75 77 81 02 80. LEN 15, LCS EB; sum
	// 4EE, DCS 12.
	vInListATS = "00 00 FF 15 EB D5 4B 01 01 03 44 20 07 04 11 22 33 44 55 66 06 75 77 81 02 80 12 00"

	vACK   = "00 00 FF 00 FF 00"       // §6.2.1.3
	vNACK  = "00 00 FF FF 00 00"       // §6.2.1.4
	vError = "00 00 FF 01 FF 7F 81 00" // §6.2.1.5: LEN 01, TFI 7F, DCS 81
)

func info(tfi byte, data string) Frame {
	return Frame{Kind: KindInfo, TFI: tfi, Data: h(data)}
}

type framerCase struct {
	name    string
	in      string // hex
	want    []Frame
	bad     uint64
	garbage uint64
}

var framerCases = []framerCase{
	{name: "empty", in: ""},
	{name: "ACK", in: vACK, want: []Frame{{Kind: KindACK}}},
	{name: "NACK", in: vNACK, want: []Frame{{Kind: KindNACK}}},
	{name: "error frame", in: vError, want: []Frame{{Kind: KindError}}},
	{name: "GetFirmwareVersion command", in: vGetFirmwareCmd, want: []Frame{info(0xD4, "02")}},
	{name: "GetFirmwareVersion response", in: vGetFirmwareResp, want: []Frame{info(0xD5, "03 32 01 06 07")}},
	{name: "SAMConfiguration command", in: vSAMCmd, want: []Frame{info(0xD4, "14 01 14 01")}},
	{name: "SAMConfiguration response", in: vSAMResp, want: []Frame{info(0xD5, "15")}},
	{name: "RFConfiguration", in: vRFCmd + vRFResp, want: []Frame{info(0xD4, "32 05 FF 01 FF"), info(0xD5, "33")}},
	{name: "InListPassiveTarget command", in: vInListCmd, want: []Frame{info(0xD4, "4A 01 00")}},
	{name: "InListPassiveTarget no target", in: vInListNone, want: []Frame{info(0xD5, "4B 00")}},
	{name: "InListPassiveTarget 4-byte UID", in: vInList4, want: []Frame{info(0xD5, "4B 01 01 00 04 08 04 DE AD BE EF")}},
	{name: "InListPassiveTarget 7-byte UID", in: vInList7, want: []Frame{info(0xD5, "4B 01 01 00 44 00 07 04 A1 B2 C3 D4 E5 F6")}},
	{name: "InListPassiveTarget 10-byte UID", in: vInList10, want: []Frame{info(0xD5, "4B 01 01 00 84 00 0A 01 02 03 04 05 06 07 08 09 0A")}},
	{
		// What the PN532 sends for a command: ACK, then the response.
		name: "ACK then response",
		in:   vACK + vInList7,
		want: []Frame{{Kind: KindACK}, info(0xD5, "4B 01 01 00 44 00 07 04 A1 B2 C3 D4 E5 F6")},
	},
	{
		// Preamble and postamble are optional (§6.2.1.1 allows a
		// peer to omit them); extra 00s are preamble.
		name: "no preamble or postamble, long preamble",
		in:   "00 FF 02 FE D5 15 16" + "00 00 00 00 00 FF 00 FF",
		want: []Frame{info(0xD5, "15"), {Kind: KindACK}},
	},
	{
		// The HSU wake-up preamble the host sends is garbage to a
		// framer: two 55s, and the zeros are preamble.
		name:    "wake-up preamble then SAMConfiguration",
		in:      "55 55 00 00 00 00 00 00 00 00 00 00 00 00 00 00" + vSAMCmd,
		want:    []Frame{info(0xD4, "14 01 14 01")},
		garbage: 2,
	},
	{
		// DCS 2B instead of 2A: rejected; 02 FE D4 02 2B rescanned
		// as garbage; the postamble 00 is not garbage.
		name:    "bad DCS",
		in:      "00 00 FF 02 FE D4 02 2B 00",
		bad:     1,
		garbage: 5,
	},
	{
		// LCS FD instead of FE: rejected at LCS; 02 FD rescanned as
		// garbage.
		name:    "bad LCS then good frame",
		in:      "00 00 FF 02 FD" + vSAMResp,
		want:    []Frame{info(0xD5, "15")},
		bad:     1,
		garbage: 2,
	},
	{
		// LEN 0 with LCS 0 is no frame (TFI is always there).
		name:    "LEN 0",
		in:      "00 00 FF 00 00" + vACK,
		want:    []Frame{{Kind: KindACK}},
		bad:     1,
		garbage: 0,
	},
	{
		// A response cut short and followed by the next frame: the
		// cut frame takes the ACK's bytes as its own, fails its DCS,
		// and the rescan (06 FA D5 03 32 garbage) finds the ACK.
		name:    "truncated frame swallowing an ACK",
		in:      "00 00 FF 06 FA D5 03 32" + vACK + "00 00 00",
		want:    []Frame{{Kind: KindACK}},
		bad:     1,
		garbage: 5,
	},
	{
		name:    "garbage around frames",
		in:      "12 34 FF" + vACK + "AB CD" + vSAMResp + "EF",
		want:    []Frame{{Kind: KindACK}, info(0xD5, "15")},
		garbage: 6,
	},
	{
		// 00 then a byte other than FF: not a start code.
		name:    "00 without FF",
		in:      "00 12 00 00 34" + vACK,
		want:    []Frame{{Kind: KindACK}},
		garbage: 2,
	},
	{
		// An extended frame (§6.2.1.2): 00 00 FF FF FF LENM LENL LCS
		// TFI data DCS 00; LEN 0x0002, LCS FE; D5+15 = EA, DCS 16.
		name: "extended frame",
		in:   "00 00 FF FF FF 00 02 FE D5 15 16 00",
		want: []Frame{{Kind: KindInfo, TFI: 0xD5, Data: h("15"), Extended: true}},
	},
	{
		// Extended LEN 0x0200 is more than the PN532 ever sends:
		// rejected at once, not waited for. FF FF 02 00 FE rescanned:
		// garbage but for the 00.
		name:    "extended frame too long",
		in:      "00 00 FF FF FF 02 00 FE" + vACK,
		want:    []Frame{{Kind: KindACK}},
		bad:     1,
		garbage: 4,
	},
	{
		name:    "extended LCS wrong",
		in:      "00 00 FF FF FF 00 02 FD" + vACK,
		want:    []Frame{{Kind: KindACK}},
		bad:     1,
		garbage: 4,
	},
	{
		// A pending partial frame is neither emitted nor counted yet.
		name: "partial frame pending",
		in:   "00 00 FF 06 FA D5 03",
	},
}

func feedAll(f *Framer, chunks ...[]byte) []Frame {
	var got []Frame
	for _, c := range chunks {
		f.Feed(c, func(fr Frame) { got = append(got, fr) })
	}
	return got
}

func framesEqual(a, b []Frame) bool {
	return slices.EqualFunc(a, b, func(x, y Frame) bool {
		return x.Kind == y.Kind && x.TFI == y.TFI && bytes.Equal(x.Data, y.Data) && x.Extended == y.Extended
	})
}

func TestFramerVectors(t *testing.T) {
	for _, tc := range framerCases {
		t.Run(tc.name, func(t *testing.T) {
			var f Framer
			got := feedAll(&f, h(tc.in))
			if !framesEqual(got, tc.want) {
				t.Errorf("frames = %+v, want %+v", got, tc.want)
			}
			want := reader.Stats{Frames: uint64(len(tc.want)), BadFrames: tc.bad, Garbage: tc.garbage}
			if s := f.Stats(); s != want {
				t.Errorf("stats = %+v, want %+v", s, want)
			}
		})
	}
}

// Splitting the input at any position, or feeding it byte by byte, gives
// the same frames and counters as feeding it whole.
func TestFramerSplitAnywhere(t *testing.T) {
	for _, tc := range framerCases {
		in := h(tc.in)
		var whole Framer
		want := feedAll(&whole, in)
		for i := 0; i <= len(in); i++ {
			var f Framer
			got := feedAll(&f, in[:i], in[i:])
			if !framesEqual(got, want) || f.Stats() != whole.Stats() {
				t.Errorf("%s: split at %d: %+v %+v, want %+v %+v", tc.name, i, got, f.Stats(), want, whole.Stats())
			}
		}
		var f Framer
		var chunks [][]byte
		for i := range in {
			chunks = append(chunks, in[i:i+1])
		}
		got := feedAll(&f, chunks...)
		if !framesEqual(got, want) || f.Stats() != whole.Stats() {
			t.Errorf("%s: byte by byte: %+v %+v, want %+v %+v", tc.name, got, f.Stats(), want, whole.Stats())
		}
	}
}

func TestEncodeVectors(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"GetFirmwareVersion", GetFirmwareVersion, vGetFirmwareCmd},
		{"SAMConfiguration", SAMConfiguration, vSAMCmd},
		{"RFConfiguration", RFMaxRetries, vRFCmd},
		{"InListPassiveTarget", InListPassiveTarget, vInListCmd},
		{"ACK", ACK, vACK},
		{"NACK", NACK, vNACK},
		{"error frame", ErrorFrame, vError},
	} {
		if !bytes.Equal(tc.got, h(tc.want)) {
			t.Errorf("%s = % X, want %s", tc.name, tc.got, tc.want)
		}
	}
	for _, tc := range []struct {
		tfi  byte
		data string
		want string
	}{
		{0xD5, "03 32 01 06 07", vGetFirmwareResp},
		{0xD5, "4B 01 01 00 44 00 07 04 A1 B2 C3 D4 E5 F6", vInList7},
		{0x7F, "", vError}, // the error frame is an information frame with TFI 7F
	} {
		got, err := Encode(tc.tfi, h(tc.data))
		if err != nil || !bytes.Equal(got, h(tc.want)) {
			t.Errorf("Encode(%02X, %s) = % X, %v; want %s", tc.tfi, tc.data, got, err, tc.want)
		}
	}
}

func TestEncodeExtended(t *testing.T) {
	data := bytes.Repeat([]byte{0xAB}, 260)
	fr, err := Encode(TFIPN532, data)
	if err != nil {
		t.Fatal(err)
	}
	// LEN = 261 = 0x0105; LCS = -(01+05) = FA.
	if !bytes.Equal(fr[:8], h("00 00 FF FF FF 01 05 FA")) {
		t.Fatalf("extended header % X", fr[:8])
	}
	var f Framer
	got := feedAll(&f, fr)
	if len(got) != 1 || !got[0].Extended || !bytes.Equal(got[0].Data, data) {
		t.Fatalf("decoded %+v", got)
	}
	// 255 bytes of TFI and data is the largest normal frame.
	fr, _ = Encode(TFIPN532, make([]byte, 254))
	if fr[3] != 0xFF || fr[4] != 0x01 {
		t.Fatalf("LEN 255 header % X", fr[:5])
	}
	if _, err := Encode(TFIPN532, make([]byte, MaxExtended)); err == nil {
		t.Fatal("Encode of 266 bytes succeeded")
	}
}

func TestFramerFlushRescans(t *testing.T) {
	var f Framer
	// A bogus start with a long LEN swallows an ACK; the answer is
	// overdue, the driver flushes, the ACK is found.
	got := feedAll(&f, h("00 FF 40 C0 D5"+vACK))
	if len(got) != 0 || !f.Pending() {
		t.Fatalf("got %+v pending %v", got, f.Pending())
	}
	f.Flush(func(fr Frame) { got = append(got, fr) })
	if len(got) != 1 || got[0].Kind != KindACK || f.Pending() {
		t.Fatalf("after flush: %+v pending %v", got, f.Pending())
	}
	f.Flush(func(Frame) { t.Fatal("emitted on an empty flush") })
	if s := f.Stats(); s.BadFrames != 1 || s.Frames != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestFramerReset(t *testing.T) {
	var f Framer
	feedAll(&f, h("00 00 FF 06 FA D5"))
	f.Reset()
	f.Reset() // nothing pending: not counted again
	got := feedAll(&f, h("03 32 01 06 07 E8 00"+vACK))
	if len(got) != 1 || got[0].Kind != KindACK {
		t.Errorf("frames = %+v", got)
	}
	if s := f.Stats(); s.BadFrames != 1 || s.Garbage != 6 || s.Frames != 1 {
		t.Errorf("stats = %+v, want 1 bad, 6 garbage, 1 frame", s)
	}
}

// Random bytes between valid frames: every valid frame is decoded, and
// nothing that was not sent. Garbage here has no 00 FF in it, so it can
// not fake a frame; but it may end in 00 or be cut into by a frame.
func TestFramerMixedGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	valid := []string{vACK, vNACK, vError, vGetFirmwareResp, vSAMResp, vInListNone, vInList4, vInList7, vInList10, vInListATS}
	for round := range 200 {
		var in []byte
		var want []Frame
		for range 20 {
			g := make([]byte, rng.IntN(40))
			for i := range g {
				g[i] = byte(rng.IntN(256))
				if i > 0 && g[i-1] == 0x00 && g[i] == 0xFF {
					g[i] = 0xFE
				}
			}
			in = append(in, g...)
			v := valid[rng.IntN(len(valid))]
			var ref Framer
			fr := feedAll(&ref, h(v))
			want = append(want, fr...)
			in = append(in, h(v)...)
		}
		var f Framer
		got := feedAll(&f, in)
		if !framesEqual(got, want) {
			t.Fatalf("round %d: got %d frames %+v, want %d", round, len(got), got, len(want))
		}
	}
}

func FuzzFrames(f *testing.F) {
	for _, tc := range framerCases {
		f.Add(h(tc.in), []byte{0x4B, 0x00}, uint16(len(tc.in)/2), false)
	}
	f.Add(h("00 FF FF FF 01 09 F5"), bytes.Repeat([]byte{1}, 300), uint16(3), true)
	f.Fuzz(func(t *testing.T, data, payload []byte, cut uint16, ext bool) {
		// Never panics; every info frame re-encodes to a frame that
		// decodes to itself; counters are consistent.
		var f1 Framer
		frames := feedAll(&f1, data)
		for _, fr := range frames {
			switch fr.Kind {
			case KindACK, KindNACK, KindError:
				continue
			case KindInfo:
			default:
				t.Fatalf("kind %v", fr.Kind)
			}
			if len(fr.Data)+1 > MaxExtended {
				t.Fatalf("frame of %d bytes", len(fr.Data)+1)
			}
			enc, err := Encode(fr.TFI, fr.Data)
			if err != nil {
				t.Fatal(err)
			}
			var g Framer
			back := feedAll(&g, enc)
			if len(back) != 1 || back[0].TFI != fr.TFI || !bytes.Equal(back[0].Data, fr.Data) {
				t.Fatalf("re-encoded %+v decodes to %+v", fr, back)
			}
		}
		s := f1.Stats()
		if s.Frames != uint64(len(frames)) || s.Garbage > uint64(len(data)) {
			t.Fatalf("stats %+v for %d frames of %d bytes", s, len(frames), len(data))
		}

		// Splitting anywhere changes nothing.
		c := int(cut) % (len(data) + 1)
		var f2 Framer
		if got := feedAll(&f2, data[:c], data[c:]); !framesEqual(got, frames) || f2.Stats() != s {
			t.Fatalf("split at %d: %+v %+v, whole %+v %+v", c, got, f2.Stats(), frames, s)
		}

		// After any input, a flush then a valid frame yields exactly
		// that frame last (garbage may hold frames of its own).
		if len(payload) > MaxExtended-1 {
			payload = payload[:MaxExtended-1]
		}
		if !ext && len(payload) > MaxNormal-1 {
			payload = payload[:MaxNormal-1]
		}
		enc, err := Encode(TFIPN532, payload)
		if err != nil {
			t.Fatal(err)
		}
		var tail []Frame
		f1.Flush(func(fr Frame) { tail = append(tail, fr) })
		tail = append(tail, feedAll(&f1, enc)...)
		if len(tail) == 0 {
			t.Fatalf("after % X, frame % X not decoded", data, enc)
		}
		last := tail[len(tail)-1]
		if last.Kind != KindInfo || last.TFI != TFIPN532 || !bytes.Equal(last.Data, payload) {
			t.Fatalf("after % X: last frame %+v, want payload % X", data, last, payload)
		}
	})
}

func ExampleEncode() {
	fr, _ := Encode(TFIHost, []byte{CmdGetFirmwareVersion})
	fmt.Printf("% X\n", fr)
	// Output: 00 00 FF 02 FE D4 02 2A 00
}
