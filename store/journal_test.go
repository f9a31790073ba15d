package store

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/punchclock/punchclock/punch"
)

// crash drops the database as a power cut would after the last fdatasync:
// nothing pending is applied, nothing more is written.
func crash(t *testing.T, db *DB) {
	t.Helper()
	db.writeMu.Lock()
	db.closed = true
	close(db.quit)
	db.writeMu.Unlock()
	db.wg.Wait()
	if err := db.jnl.close(); err != nil {
		t.Fatal(err)
	}
	if err := db.bolt.Close(); err != nil {
		t.Fatal(err)
	}
}

func openSlow(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(dir, Options{DeviceID: "door-1", ApplyDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func eventCount(t *testing.T, db *DB) (events, shifts int) {
	t.Helper()
	err := db.Log(time.Time{}, time.Time{}, func(e LogEntry) error {
		if e.Event != nil {
			events++
		} else {
			shifts++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return events, shifts
}

func TestJournalRecoversAfterCrash(t *testing.T) {
	dir := t.TempDir()
	db := openSlow(t, dir)
	if err := db.ReplaceRoster(loadRoster(t)); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	in := record(t, db, "E100", t0)
	record(t, db, "E101", t0)
	record(t, db, "E101", t0.Add(time.Minute)) // a shift
	if n := pendingLen(db); n != 3 {
		t.Fatalf("%d pending, want 3 (apply delay is an hour)", n)
	}
	crash(t, db)

	// Read-only, the journal is read but not applied.
	ro, err := Open(dir, Options{ReadOnly: true, DeviceID: "door-1"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := ro.Status()
	if st.Pending != 4 || st.OpenEntries != 1 {
		t.Fatalf("read-only status after crash = %+v, want 4 pending, 1 open", st)
	}
	if e, s := eventCount(t, ro); e != 3 || s != 1 {
		t.Fatalf("read-only log: %d events, %d shifts", e, s)
	}
	if rows, _ := ro.Peek(0, 10); len(rows) != 4 {
		t.Fatalf("read-only peek: %d rows", len(rows))
	}
	if err := ro.Append([]*punch.Outcome{{}}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only update: %v", err)
	}
	ro.Close()

	db = open(t, dir)
	if n := pendingLen(db); n != 0 {
		t.Fatalf("%d still pending after recovery", n)
	}
	st, _ = db.Status()
	if st.Pending != 4 || st.OpenEntries != 1 {
		t.Fatalf("status after recovery = %+v", st)
	}
	// Anna's open entry survived: her next punch closes it, with new ids.
	out := record(t, db, "E100", t0.Add(time.Hour))
	if out.Shift == nil || out.Shift.InEvent != in.Event.ID || out.Event.ID == in.Event.ID {
		t.Fatalf("after recovery: %+v", out)
	}
	if e, s := eventCount(t, db); e != 4 || s != 2 {
		t.Fatalf("log after recovery: %d events, %d shifts", e, s)
	}
}

// After the journal starts over, records of its older generation are
// never applied again.
func TestJournalOldGenerationIgnored(t *testing.T) {
	dir := t.TempDir()
	db := openSlow(t, dir)
	db.ReplaceRoster(loadRoster(t))
	for i := range 5 {
		record(t, db, "E101", time.Now().Add(time.Duration(i)*time.Minute))
	}
	if err := db.Close(); err != nil { // applies and rewinds
		t.Fatal(err)
	}
	db = openSlow(t, dir)
	record(t, db, "E100", time.Now())
	crash(t, db)
	db = open(t, dir)
	if e, s := eventCount(t, db); e != 6 || s != 2 {
		t.Fatalf("%d events and %d shifts, want 6 and 2", e, s)
	}
}

func TestJournalTornTail(t *testing.T) {
	dir := t.TempDir()
	db := openSlow(t, dir)
	db.ReplaceRoster(loadRoster(t))
	record(t, db, "E100", time.Now())
	record(t, db, "E101", time.Now())
	j := db.jnl.files[db.jnl.cur]
	off, path := j.off, j.path
	crash(t, db)
	// A third record torn by the power cut: its header, half its body.
	rec := appendRecord(nil, recBatch, 3, []byte(`[{"emp":"E102","es":3,"eo":3,"ev":{}}]`))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(rec[:journalHeader+10], off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	db = open(t, dir)
	if e, _ := eventCount(t, db); e != 2 {
		t.Fatalf("%d events after a torn tail, want 2", e)
	}
	if len(db.journalDamage) != 1 || db.journalDamage[0].Kind != damageTorn {
		t.Fatalf("damage = %v, want one torn tail", db.journalDamage)
	}
	// The torn record's seq is not handed out again.
	record(t, db, "E102", time.Now())
	if db.journalSeq <= 3 {
		t.Fatalf("journal seq %d after a torn record of seq 3", db.journalSeq)
	}
}

func TestSentPendingRows(t *testing.T) {
	dir := t.TempDir()
	db := openSlow(t, dir)
	db.ReplaceRoster(loadRoster(t))
	record(t, db, "E100", time.Now())
	record(t, db, "E100", time.Now().Add(time.Minute))
	rows, err := db.Peek(0, 10)
	if err != nil || len(rows) != 3 {
		t.Fatalf("peek = %d rows, %v", len(rows), err)
	}
	if err := db.Sent([]uint64{rows[0].Seq, rows[2].Seq}, time.Now()); err != nil {
		t.Fatal(err)
	}
	st, _ := db.Status()
	if st.Pending != 1 || st.LastUplink.IsZero() {
		t.Fatalf("status = %+v", st)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open(t, dir)
	left, _ := db.Peek(0, 10)
	if len(left) != 1 || left[0].Seq != rows[1].Seq {
		t.Fatalf("outbox after apply = %+v, want only row %d", left, rows[1].Seq)
	}
	if st, _ := db.Status(); st.Pending != 1 || st.LastUplink.IsZero() {
		t.Fatalf("status after apply = %+v", st)
	}
}

func TestApplyWhenFull(t *testing.T) {
	db, err := Open(t.TempDir(), Options{DeviceID: "d", ApplyDelay: time.Hour, MaxPending: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.ReplaceRoster(loadRoster(t))
	for i := range 4 {
		record(t, db, "E101", time.Now().Add(time.Duration(i)*time.Minute))
	}
	waitApplied(t, db) // MaxPending, not the hour of ApplyDelay
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.jnl.dirty[0] || db.jnl.dirty[1] {
		t.Fatalf("journal still dirty after everything was applied: %v", db.jnl.dirty)
	}
}

func TestApplyAfterDelay(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{DeviceID: "d", ApplyDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	db.ReplaceRoster(loadRoster(t))
	record(t, db, "E101", time.Now())
	waitApplied(t, db)
	crash(t, db) // nothing pending: the crash loses nothing
	db = open(t, dir)
	if e, _ := eventCount(t, db); e != 1 {
		t.Fatalf("%d events", e)
	}
}

func TestAppendErrorKeepsNothing(t *testing.T) {
	db := open(t, t.TempDir())
	db.ReplaceRoster(loadRoster(t))
	bad := punch.Decide(punch.Input{Mode: punch.ModeToggle})
	bad.Event.At = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) // JSON cannot encode it
	if err := db.Append([]*punch.Outcome{&bad}); err == nil {
		t.Fatal("an event that cannot be encoded was accepted")
	}
	out := record(t, db, "E100", time.Now())
	if out.Event.ID != db.recordID('e', 1) {
		t.Fatalf("first kept event has id %s: the failed Append used a sequence", out.Event.ID)
	}
	if st, _ := db.Status(); st.Pending != 1 {
		t.Fatalf("pending = %d", st.Pending)
	}
}

func pendingLen(db *DB) int {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return len(db.pending)
}

func waitApplied(t *testing.T, db *DB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for pendingLen(db) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("pending punches never applied")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Punches keep being journaled while the applier commits; none is lost
// or applied twice, and the journal files take turns.
func TestApplyWhileRecording(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{DeviceID: "d", ApplyDelay: time.Millisecond, MaxPending: 8})
	if err != nil {
		t.Fatal(err)
	}
	db.ReplaceRoster(loadRoster(t))
	stop := make(chan struct{})
	var delivered int
	done := make(chan struct{})
	// An uplink acknowledging everything it sees, meanwhile.
	go func() {
		defer close(done)
		var after uint64
		for {
			select {
			case <-stop:
				return
			default:
			}
			rows, err := db.Peek(after, 16)
			if err != nil {
				t.Error(err)
				return
			}
			var seqs []uint64
			for _, r := range rows {
				if r.Seq <= after {
					t.Errorf("peek out of order: %d after %d", r.Seq, after)
					return
				}
				after = r.Seq
				seqs = append(seqs, r.Seq)
			}
			delivered += len(seqs)
			if err := db.Sent(seqs, time.Now()); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	const n = 400
	t0 := time.Now()
	for i := range n {
		record(t, db, "E101", t0.Add(time.Duration(i)*time.Minute))
	}
	waitApplied(t, db)
	// Let the uplink catch up with the last rows.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := db.Status()
		if st.Pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status = %+v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	<-done
	if delivered != n+n/2 {
		t.Errorf("delivered %d rows, want %d", delivered, n+n/2)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open(t, dir)
	if e, s := eventCount(t, db); e != n || s != n/2 {
		t.Fatalf("%d events and %d shifts after reopen, want %d and %d", e, s, n, n/2)
	}
	if rows, _ := db.Peek(0, 10); len(rows) != 0 {
		t.Fatalf("%d rows left in the outbox, first %d", len(rows), rows[0].Seq)
	}
}

// A crash while punches are spread over both journal files loses none.
func TestCrashAcrossBothJournals(t *testing.T) {
	dir := t.TempDir()
	db := openSlow(t, dir)
	db.ReplaceRoster(loadRoster(t))
	record(t, db, "E100", time.Now())
	// Simulate an applier that turned to the other file and then failed
	// to commit: both files hold unapplied records.
	db.writeMu.Lock()
	db.jnl.turn()
	db.writeMu.Unlock()
	record(t, db, "E101", time.Now())
	record(t, db, "E100", time.Now().Add(time.Minute))
	if !db.jnl.dirty[0] || !db.jnl.dirty[1] {
		t.Fatalf("dirty = %v", db.jnl.dirty)
	}
	crash(t, db)
	db = open(t, dir)
	if e, s := eventCount(t, db); e != 3 || s != 1 {
		t.Fatalf("%d events and %d shifts, want 3 and 1", e, s)
	}
}
