package store

// Regression tests for defects an independent review of the store found
// (each failed before its fix).

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/testdisk"
	bolt "go.etcd.io/bbolt"
)

// Found by review: a salvage whose copy of the rec bucket panics loses rec's sequence:
// new punches take ids that were already handed out.
func TestSalvageKeepsSequence(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{DeviceID: "door-1"})
	if err != nil {
		t.Fatal(err)
	}
	db.ReplaceRoster(loadRoster(t))
	ids := map[string]bool{}
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	for i := range 300 {
		out := record(t, db, []string{"E100", "E101"}[i%2], t0.Add(time.Duration(i)*time.Minute))
		ids[out.Event.ID] = true
	}
	db.writeMu.Lock()
	db.applyAll()
	db.writeMu.Unlock()
	crash(t, db)
	path := filepath.Join(dir, FileName)
	page := findPage(t, path, bRec)
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	f.WriteAt(make([]byte, 4096), page*4096)
	f.Close()

	db = openWith(t, dir, Options{DeviceID: "door-1"})
	st, _ := db.Status()
	t.Logf("alarm: %s", st.Alarm)
	next := record(t, db, "E100", t0.Add(24*time.Hour))
	if ids[next.Event.ID] {
		t.Fatalf("id %s handed out again after salvage", next.Event.ID)
	}
}

// Found by review: one record with a future time stops retention pruning of every
// record after it.
func TestPruneNotHeldByFutureRecord(t *testing.T) {
	clock := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	db := openWith(t, t.TempDir(), Options{DeviceID: "door-1", Now: func() time.Time { return clock }})
	db.ReplaceRoster(loadRoster(t))
	old := clock.AddDate(0, -2, 0)
	record(t, db, "E100", old)                  // in
	record(t, db, "E101", old.AddDate(5, 0, 0)) // clock glitch
	for i := 1; i <= 20; i++ {
		record(t, db, "E100", old.Add(time.Duration(i)*time.Hour))
	}
	db.writeMu.Lock()
	db.applyAll()
	db.writeMu.Unlock()
	rows, _ := db.Peek(0, 1000)
	var seqs []uint64
	for _, r := range rows {
		seqs = append(seqs, r.Seq)
	}
	db.Sent(seqs, clock)
	n, err := db.Prune(clock)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(rows)-1 {
		t.Fatalf("pruned %d of %d delivered records, all but the future one are past retention", n, len(rows))
	}
}

// Found by review: after a restart whose apply failed, pending records have seqs at or
// below appliedSeq (rec's sequence), so Sent and Confirm for them go to
// bbolt and are lost.
func TestSentAfterRestartWithFailedApply(t *testing.T) {
	mnt := testdisk.Mount(t, 8)
	dir := filepath.Join(mnt, "data")
	db, err := Open(dir, Options{DeviceID: "door-1", ApplyDelay: time.Hour, MaxPending: 1 << 20, MaxUnapplied: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	db.ReplaceRoster(loadRoster(t))
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	record(t, db, "E100", t0) // A
	snapSeq := db.journalSeq
	for i := range 3000 { // B..: journaled while A is being committed
		record(t, db, []string{"E101", "E100"}[i%2], t0.Add(time.Duration(i+1)*time.Minute))
	}
	// The applier's commit of the snapshot [A], as applyStep runs it.
	db.applyMu.Lock()
	db.mu.RLock()
	snap := db.pending[:1]
	db.mu.RUnlock()
	if err := db.commit(snap, snapSeq); err != nil {
		t.Fatal(err)
	}
	db.applyMu.Unlock()
	crash(t, db)
	filler := filepath.Join(mnt, "filler")
	testdisk.Fill(t, filler)

	db, err = Open(dir, Options{DeviceID: "door-1", ApplyDelay: time.Hour, MaxPending: 1 << 20, MaxUnapplied: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.mu.RLock()
	t.Logf("applyErr=%v appliedSeq=%d pending=%d first pending seq=%d", db.applyErr, db.appliedSeq, len(db.pending), db.pending[0].EventSeq)
	db.mu.RUnlock()
	db.mu.RLock()
	firstPending := db.pending[0].EventSeq
	db.mu.RUnlock()
	rows, _ := db.Peek(firstPending-1, 10)
	var seqs []uint64
	for _, r := range rows {
		seqs = append(seqs, r.Seq)
	}
	st0, _ := db.Status()
	if err := db.Sent(seqs, time.Now()); err != nil {
		t.Fatal(err)
	}
	st1, _ := db.Status()
	t.Logf("pending before Sent %d, after Sent of %d rows %d", st0.Pending, len(seqs), st1.Pending)
	os.Remove(filler)
	db.writeMu.Lock()
	err = db.applyAll()
	db.writeMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := db.Peek(firstPending-1, 10)
	if len(again) > 0 && again[0].Seq == seqs[0] {
		t.Fatalf("record %d acknowledged by the broker is unsent again after apply (Sent was dropped)", seqs[0])
	}
}

// Found by review: Prune drops the day index entries of days before the horizon even
// when records of those days are kept (unsent): Log over that day then
// misses them.
func TestPruneKeepsDayOfKeptRecord(t *testing.T) {
	clock := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	db := openWith(t, t.TempDir(), Options{DeviceID: "door-1", Now: func() time.Time { return clock }})
	db.ReplaceRoster(loadRoster(t))
	old := clock.AddDate(0, -2, 0)
	out := record(t, db, "E100", old) // never sent: kept
	db.writeMu.Lock()
	db.applyAll()
	db.writeMu.Unlock()
	if _, err := db.Prune(clock); err != nil {
		t.Fatal(err)
	}
	day := old.Truncate(24 * time.Hour)
	var got []string
	db.Log(day, day.Add(24*time.Hour), func(e LogEntry) error { got = append(got, e.Event.ID); return nil })
	var all []string
	db.Log(time.Time{}, time.Time{}, func(e LogEntry) error { all = append(all, e.Event.ID); return nil })
	if len(got) != 1 {
		t.Fatalf("log of %s = %v; unbounded log = %v; the unsent record %s is kept", day.Format(time.DateOnly), got, all, out.Event.ID)
	}
}

// Prune looks up the records only for the days whose range it deleted
// from: those emptied go, a day whose record is kept stays, and a prune
// that deletes nothing leaves the index alone.
func TestPruneDropsOnlyEmptiedDays(t *testing.T) {
	clock := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	db := openWith(t, t.TempDir(), Options{DeviceID: "door-1", Retention: 30 * 24 * time.Hour, Now: func() time.Time { return clock }})
	db.ReplaceRoster(loadRoster(t))
	dayA, dayB, dayC := clock.AddDate(0, -3, 0), clock.AddDate(0, -2, 0), clock.AddDate(0, -1, -5)
	record(t, db, "E100", dayA)
	record(t, db, "E100", dayA.Add(time.Hour))
	kept := record(t, db, "E101", dayB) // left unsent: kept with its day
	record(t, db, "E100", dayB.Add(time.Hour))
	record(t, db, "E100", dayC)
	db.writeMu.Lock()
	db.applyAll()
	db.writeMu.Unlock()
	rows, _ := db.Peek(0, 100)
	var sent []uint64
	for _, r := range rows {
		var v struct{ ID string }
		json.Unmarshal(r.Payload, &v)
		if v.ID != kept.Event.ID {
			sent = append(sent, r.Seq)
		}
	}
	if err := db.Sent(sent, clock); err != nil {
		t.Fatal(err)
	}
	days := func() []string {
		var ks []string
		db.bolt.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bDay).ForEach(func(k, _ []byte) error { ks = append(ks, string(k)); return nil })
		})
		return ks
	}
	wantDays := []string{dayB.Format(time.DateOnly)}
	for _, step := range []struct {
		name  string
		prune int
	}{{"first prune", len(sent)}, {"nothing left to prune", 0}} {
		n, err := db.Prune(clock)
		if err != nil || n != step.prune {
			t.Fatalf("%s: pruned %d, %v; want %d", step.name, n, err, step.prune)
		}
		if got := days(); !slices.Equal(got, wantDays) {
			t.Fatalf("%s: day index %v, want %v", step.name, got, wantDays)
		}
	}
}
