package store

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/punchclock/punchclock/roster"
)

// A database that bbolt cannot open, that fails bbolt's consistency check
// after an unclean stop, or that has the layout of an earlier version is
// moved aside (kept, never deleted) and a fresh one is made from what can
// be read of it:
//
//   - of this layout: every bucket as it was, the same keys, ids and
//     dictionary, so that the journal applies on top and record ids do not
//     change; a record whose delivery state cannot be read is sent again
//     (consumers dedupe by id);
//   - of the first layout (separate event, shift and outbox buckets):
//     every event and shift, byte for byte, under new sequences of a new
//     database id, their old ids kept in the ids bucket so that
//     connectors' acks still find them; those still in the old outbox are
//     unsent again; the roster and open entries come along.
//
// Status then carries an alarm naming the file kept.

// kClean is 1 in the meta bucket while the database is closed cleanly.
var kClean = []byte("clean")

// damagedName is where a damaged database is kept.
func damagedName(path string, now time.Time) string {
	return fmt.Sprintf("%s.damaged-%s", path, now.UTC().Format("20060102T150405Z"))
}

// salvage moves the database at path aside and writes a fresh one with
// what could be read of it. why says what was wrong; the returned text is
// the alarm to show.
func salvage(dir, path, deviceID string, why error, now time.Time) (string, error) {
	kept := damagedName(path, now)
	if err := os.Rename(path, kept); err != nil {
		return "", fmt.Errorf("store: move the damaged database aside: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return "", err
	}
	fresh, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return "", fmt.Errorf("store: create a fresh database: %w", err)
	}
	defer fresh.Close()
	var n int
	var rerr error
	old, err := bolt.Open(kept, 0o640, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		rerr = err
	} else {
		err = fresh.Update(func(dst *bolt.Tx) error {
			var err error
			n, rerr, err = copyReadable(old, dst, deviceID)
			return err
		})
		old.Close()
		if err != nil {
			return "", fmt.Errorf("store: salvage into a fresh database: %w", err)
		}
	}
	alarm := fmt.Sprintf("database %s at %s (%v): moved to %s, %d records salvaged into a fresh one",
		verb(why), now.UTC().Format(time.RFC3339), why, filepath.Base(kept), n)
	if rerr != nil {
		alarm += fmt.Sprintf("; what could not be read: %v", rerr)
	}
	if err := fresh.Update(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucketIfNotExists(bMeta)
		if err != nil {
			return err
		}
		if err := m.Put(kSchema, u64(schemaVersion)); err != nil {
			return err
		}
		return m.Put(kAlarm, []byte(alarm))
	}); err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	return alarm, nil
}

func verb(why error) string {
	if errors.Is(why, errOldLayout) {
		return "of an earlier version converted"
	}
	return "damaged"
}

var errOldLayout = errors.New("layout of an earlier version")

// copyReadable copies what can be read of old into dst, which is empty.
// A corrupt page can make bbolt panic: that is caught and reported as
// what could not be read, and what was copied before it stays.
func copyReadable(old *bolt.DB, dst *bolt.Tx, deviceID string) (n int, unread error, err error) {
	for _, name := range buckets {
		if _, err := dst.CreateBucketIfNotExists(name); err != nil {
			return 0, nil, err
		}
	}
	var same bool
	unread = safely(func() error {
		return old.View(func(src *bolt.Tx) error {
			m := src.Bucket(bMeta)
			same = m != nil && getU64(m, kSchema) == schemaVersion
			return nil
		})
	})
	if unread != nil {
		return 0, unread, nil
	}
	var unreadable []string
	err = old.View(func(src *bolt.Tx) error {
		if same {
			n, err = copySameLayout(src, dst, &unreadable)
			return err
		}
		if e := safely(func() error { n, err = convertFirstLayout(src, dst, deviceID); return nil }); e != nil {
			unreadable = append(unreadable, e.Error())
		}
		return err
	})
	if len(unreadable) > 0 {
		unread = errors.New(strings.Join(unreadable, "; "))
	}
	return n, unread, err
}

// safely runs fn, turning a panic of bbolt on a corrupt page into an
// error.
func safely(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bbolt: %v", p)
		}
	}()
	return fn()
}

// copySameLayout copies every readable key of every bucket, then makes
// each record unsent that is neither unconfirmed nor dead: the damage may
// have taken keys of the unsent bucket without a trace, so a record not
// known to be in another state is sent again (consumers dedupe by id).
func copySameLayout(src, dst *bolt.Tx, unreadable *[]string) (int, error) {
	for _, name := range buckets {
		sb, db := src.Bucket(name), dst.Bucket(name)
		if sb == nil {
			continue
		}
		// The sequence sits in the parent's record of the bucket: it
		// reads even when the bucket's pages do not.
		if err := db.SetSequence(sb.Sequence()); err != nil {
			return 0, err
		}
		var werr error
		if e := safely(func() error {
			werr = copyBucket(sb, db)
			return nil
		}); e != nil {
			*unreadable = append(*unreadable, fmt.Sprintf("bucket %s: %v", name, e))
		}
		if werr != nil {
			return 0, werr
		}
	}
	for _, k := range [][]byte{kClean, kAlarm} {
		if err := dst.Bucket(bMeta).Delete(k); err != nil {
			return 0, err
		}
	}
	// Lost keys may have held the highest seqs: no id is handed out
	// again.
	recs := dst.Bucket(bRec)
	last := recs.Sequence()
	if k, _ := recs.Cursor().Last(); len(k) == 8 {
		last = max(last, binary.BigEndian.Uint64(k))
	}
	if err := recs.SetSequence(last + journalSkip); err != nil {
		return 0, err
	}
	n, err := recount(dst, true)
	if err != nil {
		return 0, err
	}
	return n, rebuildIndexes(dst)
}

// rebuildIndexes makes the due index from the unconfirmed records, and
// the day and done indexes from the records, whatever was salvaged of
// them.
func rebuildIndexes(tx *bolt.Tx) error {
	for _, name := range [][]byte{bDue, bDay, bDone} {
		if err := tx.DeleteBucket(name); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	due, days := tx.Bucket(bDue), tx.Bucket(bDay)
	if err := tx.Bucket(bUnconf).ForEach(func(k, v []byte) error {
		if len(k) != 8 || len(v) != 8 {
			return nil
		}
		return due.Put(dueKey(binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(k)), nil)
	}); err != nil {
		return err
	}
	return tx.Bucket(bRec).ForEach(func(k, v []byte) error {
		if len(k) != 8 || len(v) < recHeader {
			return nil
		}
		seq, at := binary.BigEndian.Uint64(k), recTime(v).UnixMilli()
		if done(tx, k) {
			if err := putDone(tx, seq, at); err != nil {
				return err
			}
		}
		return addDay(days, at, seq)
	})
}

// done reports whether the record under k is in no state bucket: at the
// end of its road.
func done(tx *bolt.Tx, k []byte) bool {
	return tx.Bucket(bUnsent).Get(k) == nil && tx.Bucket(bUnconf).Get(k) == nil && tx.Bucket(bDead).Get(k) == nil
}

// copyBucket copies the keys of src that can be read.
func copyBucket(src, dst *bolt.Bucket) error {
	return src.ForEach(func(k, v []byte) error {
		if v == nil {
			return nil // a nested bucket: none in our layout
		}
		return dst.Put(append([]byte(nil), k...), append([]byte(nil), v...))
	})
}

// recount sets the meta counters from the buckets; with requeue, every
// record in no state bucket is made unsent. A state whose record could
// not be salvaged is dropped (the alarm says what could not be read).
func recount(tx *bolt.Tx, requeue bool) (int, error) {
	recs, unsent, unconf, dead := tx.Bucket(bRec), tx.Bucket(bUnsent), tx.Bucket(bUnconf), tx.Bucket(bDead)
	for _, b := range []*bolt.Bucket{unsent, unconf, dead, tx.Bucket(bUnsynced)} {
		var lost [][]byte
		b.ForEach(func(k, _ []byte) error {
			if recs.Get(k) == nil {
				lost = append(lost, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range lost {
			if err := b.Delete(k); err != nil {
				return 0, err
			}
		}
	}
	var n int
	err := recs.ForEach(func(k, _ []byte) error {
		n++
		if requeue && unsent.Get(k) == nil && unconf.Get(k) == nil && dead.Get(k) == nil {
			return unsent.Put(append([]byte(nil), k...), present)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	m := tx.Bucket(bMeta)
	for _, c := range []struct {
		k []byte
		b *bolt.Bucket
	}{{kUnsent, unsent}, {kUnconf, unconf}, {kDead, dead}, {kOpenCount, tx.Bucket(bOpen)}} {
		// Stats counts committed pages only: count the keys.
		var keys uint64
		c.b.ForEach(func(_, _ []byte) error { keys++; return nil })
		if err := m.Put(c.k, u64(keys)); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// convertFirstLayout reads the buckets of the first layout: events and
// shifts (seq -> JSON), outbox (seq -> kind + record seq), open,
// employees, and meta.
func convertFirstLayout(src, dst *bolt.Tx, deviceID string) (int, error) {
	m := dst.Bucket(bMeta)
	if err := m.Put(kSchema, u64(schemaVersion)); err != nil {
		return 0, err
	}
	// A new database id: the old ids are kept as they were, and new
	// records must not take them.
	var id [4]byte
	if _, err := rand.Read(id[:]); err != nil {
		return 0, err
	}
	dbID := fmt.Sprintf("%x", id)
	dict := makeDict(deviceID, dbID)
	for _, kv := range []struct{ k, v []byte }{{kDBID, []byte(dbID)}, {kDict, dict}} {
		if err := m.Put(kv.k, kv.v); err != nil {
			return 0, err
		}
	}
	c := newCodec(dict)
	db := &DB{codec: c}
	// Which old records were still waiting for the uplink.
	queued := map[string]bool{}
	if ob := src.Bucket([]byte("outbox")); ob != nil {
		ob.ForEach(func(_, v []byte) error {
			if len(v) == 9 {
				queued[string(v[0])+string(v[1:])] = true
			}
			return nil
		})
	}
	type old struct {
		kind    byte
		oldSeq  []byte
		at      time.Time
		payload []byte
		id      string
	}
	var all []old
	for _, b := range []struct {
		name string
		kind byte
	}{{"events", KindEvent}, {"shifts", KindShift}} {
		sb := src.Bucket([]byte(b.name))
		if sb == nil {
			continue
		}
		sb.ForEach(func(k, v []byte) error {
			var rec struct {
				ID  string    `json:"id"`
				At  time.Time `json:"at"`
				Out time.Time `json:"out"`
			}
			if json.Unmarshal(v, &rec) != nil || rec.ID == "" {
				return nil // unreadable: skipped, counted in nothing
			}
			at := rec.At
			if b.kind == KindShift {
				at = rec.Out
			}
			all = append(all, old{b.kind, append([]byte(nil), k...), at, append([]byte(nil), v...), rec.ID})
			return nil
		})
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	recs, days, ids, unsent := dst.Bucket(bRec), dst.Bucket(bDay), dst.Bucket(bIDs), dst.Bucket(bUnsent)
	for i, o := range all {
		seq := uint64(i + 1)
		if err := recs.Put(u64(seq), db.encodeRecord(o.kind, o.at.UnixMilli(), o.payload)); err != nil {
			return 0, err
		}
		if err := addDay(days, o.at.UnixMilli(), seq); err != nil {
			return 0, err
		}
		if err := ids.Put([]byte(o.id), u64(seq)); err != nil {
			return 0, err
		}
		if queued[string(o.kind)+string(o.oldSeq)] {
			if err := unsent.Put(u64(seq), present); err != nil {
				return 0, err
			}
		}
	}
	if err := recs.SetSequence(uint64(len(all))); err != nil {
		return 0, err
	}
	if ob := src.Bucket(bOpen); ob != nil {
		if err := copyBucket(ob, dst.Bucket(bOpen)); err != nil {
			return 0, err
		}
	}
	if err := convertRoster(src, dst); err != nil {
		return 0, err
	}
	if sm := src.Bucket(bMeta); sm != nil {
		if v := sm.Get(kLastUplink); v != nil {
			if err := m.Put(kLastUplink, append([]byte(nil), v...)); err != nil {
				return 0, err
			}
		}
	}
	n, err := recount(dst, false)
	if err != nil {
		return 0, err
	}
	return n, rebuildIndexes(dst)
}

// convertRoster rebuilds the roster of the first layout from its
// employees bucket.
func convertRoster(src, dst *bolt.Tx) error {
	eb, sm := src.Bucket([]byte("employees")), src.Bucket(bMeta)
	if eb == nil || sm == nil {
		return nil
	}
	r := &roster.Roster{Version: int64(getU64(sm, kRosterVersion))}
	eb.ForEach(func(_, v []byte) error {
		var e roster.Employee
		if json.Unmarshal(v, &e) == nil {
			r.Employees = append(r.Employees, e)
		}
		return nil
	})
	if r.Version <= 0 || r.Validate() != nil {
		return nil // the HR system sends it again
	}
	canon, sum, err := RosterDigest(r)
	if err != nil {
		return err
	}
	m := dst.Bucket(bMeta)
	chunks := (len(canon) + rosterChunk - 1) / rosterChunk
	for _, kv := range []struct{ k, v []byte }{
		{kRosterHash, sum}, {kRosterVersion, u64(uint64(r.Version))}, {kRosterSize, u64(uint64(len(r.Employees)))},
		{kRosterGen, u64(1)}, {kRosterChunks, u64(uint64(chunks))},
	} {
		if err := m.Put(kv.k, kv.v); err != nil {
			return err
		}
	}
	return putRosterChunks(dst.Bucket(bRoster), 1, canon, 0, chunks)
}

// checkDB runs bbolt's consistency check.
func checkDB(b *bolt.DB) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("consistency check: %v", p)
		}
	}()
	return b.View(func(tx *bolt.Tx) error {
		var errs []string
		for err := range tx.Check() {
			errs = append(errs, err.Error())
			if len(errs) == 5 {
				break
			}
		}
		if len(errs) > 0 {
			return errors.New("consistency check: " + strings.Join(errs, "; "))
		}
		return nil
	})
}
