package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/punchclock/punchclock/punch"
)

// stage adds journaled entries to the pending ones and reports whether
// they are the first. The caller holds writeMu.
func (db *DB) stage(batch []*entry) (first bool) {
	db.mu.Lock()
	defer db.mu.Unlock()
	first = len(db.pending) == 0
	for _, e := range batch {
		db.pending = append(db.pending, e)
		db.overlayAdd(e)
		db.next = max(db.next, e.EventSeq, e.ShiftSeq)
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
// writeMu, so punches go on being journaled meanwhile. After a failure it
// tries again, ApplyDelay later.
func (db *DB) applier() {
	defer db.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		now := false
		select {
		case <-db.quit:
			return
		case <-db.wake:
		case <-db.kick:
			db.mu.RLock()
			now = db.applyErr == nil
			db.mu.RUnlock()
		}
		timer.Reset(db.opts.ApplyDelay)
	wait:
		for !now {
			select {
			case <-db.quit:
				timer.Stop()
				return
			case <-db.kick:
				db.mu.RLock()
				failing := db.applyErr != nil
				db.mu.RUnlock()
				if !failing {
					break wait
				}
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
		db.updateFull()
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
	defer db.applyMu.Unlock()
	if err := db.commit(snapshot, snapSeq); err != nil {
		return false, err
	}
	db.writeMu.Lock()
	db.finish(len(snapshot))
	more = len(db.pending) > 0
	db.writeMu.Unlock()
	return more, nil
}

// applyAll commits every pending punch. The caller holds writeMu and the
// applier is not running.
func (db *DB) applyAll() error {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	return db.applyAllLocked()
}

// applyAllLocked is applyAll for a caller that holds applyMu, then
// writeMu.
func (db *DB) applyAllLocked() error {
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
	if err := db.commit(snapshot, db.journalSeq); err != nil {
		return err
	}
	db.finish(len(snapshot))
	return nil
}

// finish drops the first n pending entries, now in bbolt, with the early
// states they had. The caller holds applyMu and writeMu.
func (db *DB) finish(n int) {
	db.mu.Lock()
	defer db.mu.Unlock()
	done := db.pending[:n]
	db.pending = append([]*entry(nil), db.pending[n:]...)
	for _, e := range done {
		db.appliedSeq = max(db.appliedSeq, e.EventSeq, e.ShiftSeq)
	}
	for seq := range db.early {
		if seq <= db.appliedSeq {
			delete(db.early, seq)
		}
	}
	db.overlay = map[string]*punch.Open{}
	for _, e := range db.pending {
		db.overlayAdd(e)
	}
	if db.jnl != nil {
		db.jnl.applied(len(db.pending) == 0)
	}
}

// counts are changes to the meta counters made in one transaction.
type counts struct{ unsent, unconf, dead, open int64 }

func (c counts) put(m *bolt.Bucket) error {
	for _, kv := range []struct {
		k []byte
		d int64
	}{{kUnsent, c.unsent}, {kUnconf, c.unconf}, {kDead, c.dead}, {kOpenCount, c.open}} {
		if err := addU64(m, kv.k, kv.d); err != nil {
			return err
		}
	}
	return nil
}

// commit writes entries to bbolt in one transaction, each record in the
// delivery state it reached while pending, and records journal seq
// snapSeq as applied. The caller holds applyMu.
func (db *DB) commit(snapshot []*entry, snapSeq uint64) error {
	db.mu.RLock()
	lastUplink := db.lastUplink
	next := db.next
	states := make(map[uint64]early, len(db.early))
	for k, v := range db.early {
		states[k] = v
	}
	db.mu.RUnlock()
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		recs, open, days := tx.Bucket(bRec), tx.Bucket(bOpen), tx.Bucket(bDay)
		// Append-only buckets: fill pages fully.
		recs.FillPercent = 1
		tx.Bucket(bUnsent).FillPercent = 1
		var c counts
		unsynced := tx.Bucket(bUnsynced)
		for _, e := range snapshot {
			if e.Amend != nil || e.Settle != nil {
				if err := db.commitChange(tx, e, &c); err != nil {
					return err
				}
				continue
			}
			for _, r := range e.records() {
				if err := recs.Put(u64(r.seq), db.encodeRecord(r.kind, r.at, r.payload)); err != nil {
					return err
				}
				if err := db.putState(tx, r.seq, r.at, states[r.seq], &c); err != nil {
					return err
				}
				if err := addDay(days, r.at, r.seq); err != nil {
					return err
				}
			}
			for _, seq := range e.Unsynced {
				if err := unsynced.Put(u64(seq), present); err != nil {
					return err
				}
			}
			if e.Close {
				k := []byte(e.EmployeeID)
				if open.Get(k) != nil {
					c.open--
				}
				if err := open.Delete(k); err != nil {
					return err
				}
			}
			if e.Open != nil {
				k := []byte(e.EmployeeID)
				if open.Get(k) == nil {
					c.open++
				}
				b, err := json.Marshal(e.Open)
				if err != nil {
					return err
				}
				if err := open.Put(k, b); err != nil {
					return err
				}
			}
		}
		if next > recs.Sequence() {
			if err := recs.SetSequence(next); err != nil {
				return err
			}
		}
		if err := c.put(m); err != nil {
			return err
		}
		if err := putLastUplink(m, lastUplink); err != nil {
			return err
		}
		return m.Put(kJournalSeq, u64(snapSeq))
	})
	if err != nil {
		return fmt.Errorf("store: apply %d journaled punches: %w", len(snapshot), err)
	}
	db.mu.Lock()
	if db.lastUplink.Equal(lastUplink) {
		db.lastUplink = time.Time{}
	}
	db.mu.Unlock()
	return nil
}

// putState files an applied record, of time at (unix ms), under a
// delivery state: unsent, unconfirmed, dead, or done (in the done index,
// by time, which is what retention prunes).
func (db *DB) putState(tx *bolt.Tx, seq uint64, at int64, st early, c *counts) error {
	switch st.state {
	case stNone:
		c.unsent++
		return tx.Bucket(bUnsent).Put(u64(seq), present)
	case stSent:
		if db.opts.Confirm != ConfirmConnector {
			return putDone(tx, seq, at)
		}
		c.unconf++
		return putUnconf(tx, seq, st.at)
	case stDead:
		c.dead++
		v, err := json.Marshal(deadValue{Error: st.reason, At: st.at.UTC(), Source: st.source})
		if err != nil {
			return err
		}
		return tx.Bucket(bDead).Put(u64(seq), v)
	}
	return putDone(tx, seq, at) // stDone
}

// putDone and delDone keep the done index: records at the end of their
// road, by time then seq, so that pruning reads only what it deletes.
func putDone(tx *bolt.Tx, seq uint64, at int64) error {
	return tx.Bucket(bDone).Put(dueKey(uint64(at), seq), nil)
}

func delDone(tx *bolt.Tx, seq uint64, at int64) error {
	return tx.Bucket(bDone).Delete(dueKey(uint64(at), seq))
}

func putUnconf(tx *bolt.Tx, seq uint64, at time.Time) error {
	ms := uint64(at.UnixMilli())
	if err := tx.Bucket(bUnconf).Put(u64(seq), u64(ms)); err != nil {
		return err
	}
	return tx.Bucket(bDue).Put(dueKey(ms, seq), nil)
}

// delUnconf removes seq from the unconfirmed records, reporting whether
// it was there.
func delUnconf(tx *bolt.Tx, seq uint64) (bool, error) {
	uc := tx.Bucket(bUnconf)
	v := uc.Get(u64(seq))
	if v == nil {
		return false, nil
	}
	if err := tx.Bucket(bDue).Delete(dueKey(binary.BigEndian.Uint64(v), seq)); err != nil {
		return false, err
	}
	return true, uc.Delete(u64(seq))
}

func dueKey(ms, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, ms)
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

// addDay widens the range of seqs of the UTC day of at.
func addDay(days *bolt.Bucket, at int64, seq uint64) error {
	k := []byte(time.UnixMilli(at).UTC().Format(time.DateOnly))
	first, last := seq, seq
	if v := days.Get(k); len(v) == 16 {
		first = min(first, binary.BigEndian.Uint64(v))
		last = max(last, binary.BigEndian.Uint64(v[8:]))
	}
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, first)
	binary.BigEndian.PutUint64(v[8:], last)
	return days.Put(k, v)
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
