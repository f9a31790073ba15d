package store

import (
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/roster"
)

// open opens a store in a temp dir and checks its consistency when the
// test ends.
func open(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(dir, Options{DeviceID: "door-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		check(t, db)
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

func check(t *testing.T, db *DB) {
	t.Helper()
	err := db.Bolt().View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil && !errors.Is(err, bolt.ErrDatabaseNotOpen) {
		t.Errorf("bbolt check: %v", err)
	}
}

func loadRoster(t *testing.T) *roster.Roster {
	t.Helper()
	b, err := os.ReadFile("../roster/testdata/roster.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := roster.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRosterReplace(t *testing.T) {
	db := open(t, t.TempDir())
	r := loadRoster(t)
	if err := db.ReplaceRoster(r); err != nil {
		t.Fatal(err)
	}
	if err := db.ReplaceRoster(loadRoster(t)); !errors.Is(err, ErrRosterSame) {
		t.Fatalf("the same roster again: err = %v", err)
	}
	other := loadRoster(t)
	other.Employees = other.Employees[:1]
	if err := db.ReplaceRoster(other); !errors.Is(err, ErrRosterNotNewer) {
		t.Fatalf("another roster under the same version: err = %v", err)
	}
	older := loadRoster(t)
	older.Version = 2
	if err := db.ReplaceRoster(older); !errors.Is(err, ErrRosterNotNewer) {
		t.Fatalf("an older version: err = %v", err)
	}
	// Lookup by hex and by the decimal printed on the card.
	err := db.View(func(tx *Tx) error {
		for val, want := range map[string]string{"0A00123456": "E100", "0A00123457": "E101", "1F00ABCDEF": "E102", "0A00000000": ""} {
			e, err := tx.Employee(roster.Card, val)
			if err != nil {
				return err
			}
			got := ""
			if e != nil {
				got = e.ID
			}
			if got != want {
				t.Errorf("card %s -> %q, want %q", val, got, want)
			}
		}
		e, err := tx.Employee(roster.PIN, "4821")
		if err != nil || e == nil || e.ID != "E100" {
			t.Errorf("pin lookup = %v, %v", e, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A newer roster replaces the old one entirely.
	r2 := &roster.Roster{Version: 4, Employees: []roster.Employee{{ID: "E200", Credentials: []roster.Credential{{Type: "card", Value: "0B00000001"}}}}}
	if err := db.ReplaceRoster(r2); err != nil {
		t.Fatal(err)
	}
	st, _ := db.Status()
	if st.RosterVersion != 4 || st.RosterSize != 1 {
		t.Fatalf("status = %+v", st)
	}
	db.View(func(tx *Tx) error {
		if e, _ := tx.Employee(roster.Card, "0A00123456"); e != nil {
			t.Errorf("old card still known after replace")
		}
		return nil
	})
}

func record(t *testing.T, db *DB, emp string, at time.Time) punch.Outcome {
	t.Helper()
	var out punch.Outcome
	err := db.Update(func(tx *Tx) error {
		e, err := tx.EmployeeByID(emp)
		if err != nil {
			return err
		}
		o, err := tx.Open(emp)
		if err != nil {
			return err
		}
		out = punch.Decide(punch.Input{Reader: "front", Mode: punch.ModeToggle, CredType: "card", At: at, ClockSynced: true, Employee: e, Open: o})
		return tx.Record(&out)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRecordAndOutbox(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir)
	if err := db.ReplaceRoster(loadRoster(t)); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	in := record(t, db, "E100", t0)
	if in.NewOpen == nil || in.Event.ID == "" {
		t.Fatalf("in = %+v", in)
	}
	out := record(t, db, "E100", t0.Add(8*time.Hour))
	if out.Shift == nil || out.Shift.ID == "" || out.Shift.InEvent != in.Event.ID || out.Shift.OutEvent != out.Event.ID {
		t.Fatalf("out = %+v", out)
	}
	st, _ := db.Status()
	if st.Pending != 3 || st.OpenEntries != 0 {
		t.Fatalf("status = %+v, want 3 pending, 0 open", st)
	}
	rows, err := db.Peek(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	kinds := ""
	for _, r := range rows {
		kinds += string(r.Kind)
	}
	if kinds != "ees" {
		t.Fatalf("outbox kinds = %q, want ees", kinds)
	}
	var sh punch.Shift
	if err := json.Unmarshal(rows[2].Payload, &sh); err != nil || sh.ID != out.Shift.ID || sh.DurationS != 8*3600 {
		t.Fatalf("shift payload = %s (%v)", rows[2].Payload, err)
	}
	if more, _ := db.Peek(rows[0].Seq, 10); len(more) != 2 {
		t.Fatalf("peek after first = %d rows", len(more))
	}
	now := time.Now()
	if err := db.Remove([]uint64{rows[0].Seq, rows[1].Seq, rows[0].Seq}, now); err != nil {
		t.Fatal(err)
	}
	st, _ = db.Status()
	if st.Pending != 1 || !st.LastUplink.Equal(now) {
		t.Fatalf("after remove: %+v", st)
	}
	left, _ := db.Peek(0, 10)
	if len(left) != 1 || left[0].Kind != KindShift {
		t.Fatalf("left = %+v", left)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{DeviceID: "door-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.ReplaceRoster(loadRoster(t)); err != nil {
		t.Fatal(err)
	}
	first := record(t, db, "E101", time.Now())
	id := db.ID()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	db = open(t, dir)
	if db.ID() != id {
		t.Fatalf("db id changed: %s -> %s", id, db.ID())
	}
	st, _ := db.Status()
	if st.RosterVersion != 3 || st.Pending != 1 || st.OpenEntries != 1 {
		t.Fatalf("status after reopen = %+v", st)
	}
	second := record(t, db, "E101", time.Now())
	if second.Shift == nil || second.Shift.InEvent != first.Event.ID || second.Event.ID == first.Event.ID {
		t.Fatalf("pairing across restart: first %+v second %+v", first.Event, second)
	}
}

func TestReadOnlyWhileLocked(t *testing.T) {
	dir := t.TempDir()
	open(t, dir)
	_, err := Open(dir, Options{ReadOnly: true, Timeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
}

func TestLogFilter(t *testing.T) {
	db := open(t, t.TempDir())
	db.ReplaceRoster(loadRoster(t))
	d1 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	record(t, db, "E100", d1)
	record(t, db, "E100", d1.Add(time.Hour))
	record(t, db, "E100", d1.Add(24*time.Hour))
	var events, shifts int
	err := db.Log(d1.Add(30*time.Minute), d1.Add(2*time.Hour), func(e LogEntry) error {
		if e.Event != nil {
			events++
		}
		if e.Shift != nil {
			shifts++
		}
		return nil
	})
	if err != nil || events != 1 || shifts != 1 {
		t.Fatalf("log = %d events, %d shifts, %v", events, shifts, err)
	}
}
