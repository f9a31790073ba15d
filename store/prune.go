package store

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// pruneBatch bounds the records one pruning transaction deletes, so that
// the uplink and the log are never held up for long.
const pruneBatch = 5000

// Prune deletes done records (delivered, or confirmed with connector
// confirmation) older than the retention horizon, oldest first, and the
// day index entries before it. Under space pressure (over 80 % of
// MaxDataBytes) it also deletes the oldest done records within the
// horizon, until the store is under 75 %. Unsent, unconfirmed and dead
// records are never deleted, nor records in the unsynced index (amend.go:
// their time is the unsynced clock's until they are re-dated). It returns
// how many records it deleted. It first deletes the remote command ids
// executed more than CommandRetention ago (commands.go).
func (db *DB) Prune(now time.Time) (int, error) {
	if db.opts.ReadOnly {
		return 0, ErrReadOnly
	}
	if _, err := db.pruneCommands(now); err != nil {
		return 0, err
	}
	horizon := now.Add(-db.opts.Retention).UnixMilli()
	total, squeezing := 0, false
	for {
		n, more, err := db.pruneStep(horizon, &squeezing)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

func (db *DB) pressure(tx *bolt.Tx, pct int64) bool {
	lim := db.opts.MaxDataBytes
	return lim > 0 && db.dataBytes(tx)*100 > lim*pct
}

// pruneStep deletes up to pruneBatch records and reports whether there
// may be more to delete. It reads the done index (records at the end of
// their road, by time), so it reads only what it deletes: undelivered
// records, however many and however old, cost nothing, and a record
// stamped in the future (a clock set wrong) holds up nothing. Under space
// pressure it deletes the oldest done records whatever their time.
func (db *DB) pruneStep(horizon int64, squeezing *bool) (n int, more bool, err error) {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		// Space freed by the step before counts now, in a new
		// transaction: squeeze from 80 % down to 75 %.
		*squeezing = db.pressure(tx, 80) || *squeezing && db.pressure(tx, 75)
		recs, doneIdx, unsynced := tx.Bucket(bRec), tx.Bucket(bDone), tx.Bucket(bUnsynced)
		var del [][]byte
		c := doneIdx.Cursor()
		for k, _ := c.First(); len(k) == 16 && len(del) < pruneBatch; k, _ = c.Next() {
			if !*squeezing && int64(binary.BigEndian.Uint64(k)) >= horizon {
				break
			}
			if unsynced.Get(k[8:]) != nil {
				// Delivered under a time of the unsynced clock
				// (1970, often): kept until re-dated or settled.
				continue
			}
			del = append(del, append([]byte(nil), k...))
		}
		for _, k := range del {
			if err := recs.Delete(k[8:]); err != nil {
				return err
			}
			if err := doneIdx.Delete(k); err != nil {
				return err
			}
		}
		n, more = len(del), len(del) == pruneBatch
		return dropEmptyDays(tx, horizon, del)
	})
	return n, more && n > 0, err
}

// dropEmptyDays deletes the day index entries before the horizon's day
// whose range of seqs holds no record any more. An entry whose range
// still holds records (of its day, or of others') stays.
//
// Records leave bbolt only here, in pruning: a day's range can become
// empty only in the step that deletes a record in it. So only the days
// whose range holds one of deleted (done index keys: time + seq) are
// looked up in the records, and a step that deletes nothing reads no
// record page. Looking up every old day instead cost one leaf page of
// the records per day at every start (with fault-around, 16 pages each:
// 11 MiB of the mmap resident with a million buffered punches). A day
// emptied while still within the horizon (squeezed under space
// pressure) keeps its entry: an empty range, which the log reads as
// nothing.
func dropEmptyDays(tx *bolt.Tx, horizon int64, deleted [][]byte) error {
	if len(deleted) == 0 {
		return nil
	}
	seqs := make([]uint64, len(deleted))
	for i, k := range deleted {
		seqs[i] = binary.BigEndian.Uint64(k[8:])
	}
	slices.Sort(seqs)
	recs, days := tx.Bucket(bRec), tx.Bucket(bDay)
	hday := time.UnixMilli(horizon).UTC().Format(time.DateOnly)
	var empty [][]byte
	dc := days.Cursor()
	for k, v := dc.First(); k != nil && string(k) < hday; k, v = dc.Next() {
		if len(v) != 16 {
			return fmt.Errorf("%w: day index %s", ErrCorrupt, k)
		}
		first, last := binary.BigEndian.Uint64(v[:8]), binary.BigEndian.Uint64(v[8:])
		if i, _ := slices.BinarySearch(seqs, first); i == len(seqs) || seqs[i] > last {
			continue // none of its records deleted now
		}
		rk, _ := recs.Cursor().Seek(v[:8])
		if rk == nil || binary.BigEndian.Uint64(rk) > last {
			empty = append(empty, append([]byte(nil), k...))
		}
	}
	for _, k := range empty {
		if err := days.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// dataBytes is what the database holds, free pages not counted, plus the
// journal files.
func (db *DB) dataBytes(tx *bolt.Tx) int64 {
	used := tx.Size() - int64(db.bolt.Stats().FreeAlloc)
	for _, name := range []string{"a", "b"} {
		if fi, err := os.Stat(filepath.Join(db.dir, journalPrefix+name)); err == nil {
			used += fi.Size()
		}
	}
	return used
}

// updateFull decides whether Append must refuse new records: when the
// store is at MaxDataBytes even after pruning under pressure. It is
// called after each commit, so that the store recovers by itself when
// records are delivered and space frees.
func (db *DB) updateFull() {
	if db.opts.ReadOnly || db.opts.MaxDataBytes <= 0 {
		return
	}
	var over bool
	check := func() {
		_ = db.bolt.View(func(tx *bolt.Tx) error {
			over = db.pressure(tx, 100)
			return nil
		})
	}
	check()
	if over {
		db.Prune(db.opts.Now())
		check()
	}
	var full error
	if over {
		full = fmt.Errorf("%w: the data reached max_data_mb (%d MB) and holds only records not yet delivered", ErrFull, db.opts.MaxDataBytes>>20)
	}
	db.mu.Lock()
	db.full = full
	db.mu.Unlock()
}

// recheckFull decides again, while Append refuses records, whether it
// must: records delivered or confirmed can be pruned under pressure. It
// must be called without applyMu held.
func (db *DB) recheckFull() {
	db.mu.RLock()
	full := db.full != nil
	db.mu.RUnlock()
	if full {
		db.updateFull()
	}
}
