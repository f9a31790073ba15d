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
	if len(inDB) == 0 && at.After(db.lastUplink) {
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
		return putLastUplink(m, at)
	})
}

// LogEntry is one line of the punch log: an event, or a shift.
type LogEntry struct {
	Event *punch.Event `json:"event,omitempty"`
	Shift *punch.Shift `json:"shift,omitempty"`
}

// Log calls fn for every event and shift whose time (the event's time, the
// shift's exit) falls in [from, to), events first, each in the order they
// were recorded. A zero bound is open. It reads in pages and calls fn
// outside any transaction or lock, so a slow caller holds up neither
// punches nor the uplink. It scans the whole log: it is for technicians,
// not for hot paths.
func (db *DB) Log(from, to time.Time, fn func(LogEntry) error) error {
	in := func(t time.Time) bool {
		return (from.IsZero() || !t.Before(from)) && (to.IsZero() || t.Before(to))
	}
	for _, shifts := range []bool{false, true} {
		var after uint64
		for {
			page, last, err := db.logPage(shifts, after, in)
			if err != nil {
				return err
			}
			for _, e := range page {
				if err := fn(e); err != nil {
					return err
				}
			}
			if last == after {
				break
			}
			after = last
		}
	}
	return nil
}

const logPageSize = 512

// logPage returns the entries of one kind with seq above after, from
// bbolt and then from the pending punches, up to logPageSize seqs looked
// at, and the last seq looked at.
func (db *DB) logPage(shifts bool, after uint64, in func(time.Time) bool) (page []LogEntry, last uint64, err error) {
	last = after
	decode := func(seq uint64, v []byte) error {
		var le LogEntry
		var at time.Time
		if shifts {
			le.Shift = new(punch.Shift)
			if err := json.Unmarshal(v, le.Shift); err != nil {
				return fmt.Errorf("%w: shift %d: %v", ErrCorrupt, seq, err)
			}
			at = le.Shift.Out
		} else {
			le.Event = new(punch.Event)
			if err := json.Unmarshal(v, le.Event); err != nil {
				return fmt.Errorf("%w: event %d: %v", ErrCorrupt, seq, err)
			}
			at = le.Event.At
		}
		last = seq
		if in(at) {
			page = append(page, le)
		}
		return nil
	}
	seen := 0
	db.applyMu.RLock()
	defer db.applyMu.RUnlock()
	bucket := bEvents
	if shifts {
		bucket = bShifts
	}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && seen < logPageSize; k, v = c.Next() {
			seen++
			if err := decode(binary.BigEndian.Uint64(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || seen == logPageSize {
		return page, last, err
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	for _, e := range db.pending {
		seq, v := e.EventSeq, []byte(e.Event)
		if shifts {
			seq, v = e.ShiftSeq, e.Shift
		}
		if v == nil || seq <= last || seen >= logPageSize {
			continue
		}
		seen++
		if err := decode(seq, v); err != nil {
			return page, last, err
		}
	}
	return page, last, nil
}
