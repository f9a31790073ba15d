package punch

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/clock"
	"github.com/punchclock/punchclock/roster"
)

// group is a fake access group: the readers it allows, and a window of
// [from, to) hours, crossing midnight when from > to.
type group struct {
	readers  []string
	from, to int
}

func (g group) AllowsReader(name string) bool { return slices.Contains(g.readers, name) }
func (g group) InWindow(t time.Time) bool {
	h := t.Hour()
	if g.from <= g.to {
		return h >= g.from && h < g.to
	}
	return h >= g.from || h < g.to
}

var (
	staff   = group{readers: []string{"front", "back"}, from: 6, to: 22}
	night   = group{readers: []string{"front"}, from: 22, to: 6}
	expired = &roster.Employee{ID: "E7", PayrollNo: "7", ValidUntil: "2026-03-01"}
)

// TestReasonOrder: when several denials hold, the first of the documented
// list is the reason.
func TestReasonOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     Input
		reason string
	}{
		{"unknown beats suspended", Input{Suspended: true}, ReasonUnknownCredential},
		{"suspended beats contract", Input{Employee: expired, Suspended: true}, ReasonReaderSuspended},
		{"contract beats reader", Input{Employee: expired, Reader: "gate", Group: staff}, ReasonOutsideContract},
		{"reader beats window", Input{Employee: anna, Reader: "gate", Group: staff, At: at(23, 0)}, ReasonReaderNotAllowed},
		{"window beats lockout", Input{Employee: anna, Group: staff, At: at(23, 0), LockedOut: true, CredType: roster.Card}, ReasonOutsideWindow},
		{"lockout beats wrong pin", Input{Employee: anna, LockedOut: true, WrongPIN: true, CredType: roster.Card}, ReasonLockedOut},
		{"wrong pin beats double in", Input{Employee: anna, WrongPIN: true, Mode: ModeIn, Open: &Open{At: at(8, 0)}}, ReasonWrongPIN},
		{"double in", Input{Employee: anna, Mode: ModeIn, Open: &Open{At: at(8, 0)}}, ReasonDoubleIn},
		{"double out", Input{Employee: anna, Mode: ModeOut}, ReasonDoubleOut},
		{"too soon", Input{Employee: anna, Mode: ModeOut, Open: &Open{At: at(12, 55)}, Policy: Policy{MinShift: 10 * time.Minute}}, ReasonTooSoon},
		// A locked PIN pad answers a right PIN as it answers a wrong one.
		{"locked pin pad, right pin", Input{Employee: anna, CredType: roster.PIN, LockedOut: true, Suspended: true}, ReasonLockedOut},
		{"locked pin pad, unknown pin", Input{CredType: roster.PIN, LockedOut: true}, ReasonLockedOut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.in.Reader == "" {
				tc.in.Reader = "front"
			}
			if tc.in.At.IsZero() {
				tc.in.At = at(13, 0)
			}
			tc.in.ClockSynced = true
			ev := Decide(tc.in).Event
			if ev.Decision != Denied || ev.Reason != tc.reason {
				t.Fatalf("%s/%s, want denied/%s", ev.Decision, ev.Reason, tc.reason)
			}
		})
	}
}

// TestAccessRules: one row per rule, at each role.
func TestAccessRules(t *testing.T) {
	open := &Open{EventID: "e1", At: at(8, 0), Reader: "front", Employee: anna.ID}
	type want struct {
		decision, reason, access, dir string
		opens, closes, shift          bool
	}
	for _, tc := range []struct {
		name string
		in   Input
		want want
	}{
		{"no group: any reader, any time", Input{Employee: anna, Reader: "gate", At: at(3, 0)}, want{Accepted, "", AccessGranted, In, true, false, false}},
		{"in group, in window", Input{Employee: anna, Group: staff, At: at(6, 0)}, want{Accepted, "", AccessGranted, In, true, false, false}},
		{"window's end is exclusive", Input{Employee: anna, Group: staff, At: at(22, 0)}, want{Denied, ReasonOutsideWindow, AccessDenied, "", false, false, false}},
		{"window across midnight, after it", Input{Employee: anna, Group: night, At: at(23, 30)}, want{Accepted, "", AccessGranted, In, true, false, false}},
		{"window across midnight, early morning", Input{Employee: anna, Group: night, At: at(5, 59)}, want{Accepted, "", AccessGranted, In, true, false, false}},
		{"window across midnight, midday", Input{Employee: anna, Group: night, At: at(12, 0)}, want{Denied, ReasonOutsideWindow, AccessDenied, "", false, false, false}},
		{"reader outside the group", Input{Employee: anna, Group: staff, Reader: "gate"}, want{Denied, ReasonReaderNotAllowed, AccessDenied, "", false, false, false}},
		{"suspended reader", Input{Employee: anna, Suspended: true}, want{Denied, ReasonReaderSuspended, AccessDenied, "", false, false, false}},
		{"wrong pin with the card", Input{Employee: anna, WrongPIN: true}, want{Denied, ReasonWrongPIN, AccessDenied, "", false, false, false}},
		// A door decides access alone: no entry opened or closed, the
		// reader's direction ignored.
		{"access reader", Input{Employee: anna, Role: RoleAccess, Mode: ModeOut}, want{Accepted, "", AccessGranted, "", false, false, false}},
		{"access reader, open entry untouched", Input{Employee: anna, Role: RoleAccess, Open: open}, want{Accepted, "", AccessGranted, "", false, false, false}},
		{"access reader, denied", Input{Employee: anna, Role: RoleAccess, Group: staff, At: at(23, 0)}, want{Denied, ReasonOutsideWindow, AccessDenied, "", false, false, false}},
		// A forgotten exit is an attendance error: the door opens all
		// the same.
		{"both: double in opens the door", Input{Employee: anna, Role: RoleBoth, Mode: ModeIn, Open: open}, want{Denied, ReasonDoubleIn, AccessGranted, In, false, false, false}},
		{"both: exit", Input{Employee: anna, Role: RoleBoth, Open: open}, want{Accepted, "", AccessGranted, Out, false, true, true}},
		// The contract ended while the entry was open: the exit is
		// recorded, the door stays shut.
		{"exit after contract", Input{Employee: expired, Open: &Open{EventID: "e1", At: at(8, 0).AddDate(0, 0, -2)}}, want{Accepted, "", AccessDenied, Out, false, true, true}},
		{"entry after contract", Input{Employee: expired}, want{Denied, ReasonOutsideContract, AccessDenied, "", false, false, false}},
		{"exit after contract of an entry after it", Input{Employee: expired, Open: &Open{At: at(8, 0)}}, want{Denied, ReasonOutsideContract, AccessDenied, "", false, false, false}},
		// An unsynced clock known to be wrong (1970) does not lock the
		// site out: contract and window rules do not deny.
		{"unknown time: contract not judged", Input{Employee: expired, TimeUnknown: true}, want{Accepted, "", AccessGranted, In, true, false, false}},
		{"unknown time: window not judged", Input{Employee: anna, Group: staff, At: at(23, 0), TimeUnknown: true}, want{Accepted, "", AccessGranted, In, true, false, false}},
		// A clock not known to be set but past the floor (fake-hwclock)
		// runs behind: a contract starting after it is not denied, one
		// that ended before it is.
		{"unsynced: contract not started yet", Input{Employee: &roster.Employee{ID: "N1", ValidFrom: "2026-03-03"}, ClockSynced: false}, want{Accepted, "", AccessGranted, In, true, false, false}},
		{"unsynced: contract ended", Input{Employee: expired, ClockSynced: false}, want{Denied, ReasonOutsideContract, AccessDenied, "", false, false, false}},
		{"synced: contract not started yet", Input{Employee: &roster.Employee{ID: "N1", ValidFrom: "2026-03-03"}}, want{Denied, ReasonOutsideContract, AccessDenied, "", false, false, false}},
		{"unknown time: reader still judged", Input{Employee: anna, Group: staff, Reader: "gate", TimeUnknown: true}, want{Denied, ReasonReaderNotAllowed, AccessDenied, "", false, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.in.Reader == "" {
				tc.in.Reader = "front"
			}
			if tc.in.At.IsZero() {
				tc.in.At = at(13, 0)
			}
			if !strings.HasPrefix(tc.name, "unsynced") {
				tc.in.ClockSynced = true
			}
			out := Decide(tc.in)
			ev := out.Event
			got := want{ev.Decision, ev.Reason, ev.Access, ev.Direction, out.NewOpen != nil, out.CloseOpen, out.Shift != nil}
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			if tc.name == "exit after contract" && !slices.Contains(out.Shift.Flags, FlagAfterContract) {
				t.Errorf("shift flags %v lack after_contract", out.Shift.Flags)
			}
		})
	}
}

func TestPairingPolicies(t *testing.T) {
	open := &Open{EventID: "e1", At: at(8, 0), Reader: "front", JobCode: "1001"}
	reopen := Policy{DoubleIn: PolicyCloseAndReopen, DoubleOut: PolicyCloseAndReopen}

	// A second arrival: the open entry becomes a shift flagged
	// missing_out (no exit made up), and a new entry opens.
	out := Decide(Input{Reader: "front", Mode: ModeIn, Employee: anna, At: at(13, 0), ClockSynced: true, Open: open, Policy: reopen, RosterVersion: 5})
	sh := out.Shift
	if out.Event.Decision != Accepted || !out.CloseOpen || out.NewOpen == nil || sh == nil {
		t.Fatalf("close_and_reopen: %+v", out)
	}
	if !sh.Out.Equal(sh.In) || sh.DurationS != 0 || sh.OutReader != "" || sh.InEvent != "e1" ||
		!slices.Contains(sh.Flags, FlagMissingOut) || sh.JobCode != "1001" || sh.RosterVersion != 5 {
		t.Errorf("missing_out shift %+v", sh)
	}
	if !out.NewOpen.At.Equal(at(13, 0)) {
		t.Errorf("new entry at %v", out.NewOpen.At)
	}

	// A departure with nothing open: kept as an accepted exit flagged
	// missing_in, no shift.
	out = Decide(Input{Reader: "front", Mode: ModeOut, Employee: anna, At: at(13, 0), ClockSynced: true, Policy: reopen})
	if out.Event.Decision != Accepted || out.Shift != nil || out.CloseOpen || out.NewOpen != nil || !slices.Contains(out.Event.Flags, FlagMissingIn) {
		t.Errorf("double_out close_and_reopen: %+v", out)
	}

	// min_shift: an exit at exactly min_shift is accepted.
	p := Policy{MinShift: 5 * time.Hour}
	if ev := Decide(Input{Reader: "front", Employee: anna, At: at(13, 0), ClockSynced: true, Open: open, Policy: p}).Event; ev.Decision != Accepted {
		t.Errorf("exit at min_shift: %s/%s", ev.Decision, ev.Reason)
	}
}

func TestAutoClose(t *testing.T) {
	p := Policy{MaxShift: 16 * time.Hour}
	open := &Open{EventID: "e1", At: at(8, 0).UTC(), Reader: "front", Employee: "E100", PayrollNo: "1001", Department: "Shop"}
	if Expired(open, at(8, 0).Add(16*time.Hour-time.Millisecond), p) || !Expired(open, at(8, 0).Add(16*time.Hour), p) {
		t.Fatal("Expired is wrong at the boundary")
	}
	if Expired(open, at(8, 0).AddDate(1, 0, 0), Policy{}) {
		t.Fatal("max_shift 0 expires nothing")
	}
	out := AutoClose(open, nil, p, 9, ams)
	sh := out.Shift
	if !out.NoEvent || !out.CloseOpen || out.NewOpen != nil || out.Employee() != "E100" {
		t.Fatalf("outcome %+v", out)
	}
	if !sh.Out.Equal(at(8, 0).Add(16*time.Hour)) || sh.DurationS != 16*3600 || sh.OutReader != "" || sh.OutEvent != "" ||
		!slices.Contains(sh.Flags, FlagAutoClosed) || sh.PayrollNo != "1001" || sh.Department != "Shop" || sh.RosterVersion != 9 {
		t.Fatalf("auto_closed shift %+v", sh)
	}
	if _, off := sh.Out.Zone(); off != 3600 {
		t.Errorf("out carries offset %d, want the site's", off)
	}
	// The roster still knows the person: their current payroll number.
	moved := &roster.Employee{ID: "E100", PayrollNo: "2002", Department: "Bar"}
	if sh := AutoClose(open, moved, p, 9, ams).Shift; sh.PayrollNo != "2002" || sh.Department != "Bar" {
		t.Errorf("auto close with the roster's employee: %+v", sh)
	}
}

// Durations are real elapsed time, and in and out carry the offset in
// force at each moment: both DST nights in Europe/Amsterdam and a shift
// across midnight.
func TestShiftTimes(t *testing.T) {
	for _, tc := range []struct {
		name            string
		in, out         time.Time
		dur             int64
		inOff, outOff   int
		roster, version int64
	}{
		{"spring forward", time.Date(2026, 3, 28, 22, 0, 0, 0, ams), time.Date(2026, 3, 29, 6, 0, 0, 0, ams), 7 * 3600, 3600, 7200, 0, 0},
		{"fall back", time.Date(2026, 10, 24, 22, 0, 0, 0, ams), time.Date(2026, 10, 25, 6, 0, 0, 0, ams), 9 * 3600, 7200, 3600, 0, 0},
		{"across midnight", time.Date(2026, 3, 2, 21, 30, 0, 0, ams), time.Date(2026, 3, 3, 5, 45, 0, 0, ams), 8*3600 + 15*60, 3600, 3600, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := Decide(Input{Reader: "front", Employee: anna, At: tc.out, ClockSynced: true, RosterVersion: 12,
				Open: &Open{EventID: "e1", At: tc.in.UTC(), Reader: "front"}})
			sh := out.Shift
			if sh.DurationS != tc.dur {
				t.Errorf("duration %d s, want %d", sh.DurationS, tc.dur)
			}
			if _, off := sh.In.Zone(); off != tc.inOff {
				t.Errorf("in offset %d, want %d", off, tc.inOff)
			}
			if _, off := sh.Out.Zone(); off != tc.outOff {
				t.Errorf("out offset %d, want %d", off, tc.outOff)
			}
			if sh.RosterVersion != 12 || out.Event.RosterVersion != 12 {
				t.Errorf("roster version: shift %d, event %d", sh.RosterVersion, out.Event.RosterVersion)
			}
		})
	}
}

func TestJobCodes(t *testing.T) {
	out := Decide(Input{Reader: "front", Employee: anna, At: at(8, 0), ClockSynced: true, JobCode: "1001"})
	if out.Event.JobCode != "1001" || out.NewOpen.JobCode != "1001" {
		t.Fatalf("entry: %+v %+v", out.Event, out.NewOpen)
	}
	// The entry's code goes to the shift; an exit's code fills it only
	// when the entry had none.
	o := &Open{EventID: "e1", At: at(8, 0), Reader: "front", JobCode: "1001"}
	if sh := Decide(Input{Reader: "front", Employee: anna, At: at(16, 0), ClockSynced: true, JobCode: "2002", Open: o}).Shift; sh.JobCode != "1001" {
		t.Errorf("shift job code %q, want the entry's", sh.JobCode)
	}
	o.JobCode = ""
	if sh := Decide(Input{Reader: "front", Employee: anna, At: at(16, 0), ClockSynced: true, JobCode: "2002", Open: o}).Shift; sh.JobCode != "2002" {
		t.Errorf("shift job code %q, want the exit's", sh.JobCode)
	}
}

// A shift's times and duration from the stamps of its ends.
func TestShiftClock(t *testing.T) {
	boot := func(b string, wall time.Time, mono time.Duration, synced bool) clock.Stamp {
		return clock.Stamp{Wall: wall, Mono: mono, Boot: b, Synced: synced}
	}
	epoch := time.Date(1970, 1, 1, 0, 0, 30, 0, time.UTC) // a Pi without RTC, 30 s after boot
	for _, tc := range []struct {
		name          string
		entry, exit   clock.Stamp
		wantIn        time.Time
		wantOut       time.Time
		dur           int64
		flags, absent []string
		keepsClock    bool
	}{
		{"synced both", boot("b1", at(8, 0), time.Hour, true), boot("b1", at(16, 30), time.Hour+8*time.Hour+30*time.Minute, true),
			at(8, 0), at(16, 30), 8*3600 + 1800, nil, []string{FlagClockUnsynced, FlagClockCorrected}, false},
		// Booted in 1970, NTP set the clock mid-shift: the entry is
		// re-dated from the monotonic clock, the duration is real.
		{"clock synced mid-shift", boot("b1", epoch, 30*time.Second, false), boot("b1", at(16, 30), 30*time.Second+8*time.Hour, true),
			at(8, 30), at(16, 30), 8 * 3600, []string{FlagClockCorrected}, []string{FlagDurationUnknown, FlagClockUnsynced}, false},
		// A synced clock stepped back an hour during the shift: the
		// monotonic clock gives the exit, never before the entry.
		{"clock stepped back", boot("b1", at(8, 0), time.Hour, true), boot("b1", at(7, 0), 3*time.Hour, true),
			at(8, 0), at(10, 0), 2 * 3600, nil, []string{FlagDurationUnknown}, false},
		// Entry before a power cut on an unsynced clock, exit after the
		// reboot: no duration is vouched for.
		{"another boot, unsynced entry", boot("b1", epoch, 30*time.Second, false), boot("b2", at(16, 30), time.Minute, true),
			epoch, at(16, 30), 0, []string{FlagClockUnsynced, FlagDurationUnknown}, nil, true},
		{"another boot, both synced", boot("b1", at(8, 0), time.Hour, true), boot("b2", at(16, 0), time.Minute, true),
			at(8, 0), at(16, 0), 8 * 3600, nil, []string{FlagDurationUnknown}, false},
		{"another boot, clock behind", boot("b1", at(8, 0), time.Hour, true), boot("b2", at(7, 0), time.Minute, false),
			at(8, 0), at(8, 0), 0, []string{FlagDurationUnknown}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var flags []string
			if !tc.entry.Synced {
				flags = []string{FlagClockUnsynced}
			}
			out := Decide(Input{Reader: "front", Employee: anna, At: tc.exit.Wall.In(ams), ClockSynced: tc.exit.Synced, Stamp: tc.exit,
				TimeUnknown: !tc.exit.Synced, Open: &Open{EventID: "e1", At: tc.entry.Wall, Reader: "front", Clock: &tc.entry, Flags: flags}})
			sh := out.Shift
			if !sh.In.Equal(tc.wantIn) || !sh.Out.Equal(tc.wantOut) || sh.DurationS != tc.dur {
				t.Errorf("in %v out %v duration %d, want %v %v %d", sh.In, sh.Out, sh.DurationS, tc.wantIn, tc.wantOut, tc.dur)
			}
			if sh.Out.Before(sh.In) || sh.DurationS < 0 {
				t.Errorf("out before in, or a negative duration: %+v", sh)
			}
			for _, f := range tc.flags {
				if !slices.Contains(sh.Flags, f) {
					t.Errorf("flags %v lack %s", sh.Flags, f)
				}
			}
			for _, f := range tc.absent {
				if slices.Contains(sh.Flags, f) {
					t.Errorf("flags %v hold %s", sh.Flags, f)
				}
			}
			if (sh.Clock != nil) != tc.keepsClock || out.Unsynced != tc.keepsClock {
				t.Errorf("shift clock %+v, unsynced %v, want kept %v", sh.Clock, out.Unsynced, tc.keepsClock)
			}
		})
	}
	// A punch on an unsynced clock keeps its stamp, to be re-dated.
	st := clock.Stamp{Wall: epoch, Mono: time.Minute, Boot: "b1"}
	out := Decide(Input{Reader: "front", Employee: anna, At: epoch, Stamp: st, TimeUnknown: true})
	if out.Event.Clock == nil || *out.Event.Clock != st || !out.Unsynced || out.NewOpen.Clock == nil {
		t.Fatalf("unsynced entry: %+v", out)
	}
}

// A shift is flagged no_payroll_no for what it carries: the roster may
// have given the number between entry and exit, or taken it away.
func TestShiftPayrollFlag(t *testing.T) {
	o := &Open{EventID: "e1", At: at(8, 0), Reader: "front", Flags: []string{FlagNoPayrollNo}}
	sh := Decide(Input{Reader: "front", Employee: anna, At: at(16, 0), ClockSynced: true, Open: o}).Shift
	if sh.PayrollNo != "1001" || slices.Contains(sh.Flags, FlagNoPayrollNo) {
		t.Errorf("number given by the exit: %+v", sh)
	}
	o.Flags = nil
	sh = Decide(Input{Reader: "front", Employee: &roster.Employee{ID: "E100"}, At: at(16, 0), ClockSynced: true, Open: o}).Shift
	if sh.PayrollNo != "" || !slices.Contains(sh.Flags, FlagNoPayrollNo) {
		t.Errorf("number taken by the exit: %+v", sh)
	}
}
