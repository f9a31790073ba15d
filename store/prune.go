package store

import (
	"fmt"
	"os"
	"path/filepath"
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
// records are never deleted. It returns how many records it deleted.
func (db *DB) Prune(now time.Time) (int, error) {
	if db.opts.ReadOnly {
		return 0, ErrReadOnly
	}
	horizon := now.Add(-db.opts.Retention).UnixMilli()
	total := 0
	for {
		n, more, err := db.pruneStep(horizon)
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
// may be more to delete.
func (db *DB) pruneStep(horizon int64) (n int, more bool, err error) {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		squeeze := db.pressure(tx, 80)
		recs := tx.Bucket(bRec)
		unsent, unconf, dead := tx.Bucket(bUnsent), tx.Bucket(bUnconf), tx.Bucket(bDead)
		var del [][]byte
		c := recs.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(del) == pruneBatch {
				more = true
				break
			}
			if len(v) < recHeader {
				return fmt.Errorf("%w: record %x", ErrCorrupt, k)
			}
			if recTime(v).UnixMilli() >= horizon && !squeeze {
				break // records are (nearly) in time order
			}
			if unsent.Get(k) != nil || unconf.Get(k) != nil || dead.Get(k) != nil {
				continue
			}
			del = append(del, append([]byte(nil), k...))
		}
		for _, k := range del {
			if err := recs.Delete(k); err != nil {
				return err
			}
		}
		n = len(del)
		// Day index entries wholly before the horizon.
		days := tx.Bucket(bDay)
		hday := time.UnixMilli(horizon).UTC().Format(time.DateOnly)
		var old [][]byte
		dc := days.Cursor()
		for k, _ := dc.First(); k != nil && string(k) < hday; k, _ = dc.Next() {
			old = append(old, append([]byte(nil), k...))
		}
		for _, k := range old {
			if err := days.Delete(k); err != nil {
				return err
			}
		}
		if squeeze && more {
			more = db.pressure(tx, 75)
		}
		return nil
	})
	return n, more && n > 0, err
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
