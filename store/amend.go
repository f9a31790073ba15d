package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Correcting records stamped on an unsynced clock (issue 13, docs/clock.md).
//
// A punch taken before NTP set the clock is stored like any other, and its
// records (the event, and the shift it completes) are listed in the
// unsynced index (bucket unsynced, and Unsynced of a pending entry).
// Once the clock syncs in the same boot the agent re-dates them: Unsynced
// lists them, and Amend replaces each one's payload and time under the
// same id and seq, and makes it due for publishing again, so that a
// consumer that already has it gets the corrected one under the same id.
// Records of an earlier boot can never be re-dated (their monotonic
// readings counted from another origin): Settle drops them from the index
// and they stay as they are, flagged clock_unsynced.
//
// Amend is durable when it returns. A record still pending (journaled,
// not in bbolt yet) is amended by one journal record, fdatasynced as a
// punch is, and changed in memory; the applier then writes the amended
// record. A record in bbolt is amended by one bbolt transaction, made
// while holding applyMu but not writeMu: punches go on being journaled
// meanwhile. Journaling those too would need every reader of bbolt (the
// outbox, the log, the status counters, dead letters) to lay pending
// amendments over what it reads; a bbolt transaction keeps them as they
// are, for a cost paid once per boot that started unsynced, and AmendAll
// pays it once for all of a boot's records (BenchmarkAmend).

// Record is one stored event or shift.
type Record struct {
	// ID is the record's id (the "id" of its payload).
	ID   string
	Seq  uint64
	Kind byte // KindEvent or KindShift
	// At is the record's time as the store files it (the log, the day
	// index, retention): the event's time, the shift's exit.
	At time.Time
	// Payload is the record as published, in memory of its own.
	Payload []byte
}

// amendment is the journal form of an Amend of a pending record; a
// pending entry of this form (staged by a journal replay only) amends a
// record in bbolt when it is applied.
type amendment struct {
	Seq     uint64          `json:"seq"`
	At      int64           `json:"at"` // unix ms
	Payload json.RawMessage `json:"p"`
}

// Unsynced calls fn for every record in the unsynced index, pending ones
// included, oldest first. It calls fn outside any transaction or lock.
func (db *DB) Unsynced(fn func(r Record) error) error {
	var out []Record
	db.applyMu.RLock()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bUnsynced)
		if b == nil {
			return nil // a database of an earlier agent, read-only
		}
		return b.ForEach(func(k, _ []byte) error {
			seq := binary.BigEndian.Uint64(k)
			r, err := getRecord(tx, seq)
			if err != nil {
				return fmt.Errorf("%w: the unsynced index names record %d, which is not stored", ErrCorrupt, seq)
			}
			p, err := db.payload(r)
			if err != nil {
				return err
			}
			out = append(out, Record{ID: db.recordID(r.kind, seq), Seq: seq, Kind: r.kind, At: r.at, Payload: p})
			return nil
		})
	})
	db.mu.RLock()
	for _, e := range db.pending {
		for _, r := range e.records() {
			if slices.Contains(e.Unsynced, r.seq) {
				out = append(out, Record{
					ID: db.recordID(r.kind, r.seq), Seq: r.seq, Kind: r.kind, At: r.time(),
					Payload: append([]byte(nil), r.payload...),
				})
			}
		}
	}
	db.mu.RUnlock()
	db.applyMu.RUnlock()
	if err != nil {
		return err
	}
	for _, r := range out {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Amend replaces the payload of the record id with payload (whose "id"
// must be id) and its time with at, keeping its id and seq; drops it from
// the unsynced index; and makes it due for publishing again: unsent, as a
// record never sent (with connector confirmation too), or still a dead
// letter if it is one (a replay then publishes the new payload). The log,
// the day index and retention then file it at at. An id of no record is
// an error wrapping ErrUnknownID. It is durable when Amend returns.
//
// Amend waits for a commit of the applier in progress (it holds applyMu
// while it changes the record), but punches are journaled meanwhile.
func (db *DB) Amend(id string, payload []byte, at time.Time) error {
	return db.AmendAll([]Amendment{{ID: id, Payload: payload, At: at}})
}

// Amendment is one record's correction for AmendAll.
type Amendment struct {
	ID      string
	Payload []byte // the corrected record; its "id" is ID
	At      time.Time
}

// AmendAll amends records as Amend does, all together: the pending ones
// with one journal record, those in bbolt with one transaction. If an id
// names no record, or a payload does not carry its id, nothing is amended.
// After the clock syncs the agent re-dates every record of the boot: one
// call costs what one Amend does.
func (db *DB) AmendAll(as []Amendment) error {
	if db.opts.ReadOnly {
		return ErrReadOnly
	}
	if len(as) == 0 {
		return nil
	}
	all := make([]*amendment, len(as))
	for i, x := range as {
		var head struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(x.Payload, &head); err != nil {
			return fmt.Errorf("store: amend %s: the payload is not a record: %w", x.ID, err)
		}
		if head.ID != x.ID {
			return fmt.Errorf("store: amend %s: the payload's id is %q", x.ID, head.ID)
		}
		all[i] = &amendment{At: x.At.UnixMilli(), Payload: append(json.RawMessage(nil), x.Payload...)}
	}
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	if db.shut.Load() {
		return ErrClosed
	}
	var pending []*entry
	var inDB []int // indexes into as
	db.mu.RLock()
	for i, x := range as {
		seq, own := db.parseID(x.ID)
		if !own || seq <= db.appliedSeq {
			inDB = append(inDB, i)
			continue
		}
		// Without a journal nothing stays pending once Append returns.
		if !idKindMatches(x.ID, db.pendingKind(seq)) || db.jnl == nil {
			db.mu.RUnlock()
			return fmt.Errorf("%w: amend %s", ErrUnknownID, x.ID)
		}
		all[i].Seq = seq
		pending = append(pending, &entry{Amend: all[i]})
	}
	db.mu.RUnlock()
	if len(inDB) > 0 {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			var c counts
			for _, i := range inDB {
				id := as[i].ID
				seq, own := db.parseID(id)
				if !own {
					seq = foreignSeq(tx, id) // a salvaged record
				}
				r, err := getRecord(tx, seq)
				if seq == 0 || err != nil || (own && !idKindMatches(id, r.kind)) {
					return fmt.Errorf("%w: amend %s", ErrUnknownID, id)
				}
				all[i].Seq = seq
				if err := db.amendStored(tx, r, all[i], &c); err != nil {
					return fmt.Errorf("store: amend %s: %w", id, err)
				}
			}
			return c.put(tx.Bucket(bMeta))
		})
		if err != nil {
			return err
		}
	}
	if len(pending) == 0 {
		return nil
	}
	return db.journalChange(pending)
}

// Settle drops the records ids from the unsynced index and changes
// nothing else of them: records stamped on an unsynced clock of an
// earlier boot, which can never be re-dated. An id not in the index is
// left as it is; an id of no record is an error wrapping ErrUnknownID,
// and then nothing is settled.
func (db *DB) Settle(ids []string) error {
	if db.opts.ReadOnly {
		return ErrReadOnly
	}
	if len(ids) == 0 {
		return nil
	}
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	if db.shut.Load() {
		return ErrClosed
	}
	var pendSeqs []uint64
	type stored struct {
		id  string
		seq uint64 // 0: a salvaged record's id, looked up in bbolt
	}
	var inDB []stored
	db.mu.RLock()
	for _, id := range ids {
		seq, own := db.parseID(id)
		switch {
		case !own || seq <= db.appliedSeq:
			inDB = append(inDB, stored{id, seq})
		case !idKindMatches(id, db.pendingKind(seq)):
			db.mu.RUnlock()
			return fmt.Errorf("%w: settle %s", ErrUnknownID, id)
		case db.pendingUnsynced(seq):
			pendSeqs = append(pendSeqs, seq)
		}
	}
	db.mu.RUnlock()
	if len(inDB) > 0 {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			for _, s := range inDB {
				seq := s.seq
				if seq == 0 {
					seq = foreignSeq(tx, s.id)
				}
				r, err := getRecord(tx, seq)
				if seq == 0 || err != nil || (s.seq != 0 && !idKindMatches(s.id, r.kind)) {
					return fmt.Errorf("%w: settle %s", ErrUnknownID, s.id)
				}
				if err := tx.Bucket(bUnsynced).Delete(u64(seq)); err != nil {
					return fmt.Errorf("store: settle %s: %w", s.id, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if len(pendSeqs) == 0 || db.jnl == nil {
		return nil
	}
	return db.journalChange([]*entry{{Settle: pendSeqs}})
}

// journalChange makes amendments or settlements of pending records
// durable in the journal, as Append does punches (one record, one
// fdatasync), and applies them to those records. The caller holds
// applyMu: no commit reads the pending entries while they change.
func (db *DB) journalChange(batch []*entry) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return ErrClosed
	}
	payload, err := json.Marshal(batch)
	if err != nil {
		return fmt.Errorf("store: encode journal record: %w", err)
	}
	seq, err := db.jnl.append(payload)
	if err != nil {
		return fullIfNoSpace(err)
	}
	db.journalSeq = seq
	db.mu.Lock()
	defer db.mu.Unlock()
	for _, e := range batch {
		db.changePending(e)
	}
	return nil
}

// changePending applies an amendment or a settlement to the pending
// records it names. What names no pending record is returned, as an
// entry of the same form (nil if none): a journal replay stages it, and
// its commit applies it to the records in bbolt. The caller holds mu, and
// applyMu or is Open.
func (db *DB) changePending(c *entry) (rest *entry) {
	if a := c.Amend; a != nil {
		if !db.amendPending(a) {
			return c
		}
		return nil
	}
	var left []uint64
	for _, seq := range c.Settle {
		if !db.settlePending(seq) {
			left = append(left, seq)
		}
	}
	if len(left) > 0 {
		return &entry{Settle: left}
	}
	return nil
}

// amendPending amends the pending record a names, and reports whether
// there was one.
func (db *DB) amendPending(a *amendment) bool {
	for _, e := range db.pending {
		switch {
		case e.EventSeq != 0 && e.EventSeq == a.Seq:
			e.Event, e.EventAt = a.Payload, a.At
		case e.Shift != nil && e.ShiftSeq == a.Seq:
			e.Shift, e.ShiftAt = a.Payload, a.At
		default:
			continue
		}
		e.Unsynced = slices.DeleteFunc(e.Unsynced, func(s uint64) bool { return s == a.Seq })
		if db.early[a.Seq].state != stDead {
			delete(db.early, a.Seq) // unsent again
		}
		return true
	}
	return false
}

// settlePending drops a pending record from the unsynced index, and
// reports whether one with that seq is pending.
func (db *DB) settlePending(seq uint64) bool {
	for _, e := range db.pending {
		if e.EventSeq == seq || e.Shift != nil && e.ShiftSeq == seq {
			e.Unsynced = slices.DeleteFunc(e.Unsynced, func(s uint64) bool { return s == seq })
			return true
		}
	}
	return false
}

// pendingUnsynced reports whether the pending record seq is in the
// unsynced index. The caller holds mu.
func (db *DB) pendingUnsynced(seq uint64) bool {
	for _, e := range db.pending {
		if slices.Contains(e.Unsynced, seq) {
			return true
		}
	}
	return false
}

// amendStored amends a record in bbolt: unless it is a dead letter it
// leaves whichever state holds it (the done index is keyed by its old
// time: first) and becomes unsent; then its payload and time are
// replaced, its new day is indexed (its old day's range may still cover
// it: the log filters by the record's own time) and it leaves the
// unsynced index.
func (db *DB) amendStored(tx *bolt.Tx, r storedRec, a *amendment, c *counts) error {
	k := u64(r.seq)
	if tx.Bucket(bDead).Get(k) == nil {
		if err := db.setState(tx, r.seq, early{state: stNone}, c); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bRec).Put(k, db.encodeRecord(r.kind, a.At, a.Payload)); err != nil {
		return err
	}
	if err := addDay(tx.Bucket(bDay), a.At, r.seq); err != nil {
		return err
	}
	return tx.Bucket(bUnsynced).Delete(k)
}

// commitChange applies a change entry staged by a journal replay to the
// records in bbolt it names. An amendment found already in bbolt (the
// applier wrote the amended record before the journal record of the
// amendment was marked applied) is not applied again, so that a record
// delivered since is not published again; a record that is not stored
// (lost with a damaged journal record) is skipped. The caller holds
// applyMu.
func (db *DB) commitChange(tx *bolt.Tx, e *entry, c *counts) error {
	if a := e.Amend; a != nil {
		r, err := getRecord(tx, a.Seq)
		if err != nil {
			return nil
		}
		p, err := db.payload(r)
		if err != nil {
			return err
		}
		if bytes.Equal(p, a.Payload) && r.at.UnixMilli() == a.At {
			return tx.Bucket(bUnsynced).Delete(u64(a.Seq))
		}
		return db.amendStored(tx, r, a, c)
	}
	for _, seq := range e.Settle {
		if err := tx.Bucket(bUnsynced).Delete(u64(seq)); err != nil {
			return err
		}
	}
	return nil
}

// replay stages the entries of one journal record read at Open: punches
// become pending; an amendment or a settlement changes the pending
// records it names, and what it names in bbolt is staged to be applied
// with them.
func (db *DB) replay(batch []*entry) {
	for _, e := range batch {
		if e.Amend == nil && e.Settle == nil {
			db.stage([]*entry{e})
			continue
		}
		db.mu.Lock()
		rest := db.changePending(e)
		db.mu.Unlock()
		if rest != nil {
			db.stage([]*entry{rest})
		}
	}
}
