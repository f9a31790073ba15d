package roster

import (
	"strings"
	"testing"
)

func TestNormalizeCardForms(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0a00123456", "0A00123456"},         // EM hex
		{"1193046", "0001193046"},            // EM decimal
		{"04a1b2c3d4e5f6", "04A1B2C3D4E5F6"}, // 7-byte UID
		{"DEADBEEF", "DEADBEEF"},             // 4-byte UID with letters
		{"12345678", "0012345678"},           // 8 decimal digits: an EM number
		{"uid:12345678", "uid:12345678"},     // ... unless marked a UID
		{"UID:0a1b2c3d", "0A1B2C3D"},
		{"0102030405060708090A", "0102030405060708090A"}, // 10-byte UID
		{"123:45678", "123:45678"},
		{"007:00042", "7:42"},
		{"65535:1048575", "65535:1048575"},
	} {
		got, err := Normalize(Card, tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Normalize(card, %q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if again, err := Normalize(Card, got); err != nil || again != got {
			t.Errorf("Normalize is not idempotent on %q: %q, %v", got, again, err)
		}
	}
	for _, bad := range []string{"", "0A0012345", "0A001234567", "uid:0A00123456", "123:", ":5", "65536:1", "1:1048576", "1:2:3", "04A1B2C3D4E5", "x1:2"} {
		if v, err := Normalize(Card, bad); err == nil {
			t.Errorf("Normalize(card, %q) = %q, want an error", bad, v)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("the error %q names the value", err)
		}
	}
}

func TestFindByFormat(t *testing.T) {
	r, err := Parse([]byte(doc(
		emp("em", "card:0A00123456"),      // facility 0x12 = 18, card 0x3456 = 13398; decimal 1193046
		emp("dec", "card:3000000000"),     // an EM card printed 3000000000 (0xB2D05E00)
		emp("uid", "card:04A1B2C3D4E5F6"), // 7-byte UID
		emp("uid4", "card:uid:12345678"),  // 4-byte UID in decimal digits
		emp("wieg", "card:200:1000"),      // a Wiegand card
		emp("twinA", "card:01AABBCCDD"),   // two EM cards with the same last three bytes
		emp("twinB", "card:02FFBBCCDD"),
		emp("both", "card:0B00C80064", "card:200:100"), // one employee: EM card and its own 26-bit form
		emp("pin", "pin:4821"),
		emp("fp", "fingerprint:017"),
	)))
	if err != nil {
		t.Fatal(err)
	}
	x := NewIndex(r)
	for _, tc := range []struct {
		typ, format, value string
		want               string // employee id, "" none, "?" ambiguous
	}{
		{Card, "em4100", "0A00123456", "em"},
		{Card, "", "0A00123456", "em"},
		{Card, "em4100", "FFB2D05E00", "dec"}, // last four bytes are 3000000000
		{Card, "uid", "04A1B2C3D4E5F6", "uid"},
		{Card, "uid", "04a1b2c3d4e5f6", "uid"},
		{Card, "uid", "12345678", "uid4"},
		{Card, "uid", "0A00123456", ""}, // an EM value is no UID
		{Card, "em4100", "0012345678", ""},
		{Card, "wiegand26", "200:1000", "wieg"},
		{Card, "wiegand26", "18:13398", "em"},   // the EM card's last three bytes
		{Card, "wiegand26", "208:24064", "dec"}, // "3000000000" as printed: 0xB2D05E00
		{Card, "typed", "0A00123456", "em"},
		{Card, "wiegand26", "187:52445", "?"},  // 0xBB, 0xCCDD: twinA and twinB
		{Card, "wiegand26", "200:100", "both"}, // one employee under both forms
		{Card, "wiegand34", "18:13398", ""},    // the EM projection is 26-bit only
		{Card, "wiegand34", "200:1000", "wieg"},
		{Card, "wiegand37", "200:1000", "wieg"},
		{Card, "raw", "32:0A1B2C3D", ""},
		{Card, "typed", "0001193046", "em"}, // the EM card's decimal
		{Card, "typed", "1193046", "em"},
		{Card, "typed", "3000000000", "dec"},
		{Card, "typed", "0A00123456", "em"}, // a wedge that types hex
		{Card, "typed", "0018427974", ""},   // not an EM read's last four bytes
		{Card, "typed", "04A1B2C3D4E5F6", "uid"},
		{Card, "typed", "200:1000", "wieg"},
		{Card, "typed", "hello", ""},
		{PIN, "", "4821", "pin"},
		{Fingerprint, "", "17", ""}, // no biometric_consent: the finger is not matched
		{Fingerprint, "", "18", ""},
	} {
		e, amb := x.Find(tc.typ, tc.format, tc.value)
		got := ""
		switch {
		case amb && e != nil:
			t.Errorf("Find(%s, %s, %s): ambiguous with an employee", tc.typ, tc.format, tc.value)
		case amb:
			got = "?"
		case e != nil:
			got = e.ID
		}
		if got != tc.want {
			t.Errorf("Find(%s, %s, %s) = %q, want %q", tc.typ, tc.format, tc.value, got, tc.want)
		}
	}
}

func TestRosterRejectsSharedUIDAndWiegand(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"card:04A1B2C3D4E5F6", "card:04a1b2c3d4e5f6"},
		{"card:200:1000", "card:0200:01000"},
		{"card:uid:12345678", "card:UID:12345678"},
	} {
		_, err := Parse([]byte(doc(emp("a", tc.a), emp("b", tc.b))))
		if err == nil || !strings.Contains(err.Error(), "this card is also held by") {
			t.Errorf("%s and %s: err %v, want a clash", tc.a, tc.b, err)
		}
	}
	// An EM card and a Wiegand number it projects to, held by two
	// people: valid (an EM reader tells them apart); a 26-bit read of it
	// is ambiguous (TestFindByFormat).
	if _, err := Parse([]byte(doc(emp("a", "card:0A00123456"), emp("b", "card:18:13398")))); err != nil {
		t.Errorf("EM card and a 26-bit number it projects to: %v", err)
	}
}

func TestHashPINs(t *testing.T) {
	r, err := Parse([]byte(doc(emp("a", "pin:4821", "card:0A00123456"))))
	if err != nil {
		t.Fatal(err)
	}
	h := "h1:" + strings.Repeat("A", 43)
	r.HashPINs(func(string) string { return h })
	if got := r.Employees[0].Credentials[0].Value; got != h {
		t.Errorf("pin value %q after HashPINs", got)
	}
	if got := r.Employees[0].Credentials[1].Value; got != "0A00123456" {
		t.Errorf("card changed: %q", got)
	}
	if err := r.Validate(); err != nil {
		t.Errorf("a roster with hashed PINs must validate (salvage re-validates stored rosters): %v", err)
	}
}

func TestFingerprintNeedsConsent(t *testing.T) {
	r, err := Parse([]byte(`{"version":1,"employees":[{"id":"a","biometric_consent":true,"credentials":[{"type":"fingerprint","value":"3"}]},{"id":"b","credentials":[{"type":"fingerprint","value":"4"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	x := NewIndex(r)
	if e, _ := x.Find(Fingerprint, "", "3"); e == nil || e.ID != "a" {
		t.Errorf("page 3: %v", e)
	}
	if e, _ := x.Find(Fingerprint, "", "4"); e != nil {
		t.Errorf("page 4 of an employee without consent matched %s", e.ID)
	}
}
