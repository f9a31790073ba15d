package roster

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAccept(t *testing.T) {
	march := time.Date(2026, 3, 1, 8, 15, 0, 0, time.UTC)
	marchµs := march.UnixMicro() // 1772352900000000
	yearOn := march.AddDate(1, 0, 0).UnixMicro()
	floorYearOn := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	for _, tc := range []struct {
		name    string
		stored  int64
		version int64
		reset   bool
		now     time.Time
		want    error  // nil: accepted
		msg     string // in the error
	}{
		{"first roster", 0, 1, false, march, nil, ""},
		{"counter", 3, 4, false, march, nil, ""},
		{"same version", 3, 3, false, march, ErrNotNewer, "offered 3, stored 3"},
		{"older", 5, 4, false, march, ErrNotNewer, "offered 4, stored 5"},
		{"YYYYMMDD", 3, 20260301, false, march, nil, ""},
		{"YYYYMMDDhhmmss", 20260301, 20260301081500, false, march, nil, ""},
		{"Unix seconds", 20260301, march.Unix(), false, march, nil, ""},
		{"seconds after YYYYMMDDhhmmss", 20260301081500, march.Unix(), false, march, ErrNotNewer, "offered 1772352900, stored 20260301081500"},
		{"Unix milliseconds", march.Unix(), march.UnixMilli(), false, march, nil, ""},
		{"Unix microseconds", march.UnixMilli(), marchµs, false, march, nil, ""},
		{"µs, HR clock ahead by a day", 0, marchµs + 86_400_000_000, false, march, nil, ""},
		{"exactly a year ahead", 0, yearOn, false, march, nil, ""},
		{"a year and a µs ahead", 0, yearOn + 1, false, march, ErrImplausibleVersion, "more than a year ahead"},
		{"the lock-out version", 0, 9_000_000_000_000_000, false, march, ErrImplausibleVersion, "9000000000000000"},
		{"highest JSON-safe", 0, MaxVersion, false, march, ErrImplausibleVersion, ""},
		{"Unix nanoseconds", 0, march.UnixNano(), false, march, ErrInvalid, "up to 2^53-1"},
		{"zero", 0, 0, false, march, ErrInvalid, "positive integer"},
		{"negative", 0, -5, false, march, ErrInvalid, "got -5"},
		// A Pi without RTC boots in 1970: judged as of 2026-01-01.
		{"unsynced clock, µs of 2026-06", 0, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).UnixMicro(), false, time.Unix(0, 0), nil, ""},
		{"unsynced clock, a year after the floor", 0, floorYearOn, false, time.Unix(0, 0), nil, ""},
		{"unsynced clock, µs of 2027-06", 0, time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC).UnixMicro(), false, time.Unix(0, 0), ErrImplausibleVersion, ""},
		{"zero time", 0, 20260301, false, time.Time{}, nil, ""},
		{"clock in 2030", 0, time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC).UnixMicro(), false, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), nil, ""},
		{"zone of now does not matter", 0, yearOn, false, march.In(time.FixedZone("UTC+14", 14*3600)), nil, ""},
		// Reset: the way out after a wrong version was stored.
		{"reset below a stored lock-out", 9_000_000_000_000_000, 20260301, true, march, nil, ""},
		{"no reset below a stored lock-out", 9_000_000_000_000_000, 20260301, false, march, ErrNotNewer, "offered 20260301, stored 9000000000000000"},
		{"reset to the same version", 7, 7, true, march, nil, ""},
		{"reset to a higher version", 7, 8, true, march, nil, ""},
		{"reset to an implausible version", 9_000_000_000_000_000, 9_000_000_000_000_001, true, march, ErrImplausibleVersion, ""},
		{"reset to zero", 7, 0, true, march, ErrInvalid, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Accept(tc.stored, &Roster{Version: tc.version, Reset: tc.reset}, tc.now)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Accept(%d, %d) = %v, want accepted", tc.stored, tc.version, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Accept(%d, %d) = %v, want %v", tc.stored, tc.version, err, tc.want)
			}
			for _, other := range []error{ErrInvalid, ErrNotNewer, ErrImplausibleVersion} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("error %v is also %v", err, other)
				}
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
	if err := Accept(0, nil, march); !errors.Is(err, ErrInvalid) {
		t.Errorf("Accept(nil) = %v", err)
	}
}

// The lock-out this rule exists for: one bad message no longer blocks
// the rosters after it, and a lock-out stored before the rule is undone
// by a reset.
func TestAcceptRecoversFromABadVersion(t *testing.T) {
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	offer := func(stored *int64, doc string) error {
		r, err := Parse([]byte(doc))
		if err == nil {
			err = Accept(*stored, r, now)
		}
		if err == nil {
			*stored = r.Version
		}
		return err
	}
	var stored int64
	steps := []struct {
		doc  string
		want error
	}{
		{`{"version": 4, "employees": [{"id": "a"}]}`, nil},
		{`{"version": 9000000000000000, "employees": [{"id": "a"}]}`, ErrImplausibleVersion},
		{`{"version": 9e15, "employees": [{"id": "a"}]}`, ErrInvalid},
		{`{"version": 5, "employees": [{"id": "a"}]}`, nil},
	}
	for i, s := range steps {
		if err := offer(&stored, s.doc); !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
			t.Fatalf("step %d: %v, want %v", i, err, s.want)
		}
	}
	if stored != 5 {
		t.Fatalf("stored %d, want 5", stored)
	}
	stored = 9_000_000_000_000_000 // taken by an agent before this rule
	if err := offer(&stored, `{"version": 6, "employees": [{"id": "a"}]}`); !errors.Is(err, ErrNotNewer) {
		t.Fatalf("after a stored lock-out: %v", err)
	}
	if err := offer(&stored, `{"version": 6, "reset": true, "employees": [{"id": "a"}]}`); err != nil {
		t.Fatalf("reset: %v", err)
	}
	if err := offer(&stored, `{"version": 7, "employees": [{"id": "a"}]}`); err != nil || stored != 7 {
		t.Fatalf("after the reset: %v, stored %d", err, stored)
	}
}
