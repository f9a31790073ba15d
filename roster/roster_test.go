package roster

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseSample(t *testing.T) {
	b, err := os.ReadFile("testdata/roster.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 3 || len(r.Employees) != 3 {
		t.Fatalf("got version %d with %d employees", r.Version, len(r.Employees))
	}
	if got := r.Employees[0].Credentials[0].Value; got != "0A00123456" {
		t.Errorf("card value = %q", got)
	}
}

func TestNormalizeCard(t *testing.T) {
	for in, want := range map[string]string{
		"0a00123456": "0A00123456",
		"0001193046": "0001193046", // printed decimal, kept; CardKeys matches it
		"1193046":    "0001193046", // shorter decimal is padded
	} {
		got, err := Normalize(Card, in)
		if err != nil || got != want {
			t.Errorf("Normalize(card, %q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"99999999999", "0A0012345", "0G00123456", "12 3456", ""} {
		_, err := Normalize(Card, in)
		if err == nil {
			t.Errorf("Normalize(card, %q) accepted", in)
		} else if in != "" && strings.Contains(err.Error(), in) {
			t.Errorf("Normalize(card, %q): error %q names the value", in, err)
		}
	}
}

func TestCardKeys(t *testing.T) {
	got := CardKeys("0a00123456")
	want := []string{"card:0A00123456", "card:0001193046"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("CardKeys = %v, want %v", got, want)
	}
	// Not a card read: only its own key, which no card credential has.
	if got := CardKeys("ZZ00123456"); len(got) != 1 || got[0] != "card:ZZ00123456" {
		t.Fatalf("CardKeys(ZZ00123456) = %v", got)
	}
}

func TestValidOn(t *testing.T) {
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	e := Employee{ValidFrom: "2025-01-01", ValidUntil: "2025-06-30"}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{time.Date(2024, 12, 31, 23, 59, 0, 0, ams), false},
		{time.Date(2025, 1, 1, 0, 0, 0, 0, ams), true},
		// 2024-12-31 23:30 UTC is already 2025-01-01 in Amsterdam.
		{time.Date(2024, 12, 31, 23, 30, 0, 0, time.UTC).In(ams), true},
		{time.Date(2025, 6, 30, 23, 59, 59, 0, ams), true},
		{time.Date(2025, 7, 1, 0, 0, 0, 0, ams), false},
	} {
		if got := e.ValidOn(tc.at); got != tc.want {
			t.Errorf("ValidOn(%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
	if !(&Employee{}).ValidOn(time.Now()) {
		t.Error("open-ended contract not valid")
	}
}
