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
	// FlagMissingOut marks a shift closed because its person arrived
	// again with the entry still open (double_in = "close_and_reopen"):
	// its out is its in, and it has no exit event. No time is made up.
	FlagMissingOut = "missing_out"
	// FlagMissingIn marks an accepted exit with no entry open
	// (double_out = "close_and_reopen"): it is kept and sent as an
	// event; no shift is made up.
	FlagMissingIn = "missing_in"
	// FlagAutoClosed marks a shift closed by max_shift: out is in +
	// max_shift, and it has no exit event.
	FlagAutoClosed = "auto_closed"
	// FlagAfterContract marks a shift whose exit came after the
	// employee's contract ended (the exit is accepted all the same).
	FlagAfterContract = "after_contract"
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
	Access string `json:"access,omitempty"`
	// JobCode is the job code typed after the badge, at a reader with
	// job_code = true ("" for none).
	JobCode string `json:"job_code,omitempty"`
	// RosterVersion is the version of the roster that decided it.
	RosterVersion int64    `json:"roster_version"`
	Flags         []string `json:"flags,omitempty"`
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
	// JobCode is the job code of the entry (or, if none was typed then,
	// of the exit).
	JobCode string `json:"job_code,omitempty"`
	// RosterVersion is the roster version in force at the exit (or at the
	// automatic close).
	RosterVersion int64 `json:"roster_version"`
}

// Open is an entry waiting for its exit.
type Open struct {
	EventID string    `json:"event_id"`
	At      time.Time `json:"at"`
	Reader  string    `json:"reader"`
	Flags   []string  `json:"flags,omitempty"`
	JobCode string    `json:"job_code,omitempty"`
	// Employee is the open entry's person (kept so that an entry of
	// someone the roster no longer knows can still be closed).
	Employee string `json:"emp,omitempty"`
	// PayrollNo and Department are the person's at the entry, used when
	// the roster no longer knows them at the close.
	PayrollNo  string `json:"payroll_no,omitempty"`
	Department string `json:"department,omitempty"`
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
