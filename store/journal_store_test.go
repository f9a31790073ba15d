package store

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/punch"
)

// A record that fails its CRC among synced ones is corruption: the store
// opens all the same, keeps the records after it and reports it.
func TestJournalCorruptMiddleStore(t *testing.T) {
	dir := t.TempDir()
	db := openSlow(t, dir)
	db.ReplaceRoster(loadRoster(t))
	t0 := time.Now()
	record(t, db, "E100", t0)
	j := db.jnl.files[db.jnl.cur]
	off, path := j.off, j.path
	record(t, db, "E101", t0)
	record(t, db, "E102", t0)
	crash(t, db)
	flipBit(t, path, off+journalHeader+5)
	db = open(t, dir)
	if e, _ := eventCount(t, db); e != 2 {
		t.Fatalf("%d events, want the 2 around the damaged one", e)
	}
	if len(db.journalDamage) != 1 || db.journalDamage[0].Kind != damageCorrupt || db.journalDamage[0].Offset != off {
		t.Fatalf("damage = %v, want corruption at %d", db.journalDamage, off)
	}
	if st, _ := db.Status(); !strings.Contains(st.Alarm, "journal damaged") {
		t.Fatalf("status alarm = %q", st.Alarm)
	}
	// No id the lost record may have held is handed out again.
	next := record(t, db, "E100", t0)
	if next.Event.ID == db.recordID(KindEvent, 2) || next.Event.ID == db.recordID(KindEvent, 4) {
		t.Fatalf("an id of the damaged record was handed out again: %s", next.Event.ID)
	}
}

// A punch whose fdatasync failed was shown as an error: it does not
// come back after a restart, although its bytes reached the file.
func TestJournalFailedSyncStore(t *testing.T) {
	dir := t.TempDir()
	db := openSlow(t, dir)
	db.ReplaceRoster(loadRoster(t))
	record(t, db, "E100", time.Now())
	j := db.jnl.files[db.jnl.cur]
	boom := errors.New("injected EIO")
	// The record is written; its fdatasync fails, and so does the
	// tombstone over its header.
	j.io = &scriptIO{real: j.io, calls: []error{nil, boom, boom}}
	r, _ := db.Roster()
	out := punch.Decide(punch.Input{Mode: punch.ModeToggle, CredType: "card", At: time.Now(), Employee: &r.Employees[1]})
	err := db.Append([]*punch.Outcome{&out})
	if !errors.Is(err, boom) {
		t.Fatalf("update = %v, want the sync failure", err)
	}
	record(t, db, "E102", time.Now()) // writes the void record first
	crash(t, db)
	db = open(t, dir)
	if e, _ := eventCount(t, db); e != 2 {
		t.Fatalf("%d events, want 2: the failed punch came back", e)
	}
	if len(db.journalDamage) != 0 {
		t.Fatalf("damage = %v", db.journalDamage)
	}
}

func flipBit(t *testing.T, path string, off int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[off] ^= 0x10
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
}
