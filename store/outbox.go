package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/punchclock/punchclock/punch"
)

// OutboxRow is one record waiting for the uplink.
type OutboxRow struct {
	Seq     uint64
	Kind    byte   // KindEvent or KindShift
	Payload []byte // the record's JSON, as stored
}

// Peek returns up to max outbox rows with a sequence above after, oldest
// first, with their payloads copied: rows in bbolt, then rows of punches
// still pending in the journal.
func (db *DB) Peek(after uint64, max int) ([]OutboxRow, error) {
	var rows []OutboxRow
	db.applyMu.RLock()
	defer db.applyMu.RUnlock()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		events, shifts := tx.Bucket(bEvents), tx.Bucket(bShifts)
		c := tx.Bucket(bOutbox).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(rows) < max; k, v = c.Next() {
			if len(v) != 9 {
				return fmt.Errorf("%w: outbox row %x", ErrCorrupt, k)
			}
			row := OutboxRow{Seq: binary.BigEndian.Uint64(k), Kind: v[0]}
			var src *bolt.Bucket
			switch v[0] {
			case KindEvent:
				src = events
			case KindShift:
				src = shifts
			default:
				return fmt.Errorf("%w: outbox row %d has kind %q", ErrCorrupt, row.Seq, v[0])
			}
			p := src.Get(v[1:])
			if p == nil {
				return fmt.Errorf("%w: outbox row %d points at a missing record", ErrCorrupt, row.Seq)
			}
			row.Payload = append([]byte(nil), p...)
			rows = append(rows, row)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(rows) > 0 {
		after = rows[len(rows)-1].Seq
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	add := func(seq uint64, kind byte, p []byte) {
		if seq > after && len(rows) < max && !db.acked[seq] {
			rows = append(rows, OutboxRow{Seq: seq, Kind: kind, Payload: append([]byte(nil), p...)})
		}
	}
	for _, e := range db.pending {
		add(e.EventOut, KindEvent, e.Event)
		if e.Shift != nil {
			add(e.ShiftOut, KindShift, e.Shift)
		}
	}
	return rows, nil
}

// Remove deletes delivered outbox rows and records the time of the last
// successful uplink. Rows already gone are ignored. Rows of punches still
// pending in the journal are only marked: they never reach bbolt's outbox,
// and after a crash they are sent again (consumers dedupe by id).
func (db *DB) Remove(seqs []uint64, at time.Time) error {
	if len(seqs) == 0 {
		return nil
	}
	var inDB []uint64
	db.mu.Lock()
	for _, s := range seqs {
		if s > db.appliedOutbox {
			db.acked[s] = true
		} else {
			inDB = append(inDB, s)
		}
	}
	if len(inDB) == 0 {
		db.lastUplink = at
	}
	db.mu.Unlock()
	if len(inDB) == 0 {
		return nil
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		ob := tx.Bucket(bOutbox)
		m := tx.Bucket(bMeta)
		n := 0
		for _, s := range inDB {
			k := u64(s)
			if ob.Get(k) == nil {
				continue
			}
			if err := ob.Delete(k); err != nil {
				return fmt.Errorf("store: %w", err)
			}
			n++
		}
		if err := addU64(m, kPending, -int64(n)); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		return m.Put(kLastUplink, []byte(at.UTC().Format(time.RFC3339Nano)))
	})
}

// LogEntry is one line of the punch log: an event, or a shift.
type LogEntry struct {
	Event *punch.Event `json:"event,omitempty"`
	Shift *punch.Shift `json:"shift,omitempty"`
}

// Log calls fn for every event and shift whose time (the event's time, the
// shift's exit) falls in [from, to), events first. A zero bound is open.
// It scans the whole log: it is for technicians, not for hot paths.
func (db *DB) Log(from, to time.Time, fn func(LogEntry) error) error {
	in := func(t time.Time) bool {
		return (from.IsZero() || !t.Before(from)) && (to.IsZero() || t.Before(to))
	}
	db.applyMu.RLock()
	defer db.applyMu.RUnlock()
	db.mu.RLock()
	pending := db.pending
	db.mu.RUnlock()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bEvents).ForEach(func(k, v []byte) error {
			var e punch.Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("%w: event %x: %v", ErrCorrupt, k, err)
			}
			if !in(e.At) {
				return nil
			}
			return fn(LogEntry{Event: &e})
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bShifts).ForEach(func(k, v []byte) error {
			var s punch.Shift
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("%w: shift %x: %v", ErrCorrupt, k, err)
			}
			if !in(s.Out) {
				return nil
			}
			return fn(LogEntry{Shift: &s})
		})
	})
	if err != nil {
		return err
	}
	// Punches still pending in the journal: events, then shifts.
	for _, shift := range []bool{false, true} {
		for _, e := range pending {
			var le LogEntry
			var at time.Time
			switch {
			case !shift:
				le.Event = new(punch.Event)
				if err := json.Unmarshal(e.Event, le.Event); err != nil {
					return fmt.Errorf("%w: journaled event %d: %v", ErrCorrupt, e.EventSeq, err)
				}
				at = le.Event.At
			case e.Shift != nil:
				le.Shift = new(punch.Shift)
				if err := json.Unmarshal(e.Shift, le.Shift); err != nil {
					return fmt.Errorf("%w: journaled shift %d: %v", ErrCorrupt, e.ShiftSeq, err)
				}
				at = le.Shift.Out
			default:
				continue
			}
			if in(at) {
				if err := fn(le); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
