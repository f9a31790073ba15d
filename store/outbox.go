package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// OutboxRow is one record waiting for the uplink.
type OutboxRow struct {
	Seq     uint64
	Kind    byte   // KindEvent or KindShift
	Payload []byte // the record's JSON, as stored and first published
}

// maxRequeue bounds how many due unconfirmed records one Peek makes
// unsent again; the rest follow on the next Peek from the start.
const maxRequeue = 4096

// Peek returns up to max unsent records with a sequence above after,
// oldest first, with their payloads copied: records in bbolt, then
// records of punches still pending in the journal. A Peek from the start
// (after 0) first makes the unconfirmed records that are due for a resend
// unsent again.
func (db *DB) Peek(after uint64, max int) ([]OutboxRow, error) {
	if after == 0 && db.opts.Confirm == ConfirmConnector && !db.opts.ReadOnly {
		if err := db.requeueDue(db.opts.Now()); err != nil {
			return nil, err
		}
	}
	var rows []OutboxRow
	db.applyMu.RLock()
	defer db.applyMu.RUnlock()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bUnsent).Cursor()
		for k, _ := c.Seek(u64(after + 1)); k != nil && len(rows) < max; k, _ = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			r, err := getRecord(tx, seq)
			if err != nil {
				return fmt.Errorf("%w: unsent record %d is missing", ErrCorrupt, seq)
			}
			p, err := db.payload(r)
			if err != nil {
				return err
			}
			rows = append(rows, OutboxRow{Seq: seq, Kind: r.kind, Payload: p})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(rows) > 0 {
		after = rows[len(rows)-1].Seq
	}
	now := db.opts.Now()
	db.mu.RLock()
	defer db.mu.RUnlock()
	for _, e := range db.pending {
		for _, r := range e.records() {
			if r.seq <= after || len(rows) >= max {
				continue
			}
			st := db.early[r.seq]
			due := st.state == stSent && !now.Before(st.at.Add(db.opts.ResendAfter))
			if st.state == stNone || due {
				rows = append(rows, OutboxRow{Seq: r.seq, Kind: r.kind, Payload: append([]byte(nil), r.payload...)})
			}
		}
	}
	return rows, nil
}

// requeueDue makes unconfirmed records sent at least ResendAfter ago
// unsent again, so that they are published again, unchanged.
func (db *DB) requeueDue(now time.Time) error {
	// Due: sent ResendAfter ago or longer; and sent "in the future", as
	// a clock corrected backwards leaves it (they would wait until then).
	ms := now.UnixMilli()
	cutoff := ms - db.opts.ResendAfter.Milliseconds()
	future := ms + time.Minute.Milliseconds()
	isDue := func(k []byte) bool {
		if len(k) != 16 {
			return false
		}
		at := int64(binary.BigEndian.Uint64(k))
		return at <= cutoff || at > future
	}
	var any bool
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bDue).Cursor()
		first, _ := c.First()
		last, _ := c.Last()
		any = isDue(first) || isDue(last)
		return nil
	}); err != nil || !any {
		return err
	}
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	return db.bolt.Update(func(tx *bolt.Tx) error {
		var c counts
		due := tx.Bucket(bDue).Cursor()
		var keys [][]byte
		for k, _ := due.First(); isDue(k) && len(keys) < maxRequeue; k, _ = due.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for k, _ := due.Last(); isDue(k) && len(keys) < maxRequeue; k, _ = due.Prev() {
			if int64(binary.BigEndian.Uint64(k)) <= cutoff {
				break // met the ones taken from the front
			}
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			seq := binary.BigEndian.Uint64(k[8:])
			was, err := delUnconf(tx, seq)
			if err != nil {
				return err
			}
			if !was {
				// A stale index entry: drop it, count nothing.
				if err := tx.Bucket(bDue).Delete(k); err != nil {
					return err
				}
				continue
			}
			if err := tx.Bucket(bUnsent).Put(u64(seq), present); err != nil {
				return err
			}
			c.unconf--
			c.unsent++
		}
		return c.put(tx.Bucket(bMeta))
	})
}

// Sent records that the broker acknowledged these records (PUBACK) at
// at. With broker confirmation that ends their road; with connector
// confirmation they become unconfirmed until a connector acks them.
// Records not unsent (already sent, confirmed or dead) are left as they
// are, but for an unconfirmed record published again, whose send time is
// renewed.
func (db *DB) Sent(seqs []uint64, at time.Time) error {
	if len(seqs) == 0 {
		return nil
	}
	if db.opts.ReadOnly {
		return ErrReadOnly
	}
	connector := db.opts.Confirm == ConfirmConnector
	defer db.recheckFull()
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	var inDB []uint64
	db.mu.Lock()
	for _, s := range seqs {
		if s <= db.appliedSeq {
			inDB = append(inDB, s)
			continue
		}
		st := db.early[s]
		switch {
		case st.state == stNone && connector, st.state == stSent:
			db.early[s] = early{state: stSent, at: at}
		case st.state == stNone:
			db.early[s] = early{state: stDone}
		}
	}
	if at.After(db.lastUplink) {
		db.lastUplink = at
	}
	db.mu.Unlock()
	if len(inDB) == 0 {
		return nil
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		unsent := tx.Bucket(bUnsent)
		var c counts
		for _, s := range inDB {
			k := u64(s)
			wasUnsent := unsent.Get(k) != nil
			if wasUnsent {
				if err := unsent.Delete(k); err != nil {
					return fmt.Errorf("store: %w", err)
				}
				c.unsent--
			}
			if !connector {
				if wasUnsent {
					if err := putDoneOf(tx, s); err != nil {
						return fmt.Errorf("store: %w", err)
					}
				}
				continue
			}
			wasUnconf, err := delUnconf(tx, s)
			if err != nil {
				return fmt.Errorf("store: %w", err)
			}
			if !wasUnsent && !wasUnconf {
				continue // confirmed or dead meanwhile
			}
			if err := putUnconf(tx, s, at); err != nil {
				return fmt.Errorf("store: %w", err)
			}
			if !wasUnconf {
				c.unconf++
			}
		}
		if err := c.put(tx.Bucket(bMeta)); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		return putLastUplink(tx.Bucket(bMeta), at)
	})
}

// Ack is a connector's answer for one record.
type Ack struct {
	ID    string
	OK    bool
	Error string
}

// Confirm applies connectors' answers: ok ends a record's road (it may
// then be pruned); not ok makes it a dead letter with the connector's
// words. It returns the ids that name no record of this store (logged by
// the caller, otherwise ignored).
func (db *DB) Confirm(acks []Ack, at time.Time) (unknown []string, err error) {
	if db.opts.ReadOnly {
		return nil, ErrReadOnly
	}
	defer db.recheckFull()
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	var inDB []Ack
	var seqs []uint64
	db.mu.Lock()
	for _, a := range acks {
		seq, ok := db.parseID(a.ID)
		switch {
		case !ok:
			inDB = append(inDB, a) // a salvaged record's id, perhaps
			seqs = append(seqs, 0)
		case seq <= db.appliedSeq:
			inDB = append(inDB, a)
			seqs = append(seqs, seq)
		case !idKindMatches(a.ID, db.pendingKind(seq)):
			unknown = append(unknown, a.ID)
		case a.OK:
			db.early[seq] = early{state: stDone}
		default:
			db.early[seq] = early{state: stDead, at: at, reason: a.Error, source: "connector"}
		}
	}
	db.mu.Unlock()
	if len(inDB) == 0 {
		return unknown, nil
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		var c counts
		for i, a := range inDB {
			seq := seqs[i]
			if seq == 0 {
				seq = foreignSeq(tx, a.ID)
			}
			r, err := getRecord(tx, seq)
			if seq == 0 || err != nil || (seqs[i] != 0 && !idKindMatches(a.ID, r.kind)) {
				unknown = append(unknown, a.ID)
				continue
			}
			var st early
			if a.OK {
				st = early{state: stDone}
			} else {
				st = early{state: stDead, at: at, reason: a.Error, source: "connector"}
			}
			if err := db.setState(tx, seq, st, &c); err != nil {
				return err
			}
		}
		return c.put(tx.Bucket(bMeta))
	})
	return unknown, err
}

// pendingKind returns the kind of a pending record, 0 if none has this
// seq. The caller holds mu.
func (db *DB) pendingKind(seq uint64) byte {
	for _, e := range db.pending {
		for _, r := range e.records() {
			if r.seq == seq {
				return r.kind
			}
		}
	}
	return 0
}

// Reject makes a record the broker will never take a dead letter, with
// the uplink's reason.
func (db *DB) Reject(seq uint64, reason string, at time.Time) error {
	if db.opts.ReadOnly {
		return ErrReadOnly
	}
	st := early{state: stDead, at: at, reason: reason, source: "uplink"}
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	db.mu.Lock()
	if seq > db.appliedSeq {
		defer db.mu.Unlock()
		if db.pendingKind(seq) == 0 {
			return fmt.Errorf("%w: seq %d", ErrUnknownID, seq)
		}
		db.early[seq] = st
		return nil
	}
	db.mu.Unlock()
	return db.bolt.Update(func(tx *bolt.Tx) error {
		if _, err := getRecord(tx, seq); err != nil {
			return err
		}
		var c counts
		if err := db.setState(tx, seq, st, &c); err != nil {
			return err
		}
		return c.put(tx.Bucket(bMeta))
	})
}

// putDoneOf puts an applied record in the done index.
func putDoneOf(tx *bolt.Tx, seq uint64) error {
	r, err := getRecord(tx, seq)
	if err != nil {
		return err
	}
	return putDone(tx, seq, r.at.UnixMilli())
}

// setState moves an applied record out of whichever state (or index)
// holds it and into st. The caller holds applyMu.
func (db *DB) setState(tx *bolt.Tx, seq uint64, st early, c *counts) error {
	k := u64(seq)
	r, err := getRecord(tx, seq)
	if err != nil {
		return err
	}
	at := r.at.UnixMilli()
	if err := delDone(tx, seq, at); err != nil {
		return err
	}
	unsent, dead := tx.Bucket(bUnsent), tx.Bucket(bDead)
	if unsent.Get(k) != nil {
		if err := unsent.Delete(k); err != nil {
			return err
		}
		c.unsent--
	}
	wasUnconf, err := delUnconf(tx, seq)
	if err != nil {
		return err
	}
	if wasUnconf {
		c.unconf--
	}
	if dead.Get(k) != nil {
		if err := dead.Delete(k); err != nil {
			return err
		}
		c.dead--
	}
	return db.putState(tx, seq, at, st, c)
}

func idKindMatches(id string, kind byte) bool {
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] < '0' || id[i] > '9' {
			return id[i] == kind
		}
	}
	return false
}

// foreignSeq finds a salvaged record by the id it had in its old
// database; 0 if none.
func foreignSeq(tx *bolt.Tx, id string) uint64 {
	v := tx.Bucket(bIDs).Get([]byte(id))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// DeadLetters calls fn for each dead letter whose time (when it became
// one) is at or after since (zero: all), oldest record first. It calls fn
// outside any transaction.
func (db *DB) DeadLetters(since time.Time, fn func(DeadLetter) error) error {
	var out []DeadLetter
	db.applyMu.RLock()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bDead).ForEach(func(k, v []byte) error {
			seq := binary.BigEndian.Uint64(k)
			var dv deadValue
			if err := json.Unmarshal(v, &dv); err != nil {
				return fmt.Errorf("%w: dead letter %d: %v", ErrCorrupt, seq, err)
			}
			if dv.At.Before(since) {
				return nil
			}
			r, err := getRecord(tx, seq)
			if err != nil {
				return fmt.Errorf("%w: dead letter %d has no record", ErrCorrupt, seq)
			}
			p, err := db.payload(r)
			if err != nil {
				return err
			}
			out = append(out, deadLetter(r.kind, p, dv))
			return nil
		})
	})
	db.mu.RLock()
	for _, e := range db.pending {
		for _, r := range e.records() {
			if st := db.early[r.seq]; st.state == stDead && !st.at.Before(since) {
				out = append(out, deadLetter(r.kind, r.payload, deadValue{Error: st.reason, At: st.at.UTC(), Source: st.source}))
			}
		}
	}
	db.mu.RUnlock()
	db.applyMu.RUnlock()
	if err != nil {
		return err
	}
	for _, d := range out {
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

func deadLetter(kind byte, payload []byte, dv deadValue) DeadLetter {
	var id struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(payload, &id) // a record without an id still shows
	return DeadLetter{
		ID: id.ID, Kind: kindName(kind), Error: dv.Error, At: dv.At, Source: dv.Source,
		Record: append(json.RawMessage(nil), payload...),
	}
}

// Replay makes dead letters unsent again, with their original ids, times
// and bytes: the ids given, or every dead letter when all is set. It
// returns the ids replayed. An id that is not a dead letter is an error
// (wrapping ErrUnknownID) and nothing is replayed.
func (db *DB) Replay(ids []string, all bool) ([]string, error) {
	if db.opts.ReadOnly {
		return nil, ErrReadOnly
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var done []string
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	// Dead letters still pending in the journal. applyMu keeps their
	// states as they are until the end.
	var pendingSeqs []uint64
	db.mu.RLock()
	for _, e := range db.pending {
		for _, r := range e.records() {
			id := db.recordID(r.kind, r.seq)
			if db.early[r.seq].state == stDead && (all || want[id]) {
				pendingSeqs = append(pendingSeqs, r.seq)
				done = append(done, id)
				delete(want, id)
			}
		}
	}
	db.mu.RUnlock()
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		var seqs []uint64
		err := tx.Bucket(bDead).ForEach(func(k, _ []byte) error {
			seq := binary.BigEndian.Uint64(k)
			r, err := getRecord(tx, seq)
			if err != nil {
				return err
			}
			p, err := db.payload(r)
			if err != nil {
				return err
			}
			id := deadLetter(r.kind, p, deadValue{}).ID
			if all || want[id] {
				seqs = append(seqs, seq)
				done = append(done, id)
				delete(want, id)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(want) > 0 {
			var missing []string
			for id := range want {
				missing = append(missing, id)
			}
			sort.Strings(missing)
			return fmt.Errorf("%w: not a dead letter: %v", ErrUnknownID, missing)
		}
		var c counts
		for _, seq := range seqs {
			if err := db.setState(tx, seq, early{state: stNone}, &c); err != nil {
				return err
			}
		}
		return c.put(tx.Bucket(bMeta))
	})
	if err != nil {
		return nil, err
	}
	db.mu.Lock()
	for _, seq := range pendingSeqs {
		delete(db.early, seq)
	}
	db.mu.Unlock()
	return done, nil
}
