package punch

import (
	"slices"
	"testing"
	"time"

	"github.com/punchclock/punchclock/roster"
)

var ams = func() *time.Location {
	l, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		panic(err)
	}
	return l
}()

var anna = &roster.Employee{ID: "E100", PayrollNo: "1001", Department: "Shop", ValidFrom: "2025-01-01"}

func at(h, m int) time.Time { return time.Date(2026, 3, 2, h, m, 0, 0, ams) }

func TestDecide(t *testing.T) {
	open := &Open{EventID: "e1", At: at(8, 0), Reader: "front"}
	for _, tc := range []struct {
		name                   string
		in                     Input
		decision, reason, dir  string
		opens, closes, shifted bool
	}{
		{"unknown", Input{Mode: ModeToggle, CredType: roster.Card, CredVal: "0A00000001"}, Denied, ReasonUnknownCredential, "", false, false, false},
		{"outside contract", Input{Mode: ModeToggle, Employee: &roster.Employee{ID: "x", ValidUntil: "2026-03-01"}}, Denied, ReasonOutsideContract, "", false, false, false},
		{"toggle in", Input{Mode: ModeToggle, Employee: anna}, Accepted, "", In, true, false, false},
		{"toggle out", Input{Mode: ModeToggle, Employee: anna, Open: open}, Accepted, "", Out, false, true, true},
		{"forced in", Input{Mode: ModeIn, Employee: anna}, Accepted, "", In, true, false, false},
		{"double in", Input{Mode: ModeIn, Employee: anna, Open: open}, Denied, ReasonDoubleIn, In, false, false, false},
		{"double out", Input{Mode: ModeOut, Employee: anna}, Denied, ReasonDoubleOut, Out, false, false, false},
		{"forced out", Input{Mode: ModeOut, Employee: anna, Open: open}, Accepted, "", Out, false, true, true},
		{"ambiguous", Input{Mode: ModeToggle, CredType: roster.Card, CredVal: "18:13398", Ambiguous: true}, Denied, ReasonAmbiguousCredential, "", false, false, false},
		// Locked out wins over everything, a correct PIN included: a
		// guesser must not learn which PINs exist.
		{"locked out, right pin", Input{Mode: ModeToggle, CredType: roster.PIN, Employee: anna, LockedOut: true}, Denied, ReasonLockedOut, "", false, false, false},
		{"locked out, unknown pin", Input{Mode: ModeToggle, CredType: roster.PIN, LockedOut: true}, Denied, ReasonLockedOut, "", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.At = at(16, 30)
			tc.in.ClockSynced = true
			out := Decide(tc.in)
			ev := out.Event
			if ev.Decision != tc.decision || ev.Reason != tc.reason || ev.Direction != tc.dir {
				t.Fatalf("event = %s/%s/%s, want %s/%s/%s", ev.Decision, ev.Reason, ev.Direction, tc.decision, tc.reason, tc.dir)
			}
			if (out.NewOpen != nil) != tc.opens || out.CloseOpen != tc.closes || (out.Shift != nil) != tc.shifted {
				t.Fatalf("outcome opens=%v closes=%v shift=%v", out.NewOpen != nil, out.CloseOpen, out.Shift != nil)
			}
		})
	}
}

func TestDecideShift(t *testing.T) {
	out := Decide(Input{Reader: "back", Mode: ModeToggle, Employee: anna, At: at(16, 30), ClockSynced: true,
		Open: &Open{EventID: "e1", At: at(8, 0).UTC(), Reader: "front"}})
	sh := out.Shift
	if sh.PayrollNo != "1001" || sh.Department != "Shop" || sh.InReader != "front" || sh.OutReader != "back" || sh.InEvent != "e1" {
		t.Fatalf("shift = %+v", sh)
	}
	if sh.DurationS != 8*3600+30*60 {
		t.Errorf("duration = %d", sh.DurationS)
	}
	if _, off := sh.In.Zone(); off != 3600 {
		t.Errorf("in carries offset %d, want the site's +01:00", off)
	}
	if sh.Flags == nil || len(sh.Flags) != 0 {
		t.Errorf("flags = %#v, want empty non-nil", sh.Flags)
	}
}

func TestDecideFlags(t *testing.T) {
	noPay := &roster.Employee{ID: "E9"}
	out := Decide(Input{Mode: ModeToggle, Employee: noPay, At: at(9, 0)})
	if !slices.Contains(out.Event.Flags, FlagNoPayrollNo) || !slices.Contains(out.Event.Flags, FlagClockUnsynced) {
		t.Fatalf("flags = %v", out.Event.Flags)
	}
	// The clock stepped back between entry and exit.
	out = Decide(Input{Mode: ModeToggle, Employee: anna, At: at(7, 0), ClockSynced: true, Open: &Open{At: at(8, 0)}})
	if out.Shift.DurationS != 0 || !slices.Contains(out.Shift.Flags, FlagClockUnsynced) {
		t.Fatalf("shift = %+v", out.Shift)
	}
	// A PIN value never appears in an event; an unknown card's does.
	if ev := Decide(Input{CredType: roster.PIN, CredVal: "1234"}).Event; ev.CredentialValue != "" {
		t.Fatalf("pin leaked: %+v", ev)
	}
	if ev := Decide(Input{CredType: roster.Card, CredVal: "0A00000001"}).Event; ev.CredentialValue != "0A00000001" {
		t.Fatalf("unknown card value missing: %+v", ev)
	}
}

// Only an unknown card's value is sent: never a PIN (hashed or not), a
// fingerprint page or an ambiguous card. Fingerprint events always carry
// their score.
func TestDecideCredentialValueAndScore(t *testing.T) {
	for _, tc := range []struct {
		in        Input
		wantValue string
		wantScore *int
	}{
		{Input{CredType: roster.Card, CredVal: "04A1B2C3D4E5F6"}, "04A1B2C3D4E5F6", nil},
		{Input{CredType: roster.Card, CredVal: "123:45678"}, "123:45678", nil},
		{Input{CredType: roster.Card, CredVal: "18:13398", Ambiguous: true}, "", nil},
		{Input{CredType: roster.PIN, CredVal: "h1:xyz"}, "", nil},
		{Input{CredType: roster.Fingerprint, CredVal: "17", Score: 0}, "", new(0)},
		{Input{CredType: roster.Fingerprint, CredVal: "17", Score: 88, Employee: anna}, "", new(88)},
	} {
		tc.in.At, tc.in.Mode, tc.in.ClockSynced = at(9, 0), ModeToggle, true
		ev := Decide(tc.in).Event
		if ev.CredentialValue != tc.wantValue {
			t.Errorf("%+v: credential_value %q, want %q", tc.in, ev.CredentialValue, tc.wantValue)
		}
		if (ev.Score == nil) != (tc.wantScore == nil) || ev.Score != nil && *ev.Score != *tc.wantScore {
			t.Errorf("%+v: score %v, want %v", tc.in, ev.Score, tc.wantScore)
		}
	}
}
