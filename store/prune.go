package store

import (
	"encoding/binary"
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
// may be more to delete. Past the horizon it goes by the day index, so
// that a record stamped in the future (a clock set wrong, then corrected)
// holds up nothing: each day before the horizon day is scanned over its
// range of seqs, its done records deleted, and its index entry dropped
// once it has no record left (or narrowed to those kept). Under space
// pressure it deletes the oldest done records whatever their day.
func (db *DB) pruneStep(horizon int64, squeezing *bool) (n int, more bool, err error) {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		// Space freed by the step before counts now, in a new
		// transaction: squeeze from 80 % down to 75 %.
		*squeezing = db.pressure(tx, 80) || *squeezing && db.pressure(tx, 75)
		if *squeezing {
			n, more, err = db.squeeze(tx)
			return err
		}
		n, more, err = db.pruneDays(tx, horizon)
		return err
	})
	return n, more && n > 0, err
}

// done reports whether the record under k has ended its road.
func done(tx *bolt.Tx, k []byte) bool {
	return tx.Bucket(bUnsent).Get(k) == nil && tx.Bucket(bUnconf).Get(k) == nil && tx.Bucket(bDead).Get(k) == nil
}

func (db *DB) pruneDays(tx *bolt.Tx, horizon int64) (n int, more bool, err error) {
	recs, days := tx.Bucket(bRec), tx.Bucket(bDay)
	hday := time.UnixMilli(horizon).UTC().Format(time.DateOnly)
	type dayRange struct {
		day         string
		first, last uint64
	}
	var todo []dayRange
	dc := days.Cursor()
	for k, v := dc.First(); k != nil && string(k) < hday; k, v = dc.Next() {
		if len(v) != 16 {
			return 0, false, fmt.Errorf("%w: day index %s", ErrCorrupt, k)
		}
		todo = append(todo, dayRange{string(k), binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])})
	}
	for _, d := range todo {
		var del [][]byte
		var keptFirst, keptLast uint64
		c := recs.Cursor()
		for k, v := c.Seek(u64(d.first)); k != nil && binary.BigEndian.Uint64(k) <= d.last; k, v = c.Next() {
			if len(v) < recHeader {
				return 0, false, fmt.Errorf("%w: record %x", ErrCorrupt, k)
			}
			at := recTime(v)
			if at.UTC().Format(time.DateOnly) != d.day {
				continue // another day's record in this range
			}
			if len(del) < pruneBatch-n && at.UnixMilli() < horizon && done(tx, k) {
				del = append(del, append([]byte(nil), k...))
				continue
			}
			seq := binary.BigEndian.Uint64(k)
			if keptFirst == 0 {
				keptFirst = seq
			}
			keptLast = seq
		}
		for _, k := range del {
			if err := recs.Delete(k); err != nil {
				return 0, false, err
			}
		}
		n += len(del)
		switch {
		case keptFirst == 0:
			err = days.Delete([]byte(d.day))
		default:
			v := make([]byte, 16)
			binary.BigEndian.PutUint64(v, keptFirst)
			binary.BigEndian.PutUint64(v[8:], keptLast)
			err = days.Put([]byte(d.day), v)
		}
		if err != nil {
			return 0, false, err
		}
		if n >= pruneBatch {
			return n, true, nil
		}
	}
	return n, false, nil
}

// squeeze deletes up to pruneBatch of the oldest done records, and
// reports whether there may be more.
func (db *DB) squeeze(tx *bolt.Tx) (n int, more bool, err error) {
	recs := tx.Bucket(bRec)
	var del [][]byte
	c := recs.Cursor()
	for k, _ := c.First(); k != nil && len(del) < pruneBatch; k, _ = c.Next() {
		if done(tx, k) {
			del = append(del, append([]byte(nil), k...))
		}
	}
	for _, k := range del {
		if err := recs.Delete(k); err != nil {
			return 0, false, err
		}
	}
	return len(del), len(del) == pruneBatch, nil
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
