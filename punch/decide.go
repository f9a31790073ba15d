package punch

import (
	"time"

	"github.com/punchclock/punchclock/clock"
	"github.com/punchclock/punchclock/roster"
)

// Reader roles (the reader's configured role).
const (
	// RoleAttendance pairs accepted punches into shifts.
	RoleAttendance = "attendance"
	// RoleAccess is a door: events only, no shifts.
	RoleAccess = "access"
	// RoleBoth is a terminal at a door that also clocks.
	RoleBoth = "both"
)

// Pairing policies for a double arrival or departure.
const (
	PolicyDeny           = "deny"
	PolicyCloseAndReopen = "close_and_reopen"
)

// Policy is the site's pairing configuration. Its zero value denies
// double punches and never expires an entry.
type Policy struct {
	DoubleIn  string        // PolicyDeny ("" too) or PolicyCloseAndReopen
	DoubleOut string        // PolicyDeny ("" too) or PolicyCloseAndReopen
	MaxShift  time.Duration // 0: an entry never expires
	MinShift  time.Duration // an exit sooner is denied too_soon
}

// Group is an employee's access group (a *roster.AccessGroup): which
// readers it may use, and when.
type Group interface {
	AllowsReader(name string) bool
	// InWindow reports whether t (in the site's zone) falls in one of
	// the group's windows.
	InWindow(t time.Time) bool
}

// Input is everything a decision depends on.
type Input struct {
	Reader string // reader name
	// Role is the reader's role; "" is RoleAttendance.
	Role string
	// Mode is ModeToggle, ModeIn or ModeOut: the direction the reader
	// asks for (a "key" reader's choice, resolved by the agent).
	Mode string
	// Suspended: the reader is suspended.
	Suspended bool
	CredType  string    // roster.Card, roster.PIN, ...
	CredVal   string    // canonical credential value
	At        time.Time // in the site's location
	// ClockSynced is false while the system clock is not known to be set.
	ClockSynced bool
	// Stamp is the punch's stamp (At's wall time with the monotonic time
	// and boot id); zero when unknown.
	Stamp clock.Stamp
	// TimeUnknown: the wall time is known to be wrong (before the
	// latest time this device trusted). The rules that depend on the date
	// and the time of day (contract, windows) then do not deny: an
	// offline boot at 1970 must not lock a site out. The punch carries
	// clock_unsynced.
	TimeUnknown bool
	Employee    *roster.Employee // nil: credential unknown
	// Group is the employee's access group; nil: none (every reader, at
	// any time).
	Group Group
	// Ambiguous: the read matches two employees' credentials (Employee
	// is nil).
	Ambiguous bool
	// LockedOut: PIN entry is locked at the reader; the PIN is denied
	// whoever it belongs to.
	LockedOut bool
	// WrongPIN: the employee needs a PIN with their card and the PIN
	// typed was wrong, or none came in time.
	WrongPIN bool
	// JobCode is the job code typed after the badge ("" for none); the
	// agent has checked it against the employee's.
	JobCode string
	// Score is a fingerprint read's match score.
	Score int
	// Open is the employee's open entry, nil if none. The agent closes an
	// entry older than Policy.MaxShift (AutoClose) before deciding.
	Open *Open
	// RosterVersion is the version of the roster in use.
	RosterVersion int64
	Policy        Policy
}

// Outcome is what the agent stores for one punch, in one transaction.
type Outcome struct {
	Event Event
	// NoEvent: the outcome is a shift alone (AutoClose), with no punch.
	NoEvent bool
	// NewOpen, when set, becomes the employee's open entry; its EventID is
	// filled in with the event's ID once assigned.
	NewOpen *Open
	// CloseOpen removes the employee's open entry (before NewOpen, when
	// both are set).
	CloseOpen bool
	// Shift, when set, is the shift this punch completes (ID and
	// DeviceID are assigned when stored, and OutEvent too when the shift
	// has an exit reader).
	Shift *Shift
	// Unsynced: the event or the shift was stamped on an unsynced clock
	// and may be re-dated once the clock syncs.
	Unsynced bool
}

// Employee is the id of the person the outcome is about.
func (o *Outcome) Employee() string {
	switch {
	case o.NoEvent && o.Shift != nil:
		return o.Shift.EmployeeID
	case o.NoEvent && o.NewOpen != nil:
		return o.NewOpen.Employee
	}
	return o.Event.EmployeeID
}

// A rule is one reason a punch is denied: it returns the reason, or "".
type rule func(in *Input) string

// accessRules decide whether the person may pass, in the order their
// reasons win (docs/mqtt.md). An unknown or ambiguous credential is
// decided before them; the attendance rules come after.
var accessRules = []rule{
	readerSuspended,
	outsideContract,
	readerNotAllowed,
	outsideWindow,
	lockedOut,
	wrongPIN,
}

func readerSuspended(in *Input) string {
	if in.Suspended {
		return ReasonReaderSuspended
	}
	return ""
}

func outsideContract(in *Input) string {
	e := in.Employee
	switch {
	case in.TimeUnknown || e.ValidOn(in.At):
		return ""
	case !in.ClockSynced && e.ValidFrom != "" && in.At.Format("2006-01-02") < e.ValidFrom:
		// A clock not known to be set runs behind, if anything
		// (fake-hwclock restores the time last saved): a contract
		// that starts "after" it may have started already — a new
		// hire's first day after a power cut. Not denied; the punch
		// is flagged clock_unsynced.
		return ""
	}
	return ReasonOutsideContract
}

func readerNotAllowed(in *Input) string {
	if in.Group != nil && !in.Group.AllowsReader(in.Reader) {
		return ReasonReaderNotAllowed
	}
	return ""
}

func outsideWindow(in *Input) string {
	if in.Group != nil && !in.TimeUnknown && !in.Group.InWindow(in.At) {
		return ReasonOutsideWindow
	}
	return ""
}

func lockedOut(in *Input) string {
	if in.LockedOut {
		return ReasonLockedOut
	}
	return ""
}

func wrongPIN(in *Input) string {
	if in.WrongPIN {
		return ReasonWrongPIN
	}
	return ""
}

// afterContract reports whether a punch outside the contract is still
// the exit of an entry made within it: the exit is accepted (the shift
// is flagged after_contract), though the door stays shut.
func afterContract(in *Input, dir string) bool {
	return dir == Out && in.Open != nil && in.Employee.ValidOn(in.Open.At)
}

// Decide applies the rules to one punch. It is pure.
//
// The access decision (Event.Access) is made at every reader: the first
// access rule that denies is the reason. At an attendance or "both"
// reader, a granted punch is then paired: the direction follows the
// reader's mode, and a double arrival or departure, or an exit too soon,
// is denied (or, by Policy, paired anyway) while Access stays granted: an
// attendance error never keeps a person with a valid contract and group
// outside a door.
func Decide(in Input) Outcome {
	out := decide(in)
	out.Unsynced = out.Event.Clock != nil || out.Shift != nil && out.Shift.Clock != nil
	return out
}

func decide(in Input) Outcome {
	at := in.At.Round(0).Truncate(time.Millisecond)
	in.At = at
	ev := Event{
		At:             at,
		Reader:         in.Reader,
		CredentialType: in.CredType,
		RosterVersion:  in.RosterVersion,
	}
	var flags []string
	unsynced := !in.ClockSynced
	if unsynced {
		flags = append(flags, FlagClockUnsynced)
		if in.Stamp.Boot != "" {
			st := in.Stamp
			ev.Clock = &st
		}
	}
	if in.CredType == roster.Fingerprint {
		score := in.Score
		ev.Score = &score
	}
	e := in.Employee
	switch {
	case in.LockedOut && in.CredType == roster.PIN:
		// A locked PIN pad answers every PIN alike, a right one
		// included: a guesser must not learn which PINs exist. (For a
		// card's second factor the lockout takes its place below.)
		ev.Decision, ev.Reason, ev.Flags = Denied, ReasonLockedOut, flags
		return Outcome{Event: ev}
	case in.Ambiguous:
		ev.Decision, ev.Reason, ev.Flags = Denied, ReasonAmbiguousCredential, flags
		return Outcome{Event: ev}
	case e == nil:
		ev.Decision, ev.Reason = Denied, ReasonUnknownCredential
		if in.CredType == roster.Card {
			// An admin enrols a card from it; a PIN or a fingerprint
			// never leaves the device.
			ev.CredentialValue = in.CredVal
		}
		ev.Flags = flags
		return Outcome{Event: ev}
	}
	ev.EmployeeID = e.ID
	ev.JobCode = in.JobCode
	if e.PayrollNo == "" {
		flags = append(flags, FlagNoPayrollNo)
	}
	attendance := in.Role != RoleAccess
	dir := ""
	if attendance {
		dir = in.Mode
		if dir == ModeToggle || dir == "" {
			dir = In
			if in.Open != nil {
				dir = Out
			}
		}
	}
	ev.Access = AccessGranted
	for _, r := range accessRules {
		reason := r(&in)
		if reason == "" {
			continue
		}
		ev.Access = AccessDenied
		if reason == ReasonOutsideContract && attendance && afterContract(&in, dir) {
			// The door stays shut, but the exit of an entry made
			// within the contract is recorded: the rules after this
			// one still apply to it.
			flags = append(flags, FlagAfterContract)
			continue
		}
		ev.Decision, ev.Reason, ev.Flags = Denied, reason, flags
		return Outcome{Event: ev}
	}
	ev.Flags = flags
	ev.Direction = dir
	if !attendance {
		ev.Decision = Accepted
		return Outcome{Event: ev}
	}
	return pair(in, ev, dir, flags)
}

// pair makes the attendance decision of a punch the access rules let
// through.
func pair(in Input, ev Event, dir string, flags []string) Outcome {
	o, at := in.Open, in.At
	switch {
	case dir == In && o != nil:
		if in.Policy.DoubleIn != PolicyCloseAndReopen {
			ev.Decision, ev.Reason = Denied, ReasonDoubleIn
			return Outcome{Event: ev}
		}
		// The forgotten exit: the open entry becomes a shift flagged
		// missing_out with no time made up, and this arrival opens a
		// new entry.
		ev.Decision = Accepted
		sh := newShift(in, o)
		sh.Out, sh.DurationS = sh.In, 0
		sh.Flags = union(sh.Flags, []string{FlagMissingOut})
		return Outcome{Event: ev, CloseOpen: true, Shift: sh, NewOpen: newOpen(in, flags)}
	case dir == Out && o == nil:
		if in.Policy.DoubleOut != PolicyCloseAndReopen {
			ev.Decision, ev.Reason = Denied, ReasonDoubleOut
			return Outcome{Event: ev}
		}
		ev.Decision = Accepted
		ev.Flags = union(flags, []string{FlagMissingIn})
		return Outcome{Event: ev}
	case dir == Out && at.Sub(o.At) >= 0 && at.Sub(o.At) < in.Policy.MinShift:
		// (A negative time is a clock that went back: it proves no
		// exit too soon, and the shift is flagged below.)
		ev.Decision, ev.Reason = Denied, ReasonTooSoon
		return Outcome{Event: ev}
	}
	ev.Decision = Accepted
	if dir == In {
		return Outcome{Event: ev, NewOpen: newOpen(in, flags)}
	}
	sh := newShift(in, o)
	sh.OutReader = in.Reader
	sh.Flags = union(sh.Flags, flags)
	if sh.JobCode == "" {
		sh.JobCode = in.JobCode
	}
	span(sh, o, in)
	return Outcome{Event: ev, CloseOpen: true, Shift: sh}
}

// span sets the shift's out and duration from its entry o and the exit
// in. The duration is the real elapsed time: within one boot the
// monotonic clock's (whatever the wall clock did: a sync, a step back, a
// DST change); across boots the wall clocks', when both were synced.
// An entry stamped unsynced and an exit synced in the same boot re-date
// the entry (clock_corrected). When the duration cannot be trusted the
// shift says so (duration_unknown, duration 0), and its out is never
// before its in.
func span(sh *Shift, o *Open, in Input) {
	at := in.At
	if o.Clock == nil || in.Stamp.Wall.IsZero() {
		// An entry from before stamps: the wall clocks alone.
		sh.Out = at
		sh.DurationS = int64(at.Sub(o.At) / time.Second)
		if sh.DurationS < 0 {
			// The clock went backwards between entry and exit.
			sh.Out, sh.DurationS = sh.In, 0
			sh.Flags = union(sh.Flags, []string{FlagClockUnsynced})
		}
		return
	}
	entry := *o.Clock
	if t, ok := clock.Correct(entry, in.Stamp); ok {
		// The clock synced during the shift and the entry was not
		// re-dated yet: re-date it now.
		sh.In = t.In(at.Location()).Round(0).Truncate(time.Millisecond)
		entry.Wall, entry.Synced = t, true
		sh.Flags = union(sh.Flags, []string{FlagClockCorrected})
	}
	if !entry.Synced || !in.Stamp.Synced {
		exit := in.Stamp
		sh.Clock = &ShiftClock{In: entry, Out: exit}
	} else {
		// Both ends known now: the entry's flag no longer holds.
		sh.Flags = without(sh.Flags, FlagClockUnsynced)
	}
	d, ok := clock.Elapsed(entry, in.Stamp)
	if !ok {
		sh.Out, sh.DurationS = at, 0
		if at.Before(sh.In) {
			sh.Out = sh.In
		}
		sh.Flags = union(sh.Flags, []string{FlagClockUnsynced, FlagDurationUnknown})
		return
	}
	end := sh.In.Add(d)
	bothSynced := entry.Synced && in.Stamp.Synced
	switch diff := at.Sub(end); {
	case bothSynced && diff > -time.Second && diff < time.Second && !at.Before(sh.In):
		// The clocks agree (NTP slews by milliseconds): the exit's
		// own time.
		end = at
	case bothSynced:
		// The wall clock was stepped during the shift: the monotonic
		// clock gives the exit.
		sh.Flags = union(sh.Flags, []string{FlagClockCorrected})
	}
	sh.Out = end
	sh.DurationS = int64(end.Sub(sh.In) / time.Second)
}

func newOpen(in Input, flags []string) *Open {
	e := in.Employee
	o := &Open{At: in.At, Reader: in.Reader, Flags: flags, JobCode: in.JobCode,
		Employee: e.ID, PayrollNo: e.PayrollNo, Department: e.Department}
	if !in.Stamp.Wall.IsZero() {
		st := in.Stamp
		o.Clock = &st
	}
	return o
}

// newShift is the shift of open entry o, closed by in: the person's
// payroll number and department as the roster in use gives them (as the
// entry recorded them when the roster no longer knows the person).
func newShift(in Input, o *Open) *Shift {
	sh := &Shift{
		In:            o.At.In(in.At.Location()),
		InReader:      o.Reader,
		InEvent:       o.EventID,
		Flags:         union(o.Flags, nil),
		JobCode:       o.JobCode,
		RosterVersion: in.RosterVersion,
	}
	if e := in.Employee; e != nil {
		sh.EmployeeID, sh.PayrollNo, sh.Department = e.ID, e.PayrollNo, e.Department
	} else {
		sh.EmployeeID, sh.PayrollNo, sh.Department = o.Employee, o.PayrollNo, o.Department
	}
	// no_payroll_no says what the shift carries, not what the entry
	// did: the roster may have given the number since.
	if sh.PayrollNo == "" {
		sh.Flags = union(sh.Flags, []string{FlagNoPayrollNo})
	} else {
		sh.Flags = without(sh.Flags, FlagNoPayrollNo)
	}
	return sh
}

// Expired reports whether open entry o has outlived p.MaxShift at now.
func Expired(o *Open, now time.Time, p Policy) bool {
	return o != nil && p.MaxShift > 0 && !now.Before(o.At.Add(p.MaxShift))
}

// AutoClose closes open entry o of employee e (nil when the roster no
// longer knows them) into a shift flagged auto_closed at o.At +
// p.MaxShift, with no exit reader and no exit event: nothing is made up
// but the end the site's max_shift sets. loc is the site's zone.
func AutoClose(o *Open, e *roster.Employee, p Policy, rosterVersion int64, loc *time.Location) Outcome {
	end := o.At.Add(p.MaxShift).In(loc)
	sh := newShift(Input{Employee: e, At: end, RosterVersion: rosterVersion}, o)
	sh.Out = end
	sh.DurationS = int64(p.MaxShift / time.Second)
	sh.Flags = union(sh.Flags, []string{FlagAutoClosed})
	return Outcome{NoEvent: true, CloseOpen: true, Shift: sh}
}

// Redated is the flags of a record re-dated from the monotonic clock once
// the clock synced: clock_corrected added once, and clock_unsynced
// dropped when settled (none of its stamps is unsynced any more). Never
// nil.
func Redated(flags []string, settled bool) []string {
	out := union(flags, []string{FlagClockCorrected})
	if settled {
		out = without(out, FlagClockUnsynced)
	}
	return out
}

// without returns flags without f (never nil).
func without(flags []string, f string) []string {
	out := make([]string, 0, len(flags))
	for _, g := range flags {
		if g != f {
			out = append(out, g)
		}
	}
	return out
}
