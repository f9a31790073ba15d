package roster

import (
	"errors"
	"fmt"
	"time"
)

// Errors of Accept.
var (
	// ErrNotNewer: the roster's version is not higher than the stored
	// one, and the roster does not say "reset": true.
	ErrNotNewer = errors.New("roster: version is not newer than the stored one")
	// ErrImplausibleVersion: the version is further ahead than any
	// versioning scheme a connector might use could be by now.
	ErrImplausibleVersion = errors.New("roster: implausible version")
)

// versionClockFloor is the earliest "now" Accept judges by: a Pi without
// a real-time clock boots in 1970 and must still take rosters.
var versionClockFloor = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Accept decides whether r may replace a stored roster of version stored
// (0 when there is none), at wall time now. Whether r is the stored
// roster offered again (the retained MQTT message arrives on every
// connect) is for the store to tell by its content; Accept only judges
// the version:
//
//   - The version is an integer from 1 to 2^53-1, so that every JSON
//     implementation carries it exactly (Parse rejects the rest, and
//     numbers written with a fraction or an exponent).
//   - It is at most one year ahead of now in microseconds since 1970,
//     with now taken as 2026-01-01 if the clock says earlier; otherwise
//     ErrImplausibleVersion. That leaves room for every usual scheme —
//     a counter, YYYYMMDD, YYYYMMDDhhmmss, Unix seconds, milliseconds
//     or microseconds — and keeps out a version so far ahead that no
//     later roster could ever be newer: before this rule one bad
//     message claiming 9000000000000000 locked out every later roster.
//   - It is higher than stored; otherwise ErrNotNewer, with both
//     numbers. A roster with "reset": true is accepted whatever stored
//     is: the HR connector's way out after a wrong version was taken.
//     A reset roster's own version must still be plausible, or the
//     reset would lock the next rosters out again.
func Accept(stored int64, r *Roster, now time.Time) error {
	if r == nil {
		return fmt.Errorf("%w: no roster", ErrInvalid)
	}
	if r.Version < 1 || r.Version > MaxVersion {
		return fmt.Errorf("%w: version must be a positive integer up to 2^53-1 (%d), got %d", ErrInvalid, int64(MaxVersion), r.Version)
	}
	if now.Before(versionClockFloor) {
		now = versionClockFloor
	}
	if limit := now.UTC().AddDate(1, 0, 0).UnixMicro(); r.Version > limit {
		return fmt.Errorf("%w: %d is more than a year ahead of the time in microseconds since 1970 (at most %d now)",
			ErrImplausibleVersion, r.Version, limit)
	}
	if !r.Reset && r.Version <= stored {
		return fmt.Errorf("%w: offered %d, stored %d", ErrNotNewer, r.Version, stored)
	}
	return nil
}
