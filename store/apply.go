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

// stage adds journaled entries to the pending ones and reports whether
// they are the first. The caller holds writeMu.
func (db *DB) stage(batch []*entry) (first bool) {
	db.mu.Lock()
	defer db.mu.Unlock()
	first = len(db.pending) == 0
	for _, e := range batch {
		db.pending = append(db.pending, e)
		db.overlayAdd(e)
		db.next.event = max(db.next.event, e.EventSeq)
		db.next.shift = max(db.next.shift, e.ShiftSeq)
		db.next.outbox = max(db.next.outbox, e.EventOut, e.ShiftOut)
	}
	return first
}

func (db *DB) overlayAdd(e *entry) {
	if e.Close {
		db.overlay[e.EmployeeID] = nil
	}
	if e.Open != nil {
		db.overlay[e.EmployeeID] = e.Open
	}
}

// applier moves pending punches to bbolt: ApplyDelay after the first one
// is pending, or at once when MaxPending are. It commits without holding
// writeMu, so punches go on being journaled meanwhile.
func (db *DB) applier() {
	defer db.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-db.quit:
			return
		case <-db.wake:
		case <-db.full:
		}
		timer.Reset(db.opts.ApplyDelay)
	wait:
		for {
			select {
			case <-db.quit:
				timer.Stop()
				return
			case <-db.full:
				break wait
			case <-timer.C:
				break wait
			case <-db.wake:
				// Already waiting.
			}
		}
		timer.Stop()
		more, err := db.applyStep()
		db.mu.Lock()
		db.applyErr = err
		db.mu.Unlock()
		if err != nil || more {
			// Punches arrived meanwhile, or the commit failed (they
			// stay in the journal): wait again.
			poke(db.wake)
		}
	}
}

// applyStep commits the punches pending now. It reports whether more
// became pending meanwhile.
func (db *DB) applyStep() (more bool, err error) {
	db.writeMu.Lock()
	if db.closed {
		db.writeMu.Unlock()
		return false, nil
	}
	db.mu.RLock()
	snapshot := db.pending
	db.mu.RUnlock()
	snapSeq := db.journalSeq
	if len(snapshot) == 0 {
		db.writeMu.Unlock()
		return false, nil
	}
	db.jnl.turn()
	db.writeMu.Unlock()

	db.applyMu.Lock()
	written, err := db.commit(snapshot, snapSeq)
	var late []uint64
	if err == nil {
		db.writeMu.Lock()
		late = db.finish(len(snapshot), written)
		more = len(db.pending) > 0
		db.writeMu.Unlock()
	}
	db.applyMu.Unlock()
	if err == nil && len(late) > 0 {
		// Delivered while being committed: delete their rows now.
		err = db.Remove(late, time.Now())
	}
	return more, err
}

// applyAll commits every pending punch. The caller holds writeMu and the
// applier is not running.
func (db *DB) applyAll() error {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	db.mu.RLock()
	snapshot := db.pending
	lastUplink := db.lastUplink
	db.mu.RUnlock()
	if len(snapshot) == 0 && lastUplink.IsZero() {
		if db.jnl != nil {
			db.jnl.applied(true)
		}
		return nil
	}
	written, err := db.commit(snapshot, db.journalSeq)
	if err != nil {
		return err
	}
	if late := db.finish(len(snapshot), written); len(late) > 0 {
		return db.Remove(late, time.Now())
	}
	return nil
}

// finish drops the first n pending entries, now in bbolt, and returns the
// outbox seqs among those written that were delivered meanwhile: their
// rows must be deleted. The caller holds applyMu and writeMu.
func (db *DB) finish(n int, written []uint64) (late []uint64) {
	db.mu.Lock()
	defer db.mu.Unlock()
	done := db.pending[:n]
	db.pending = append([]*entry(nil), db.pending[n:]...)
	for _, e := range done {
		db.appliedOutbox = max(db.appliedOutbox, e.EventOut, e.ShiftOut)
	}
	for _, seq := range written {
		if db.acked[seq] {
			late = append(late, seq)
		}
	}
	for seq := range db.acked {
		if seq <= db.appliedOutbox {
			delete(db.acked, seq)
		}
	}
	db.overlay = map[string]*punch.Open{}
	for _, e := range db.pending {
		db.overlayAdd(e)
	}
	if db.jnl != nil {
		db.jnl.applied(len(db.pending) == 0)
	}
	return late
}

// commit writes entries to bbolt in one transaction and records journal
// seq snapSeq as applied. It returns the outbox seqs it wrote rows for.
// The caller holds applyMu.
func (db *DB) commit(snapshot []*entry, snapSeq uint64) (written []uint64, err error) {
	db.mu.RLock()
	lastUplink := db.lastUplink
	next := db.next
	db.mu.RUnlock()
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		events, shifts, open, ob := tx.Bucket(bEvents), tx.Bucket(bShifts), tx.Bucket(bOpen), tx.Bucket(bOutbox)
		// Append-only buckets: fill pages fully.
		events.FillPercent, shifts.FillPercent, ob.FillPercent = 1, 1, 1
		var queued, opened int64
		enqueue := func(seq uint64, kind byte, ref uint64) error {
			db.mu.RLock()
			acked := db.acked[seq]
			db.mu.RUnlock()
			if acked {
				return nil // delivered before it got here
			}
			var v [9]byte
			v[0] = kind
			copy(v[1:], u64(ref))
			queued++
			written = append(written, seq)
			return ob.Put(u64(seq), v[:])
		}
		for _, e := range snapshot {
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
		}{{events, next.event}, {shifts, next.shift}, {ob, next.outbox}} {
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
		if err := putLastUplink(m, lastUplink); err != nil {
			return err
		}
		return m.Put(kJournalSeq, u64(snapSeq))
	})
	if err != nil {
		return nil, fmt.Errorf("store: apply %d journaled punches: %w", len(snapshot), err)
	}
	db.mu.Lock()
	if db.lastUplink.Equal(lastUplink) {
		db.lastUplink = time.Time{}
	}
	db.mu.Unlock()
	return written, nil
}

// putLastUplink records t as the last successful uplink unless a later
// one is stored.
func putLastUplink(m *bolt.Bucket, t time.Time) error {
	if t.IsZero() {
		return nil
	}
	if v := m.Get(kLastUplink); v != nil {
		if cur, err := time.Parse(time.RFC3339Nano, string(v)); err == nil && !t.After(cur) {
			return nil
		}
	}
	return m.Put(kLastUplink, []byte(t.UTC().Format(time.RFC3339Nano)))
}
