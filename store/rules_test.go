package store

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/punchclock/punchclock/punch"
)

// A shift closed by max_shift is stored without an event: it has an id,
// no exit event, is sent, closes the open entry, and survives a restart
// (journal replay, then bbolt).
func TestAutoClosedShiftWithoutEvent(t *testing.T) {
	states(t, Options{}, func(t *testing.T, db *DB, apply func()) {
		t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
		in := record(t, db, "E100", t0)
		open, err := db.OpenEntries()
		if err != nil || open["E100"] == nil {
			t.Fatalf("open entries %v, %v", open, err)
		}
		out := punch.AutoClose(open["E100"], nil, punch.Policy{MaxShift: 16 * time.Hour}, 4, time.UTC)
		if err := db.Append([]*punch.Outcome{&out}); err != nil {
			t.Fatal(err)
		}
		sh := out.Shift
		if sh.ID != db.recordID('s', 2) || sh.InEvent != in.Event.ID || sh.OutEvent != "" || out.Event.ID != "" {
			t.Fatalf("auto-closed shift %+v (event id %q)", sh, out.Event.ID)
		}
		apply()
		if open, _ := db.OpenEntries(); open["E100"] != nil {
			t.Fatalf("entry still open: %+v", open["E100"])
		}
		rows, err := db.Peek(0, 10)
		if err != nil || len(rows) != 2 || rows[1].Kind != KindShift {
			t.Fatalf("outbox %+v, %v", rows, err)
		}
		var got punch.Shift
		if err := json.Unmarshal(rows[1].Payload, &got); err != nil || got.ID != sh.ID || got.OutEvent != "" ||
			!slices.Contains(got.Flags, punch.FlagAutoClosed) || got.DurationS != 16*3600 || got.RosterVersion != 4 {
			t.Fatalf("published shift %s (%v)", rows[1].Payload, err)
		}
		// The next punch opens a new entry and takes the next id.
		next := record(t, db, "E100", t0.Add(24*time.Hour))
		if next.NewOpen == nil || next.Event.ID != db.recordID('e', 3) {
			t.Fatalf("next punch %+v", next)
		}
	})
}

func TestReaderStatesKept(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{DeviceID: "door-1"})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := db.ReaderStates(); err != nil || len(st) != 0 {
		t.Fatalf("fresh: %v, %v", st, err)
	}
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	if _, err := db.SetReaderState("gate", false, "new_readers", t0); err != nil {
		t.Fatal(err)
	}
	st, err := db.SetReaderState("gate", true, "command", t0.Add(time.Hour))
	if err != nil || !st.Enabled || st.By != "command" || !st.FirstRun.Equal(t0) {
		t.Fatalf("after enable: %+v, %v", st, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open(t, dir)
	all, err := db.ReaderStates()
	if err != nil || len(all) != 1 || !all["gate"].Enabled || !all["gate"].At.Equal(t0.Add(time.Hour)) || !all["gate"].FirstRun.Equal(t0) {
		t.Fatalf("after reopen: %+v, %v", all, err)
	}
}
