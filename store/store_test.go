package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
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
	return openWith(t, dir, Options{DeviceID: "door-1"})
}

func openWith(t *testing.T, dir string, opts Options) *DB {
	t.Helper()
	db, err := Open(dir, opts)
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
		return checkIndexes(tx)
	})
	if err != nil && !errors.Is(err, bolt.ErrDatabaseNotOpen) {
		t.Errorf("bbolt check: %v", err)
	}
}

// checkIndexes verifies what the store keeps twice: the meta counters
// against the state buckets, the due index against the unconfirmed
// records, the done index against the records in no state, and that every
// state names a record.
func checkIndexes(tx *bolt.Tx) error {
	keys := func(name []byte) map[string]bool {
		m := map[string]bool{}
		tx.Bucket(name).ForEach(func(k, _ []byte) error { m[string(k)] = true; return nil })
		return m
	}
	unsent, unconf, dead := keys(bUnsent), keys(bUnconf), keys(bDead)
	meta := tx.Bucket(bMeta)
	for _, c := range []struct {
		k []byte
		n int
	}{{kUnsent, len(unsent)}, {kUnconf, len(unconf)}, {kDead, len(dead)}, {kOpenCount, len(keys(bOpen))}} {
		if got := getU64(meta, c.k); got != uint64(c.n) {
			return fmt.Errorf("counter %s = %d, bucket holds %d", c.k, got, c.n)
		}
	}
	due := map[string]bool{}
	for k := range keys(bDue) {
		due[k[8:]] = true
	}
	doneIdx := map[string]bool{}
	for k := range keys(bDone) {
		doneIdx[k[8:]] = true
	}
	recs := keys(bRec)
	for k := range unconf {
		if !due[k] {
			return fmt.Errorf("unconfirmed record %x is not in the due index", k)
		}
	}
	for k := range due {
		if !unconf[k] {
			return fmt.Errorf("due index names %x, which is not unconfirmed", k)
		}
	}
	for k := range recs {
		isDone := !unsent[k] && !unconf[k] && !dead[k]
		if isDone != doneIdx[k] {
			return fmt.Errorf("record %x: done %v, in the done index %v", k, isDone, doneIdx[k])
		}
	}
	for _, m := range []map[string]bool{unsent, unconf, dead, doneIdx, keys(bUnsynced)} {
		for k := range m {
			if !recs[k] {
				return fmt.Errorf("a state names record %x, which is not stored", k)
			}
		}
	}
	return nil
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

// record decides and appends a punch of emp at the front reader, as the
// agent does: from the stored roster and open entries.
func record(t *testing.T, db *DB, emp string, at time.Time) punch.Outcome {
	t.Helper()
	return recordClock(t, db, emp, at, true)
}

func TestRosterReplace(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{DeviceID: "door-1"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := db.Roster(); r != nil || err != nil {
		t.Fatalf("roster of a new store = %v, %v", r, err)
	}
	r := loadRoster(t)
	if err := db.ReplaceRoster(r); err != nil {
		t.Fatal(err)
	}
	if err := db.ReplaceRoster(loadRoster(t)); !errors.Is(err, ErrRosterSame) {
		t.Fatalf("the same roster again: err = %v", err)
	}
	r2 := &roster.Roster{Version: 4, Employees: []roster.Employee{{ID: "E200", Credentials: []roster.Credential{{Type: "card", Value: "0B00000001"}}}}}
	if err := db.ReplaceRoster(r2); err != nil {
		t.Fatal(err)
	}
	st, _ := db.Status()
	if st.RosterVersion != 4 || st.RosterSize != 1 {
		t.Fatalf("status = %+v", st)
	}
	db.Close()
	db = open(t, dir)
	got, err := db.Roster()
	if err != nil || got.Version != 4 || len(got.Employees) != 1 || got.Employees[0].Credentials[0].Value != "0B00000001" {
		t.Fatalf("roster after reopen = %+v, %v", got, err)
	}
}

// states runs fn against a store whose records are still pending in the
// journal, and against one where they were applied to bbolt, since the
// store keeps delivery states in both places.
func states(t *testing.T, opts Options, fn func(t *testing.T, db *DB, apply func())) {
	for _, applied := range []bool{false, true} {
		name := "pending"
		if applied {
			name = "applied"
		}
		t.Run(name, func(t *testing.T) {
			opts := opts
			opts.DeviceID = "door-1"
			opts.ApplyDelay = time.Hour
			db := openWith(t, t.TempDir(), opts)
			if err := db.ReplaceRoster(loadRoster(t)); err != nil {
				t.Fatal(err)
			}
			apply := func() {
				if !applied {
					return
				}
				db.writeMu.Lock()
				defer db.writeMu.Unlock()
				if err := db.applyAll(); err != nil {
					t.Fatal(err)
				}
			}
			fn(t, db, apply)
		})
	}
}

func TestAppendAndOutbox(t *testing.T) {
	states(t, Options{}, func(t *testing.T, db *DB, apply func()) {
		t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
		in := record(t, db, "E100", t0)
		if in.NewOpen == nil || in.NewOpen.EventID != in.Event.ID || in.Event.ID != db.recordID('e', 1) {
			t.Fatalf("in = %+v", in)
		}
		out := record(t, db, "E100", t0.Add(8*time.Hour))
		if out.Shift == nil || out.Shift.ID != db.recordID('s', 3) || out.Shift.InEvent != in.Event.ID || out.Shift.OutEvent != out.Event.ID {
			t.Fatalf("out = %+v", out)
		}
		apply()
		st, _ := db.Status()
		if st.Pending != 3 || st.OpenEntries != 0 || st.Unconfirmed != 0 {
			t.Fatalf("status = %+v, want 3 pending, 0 open, 0 unconfirmed (broker mode)", st)
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
		if err := db.Sent([]uint64{rows[0].Seq, rows[1].Seq, rows[0].Seq}, now); err != nil {
			t.Fatal(err)
		}
		st, _ = db.Status()
		if st.Pending != 1 || !st.LastUplink.Equal(now) {
			t.Fatalf("after sent: %+v", st)
		}
		left, _ := db.Peek(0, 10)
		if len(left) != 1 || left[0].Kind != KindShift {
			t.Fatalf("left = %+v", left)
		}
		apply()
		if left, _ := db.Peek(0, 10); len(left) != 1 || left[0].Kind != KindShift {
			t.Fatalf("left after apply = %+v", left)
		}
	})
}

// With connector confirmation a PUBACK leaves a record unconfirmed; a
// connector's ok ends its road, its rejection makes a dead letter that a
// replay sends again, byte for byte.
func TestConnectorConfirmation(t *testing.T) {
	clock := time.Date(2026, 3, 2, 18, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	states(t, Options{Confirm: ConfirmConnector, Now: now}, func(t *testing.T, db *DB, apply func()) {
		t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
		in := record(t, db, "E100", t0)
		out := record(t, db, "E100", t0.Add(8*time.Hour))
		apply()
		st, _ := db.Status()
		if st.Pending != 3 || st.Unconfirmed != 3 || !st.OldestUnconfirmed.Equal(t0) {
			t.Fatalf("before sending: %+v", st)
		}
		rows, _ := db.Peek(0, 10)
		first := map[string][]byte{}
		for _, r := range rows {
			var v struct{ ID string }
			json.Unmarshal(r.Payload, &v)
			first[v.ID] = r.Payload
		}
		if err := db.Sent([]uint64{rows[0].Seq, rows[1].Seq, rows[2].Seq}, clock); err != nil {
			t.Fatal(err)
		}
		st, _ = db.Status()
		if st.Pending != 0 || st.Unconfirmed != 3 {
			t.Fatalf("after PUBACK: %+v, want 0 pending, 3 unconfirmed", st)
		}
		if rows, _ := db.Peek(0, 10); len(rows) != 0 {
			t.Fatalf("unconfirmed records published again at once: %d", len(rows))
		}
		unknown, err := db.Confirm([]Ack{
			{ID: in.Event.ID, OK: true},
			{ID: out.Shift.ID, OK: false, Error: "tamigo: 422 employee 100 has no contract on 2026-03-02"},
			{ID: "door-1-ffffffff-e1", OK: true},
			{ID: db.recordID('e', 99), OK: true},
			{ID: db.recordID('s', 1), OK: true}, // seq 1 is an event
		}, clock)
		if err != nil {
			t.Fatal(err)
		}
		if len(unknown) != 3 {
			t.Fatalf("unknown = %v, want the foreign, the future and the wrong-kind id", unknown)
		}
		st, _ = db.Status()
		if st.Unconfirmed != 1 || st.DeadLetters != 1 || !st.OldestUnconfirmed.Equal(out.Event.At) {
			t.Fatalf("after acks: %+v, want 1 unconfirmed (the exit event), 1 dead letter", st)
		}
		var dead []DeadLetter
		db.DeadLetters(time.Time{}, func(d DeadLetter) error { dead = append(dead, d); return nil })
		if len(dead) != 1 || dead[0].ID != out.Shift.ID || dead[0].Kind != "shift" || dead[0].Source != "connector" ||
			dead[0].Error != "tamigo: 422 employee 100 has no contract on 2026-03-02" || string(dead[0].Record) != string(first[out.Shift.ID]) {
			t.Fatalf("dead letters = %+v", dead)
		}
		var none int
		db.DeadLetters(clock.Add(time.Second), func(DeadLetter) error { none++; return nil })
		if none != 0 {
			t.Fatalf("%d dead letters since after the rejection", none)
		}
		apply()
		if _, err := db.Replay([]string{"nope"}, false); !errors.Is(err, ErrUnknownID) {
			t.Fatalf("replay of an unknown id: %v", err)
		}
		ids, err := db.Replay([]string{out.Shift.ID}, false)
		if err != nil || len(ids) != 1 {
			t.Fatalf("replay = %v, %v", ids, err)
		}
		st, _ = db.Status()
		if st.DeadLetters != 0 || st.Unconfirmed != 2 || st.Pending != 1 {
			t.Fatalf("after replay: %+v", st)
		}
		rows, _ = db.Peek(0, 10)
		if len(rows) != 1 || string(rows[0].Payload) != string(first[out.Shift.ID]) {
			t.Fatalf("replayed row = %+v, want the shift byte for byte", rows)
		}
		db.Sent([]uint64{rows[0].Seq}, clock)
		db.Confirm([]Ack{{ID: out.Shift.ID, OK: true}, {ID: out.Event.ID, OK: true}}, clock)
		st, _ = db.Status()
		if st.Unconfirmed != 0 || st.DeadLetters != 0 || st.Pending != 0 || !st.OldestUnconfirmed.IsZero() {
			t.Fatalf("after the last acks: %+v", st)
		}
	})
}

// A record the broker acknowledged but no connector confirmed is published
// again, unchanged, after ResendAfter.
func TestResendUnconfirmed(t *testing.T) {
	clock := time.Date(2026, 3, 2, 18, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	states(t, Options{Confirm: ConfirmConnector, ResendAfter: 15 * time.Minute, Now: now}, func(t *testing.T, db *DB, apply func()) {
		record(t, db, "E100", clock)
		apply()
		rows, _ := db.Peek(0, 10)
		if len(rows) != 1 {
			t.Fatalf("rows = %d", len(rows))
		}
		db.Sent([]uint64{rows[0].Seq}, clock)
		clock = clock.Add(14 * time.Minute)
		if again, _ := db.Peek(0, 10); len(again) != 0 {
			t.Fatalf("published again after 14 minutes")
		}
		clock = clock.Add(time.Minute)
		again, _ := db.Peek(0, 10)
		if len(again) != 1 || again[0].Seq != rows[0].Seq || string(again[0].Payload) != string(rows[0].Payload) {
			t.Fatalf("after 15 minutes: %+v", again)
		}
		db.Sent([]uint64{rows[0].Seq}, clock)
		if again, _ := db.Peek(0, 10); len(again) != 0 {
			t.Fatalf("resent record not marked sent again")
		}
		if st, _ := db.Status(); st.Unconfirmed != 1 || st.Pending != 0 {
			t.Fatalf("status = %+v", st)
		}
	})
}

func TestReject(t *testing.T) {
	states(t, Options{}, func(t *testing.T, db *DB, apply func()) {
		record(t, db, "E100", time.Now())
		record(t, db, "E101", time.Now())
		apply()
		rows, _ := db.Peek(0, 10)
		if err := db.Reject(rows[0].Seq, "payload of 300000 bytes exceeds max_payload 262144", time.Now()); err != nil {
			t.Fatal(err)
		}
		left, _ := db.Peek(0, 10)
		if len(left) != 1 || left[0].Seq != rows[1].Seq {
			t.Fatalf("rows behind a rejected one: %+v", left)
		}
		st, _ := db.Status()
		if st.DeadLetters != 1 || st.Pending != 1 {
			t.Fatalf("status = %+v", st)
		}
		var d []DeadLetter
		db.DeadLetters(time.Time{}, func(x DeadLetter) error { d = append(d, x); return nil })
		if len(d) != 1 || d[0].Source != "uplink" {
			t.Fatalf("dead = %+v", d)
		}
		if ids, err := db.Replay(nil, true); err != nil || len(ids) != 1 {
			t.Fatalf("replay all = %v, %v", ids, err)
		}
		if left, _ := db.Peek(0, 10); len(left) != 2 {
			t.Fatalf("after replay: %d rows", len(left))
		}
	})
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
	states(t, Options{}, func(t *testing.T, db *DB, apply func()) {
		d1 := time.Date(2026, 3, 2, 23, 30, 0, 0, time.UTC)
		record(t, db, "E100", d1)
		record(t, db, "E100", d1.Add(time.Hour)) // the next UTC day
		record(t, db, "E100", d1.Add(24*time.Hour))
		apply()
		count := func(from, to time.Time) (events, shifts int) {
			err := db.Log(from, to, func(e LogEntry) error {
				if e.Event != nil {
					events++
				}
				if e.Shift != nil {
					shifts++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return events, shifts
		}
		if e, s := count(d1.Add(30*time.Minute), d1.Add(2*time.Hour)); e != 1 || s != 1 {
			t.Fatalf("log = %d events, %d shifts", e, s)
		}
		if e, s := count(d1, d1.Add(25*time.Hour)); e != 3 || s != 1 {
			t.Fatalf("log over two days = %d events, %d shifts", e, s)
		}
		if e, s := count(time.Time{}, time.Time{}); e != 3 || s != 1 {
			t.Fatalf("whole log = %d events, %d shifts", e, s)
		}
		if e, s := count(d1.Add(48*time.Hour), d1.Add(72*time.Hour)); e != 0 || s != 0 {
			t.Fatalf("empty day = %d events, %d shifts", e, s)
		}
	})
}

// Delivered records past the retention horizon are pruned; unsent,
// unconfirmed and dead ones are kept whatever their age.
func TestPruneRetention(t *testing.T) {
	clock := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	db := openWith(t, t.TempDir(), Options{DeviceID: "door-1", Confirm: ConfirmConnector, Retention: 30 * 24 * time.Hour, Now: func() time.Time { return clock }})
	db.ReplaceRoster(loadRoster(t))
	old := clock.AddDate(0, -2, 0)
	var ids []string
	for i := range 8 {
		out := record(t, db, "E100", old.Add(time.Duration(i)*time.Hour))
		ids = append(ids, out.Event.ID)
	}
	recent := record(t, db, "E101", clock.Add(-time.Hour))
	db.writeMu.Lock()
	db.applyAll()
	db.writeMu.Unlock()
	rows, _ := db.Peek(0, 100)
	var seqs []uint64
	for _, r := range rows {
		seqs = append(seqs, r.Seq)
	}
	// rows: e1 e2 s3 e4 e5 s6 ... ; confirm all but: e1 (left unsent is
	// impossible after Sent, so keep e1 unconfirmed), e2 rejected.
	db.Sent(seqs[1:], clock)
	var acks []Ack
	for _, r := range rows[2:] {
		var v struct{ ID string }
		json.Unmarshal(r.Payload, &v)
		acks = append(acks, Ack{ID: v.ID, OK: true})
	}
	acks = append(acks, Ack{ID: ids[1], OK: false, Error: "nope"})
	db.Confirm(acks, clock)
	n, err := db.Prune(clock)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	db.Log(time.Time{}, time.Time{}, func(e LogEntry) error {
		if e.Event != nil {
			left = append(left, e.Event.ID)
		} else {
			left = append(left, e.Shift.ID)
		}
		return nil
	})
	want := []string{ids[0], ids[1], recent.Event.ID}
	if len(left) != len(want) || left[0] != want[0] || left[1] != want[1] || left[2] != want[2] {
		t.Fatalf("after pruning %d: log = %v, want %v (unsent, dead, recent)", n, left, want)
	}
	if n != len(rows)-3 {
		t.Fatalf("pruned %d, want %d", n, len(rows)-3)
	}
}

// An entry and its exit decided in one batch (a double badge within one
// group commit) pair with the entry's id.
func TestPairWithinOneAppend(t *testing.T) {
	db := open(t, t.TempDir())
	r := loadRoster(t)
	db.ReplaceRoster(r)
	e := &r.Employees[0]
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	in := punch.Decide(punch.Input{Reader: "front", Mode: punch.ModeToggle, CredType: "card", At: t0, ClockSynced: true, Employee: e})
	out := punch.Decide(punch.Input{Reader: "front", Mode: punch.ModeToggle, CredType: "card", At: t0.Add(time.Second), ClockSynced: true, Employee: e, Open: in.NewOpen})
	if err := db.Append([]*punch.Outcome{&in, &out}); err != nil {
		t.Fatal(err)
	}
	if out.Shift == nil || out.Shift.InEvent != in.Event.ID || in.Event.ID == "" {
		t.Fatalf("shift in_event = %q, entry id %q", out.Shift.InEvent, in.Event.ID)
	}
}

// Stored records are deflated with the database's dictionary and come
// back byte for byte, across a reopen and read-only.
func TestRecordsCompressedByteForByte(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{DeviceID: "door-1"})
	if err != nil {
		t.Fatal(err)
	}
	db.ReplaceRoster(loadRoster(t))
	record(t, db, "E100", time.Now())
	record(t, db, "E100", time.Now().Add(time.Hour))
	want := map[uint64]string{}
	rows, _ := db.Peek(0, 10)
	for _, r := range rows {
		want[r.Seq] = string(r.Payload)
	}
	db.Close()
	ro, err := Open(dir, Options{DeviceID: "other-name", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var raw, stored int
	ro.Bolt().View(func(tx *bolt.Tx) error {
		return tx.Bucket(bRec).ForEach(func(k, v []byte) error {
			r, _ := decodeRecord(0, v)
			if r.codec != codecDeflate {
				t.Errorf("record %x stored with codec %d", k, r.codec)
			}
			stored += len(r.body)
			return nil
		})
	})
	again, _ := ro.Peek(0, 10)
	for _, r := range again {
		raw += len(r.Payload)
		if want[r.Seq] != string(r.Payload) {
			t.Fatalf("record %d came back as %s, want %s", r.Seq, r.Payload, want[r.Seq])
		}
	}
	if len(again) != 3 || stored*2 > raw {
		t.Fatalf("%d records, %d bytes stored for %d of JSON", len(again), stored, raw)
	}
}

// At MaxDataBytes with nothing delivered, Append refuses with ErrFull;
// once records are delivered the oldest are pruned under pressure and
// the store takes punches again, by itself.
func TestMaxDataFullAndRecovery(t *testing.T) {
	const limit = 1 << 20
	db := openWith(t, t.TempDir(), Options{DeviceID: "door-1", NoSync: true, MaxDataBytes: limit, MaxUnapplied: 512, Retention: 365 * 24 * time.Hour})
	db.ReplaceRoster(loadRoster(t))
	r, _ := db.Roster()
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	var err error
	n := 0
	for ; n < 200000; n++ {
		e := &r.Employees[n%3]
		out := punch.Decide(punch.Input{Reader: "front", Mode: punch.ModeIn, CredType: "card", At: t0.Add(time.Duration(n) * time.Second), ClockSynced: true, Employee: e})
		if err = db.Append([]*punch.Outcome{&out}); err != nil && pendingLen(db) > 0 {
			// The applier lags behind appends without fsync: let it
			// catch up, then try again.
			waitApplied(t, db)
			err = db.Append([]*punch.Outcome{&out})
		}
		if err != nil {
			break
		}
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("after %d punches: err = %v, want ErrFull", n, err)
	}
	st, _ := db.Status()
	if !strings.HasPrefix(st.StorageWarning, "full") || st.DataBytes < limit*9/10 {
		t.Fatalf("status when full = %+v (err %v)", st, err)
	}
	// Nothing accepted was dropped to make room.
	if st.Pending != n {
		t.Fatalf("pending = %d, want all %d accepted", st.Pending, n)
	}
	var seqs []uint64
	for after := uint64(0); ; {
		rows, _ := db.Peek(after, 1000)
		if len(rows) == 0 {
			break
		}
		for _, r := range rows {
			seqs = append(seqs, r.Seq)
		}
		after = rows[len(rows)-1].Seq
	}
	if err := db.Sent(seqs, time.Now()); err != nil {
		t.Fatal(err)
	}
	st, _ = db.Status()
	if st.StorageWarning != "" && strings.HasPrefix(st.StorageWarning, "full") {
		db.bolt.View(func(tx *bolt.Tx) error {
			a, _ := os.Stat(db.dir + "/punchclock.wal.a")
			b, _ := os.Stat(db.dir + "/punchclock.wal.b")
			t.Logf("bolt %d free %d recs %d unsent %d wal %d %d", tx.Size(), db.bolt.Stats().FreeAlloc, tx.Bucket(bRec).Stats().KeyN, tx.Bucket(bUnsent).Stats().KeyN, a.Size(), b.Size())
			return nil
		})
		t.Fatalf("still full after delivery: %+v", st)
	}
	out := punch.Decide(punch.Input{Reader: "front", Mode: punch.ModeIn, CredType: "card", At: t0, ClockSynced: true, Employee: &r.Employees[0]})
	if err := db.Append([]*punch.Outcome{&out}); err != nil {
		t.Fatalf("after delivery: %v", err)
	}
}

// A large roster is written in chunks over several transactions and
// swapped in by the last; the old roster's chunks go, and a replacement
// that stopped half-way leaves the stored roster whole.
func TestLargeRosterChunked(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir)
	big := func(version int64, n int) *roster.Roster {
		r := &roster.Roster{Version: version}
		for i := range n {
			r.Employees = append(r.Employees, roster.Employee{ID: fmt.Sprintf("E%06d", i), Name: "Someone With A Long Name", PayrollNo: fmt.Sprint(i),
				Credentials: []roster.Credential{{Type: roster.Card, Value: fmt.Sprintf("0A%08X", i)}}})
		}
		return r
	}
	r1 := big(1, 20000)
	if err := db.ReplaceRoster(r1); err != nil {
		t.Fatal(err)
	}
	chunkKeys := func() int {
		n := 0
		db.Bolt().View(func(tx *bolt.Tx) error {
			return tx.Bucket(bRoster).ForEach(func(_, _ []byte) error { n++; return nil })
		})
		return n
	}
	first := chunkKeys()
	if first < 5 {
		t.Fatalf("a roster of 20000 is %d chunks", first)
	}
	// A replacement that wrote a chunk and stopped (a crash).
	db.Bolt().Update(func(tx *bolt.Tx) error {
		return putRosterChunks(tx.Bucket(bRoster), 99, []byte("garbage"), 0, 1)
	})
	got, err := db.Roster()
	if err != nil || got.Version != 1 || len(got.Employees) != 20000 {
		t.Fatalf("roster after a torn replacement = %v, %v", got != nil, err)
	}
	r2 := big(2, 10000)
	if err := db.ReplaceRoster(r2); err != nil {
		t.Fatal(err)
	}
	got, err = db.Roster()
	if err != nil || got.Version != 2 || len(got.Employees) != 10000 {
		t.Fatalf("roster after replace: %v", err)
	}
	if n := chunkKeys(); n >= first || n == 0 {
		t.Fatalf("%d chunk keys after replacing %d chunks by a smaller roster", n, first)
	}
}
