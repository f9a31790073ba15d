package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/clock"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/roster"
)

// boot is when the test device booted, in 1970 without an RTC; synced
// is the real time of that moment, learnt when NTP set the clock.
var (
	boot   = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	synced = time.Date(2026, 3, 2, 7, 0, 0, 0, time.UTC)
)

// recordClock decides and appends a punch of emp at the front reader, at
// at on the system clock: synced, or taken before NTP set it (stamped
// with the boot's monotonic time).
func recordClock(t *testing.T, db *DB, emp string, at time.Time, isSynced bool) punch.Outcome {
	t.Helper()
	r, err := db.Roster()
	if err != nil || r == nil {
		t.Fatalf("roster: %v, %v", r, err)
	}
	var e *roster.Employee
	for i := range r.Employees {
		if r.Employees[i].ID == emp {
			e = &r.Employees[i]
		}
	}
	open, err := db.OpenEntries()
	if err != nil {
		t.Fatal(err)
	}
	in := punch.Input{Reader: "front", Mode: punch.ModeToggle, CredType: "card", At: at, ClockSynced: isSynced, Employee: e, Open: open[emp]}
	if !isSynced {
		in.Stamp = clock.Stamp{Wall: at, Mono: at.Sub(boot), Boot: "b1"}
		in.TimeUnknown = true
	}
	out := punch.Decide(in)
	if out.Unsynced == isSynced {
		t.Fatalf("outcome unsynced = %v on a clock synced %v", out.Unsynced, isSynced)
	}
	if err := db.Append([]*punch.Outcome{&out}); err != nil {
		t.Fatal(err)
	}
	return out
}

// corrected is what the agent publishes for a record once re-dated: its
// time moved by the boot's offset, flagged clock_corrected, the same id.
func corrected(t *testing.T, kind byte, payload []byte) ([]byte, time.Time) {
	t.Helper()
	shift := synced.Sub(boot)
	var out []byte
	var at time.Time
	var err error
	if kind == KindShift {
		var sh punch.Shift
		if err := json.Unmarshal(payload, &sh); err != nil {
			t.Fatal(err)
		}
		sh.In, sh.Out = sh.In.Add(shift), sh.Out.Add(shift)
		sh.Flags = append(sh.Flags, punch.FlagClockCorrected)
		at = sh.Out
		out, err = json.Marshal(sh)
	} else {
		var ev punch.Event
		if err := json.Unmarshal(payload, &ev); err != nil {
			t.Fatal(err)
		}
		ev.At = ev.At.Add(shift)
		ev.Flags = append(ev.Flags, punch.FlagClockCorrected)
		at = ev.At
		out, err = json.Marshal(ev)
	}
	if err != nil {
		t.Fatal(err)
	}
	return out, at
}

func unsyncedOf(t *testing.T, db *DB) []Record {
	t.Helper()
	var rs []Record
	if err := db.Unsynced(func(r Record) error { rs = append(rs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return rs
}

func peekAll(t *testing.T, db *DB) []OutboxRow {
	t.Helper()
	rows, err := db.Peek(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func applyNow(t *testing.T, db *DB) {
	t.Helper()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if err := db.applyAll(); err != nil {
		t.Fatal(err)
	}
}

// logOf returns the ids and times the log has in [from, from+24h).
func logOf(t *testing.T, db *DB, from time.Time) map[string]time.Time {
	t.Helper()
	got := map[string]time.Time{}
	err := db.Log(from, from.Add(24*time.Hour), func(e LogEntry) error {
		if e.Event != nil {
			got[e.Event.ID] = e.Event.At
		} else {
			got[e.Shift.ID] = e.Shift.Out
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A record published before the clock synced is published again once
// amended: the same seq and id, the corrected payload, once more; a
// record that was only PUBACKed (unconfirmed, with connector
// confirmation) is due again at once, as one never sent. The log files it
// at its corrected time.
func TestAmendPublishesAgain(t *testing.T) {
	for _, mode := range []string{ConfirmBroker, ConfirmConnector} {
		t.Run(mode, func(t *testing.T) {
			now := synced.Add(2 * time.Hour)
			states(t, Options{Confirm: mode, Now: func() time.Time { return now }}, func(t *testing.T, db *DB, apply func()) {
				a := recordClock(t, db, "E100", boot.Add(10*time.Minute), false)
				b := recordClock(t, db, "E101", boot.Add(11*time.Minute), false)
				apply()
				rows := peekAll(t, db)
				if len(rows) != 2 {
					t.Fatalf("outbox %d rows, want 2", len(rows))
				}
				// Both delivered to the broker; a's confirmed by a
				// connector too, b's not yet.
				if err := db.Sent([]uint64{rows[0].Seq, rows[1].Seq}, now); err != nil {
					t.Fatal(err)
				}
				if mode == ConfirmConnector {
					if _, err := db.Confirm([]Ack{{ID: a.Event.ID, OK: true}}, now); err != nil {
						t.Fatal(err)
					}
				}
				if got := peekAll(t, db); len(got) != 0 {
					t.Fatalf("%d rows due before the amendment", len(got))
				}
				want := map[uint64][]byte{}
				var fixedAt time.Time
				for i, id := range []string{a.Event.ID, b.Event.ID} {
					p, at := corrected(t, KindEvent, rows[i].Payload)
					if err := db.Amend(id, p, at); err != nil {
						t.Fatal(err)
					}
					want[rows[i].Seq], fixedAt = p, at
				}
				got := peekAll(t, db)
				if len(got) != 2 {
					t.Fatalf("outbox after amending %d rows, want 2", len(got))
				}
				for i, r := range got {
					if r.Seq != rows[i].Seq || r.Kind != KindEvent || !bytes.Equal(r.Payload, want[r.Seq]) {
						t.Fatalf("row %d = %d %c %s, want seq %d with %s", i, r.Seq, r.Kind, r.Payload, rows[i].Seq, want[rows[i].Seq])
					}
				}
				st, _ := db.Status()
				if st.Pending != 2 || (mode == ConfirmConnector) != (st.Unconfirmed == 2) || st.DeadLetters != 0 {
					t.Fatalf("status after amending: %+v", st)
				}
				if err := db.Sent([]uint64{got[0].Seq, got[1].Seq}, now); err != nil {
					t.Fatal(err)
				}
				if mode == ConfirmConnector {
					if st, _ := db.Status(); st.Unconfirmed != 2 {
						t.Fatalf("after the second PUBACK: %+v, want 2 unconfirmed", st)
					}
					if _, err := db.Confirm([]Ack{{ID: a.Event.ID, OK: true}, {ID: b.Event.ID, OK: true}}, now); err != nil {
						t.Fatal(err)
					}
				}
				applyNow(t, db)
				if st, _ := db.Status(); st.Pending != 0 || st.Unconfirmed != 0 {
					t.Fatalf("status at the end: %+v", st)
				}
				if got := peekAll(t, db); len(got) != 0 {
					t.Fatalf("published a third time: %d rows", len(got))
				}
				day := fixedAt.Truncate(24 * time.Hour)
				log := logOf(t, db, day)
				if len(log) != 2 || !log[a.Event.ID].Equal(a.Event.At.Add(synced.Sub(boot))) || !log[b.Event.ID].Equal(fixedAt) {
					t.Fatalf("log of %s = %v, want both at their corrected times", day.Format(time.DateOnly), log)
				}
				if log := logOf(t, db, boot); len(log) != 0 {
					t.Fatalf("log of 1970-01-01 = %v, want nothing", log)
				}
				if rs := unsyncedOf(t, db); len(rs) != 0 {
					t.Fatalf("unsynced after amending = %+v", rs)
				}
			})
		})
	}
}

// A dead letter amended stays a dead letter, with the new payload; a
// replay then publishes that.
func TestAmendDeadLetterStaysDead(t *testing.T) {
	states(t, Options{}, func(t *testing.T, db *DB, apply func()) {
		in := recordClock(t, db, "E101", boot.Add(time.Minute), false)
		apply()
		rows := peekAll(t, db)
		if err := db.Reject(rows[0].Seq, "payload too large", synced); err != nil {
			t.Fatal(err)
		}
		p, at := corrected(t, KindEvent, rows[0].Payload)
		if err := db.Amend(in.Event.ID, p, at); err != nil {
			t.Fatal(err)
		}
		if got := peekAll(t, db); len(got) != 0 {
			t.Fatalf("the dead letter was made due: %+v", got)
		}
		if st, _ := db.Status(); st.DeadLetters != 1 || st.Pending != 0 {
			t.Fatalf("status = %+v, want 1 dead letter", st)
		}
		var dead []DeadLetter
		db.DeadLetters(time.Time{}, func(d DeadLetter) error { dead = append(dead, d); return nil })
		if len(dead) != 1 || dead[0].ID != in.Event.ID || !bytes.Equal(dead[0].Record, p) || dead[0].Error != "payload too large" {
			t.Fatalf("dead letters = %+v", dead)
		}
		applyNow(t, db)
		if ids, err := db.Replay(nil, true); err != nil || len(ids) != 1 {
			t.Fatalf("replay = %v, %v", ids, err)
		}
		if got := peekAll(t, db); len(got) != 1 || !bytes.Equal(got[0].Payload, p) {
			t.Fatalf("replayed = %+v, want the amended payload", got)
		}
	})
}

// The unsynced index lists the records of outcomes stamped on an
// unsynced clock, in bbolt and pending, oldest first, and nothing else;
// Amend and Settle take records out of it, an unknown id changes
// nothing, and the index is kept across a restart.
func TestUnsyncedIndex(t *testing.T) {
	dir := t.TempDir()
	db := openWith(t, dir, Options{DeviceID: "door-1", ApplyDelay: time.Hour})
	if err := db.ReplaceRoster(loadRoster(t)); err != nil {
		t.Fatal(err)
	}
	recordClock(t, db, "E100", synced.Add(-24*time.Hour), true)
	in := recordClock(t, db, "E101", boot.Add(time.Minute), false)
	applyNow(t, db)
	out := recordClock(t, db, "E101", boot.Add(9*time.Hour), false) // pending
	recordClock(t, db, "E100", synced, true)
	if out.Shift == nil {
		t.Fatal("no shift")
	}
	ids := func(rs []Record) string {
		var s []string
		for _, r := range rs {
			s = append(s, fmt.Sprintf("%s/%c/%d", r.ID, r.Kind, r.Seq))
		}
		return strings.Join(s, " ")
	}
	rs := unsyncedOf(t, db)
	want := fmt.Sprintf("%s/e/2 %s/e/3 %s/s/4", in.Event.ID, out.Event.ID, out.Shift.ID)
	if ids(rs) != want {
		t.Fatalf("unsynced = %s, want %s", ids(rs), want)
	}
	if !rs[0].At.Equal(in.Event.At) || !rs[2].At.Equal(out.Shift.Out) {
		t.Fatalf("times %v, %v, want the event's and the shift's exit", rs[0].At, rs[2].At)
	}
	var ev punch.Event
	if err := json.Unmarshal(rs[1].Payload, &ev); err != nil || ev.ID != out.Event.ID || ev.Clock == nil {
		t.Fatalf("payload %s (%v), want the event with its stamp", rs[1].Payload, err)
	}

	// An unknown id, or the id of a record of another kind: an error,
	// and nothing changes.
	for _, bad := range []string{db.recordID(KindEvent, 99), db.recordID(KindShift, 2), db.recordID(KindEvent, 4), "door-9-00000000-e1"} {
		if err := db.Settle([]string{in.Event.ID, bad}); !errors.Is(err, ErrUnknownID) {
			t.Fatalf("settle %s: %v, want ErrUnknownID", bad, err)
		}
		if err := db.Amend(bad, []byte(`{"id":"`+bad+`"}`), synced); !errors.Is(err, ErrUnknownID) {
			t.Fatalf("amend %s: %v, want ErrUnknownID", bad, err)
		}
	}
	if err := db.Amend(in.Event.ID, []byte(`{"id":"another"}`), synced); err == nil || errors.Is(err, ErrUnknownID) {
		t.Fatalf("amend with another id in the payload: %v", err)
	}
	if got := ids(unsyncedOf(t, db)); got != want {
		t.Fatalf("after failed calls: %s", got)
	}

	// Settle one applied and one pending record; amend the shift.
	if err := db.Settle([]string{in.Event.ID, out.Event.ID}); err != nil {
		t.Fatal(err)
	}
	p, at := corrected(t, KindShift, rs[2].Payload)
	if err := db.Amend(out.Shift.ID, p, at); err != nil {
		t.Fatal(err)
	}
	if got := unsyncedOf(t, db); len(got) != 0 {
		t.Fatalf("after settle and amend: %s", ids(got))
	}
	// Settled records are left as they were.
	rows := peekAll(t, db)
	if len(rows) != 6 || !bytes.Equal(rows[1].Payload, rs[0].Payload) || !bytes.Equal(rows[2].Payload, rs[1].Payload) || !bytes.Equal(rows[3].Payload, p) {
		t.Fatalf("outbox after settle and amend: %d rows", len(rows))
	}
	if err := db.Settle([]string{in.Event.ID}); err != nil {
		t.Fatalf("settle again: %v", err)
	}

	// A second unsynced punch, pending, and a restart: the index and the
	// amended payload are kept.
	again := recordClock(t, db, "E101", boot.Add(10*time.Hour), false)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open(t, dir)
	if got := ids(unsyncedOf(t, db)); got != again.Event.ID+"/e/7" {
		t.Fatalf("after a restart: %s", got)
	}
	if log := logOf(t, db, at.Truncate(24*time.Hour)); !log[out.Shift.ID].Equal(at) {
		t.Fatalf("log after restart = %v, want the shift at %v", log, at)
	}
}

// An Amend or Settle that returned survives a power cut at once, whether
// its record was still pending in the journal or in bbolt.
func TestAmendSurvivesCrash(t *testing.T) {
	for _, applied := range []bool{false, true} {
		t.Run(fmt.Sprintf("applied=%v", applied), func(t *testing.T) {
			dir := t.TempDir()
			db := openSlow(t, dir)
			if err := db.ReplaceRoster(loadRoster(t)); err != nil {
				t.Fatal(err)
			}
			in := recordClock(t, db, "E101", boot.Add(time.Minute), false)
			out := recordClock(t, db, "E101", boot.Add(8*time.Hour), false)
			if applied {
				applyNow(t, db)
			}
			rows := peekAll(t, db)
			if len(rows) != 3 {
				t.Fatalf("%d rows", len(rows))
			}
			if err := db.Sent([]uint64{rows[0].Seq}, synced); err != nil {
				t.Fatal(err)
			}
			p, at := corrected(t, KindEvent, rows[0].Payload)
			if err := db.Amend(in.Event.ID, p, at); err != nil {
				t.Fatal(err)
			}
			if err := db.Settle([]string{out.Shift.ID}); err != nil {
				t.Fatal(err)
			}
			crash(t, db)

			// What a technician's read-only command sees before the agent
			// starts again: the journal read, not applied.
			ro, err := Open(dir, Options{DeviceID: "door-1", ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			if log := logOf(t, ro, at.Truncate(24*time.Hour)); len(log) != 1 || !log[in.Event.ID].Equal(at) {
				t.Fatalf("read-only log = %v", log)
			}
			if rs := unsyncedOf(t, ro); len(rs) != 1 || rs[0].ID != out.Event.ID {
				t.Fatalf("read-only unsynced = %+v", rs)
			}
			if err := ro.Close(); err != nil {
				t.Fatal(err)
			}

			db = open(t, dir)
			got := peekAll(t, db)
			if len(got) != 3 || got[0].Seq != rows[0].Seq || !bytes.Equal(got[0].Payload, p) || !bytes.Equal(got[2].Payload, rows[2].Payload) {
				t.Fatalf("outbox after the crash: %+v", got)
			}
			rs := unsyncedOf(t, db)
			if len(rs) != 1 || rs[0].ID != out.Event.ID {
				t.Fatalf("unsynced after the crash: %+v, want the exit event only", rs)
			}
			if log := logOf(t, db, at.Truncate(24*time.Hour)); len(log) != 1 || !log[in.Event.ID].Equal(at) {
				t.Fatalf("log = %v", log)
			}
		})
	}
}

// The applier may commit an amended pending record before the journal
// record of the amendment is marked applied (it took its snapshot, then
// the amendment changed the entry). Replaying that amendment after a
// crash changes nothing: the record, delivered since, is not published a
// third time.
func TestAmendReplayIdempotent(t *testing.T) {
	dir := t.TempDir()
	db := openSlow(t, dir)
	if err := db.ReplaceRoster(loadRoster(t)); err != nil {
		t.Fatal(err)
	}
	in := recordClock(t, db, "E101", boot.Add(time.Minute), false)
	rows := peekAll(t, db)

	// applyStep's first half: the snapshot, under writeMu.
	db.writeMu.Lock()
	snapshot, snapSeq := db.pending, db.journalSeq
	db.jnl.turn()
	db.writeMu.Unlock()

	p, at := corrected(t, KindEvent, rows[0].Payload)
	if err := db.Amend(in.Event.ID, p, at); err != nil {
		t.Fatal(err)
	}
	if db.journalSeq <= snapSeq {
		t.Fatalf("amendment journaled at %d, not after the snapshot's %d", db.journalSeq, snapSeq)
	}

	// applyStep's second half.
	db.applyMu.Lock()
	if err := db.commit(snapshot, snapSeq); err != nil {
		t.Fatal(err)
	}
	db.writeMu.Lock()
	db.finish(len(snapshot))
	db.writeMu.Unlock()
	db.applyMu.Unlock()

	if err := db.Sent([]uint64{rows[0].Seq}, synced); err != nil {
		t.Fatal(err)
	}
	crash(t, db)

	db = open(t, dir)
	if got := peekAll(t, db); len(got) != 0 {
		t.Fatalf("published again after the replay: %+v", got)
	}
	if rs := unsyncedOf(t, db); len(rs) != 0 {
		t.Fatalf("unsynced = %+v", rs)
	}
	if log := logOf(t, db, at.Truncate(24*time.Hour)); !log[in.Event.ID].Equal(at) {
		t.Fatalf("log = %v", log)
	}
}

// An open entry re-dated without a punch: an outcome with no event and no
// shift that replaces the employee's open entry, keeping its EventID; it
// makes no record, and the exit then pairs with the entry's event.
func TestOpenEntryAlone(t *testing.T) {
	states(t, Options{}, func(t *testing.T, db *DB, apply func()) {
		in := recordClock(t, db, "E101", boot.Add(time.Minute), false)
		apply()
		fixed := *in.NewOpen
		fixed.At = in.Event.At.Add(synced.Sub(boot))
		fixed.Flags = append(slices.Clone(fixed.Flags), punch.FlagClockCorrected)
		out := punch.Outcome{NoEvent: true, CloseOpen: true, NewOpen: &fixed}
		if err := db.Append([]*punch.Outcome{&out}); err != nil {
			t.Fatal(err)
		}
		for _, step := range []string{"staged", "applied"} {
			if step == "applied" {
				apply()
			}
			open, err := db.OpenEntries()
			if err != nil || open["E101"] == nil || !open["E101"].At.Equal(fixed.At) || open["E101"].EventID != in.Event.ID {
				t.Fatalf("%s: open entries %+v, %v", step, open["E101"], err)
			}
			if st, _ := db.Status(); st.OpenEntries != 1 || st.Pending != 1 {
				t.Fatalf("%s: status %+v, want 1 open entry, 1 record", step, st)
			}
		}
		exit := recordClock(t, db, "E101", fixed.At.Add(8*time.Hour), true)
		if exit.Shift == nil || exit.Shift.InEvent != in.Event.ID || exit.Shift.ID != db.recordID(KindShift, 3) {
			t.Fatalf("exit %+v", exit.Shift)
		}
		if err := db.Append([]*punch.Outcome{{NoEvent: true}}); err == nil {
			t.Fatal("an outcome with nothing in it was stored")
		}
	})
}

// AmendAll amends records in bbolt and pending ones in one call; with an
// unknown id among them it amends none.
func TestAmendAll(t *testing.T) {
	db := openWith(t, t.TempDir(), Options{DeviceID: "door-1", ApplyDelay: time.Hour})
	if err := db.ReplaceRoster(loadRoster(t)); err != nil {
		t.Fatal(err)
	}
	recordClock(t, db, "E101", boot.Add(time.Minute), false)
	applyNow(t, db)
	recordClock(t, db, "E100", boot.Add(2*time.Minute), false) // pending
	before := unsyncedOf(t, db)
	var as []Amendment
	for _, r := range before {
		p, at := corrected(t, r.Kind, r.Payload)
		as = append(as, Amendment{ID: r.ID, Payload: p, At: at})
	}
	bad := db.recordID(KindEvent, 3)
	withBad := append(slices.Clone(as), Amendment{ID: bad, Payload: []byte(`{"id":"` + bad + `"}`), At: synced})
	for _, order := range [][]Amendment{withBad, append(withBad[2:], withBad[:2]...)} {
		if err := db.AmendAll(order); !errors.Is(err, ErrUnknownID) {
			t.Fatalf("amend with an unknown id: %v", err)
		}
		if after := unsyncedOf(t, db); len(after) != 2 || !bytes.Equal(after[0].Payload, before[0].Payload) || !bytes.Equal(after[1].Payload, before[1].Payload) {
			t.Fatalf("a failed AmendAll changed records: %+v", after)
		}
	}
	if err := db.AmendAll(as); err != nil {
		t.Fatal(err)
	}
	if after := unsyncedOf(t, db); len(after) != 0 {
		t.Fatalf("unsynced after AmendAll: %+v", after)
	}
	rows := peekAll(t, db)
	if len(rows) != 2 || !bytes.Equal(rows[0].Payload, as[0].Payload) || !bytes.Equal(rows[1].Payload, as[1].Payload) {
		t.Fatalf("outbox after AmendAll: %+v", rows)
	}
}

// A record delivered before the clock synced has a time of 1970, past
// any retention horizon: pruning keeps it while it is in the unsynced
// index, and prunes it by its corrected time once amended, or at once
// once settled.
func TestPruneKeepsUnsynced(t *testing.T) {
	now := synced.Add(time.Hour)
	db := openWith(t, t.TempDir(), Options{DeviceID: "door-1", Now: func() time.Time { return now }})
	if err := db.ReplaceRoster(loadRoster(t)); err != nil {
		t.Fatal(err)
	}
	a := recordClock(t, db, "E100", boot.Add(time.Minute), false)
	b := recordClock(t, db, "E101", boot.Add(2*time.Minute), false)
	rows := peekAll(t, db)
	if err := db.Sent([]uint64{rows[0].Seq, rows[1].Seq}, now); err != nil {
		t.Fatal(err)
	}
	applyNow(t, db)
	if n, err := db.Prune(now); err != nil || n != 0 {
		t.Fatalf("pruned %d (%v) records waiting to be re-dated", n, err)
	}
	p, at := corrected(t, KindEvent, rows[0].Payload)
	if err := db.Amend(a.Event.ID, p, at); err != nil {
		t.Fatal(err)
	}
	if err := db.Settle([]string{b.Event.ID}); err != nil {
		t.Fatal(err)
	}
	if err := db.Sent([]uint64{rows[0].Seq}, now); err != nil {
		t.Fatal(err)
	}
	if n, err := db.Prune(now); err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want the settled record", n, err)
	}
	if log := logOf(t, db, at.Truncate(24*time.Hour)); len(log) != 1 || !log[a.Event.ID].Equal(at) {
		t.Fatalf("log = %v, want the amended record kept", log)
	}
}

// A database salvaged in its own layout keeps its unsynced index.
func TestSalvageKeepsUnsynced(t *testing.T) {
	dir := t.TempDir()
	db := openWith(t, dir, Options{DeviceID: "door-1"})
	if err := db.ReplaceRoster(loadRoster(t)); err != nil {
		t.Fatal(err)
	}
	in := recordClock(t, db, "E101", boot.Add(time.Minute), false)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	path := dir + "/" + FileName
	if _, err := salvage(dir, path, "door-1", errors.New("test"), synced); err != nil {
		t.Fatal(err)
	}
	db = open(t, dir)
	if rs := unsyncedOf(t, db); len(rs) != 1 || rs[0].ID != in.Event.ID {
		t.Fatalf("unsynced after salvage = %+v", rs)
	}
}

// Amendments made while punches are recorded and the applier commits
// them (every few punches): each amended record ends up with its amended
// payload, in bbolt after a restart, and no record is left in the index.
func TestAmendWhileRecording(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{DeviceID: "door-1", ApplyDelay: time.Millisecond, MaxPending: 4, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	emp := roster.Employee{ID: "E1", Credentials: []roster.Credential{{Type: "card", Value: "01"}}}
	const punches = 300
	done := make(chan error, 1)
	go func() {
		for i := range punches {
			at := boot.Add(time.Duration(i) * time.Second)
			out := punch.Decide(punch.Input{Reader: "front", Mode: punch.ModeIn, CredType: "card", At: at,
				Stamp: clock.Stamp{Wall: at, Mono: at.Sub(boot), Boot: "b1"}, TimeUnknown: true, Employee: &emp})
			out.NewOpen = nil // events only: no pairing
			if err := db.Append([]*punch.Outcome{&out}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	want := map[string][]byte{}
	finished := false
	for !finished || len(want) < punches {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		default:
		}
		var as []Amendment
		for _, r := range unsyncedOf(t, db) {
			p, at := corrected(t, r.Kind, r.Payload)
			as = append(as, Amendment{ID: r.ID, Payload: p, At: at})
			want[r.ID] = p
		}
		// Both paths: one at a time, and all together.
		if len(as)%2 == 0 {
			if err := db.AmendAll(as); err != nil {
				t.Fatal(err)
			}
			continue
		}
		for _, a := range as {
			if err := db.Amend(a.ID, a.Payload, a.At); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openWith(t, dir, Options{DeviceID: "door-1"})
	rows, err := db.Peek(0, 2*punches)
	if err != nil || len(rows) != punches {
		t.Fatalf("%d rows (%v), want %d", len(rows), err, punches)
	}
	for _, r := range rows {
		id := db.recordID(r.Kind, r.Seq)
		if !bytes.Equal(r.Payload, want[id]) {
			t.Fatalf("%s = %s, want %s", id, r.Payload, want[id])
		}
	}
	if rs := unsyncedOf(t, db); len(rs) != 0 {
		t.Fatalf("%d left in the index", len(rs))
	}
}

// BenchmarkAmend measures one Amend, with fdatasync, and the bytes it
// writes: of a pending record (a journal record, as a punch) and of one in
// bbolt (a bbolt commit, made without holding up punches); and AmendAll of
// b.N records, per record.
func BenchmarkAmend(b *testing.B) {
	for _, v := range []struct{ applied, all bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		applied, all := v.applied, v.all
		name := map[bool]string{false: "Amend", true: "AmendAll"}[all]
		b.Run(fmt.Sprintf("%s/applied=%v", name, applied), func(b *testing.B) {
			db, err := Open(b.TempDir(), Options{DeviceID: "door-1", ApplyDelay: time.Hour, MaxPending: 1 << 20, MaxUnapplied: 1 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			emp := roster.Employee{ID: "E1", Credentials: []roster.Credential{{Type: "card", Value: "01"}}}
			type rec struct {
				id string
				p  []byte
			}
			var recs []rec
			for i := range b.N {
				out := punch.Decide(punch.Input{Reader: "front", Mode: punch.ModeIn, CredType: "card", At: boot.Add(time.Duration(i) * time.Second),
					Stamp: clock.Stamp{Wall: boot, Mono: time.Second, Boot: "b1"}, TimeUnknown: true, Employee: &emp})
				out.NewOpen = nil
				if err := db.Append([]*punch.Outcome{&out}); err != nil {
					b.Fatal(err)
				}
				ev := out.Event
				ev.At = synced
				p, _ := json.Marshal(ev)
				recs = append(recs, rec{ev.ID, p})
			}
			if applied {
				db.writeMu.Lock()
				err := db.applyAll()
				db.writeMu.Unlock()
				if err != nil {
					b.Fatal(err)
				}
			}
			w0 := procWriteBytes(b)
			b.ResetTimer()
			if all {
				var as []Amendment
				for _, r := range recs {
					as = append(as, Amendment{ID: r.id, Payload: r.p, At: synced})
				}
				if err := db.AmendAll(as); err != nil {
					b.Fatal(err)
				}
			} else {
				for i := range b.N {
					if err := db.Amend(recs[i].id, recs[i].p, synced); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(procWriteBytes(b)-w0)/float64(b.N), "B-written/op")
		})
	}
}
