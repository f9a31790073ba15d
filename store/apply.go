package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/punchclock/punchclock/punch"
)

// entry is one recorded punch as journaled and as held until applied.
// Sequences are assigned when it is recorded; the JSON of the event and
// the shift is final.
type entry struct {
	EmployeeID string          `json:"emp,omitempty"`
	EventSeq   uint64          `json:"es"`
	EventOut   uint64          `json:"eo"`
	Event      json.RawMessage `json:"ev"`
	Close      bool            `json:"close,omitempty"`
	Open       *punch.Open     `json:"open,omitempty"`
	ShiftSeq   uint64          `json:"ss,omitempty"`
	ShiftOut   uint64          `json:"so,omitempty"`
	Shift      json.RawMessage `json:"sh,omitempty"`
}

func (e *entry) outboxSeqs() []uint64 {
	if e.Shift != nil {
		return []uint64{e.EventOut, e.ShiftOut}
	}
	return []uint64{e.EventOut}
}

// stage adds journaled entries to the pending ones. The caller holds
// writeMu.
func (db *DB) stage(batch []*entry) {
	db.mu.Lock()
	defer db.mu.Unlock()
	for _, e := range batch {
		db.pending = append(db.pending, e)
		if e.Close {
			db.overlay[e.EmployeeID] = nil
		}
		if e.Open != nil {
			db.overlay[e.EmployeeID] = e.Open
		}
		db.next.event = max(db.next.event, e.EventSeq)
		db.next.shift = max(db.next.shift, e.ShiftSeq)
		db.next.outbox = max(db.next.outbox, e.EventOut, e.ShiftOut)
	}
}

// apply writes the pending entries to bbolt in one transaction, then lets
// the journal start over. The caller holds writeMu.
func (db *DB) apply() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if len(db.pending) == 0 && db.lastUplink.IsZero() {
		if db.jnl != nil {
			db.jnl.rewind()
		}
		return nil
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		events, shifts, open, ob := tx.Bucket(bEvents), tx.Bucket(bShifts), tx.Bucket(bOpen), tx.Bucket(bOutbox)
		// Append-only buckets: fill pages fully.
		events.FillPercent, shifts.FillPercent, ob.FillPercent = 1, 1, 1
		var queued, opened int64
		enqueue := func(seq uint64, kind byte, ref uint64) error {
			if db.acked[seq] {
				return nil // delivered before it got here
			}
			var v [9]byte
			v[0] = kind
			copy(v[1:], u64(ref))
			queued++
			return ob.Put(u64(seq), v[:])
		}
		for _, e := range db.pending {
			if err := events.Put(u64(e.EventSeq), e.Event); err != nil {
				return err
			}
			if err := enqueue(e.EventOut, KindEvent, e.EventSeq); err != nil {
				return err
			}
			if e.Close {
				k := []byte(e.EmployeeID)
				if open.Get(k) != nil {
					opened--
				}
				if err := open.Delete(k); err != nil {
					return err
				}
			}
			if e.Open != nil {
				k := []byte(e.EmployeeID)
				if open.Get(k) == nil {
					opened++
				}
				b, err := json.Marshal(e.Open)
				if err != nil {
					return err
				}
				if err := open.Put(k, b); err != nil {
					return err
				}
			}
			if e.Shift != nil {
				if err := shifts.Put(u64(e.ShiftSeq), e.Shift); err != nil {
					return err
				}
				if err := enqueue(e.ShiftOut, KindShift, e.ShiftSeq); err != nil {
					return err
				}
			}
		}
		for _, sq := range []struct {
			b *bolt.Bucket
			v uint64
		}{{events, db.next.event}, {shifts, db.next.shift}, {ob, db.next.outbox}} {
			if sq.v > sq.b.Sequence() {
				if err := sq.b.SetSequence(sq.v); err != nil {
					return err
				}
			}
		}
		if err := addU64(m, kPending, queued); err != nil {
			return err
		}
		if err := addU64(m, kOpenCount, opened); err != nil {
			return err
		}
		if !db.lastUplink.IsZero() {
			if err := m.Put(kLastUplink, []byte(db.lastUplink.UTC().Format(time.RFC3339Nano))); err != nil {
				return err
			}
		}
		return m.Put(kJournalSeq, u64(db.journalSeq))
	})
	if err != nil {
		return fmt.Errorf("store: apply %d journaled punches: %w", len(db.pending), err)
	}
	db.pending = nil
	db.acked = map[uint64]bool{}
	db.overlay = map[string]*punch.Open{}
	db.lastUplink = time.Time{}
	db.appliedOutbox = db.next.outbox
	if db.jnl != nil {
		db.jnl.rewind()
	}
	return nil
}
