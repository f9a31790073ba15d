package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/punchclock/punchclock/punch"
)

// LogEntry is one line of the punch log: an event, or a shift.
type LogEntry struct {
	Event *punch.Event `json:"event,omitempty"`
	Shift *punch.Shift `json:"shift,omitempty"`
}

// Log calls fn for every event and shift whose time (the event's time, the
// shift's exit) falls in [from, to), in the order they were recorded. A
// zero bound is open. With both bounds it reads only the records of the
// days they span (the day index), so one day of a year of punches costs
// one day's reads. It reads in pages and calls fn outside any transaction
// or lock, so a slow caller holds up neither punches nor the uplink.
func (db *DB) Log(from, to time.Time, fn func(LogEntry) error) error {
	in := func(t time.Time) bool {
		return (from.IsZero() || !t.Before(from)) && (to.IsZero() || t.Before(to))
	}
	first, last, err := db.logRange(from, to)
	if err != nil {
		return err
	}
	after := first - 1
	for after < last {
		page, seen, err := db.logPage(after, last, in)
		if err != nil {
			return err
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
		}
		if seen == after {
			break
		}
		after = seen
	}
	return nil
}

// logRange returns the seqs that can hold records of [from, to): all of
// them unless both bounds are set.
func (db *DB) logRange(from, to time.Time) (first, last uint64, err error) {
	first, last = 1, ^uint64(0)
	if from.IsZero() || to.IsZero() {
		return first, last, nil
	}
	if !to.After(from) {
		return 1, 0, nil
	}
	db.applyMu.RLock()
	defer db.applyMu.RUnlock()
	first, last = ^uint64(0), 0
	err = db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bDay).Cursor()
		lo := []byte(from.UTC().Format(time.DateOnly))
		hi := to.UTC().Format(time.DateOnly)
		for k, v := c.Seek(lo); k != nil && string(k) <= hi; k, v = c.Next() {
			if len(v) != 16 {
				return fmt.Errorf("%w: day index %s", ErrCorrupt, k)
			}
			first = min(first, binary.BigEndian.Uint64(v))
			last = max(last, binary.BigEndian.Uint64(v[8:]))
		}
		return nil
	})
	// Pending punches are in no index yet.
	db.mu.RLock()
	for _, e := range db.pending {
		for _, r := range e.records() {
			first, last = min(first, r.seq), max(last, r.seq)
		}
	}
	db.mu.RUnlock()
	if first == ^uint64(0) {
		return 1, 0, err
	}
	return first, last, err
}

const logPageSize = 512

// logPage returns the entries with seq in (after, last], from bbolt and
// then from the pending punches, up to logPageSize seqs looked at, and
// the last seq looked at.
func (db *DB) logPage(after, last uint64, in func(time.Time) bool) (page []LogEntry, seen uint64, err error) {
	seen = after
	n := 0
	add := func(seq uint64, kind byte, at time.Time, payload []byte) error {
		n++
		seen = seq
		if !in(at) {
			return nil
		}
		var le LogEntry
		var err error
		if kind == KindShift {
			le.Shift = new(punch.Shift)
			err = json.Unmarshal(payload, le.Shift)
		} else {
			le.Event = new(punch.Event)
			err = json.Unmarshal(payload, le.Event)
		}
		if err != nil {
			return fmt.Errorf("%w: record %d: %v", ErrCorrupt, seq, err)
		}
		page = append(page, le)
		return nil
	}
	db.applyMu.RLock()
	defer db.applyMu.RUnlock()
	err = db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bRec).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && n < logPageSize; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			if seq > last {
				break
			}
			r, err := decodeRecord(seq, v)
			if err != nil {
				return err
			}
			if !in(r.at) {
				n++
				seen = seq
				continue
			}
			p, err := db.payload(r)
			if err != nil {
				return err
			}
			if err := add(seq, r.kind, r.at, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || n == logPageSize {
		return page, seen, err
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	for _, e := range db.pending {
		for _, r := range e.records() {
			if r.seq <= seen || r.seq > last || n >= logPageSize {
				continue
			}
			if err := add(r.seq, r.kind, r.time(), r.payload); err != nil {
				return page, seen, err
			}
		}
	}
	return page, seen, nil
}
