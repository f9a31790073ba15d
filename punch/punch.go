// Package punch holds the attendance domain: what a punch decision and a
// completed shift are, and the pure rules that decide a punch and pair an
// entry with its exit. It does no I/O: the agent feeds it a read, the
// roster entry and the open entry, and stores what it returns.
package punch

import (
	"time"

	"github.com/punchclock/punchclock/roster"
)

// Decisions.
const (
	Accepted = "accepted"
	Denied   = "denied"
)

// Access decisions (Event.Access).
const (
	AccessGranted = "granted"
	AccessDenied  = "denied"
)

// Directions of an accepted punch.
const (
	In  = "in"
	Out = "out"
)

// Reader modes (the reader's configured direction).
const (
	ModeToggle = "toggle"
	ModeIn     = "in"
	ModeOut    = "out"
)

// Reasons a punch is denied.
const (
	ReasonUnknownCredential = "unknown_credential"
	// ReasonAmbiguousCredential: the read matches credentials of two
	// employees (a 26-bit Wiegand read of two EM cards that share their
	// last three bytes); it is denied, never guessed.
	ReasonAmbiguousCredential = "ambiguous_credential"
	// ReasonLockedOut: PIN entry at the reader is locked after too many
	// wrong PINs.
	ReasonLockedOut       = "locked_out"
	ReasonOutsideContract = "outside_contract"
	// ReasonReaderSuspended: the reader is suspended (enabled = false,
	// new_readers = "suspended", or a remote command); it still reads,
	// and keeps every punch as a denied event.
	ReasonReaderSuspended = "reader_suspended"
	// ReasonReaderNotAllowed: the employee's access group does not list
	// the reader.
	ReasonReaderNotAllowed = "reader_not_allowed"
	// ReasonOutsideWindow: the reader is in the employee's access group
	// but the punch falls outside every window of the group.
	ReasonOutsideWindow = "outside_window"
	// ReasonWrongPIN: the second factor of a card punch (pin_with_card)
	// was a wrong PIN, or none came within pin_timeout.
	ReasonWrongPIN = "wrong_pin"
	// ReasonUnknownJobCode: the job code typed is not one of the
	// employee's; shown at the reader, who may type again.
	ReasonUnknownJobCode = "unknown_job_code"
	ReasonDoubleIn       = "double_in"
	ReasonDoubleOut      = "double_out"
	// ReasonTooSoon: an exit sooner than min_shift after the entry.
	ReasonTooSoon = "too_soon"
	// ReasonStorageFull: the terminal cannot keep the punch (its store
	// is full); shown at the reader, not stored.
	ReasonStorageFull = "storage_full"
	// ReasonStoreError: the punch could not be stored for another
	// reason; shown at the reader, not stored.
	ReasonStoreError = "store_error"
)

// Flags attached to events and shifts.
const (
	// FlagNoPayrollNo marks a punch of an employee the roster gives no
	// payroll number: it is kept and sent, but a connector cannot map it.
	FlagNoPayrollNo = "no_payroll_no"
	// FlagClockUnsynced marks a time taken before the system clock was
	// known to be set (a Pi without RTC boots in 1970 or at its last
	// shutdown time).
	FlagClockUnsynced = "clock_unsynced"
	// FlagRateLimited marks an event that stands for unknown credentials
	// read faster than the terminal records them one by one: their
	// values are not kept, only their count.
	FlagRateLimited = "rate_limited"
)

// Event is the record of one punch decision, as stored and as published on
// the events topic.
type Event struct {
	ID             string    `json:"id"`
	DeviceID       string    `json:"device_id"`
	At             time.Time `json:"at"`
	Reader         string    `json:"reader"`
	EmployeeID     string    `json:"employee_id"`
	CredentialType string    `json:"credential_type"`
	// CredentialValue is set only for an unknown card, so that an admin
	// can enrol it. A PIN never leaves the device.
	CredentialValue string `json:"credential_value,omitempty"`
	Direction       string `json:"direction"`
	Decision        string `json:"decision"`
	Reason          string `json:"reason"`
	// Access is the door's decision, on every event of a known
	// credential: AccessGranted when contract, reader, group, window and
	// second factor let the person through (a door relay at the reader
	// pulses), whatever the attendance decision was.
	Access string   `json:"access,omitempty"`
	Flags  []string `json:"flags,omitempty"`
	// Count is how many reads this event stands for when it is more than
	// one: repeats of an unknown credential folded into it, the earliest
	// at FirstAt (a card left on a reader, an emulator cycling ids).
	Count   int       `json:"count,omitempty"`
	FirstAt time.Time `json:"first_at,omitzero"`
	// Score is the sensor's match score, on every fingerprint event
	// (0 for no match).
	Score *int `json:"score,omitempty"`
}

// Shift is a completed entry/exit pair, as stored and as published on the
// shifts topic. ID is assigned once and never changes.
type Shift struct {
	ID         string    `json:"id"`
	DeviceID   string    `json:"device_id"`
	EmployeeID string    `json:"employee_id"`
	PayrollNo  string    `json:"payroll_no"`
	Department string    `json:"department"`
	In         time.Time `json:"in"`
	Out        time.Time `json:"out"`
	InReader   string    `json:"in_reader"`
	OutReader  string    `json:"out_reader"`
	DurationS  int64     `json:"duration_s"`
	Flags      []string  `json:"flags"`
	InEvent    string    `json:"in_event"`
	OutEvent   string    `json:"out_event"`
}

// Open is an entry waiting for its exit.
type Open struct {
	EventID string    `json:"event_id"`
	At      time.Time `json:"at"`
	Reader  string    `json:"reader"`
	Flags   []string  `json:"flags,omitempty"`
}

// Input is everything a decision depends on.
type Input struct {
	Reader   string    // reader name
	Mode     string    // ModeToggle, ModeIn or ModeOut
	CredType string    // roster.Card, roster.PIN, ...
	CredVal  string    // canonical credential value
	At       time.Time // in the site's location
	// ClockSynced is false while the system clock is not known to be set.
	ClockSynced bool
	Employee    *roster.Employee // nil: credential unknown
	// Ambiguous: the read matches two employees' credentials (Employee
	// is nil).
	Ambiguous bool
	// LockedOut: PIN entry is locked at the reader; the PIN is denied
	// whoever it belongs to.
	LockedOut bool
	// Score is a fingerprint read's match score.
	Score int
	Open  *Open // the employee's open entry, nil if none
}

// Outcome is what the agent stores for one punch, in one transaction.
type Outcome struct {
	Event Event
	// NewOpen, when set, becomes the employee's open entry; its EventID is
	// filled in with the event's ID once assigned.
	NewOpen *Open
	// CloseOpen removes the employee's open entry.
	CloseOpen bool
	// Shift, when set, is the shift this punch completes (ID, DeviceID
	// and OutEvent are assigned when stored).
	Shift *Shift
}

// Decide applies the rules to one punch. It is pure.
func Decide(in Input) Outcome {
	at := in.At.Round(0).Truncate(time.Millisecond)
	ev := Event{
		At:             at,
		Reader:         in.Reader,
		CredentialType: in.CredType,
	}
	var flags []string
	if !in.ClockSynced {
		flags = append(flags, FlagClockUnsynced)
	}
	if in.CredType == roster.Fingerprint {
		score := in.Score
		ev.Score = &score
	}
	e := in.Employee
	switch {
	case in.LockedOut:
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
	if e.PayrollNo == "" {
		flags = append(flags, FlagNoPayrollNo)
	}
	ev.Flags = flags
	if !e.ValidOn(at) {
		ev.Decision, ev.Reason = Denied, ReasonOutsideContract
		return Outcome{Event: ev}
	}
	dir := in.Mode
	if dir == ModeToggle || dir == "" {
		dir = In
		if in.Open != nil {
			dir = Out
		}
	}
	ev.Direction = dir
	switch {
	case dir == In && in.Open != nil:
		ev.Decision, ev.Reason = Denied, ReasonDoubleIn
		return Outcome{Event: ev}
	case dir == Out && in.Open == nil:
		ev.Decision, ev.Reason = Denied, ReasonDoubleOut
		return Outcome{Event: ev}
	}
	ev.Decision = Accepted
	if dir == In {
		return Outcome{Event: ev, NewOpen: &Open{At: at, Reader: in.Reader, Flags: flags}}
	}
	o := in.Open
	sh := &Shift{
		EmployeeID: e.ID,
		PayrollNo:  e.PayrollNo,
		Department: e.Department,
		In:         o.At.In(at.Location()),
		Out:        at,
		InReader:   o.Reader,
		OutReader:  in.Reader,
		DurationS:  int64(at.Sub(o.At) / time.Second),
		Flags:      union(o.Flags, flags),
		InEvent:    o.EventID,
	}
	if sh.DurationS < 0 {
		// The clock went backwards between entry and exit (no RTC).
		sh.DurationS = 0
		sh.Flags = union(sh.Flags, []string{FlagClockUnsynced})
	}
	return Outcome{Event: ev, CloseOpen: true, Shift: sh}
}

// Folded is the event of unknown-credential reads that were folded rather
// than recorded one by one: count reads at a reader from first to last,
// all of value (a card's, else none is kept) or, rate limited, of values
// not kept. It is denied unknown_credential like each of them was.
func Folded(readerName, credType, value string, first, last time.Time, count int, rateLimited bool) Outcome {
	ev := Event{
		At:             last.Round(0).Truncate(time.Millisecond),
		Reader:         readerName,
		CredentialType: credType,
		Decision:       Denied,
		Reason:         ReasonUnknownCredential,
		Count:          count,
		FirstAt:        first.Round(0).Truncate(time.Millisecond),
	}
	if credType == roster.Card && !rateLimited {
		ev.CredentialValue = value
	}
	if credType == roster.Fingerprint {
		zero := 0 // every fingerprint event carries a score: no match
		ev.Score = &zero
	}
	if rateLimited {
		ev.Flags = []string{FlagRateLimited}
	}
	return Outcome{Event: ev}
}

// union returns the flags of a and b without repeats, never nil.
func union(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	seen := map[string]bool{}
	for _, l := range [][]string{a, b} {
		for _, f := range l {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	return out
}
