package store

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func keptFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, FileName+".damaged-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A file bbolt cannot open is kept aside and a fresh database started,
// with an alarm in status: the terminal keeps working.
func TestGarbageDatabaseMovedAside(t *testing.T) {
	dir := t.TempDir()
	garbage := []byte(strings.Repeat("not a bbolt file ", 1000))
	if err := os.WriteFile(filepath.Join(dir, FileName), garbage, 0o640); err != nil {
		t.Fatal(err)
	}
	db := open(t, dir)
	st, _ := db.Status()
	if !strings.Contains(st.Alarm, "damaged") || !strings.Contains(st.Alarm, "0 records salvaged") {
		t.Fatalf("alarm = %q", st.Alarm)
	}
	kept := keptFiles(t, dir)
	if len(kept) != 1 {
		t.Fatalf("kept = %v", kept)
	}
	if b, _ := os.ReadFile(kept[0]); string(b) != string(garbage) {
		t.Fatal("the damaged file was not kept as it was")
	}
	db.ReplaceRoster(loadRoster(t))
	record(t, db, "E100", time.Now())
}

// A database whose pages are corrupt, found by the consistency check
// after an unclean stop, is moved aside; what can be read is salvaged
// with its ids, and records whose state is unknown are sent again.
func TestCorruptDatabaseSalvaged(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{DeviceID: "door-1"})
	if err != nil {
		t.Fatal(err)
	}
	db.ReplaceRoster(loadRoster(t))
	var ids []string
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	for i := range 200 {
		out := record(t, db, []string{"E100", "E101", "E102"}[i%3], t0.Add(time.Duration(i)*time.Minute))
		ids = append(ids, out.Event.ID)
	}
	db.writeMu.Lock()
	db.applyAll()
	db.writeMu.Unlock()
	rows, _ := db.Peek(0, 1000)
	var seqs []uint64
	for _, r := range rows[:100] {
		seqs = append(seqs, r.Seq)
	}
	db.Sent(seqs, time.Now())
	// An unclean stop, then one page of the unsent bucket destroyed.
	crash(t, db)
	path := filepath.Join(dir, FileName)
	page := findPage(t, path, bUnsent)
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	f.WriteAt(make([]byte, 4096), page*4096)
	f.Close()

	db = open(t, dir)
	st, _ := db.Status()
	if !strings.Contains(st.Alarm, "damaged") || len(keptFiles(t, dir)) != 1 {
		t.Fatalf("alarm = %q, kept %v", st.Alarm, keptFiles(t, dir))
	}
	var logged []string
	db.Log(time.Time{}, time.Time{}, func(e LogEntry) error {
		if e.Event != nil {
			logged = append(logged, e.Event.ID)
		}
		return nil
	})
	if len(logged) != len(ids) || logged[0] != ids[0] || logged[len(logged)-1] != ids[len(ids)-1] {
		t.Fatalf("salvaged %d events (%v…), want %d", len(logged), logged[:min(3, len(logged))], len(ids))
	}
	// Everything not known to be delivered goes out again: at least the
	// 100 records never sent.
	again, _ := db.Peek(0, 1000)
	if len(again) < len(rows)-100 {
		t.Fatalf("%d records to send after salvage, want at least %d", len(again), len(rows)-100)
	}
	next := record(t, db, "E100", t0.Add(24*time.Hour))
	if next.Event.ID == ids[len(ids)-1] {
		t.Fatal("a salvaged id was handed out again")
	}
}

// findPage returns the number of a leaf page of bucket name.
func findPage(t *testing.T, path string, name []byte) int64 {
	t.Helper()
	b, err := bolt.Open(path, 0o640, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var pg int64
	b.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(name)
		if bk.Root() == 0 {
			t.Fatalf("bucket %s is inline", name)
		}
		pg = int64(bk.Root())
		return nil
	})
	return pg
}

// A database of the first layout (events, shifts and outbox buckets) is
// converted: every record byte for byte with its old id, the queued ones
// unsent again, the roster and open entries kept, and connectors' acks by
// the old ids still land.
func TestFirstLayoutConverted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	b, err := bolt.Open(path, 0o640, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev1 := `{"id":"door-1-0badc0de-e1","device_id":"door-1","at":"2026-03-02T08:00:00+01:00","reader":"front","employee_id":"E100","credential_type":"card","direction":"in","decision":"accepted","reason":""}`
	ev2 := `{"id":"door-1-0badc0de-e2","device_id":"door-1","at":"2026-03-02T16:00:00+01:00","reader":"front","employee_id":"E100","credential_type":"card","direction":"out","decision":"accepted","reason":""}`
	sh1 := `{"id":"door-1-0badc0de-s1","device_id":"door-1","employee_id":"E100","payroll_no":"100","department":"K","in":"2026-03-02T08:00:00+01:00","out":"2026-03-02T16:00:00+01:00","in_reader":"front","out_reader":"front","duration_s":28800,"flags":[],"in_event":"door-1-0badc0de-e1","out_event":"door-1-0badc0de-e2"}`
	ev3 := `{"id":"door-1-0badc0de-e3","device_id":"door-1","at":"2026-03-03T08:00:00+01:00","reader":"front","employee_id":"E101","credential_type":"card","direction":"in","decision":"accepted","reason":""}`
	r := loadRoster(t)
	b.Update(func(tx *bolt.Tx) error {
		m, _ := tx.CreateBucket(bMeta)
		m.Put(kDBID, []byte("0badc0de"))
		m.Put(kRosterVersion, u64(uint64(r.Version)))
		emps, _ := tx.CreateBucket([]byte("employees"))
		for _, e := range r.Employees {
			v, _ := json.Marshal(e)
			emps.Put([]byte(e.ID), v)
		}
		evs, _ := tx.CreateBucket([]byte("events"))
		evs.Put(u64(1), []byte(ev1))
		evs.Put(u64(2), []byte(ev2))
		evs.Put(u64(3), []byte(ev3))
		shs, _ := tx.CreateBucket([]byte("shifts"))
		shs.Put(u64(1), []byte(sh1))
		ob, _ := tx.CreateBucket([]byte("outbox"))
		ob.Put(u64(3), append([]byte{KindShift}, u64(1)...)) // the shift and
		ob.Put(u64(4), append([]byte{KindEvent}, u64(3)...)) // the last event were queued
		open, _ := tx.CreateBucket(bOpen)
		open.Put([]byte("E101"), []byte(`{"event_id":"door-1-0badc0de-e3","at":"2026-03-03T08:00:00+01:00","reader":"front"}`))
		return nil
	})
	b.Close()

	db := open(t, dir)
	st, _ := db.Status()
	if !strings.Contains(st.Alarm, "earlier version") || st.Pending != 2 || st.OpenEntries != 1 || st.RosterVersion != r.Version || len(keptFiles(t, dir)) != 1 {
		t.Fatalf("status after conversion = %+v", st)
	}
	rows, _ := db.Peek(0, 10)
	got := map[string]bool{}
	for _, r := range rows {
		got[string(r.Payload)] = true
	}
	if len(rows) != 2 || !got[sh1] || !got[ev3] {
		t.Fatalf("queued after conversion: %d rows %v", len(rows), got)
	}
	var all []string
	db.Log(time.Time{}, time.Time{}, func(e LogEntry) error {
		if e.Event != nil {
			all = append(all, e.Event.ID)
		} else {
			all = append(all, e.Shift.ID)
		}
		return nil
	})
	if strings.Join(all, " ") != "door-1-0badc0de-e1 door-1-0badc0de-e2 door-1-0badc0de-s1 door-1-0badc0de-e3" {
		t.Fatalf("log = %v", all)
	}
	if unknown, err := db.Confirm([]Ack{{ID: "door-1-0badc0de-s1", OK: false, Error: "no contract"}}, time.Now()); err != nil || len(unknown) != 0 {
		t.Fatalf("ack by old id: %v, %v", unknown, err)
	}
	if st, _ := db.Status(); st.DeadLetters != 1 || st.Pending != 1 {
		t.Fatalf("after an ack by old id: %+v", st)
	}
	// The exit of E101 pairs with the converted open entry.
	out := record(t, db, "E101", time.Date(2026, 3, 3, 17, 0, 0, 0, time.UTC))
	if out.Shift == nil || out.Shift.InEvent != "door-1-0badc0de-e3" || strings.Contains(out.Event.ID, "0badc0de") {
		t.Fatalf("after conversion: %+v", out)
	}
}
