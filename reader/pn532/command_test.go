package pn532

import (
	"bytes"
	"errors"
	"testing"
)

// decodeOne decodes a single information frame from a vector.
func decodeOne(t *testing.T, v string) Frame {
	t.Helper()
	var f Framer
	got := feedAll(&f, h(v))
	if len(got) != 1 || got[0].Kind != KindInfo {
		t.Fatalf("%s: frames %+v", v, got)
	}
	return got[0]
}

func TestParseFirmware(t *testing.T) {
	fw, err := ParseFirmware(decodeOne(t, vGetFirmwareResp).Data)
	if err != nil || fw != (Firmware{IC: 0x32, Ver: 1, Rev: 6, Support: 7}) {
		t.Fatalf("ParseFirmware = %+v, %v", fw, err)
	}
	if fw.String() != "IC 32 firmware 1.6 support 07" {
		t.Errorf("String = %q", fw.String())
	}
	for _, bad := range []string{"", "03 32 01 06", "05 32 01 06 07", "03 32 01 06 07 00"} {
		if _, err := ParseFirmware(h(bad)); !errors.Is(err, ErrBadResponse) {
			t.Errorf("ParseFirmware(%s) = %v, want ErrBadResponse", bad, err)
		}
	}
}

func TestParseInListVectors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame string
		uid   string // "" for no target
		sens  [2]byte
		sel   byte
		ats   string
		value string
	}{
		{name: "no target", frame: vInListNone},
		{name: "4-byte UID", frame: vInList4, uid: "DE AD BE EF", sens: [2]byte{0x00, 0x04}, sel: 0x08, value: "DEADBEEF"},
		{name: "7-byte UID", frame: vInList7, uid: "04 A1 B2 C3 D4 E5 F6", sens: [2]byte{0x00, 0x44}, sel: 0x00, value: "04A1B2C3D4E5F6"},
		{name: "10-byte UID", frame: vInList10, uid: "01 02 03 04 05 06 07 08 09 0A", sens: [2]byte{0x00, 0x84}, value: "0102030405060708090A"},
		{name: "ISO 14443-4 with ATS", frame: vInListATS, uid: "04 11 22 33 44 55 66", sens: [2]byte{0x03, 0x44}, sel: 0x20, ats: "06 75 77 81 02 80", value: "04112233445566"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, err := ParseInList(decodeOne(t, tc.frame).Data)
			if err != nil {
				t.Fatal(err)
			}
			if tc.uid == "" {
				if len(ts) != 0 {
					t.Fatalf("targets %+v, want none", ts)
				}
				return
			}
			if len(ts) != 1 {
				t.Fatalf("targets %+v, want one", ts)
			}
			g := ts[0]
			if g.Tg != 1 || g.SensRes != tc.sens || g.SelRes != tc.sel || !bytes.Equal(g.UID, h(tc.uid)) || !bytes.Equal(g.ATS, h(tc.ats)) {
				t.Errorf("target %+v", g)
			}
			if s := UIDString(g.UID); s != tc.value {
				t.Errorf("UIDString = %q, want %q", s, tc.value)
			}
		})
	}
}

func TestParseInListBad(t *testing.T) {
	for _, bad := range []string{
		"",                                       // nothing
		"4B",                                     // no NbTg
		"4D 00",                                  // another response code
		"4B 03",                                  // more targets than MaxTg allows
		"4B 01 01 00 04 08",                      // cut short
		"4B 01 01 00 04 08 05 01 02 03 04 05",    // NFCID length 5
		"4B 01 01 00 04 08 04 01 02 03",          // UID cut short
		"4B 01 01 00 04 08 04 01 02 03 04 99",    // trailing byte
		"4B 01 01 03 44 20 04 01 02 03 04 09 75", // ATS length past the end
	} {
		if ts, err := ParseInList(h(bad)); !errors.Is(err, ErrBadResponse) {
			t.Errorf("ParseInList(%s) = %+v, %v; want ErrBadResponse", bad, ts, err)
		}
	}
}

func TestInListAnswerRoundTrip(t *testing.T) {
	for _, uid := range []string{"DEADBEEF", "04A1B2C3D4E5F6", "0102030405060708090A"} {
		b, err := ParseUID(uid)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := ParseInList(InListAnswer(b))
		if err != nil || len(ts) != 1 || UIDString(ts[0].UID) != uid {
			t.Errorf("%s: %+v, %v", uid, ts, err)
		}
	}
	if ts, err := ParseInList(InListAnswer(nil)); err != nil || len(ts) != 0 {
		t.Errorf("no card: %+v, %v", ts, err)
	}
	// The 7-byte answer is the datasheet-shaped vector.
	fr, _ := Encode(TFIPN532, InListAnswer(h("04 A1 B2 C3 D4 E5 F6")))
	if !bytes.Equal(fr, h(vInList7)) {
		t.Errorf("InListAnswer frame % X, want %s", fr, vInList7)
	}
}

func TestParseUID(t *testing.T) {
	for in, want := range map[string]string{
		"04a1b2c3d4e5f6":       "04A1B2C3D4E5F6",
		"04:A1:B2:C3:D4:E5:F6": "04A1B2C3D4E5F6",
		"DE AD BE EF":          "DEADBEEF",
	} {
		b, err := ParseUID(in)
		if err != nil || UIDString(b) != want {
			t.Errorf("ParseUID(%q) = %X, %v", in, b, err)
		}
	}
	for _, bad := range []string{"", "DEADBE", "DEADBEEF00", "04A1B2C3D4E5F6G", "0102030405060708090A0B"} {
		if _, err := ParseUID(bad); !errors.Is(err, ErrBadUID) {
			t.Errorf("ParseUID(%q) = %v, want ErrBadUID", bad, err)
		}
	}
}
