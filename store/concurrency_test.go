package store

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func metaPending(t *testing.T, db *DB) uint64 {
	t.Helper()
	var n uint64
	db.bolt.View(func(tx *bolt.Tx) error {
		n = getU64(tx.Bucket(bMeta), kPending)
		return nil
	})
	return n
}

// A crash after the commit to bbolt but before finish applies nothing
// twice, keeps the outbox count right and reuses no sequence.
func TestReviewCrashBetweenCommitAndFinish(t *testing.T) {
	dir := t.TempDir()
	db := openSlow(t, dir)
	db.ReplaceRoster(loadRoster(t))
	t0 := time.Now()
	record(t, db, "E100", t0)
	record(t, db, "E101", t0)
	record(t, db, "E101", t0.Add(time.Minute)) // a shift: 4 outbox rows
	db.writeMu.Lock()
	snap, seq := db.pending, db.journalSeq
	db.jnl.turn()
	db.writeMu.Unlock()
	db.applyMu.Lock()
	if _, err := db.commit(snap, seq); err != nil {
		t.Fatal(err)
	}
	db.applyMu.Unlock()
	record(t, db, "E100", t0.Add(time.Hour)) // journaled after the commit
	crash(t, db)

	db = open(t, dir)
	if e, s := eventCount(t, db); e != 4 || s != 2 {
		t.Fatalf("%d events, %d shifts; want 4 and 2", e, s)
	}
	if st, _ := db.Status(); st.Pending != 6 || st.OpenEntries != 0 {
		t.Fatalf("status = %+v, want 6 pending, 0 open", st)
	}
	if n := metaPending(t, db); n != 6 {
		t.Fatalf("outbox_pending = %d, want 6", n)
	}
	out := record(t, db, "E101", t0.Add(2*time.Hour))
	if out.Event.ID != db.recordID('e', 5) {
		t.Fatalf("next event id %s, want %s", out.Event.ID, db.recordID('e', 5))
	}
	rows, _ := db.Peek(0, 100)
	if len(rows) != 7 || rows[6].Seq != 7 {
		t.Fatalf("outbox = %d rows, last %d; want 7 rows up to seq 7", len(rows), rows[len(rows)-1].Seq)
	}
}

// Rows delivered while their punches are being committed (between
// commit and finish) end up deleted, and the pending count is exact.
func TestReviewRemoveBetweenCommitAndFinish(t *testing.T) {
	dir := t.TempDir()
	db := openSlow(t, dir)
	defer db.Close()
	db.ReplaceRoster(loadRoster(t))
	t0 := time.Now()
	record(t, db, "E101", t0)
	record(t, db, "E101", t0.Add(time.Minute))
	rows, _ := db.Peek(0, 10)
	if len(rows) != 3 {
		t.Fatalf("%d rows", len(rows))
	}
	db.writeMu.Lock()
	snap, seq := db.pending, db.journalSeq
	db.jnl.turn()
	db.writeMu.Unlock()

	db.applyMu.Lock()
	// Row 1 acked before the commit, rows 2 and 3 during it.
	if err := db.Remove([]uint64{rows[0].Seq}, time.Now()); err != nil {
		t.Fatal(err)
	}
	written, err := db.commit(snap, seq)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Remove([]uint64{rows[1].Seq, rows[2].Seq}, time.Now()); err != nil {
		t.Fatal(err)
	}
	db.writeMu.Lock()
	late := db.finish(len(snap), written)
	db.writeMu.Unlock()
	db.applyMu.Unlock()
	if len(late) != 2 {
		t.Fatalf("late = %v, want rows 2 and 3", late)
	}
	if err := db.Remove(late, time.Now()); err != nil {
		t.Fatal(err)
	}
	if left, _ := db.Peek(0, 10); len(left) != 0 {
		t.Fatalf("%d rows left", len(left))
	}
	if st, _ := db.Status(); st.Pending != 0 {
		t.Fatalf("pending = %d", st.Pending)
	}
	if n := metaPending(t, db); n != 0 {
		t.Fatalf("outbox_pending = %d", n)
	}
}

// Log must not hold applyMu while it calls fn: the control socket's fn
// writes to a client with a 5-minute deadline, a stalled client would hold
// the applier at applyMu.Lock, and a waiting writer holds off every new
// reader: the uplink's Peek would block too.
func TestReviewSlowLogReaderBlocksPeek(t *testing.T) {
	db := openSlow(t, t.TempDir())
	defer db.Close()
	db.ReplaceRoster(loadRoster(t))
	record(t, db, "E100", time.Now())

	inFn, release := make(chan struct{}), make(chan struct{})
	logDone := make(chan error, 1)
	go func() {
		first := true
		logDone <- db.Log(time.Time{}, time.Time{}, func(LogEntry) error {
			if first {
				first = false
				close(inFn)
				<-release
			}
			return nil
		})
	}()
	<-inFn
	applied := make(chan error, 1)
	go func() { _, err := db.applyStep(); applied <- err }()
	time.Sleep(50 * time.Millisecond) // the applier waits for applyMu
	peeked := make(chan error, 1)
	go func() { _, err := db.Peek(0, 10); peeked <- err }()
	select {
	case err := <-peeked:
		if err != nil {
			t.Error(err)
		}
		peeked <- nil // for the receive below
	case <-time.After(time.Second):
		t.Error("Peek blocked for 1s behind a slow Log reader and the applier")
	}
	close(release)
	if err := <-logDone; err != nil {
		t.Error(err)
	}
	if err := <-applied; err != nil {
		t.Error(err)
	}
	<-peeked
}

// Log must not keep a bbolt read transaction open while fn writes to a
// slow client: a bbolt commit that must grow the file (here the uplink's
// Remove) would wait for it to end, holding the mmap lock's writer slot,
// and every new read transaction would wait behind it: Update, the punch
// path, would stop.
func TestReviewSlowLogReaderBlocksPunches(t *testing.T) {
	db := openSlow(t, t.TempDir())
	defer db.Close()
	db.ReplaceRoster(loadRoster(t))
	record(t, db, "E100", time.Now())
	if _, err := db.applyStep(); err != nil {
		t.Fatal(err)
	}

	inFn, release := make(chan struct{}), make(chan struct{})
	logDone := make(chan error, 1)
	go func() {
		first := true
		logDone <- db.Log(time.Time{}, time.Time{}, func(LogEntry) error {
			if first {
				first = false
				close(inFn)
				<-release
			}
			return nil
		})
	}()
	<-inFn
	removed := make(chan error, 1)
	go func() { removed <- db.Remove([]uint64{1}, time.Now()) }()
	time.Sleep(50 * time.Millisecond)
	punched := make(chan struct{})
	go func() {
		defer close(punched)
		db.Update(func(tx *Tx) error { _, err := tx.Open("E101"); return err })
	}()
	select {
	case <-punched:
	case <-time.After(time.Second):
		t.Error("Update blocked for 1s behind a slow Log reader")
	}
	close(release)
	if err := <-logDone; err != nil {
		t.Error(err)
	}
	if err := <-removed; err != nil {
		t.Error(err)
	}
	<-punched
}

// The last uplink time never goes back: a delivery of pending rows at t1
// is committed after a delivery of applied rows at t2 > t1.
func TestLastUplinkNeverGoesBack(t *testing.T) {
	db := openSlow(t, t.TempDir())
	defer db.Close()
	db.ReplaceRoster(loadRoster(t))
	record(t, db, "E100", time.Now())
	if _, err := db.applyStep(); err != nil {
		t.Fatal(err)
	}
	record(t, db, "E101", time.Now())
	rows, _ := db.Peek(0, 10)
	if len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	t1 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Hour)
	if err := db.Remove([]uint64{rows[1].Seq}, t1); err != nil { // pending row
		t.Fatal(err)
	}
	if err := db.Remove([]uint64{rows[0].Seq}, t2); err != nil { // applied row
		t.Fatal(err)
	}
	if _, err := db.applyStep(); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.Status(); !st.LastUplink.Equal(t2) {
		t.Fatalf("last uplink = %v, want %v", st.LastUplink, t2)
	}
}
