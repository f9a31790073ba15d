// Package store keeps the agent's durable state in one bbolt file: the
// roster, open entries, the punch log (every decision), completed shifts
// and the outbox of records waiting for the uplink. Every state change of
// one punch is one transaction. The store knows nothing of hardware or
// MQTT.
package store

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/roster"
)

// Sentinel errors.
var (
	// ErrRosterNotNewer: a roster whose version is not higher than the
	// stored one was offered.
	ErrRosterNotNewer = errors.New("store: roster version is not newer than the stored one")
	// ErrLocked: another process (the running agent) holds the database.
	ErrLocked = errors.New("store: database is in use by another process")
	// ErrCorrupt: a stored record could not be decoded.
	ErrCorrupt = errors.New("store: corrupt record")
)

// FileName is the database file inside the data directory.
const FileName = "punchclock.db"

// Bucket names.
var (
	bMeta      = []byte("meta")
	bEmployees = []byte("employees") // employee id -> JSON roster.Employee
	bCreds     = []byte("creds")     // roster.Key -> employee id
	bOpen      = []byte("open")      // employee id -> JSON punch.Open
	bEvents    = []byte("events")    // seq -> JSON punch.Event
	bShifts    = []byte("shifts")    // seq -> JSON punch.Shift
	bOutbox    = []byte("outbox")    // seq -> kind byte + 8-byte record seq
)

// Meta keys.
var (
	kDBID          = []byte("db_id")
	kRosterVersion = []byte("roster_version")
	kRosterSize    = []byte("roster_size")
	kRosterError   = []byte("roster_error")
	kPending       = []byte("outbox_pending")
	kOpenCount     = []byte("open_count")
	kLastUplink    = []byte("last_uplink")
)

// Outbox kinds.
const (
	KindEvent = 'e'
	KindShift = 's'
)

// Options configure Open.
type Options struct {
	// DeviceID prefixes every record id.
	DeviceID string
	// ReadOnly opens without taking the writer lock.
	ReadOnly bool
	// Timeout for the file lock; 0 means one second.
	Timeout time.Duration
	// NoSync disables fsync (benchmarks of the raw cost only).
	NoSync bool
}

// DB is the agent's database.
type DB struct {
	bolt     *bolt.DB
	deviceID string
	dbID     string
}

// Open opens (creating if needed) the database in dir.
func Open(dir string, opts Options) (*DB, error) {
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	path := filepath.Join(dir, FileName)
	b, err := bolt.Open(path, 0o640, &bolt.Options{
		Timeout:      opts.Timeout,
		ReadOnly:     opts.ReadOnly,
		FreelistType: bolt.FreelistMapType,
		NoSync:       opts.NoSync,
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db := &DB{bolt: b, deviceID: opts.DeviceID}
	if opts.ReadOnly {
		err = b.View(func(tx *bolt.Tx) error {
			if m := tx.Bucket(bMeta); m != nil {
				db.dbID = string(m.Get(kDBID))
			}
			return nil
		})
	} else {
		err = b.Update(db.init)
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

func (db *DB) init(tx *bolt.Tx) error {
	for _, name := range [][]byte{bMeta, bEmployees, bCreds, bOpen, bEvents, bShifts, bOutbox} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("store: create bucket %s: %w", name, err)
		}
	}
	m := tx.Bucket(bMeta)
	id := m.Get(kDBID)
	if id == nil {
		var r [4]byte
		if _, err := rand.Read(r[:]); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		id = []byte(hex.EncodeToString(r[:]))
		if err := m.Put(kDBID, id); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	db.dbID = string(id)
	return nil
}

// Close closes the database. It is safe to call twice.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Path is the database file.
func (db *DB) Path() string { return db.bolt.Path() }

// Bolt exposes the underlying database for consistency checks in tests
// and benchmarks of the raw commit cost.
func (db *DB) Bolt() *bolt.DB { return db.bolt }

// ID is this database's random identity, part of every record id so that
// ids stay unique even if the data directory is wiped.
func (db *DB) ID() string { return db.dbID }

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func getU64(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func addU64(b *bolt.Bucket, k []byte, delta int64) error {
	v := int64(getU64(b, k)) + delta
	if v < 0 {
		v = 0
	}
	return b.Put(k, u64(uint64(v)))
}

// Status is a snapshot for technicians and the uplink's status message.
type Status struct {
	DBID          string    `json:"db_id"`
	RosterVersion int64     `json:"roster_version"`
	RosterSize    int       `json:"roster_size"`
	RosterError   string    `json:"roster_error,omitempty"`
	Pending       int       `json:"pending"`
	OpenEntries   int       `json:"open_entries"`
	LastUplink    time.Time `json:"last_uplink,omitzero"`
}

// Status reads the counters kept in the meta bucket; it scans nothing.
func (db *DB) Status() (Status, error) {
	s := Status{DBID: db.dbID}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		if m == nil {
			return nil
		}
		s.RosterVersion = int64(getU64(m, kRosterVersion))
		s.RosterSize = int(getU64(m, kRosterSize))
		s.RosterError = string(m.Get(kRosterError))
		s.Pending = int(getU64(m, kPending))
		s.OpenEntries = int(getU64(m, kOpenCount))
		if v := m.Get(kLastUplink); v != nil {
			t, err := time.Parse(time.RFC3339Nano, string(v))
			if err == nil {
				s.LastUplink = t
			}
		}
		return nil
	})
	return s, err
}

// ReplaceRoster stores r in place of the current roster, in one
// transaction, if its version is higher. r must be validated.
func (db *DB) ReplaceRoster(r *roster.Roster) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		cur := int64(getU64(m, kRosterVersion))
		if r.Version <= cur {
			return fmt.Errorf("%w: offered %d, stored %d", ErrRosterNotNewer, r.Version, cur)
		}
		for _, name := range [][]byte{bEmployees, bCreds} {
			if err := tx.DeleteBucket(name); err != nil {
				return fmt.Errorf("store: %w", err)
			}
		}
		emps, err := tx.CreateBucket(bEmployees)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		creds, err := tx.CreateBucket(bCreds)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		for i := range r.Employees {
			e := &r.Employees[i]
			b, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("store: %w", err)
			}
			if err := emps.Put([]byte(e.ID), b); err != nil {
				return fmt.Errorf("store: %w", err)
			}
			for _, c := range e.Credentials {
				if err := creds.Put([]byte(roster.Key(c.Type, c.Value)), []byte(e.ID)); err != nil {
					return fmt.Errorf("store: %w", err)
				}
			}
		}
		if err := m.Put(kRosterVersion, u64(uint64(r.Version))); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if err := m.Put(kRosterSize, u64(uint64(len(r.Employees)))); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		return m.Delete(kRosterError)
	})
}

// SetRosterError records why the last offered roster was rejected (shown
// in status); an empty msg clears it.
func (db *DB) SetRosterError(msg string) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		if msg == "" {
			return m.Delete(kRosterError)
		}
		return m.Put(kRosterError, []byte(msg))
	})
}

// Update runs fn in one read-write transaction, committed and fsynced
// before Update returns.
func (db *DB) Update(fn func(*Tx) error) error {
	return db.bolt.Update(func(btx *bolt.Tx) error {
		return fn(db.wrap(btx))
	})
}

// View runs fn in a read-only transaction.
func (db *DB) View(fn func(*Tx) error) error {
	return db.bolt.View(func(btx *bolt.Tx) error {
		return fn(db.wrap(btx))
	})
}

func (db *DB) wrap(btx *bolt.Tx) *Tx {
	t := &Tx{db: db, tx: btx, meta: btx.Bucket(bMeta)}
	if btx.Writable() {
		for _, name := range [][]byte{bEvents, bShifts, bOutbox} {
			// Append-only buckets: fill pages fully.
			btx.Bucket(name).FillPercent = 1.0
		}
	}
	return t
}

// Tx is one transaction over the agent's records.
type Tx struct {
	db   *DB
	tx   *bolt.Tx
	meta *bolt.Bucket
}

// Employee finds the employee holding a credential; nil if none. A card is
// looked up under its hex and its printed decimal form.
func (t *Tx) Employee(typ, value string) (*roster.Employee, error) {
	keys := []string{roster.Key(typ, value)}
	if typ == roster.Card {
		keys = roster.CardKeys(value)
	}
	creds := t.tx.Bucket(bCreds)
	for _, k := range keys {
		id := creds.Get([]byte(k))
		if id == nil {
			continue
		}
		return t.EmployeeByID(string(id))
	}
	return nil, nil
}

// EmployeeByID returns an employee of the roster; nil if none.
func (t *Tx) EmployeeByID(id string) (*roster.Employee, error) {
	v := t.tx.Bucket(bEmployees).Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	var e roster.Employee
	if err := json.Unmarshal(v, &e); err != nil {
		return nil, fmt.Errorf("%w: employee %q: %v", ErrCorrupt, id, err)
	}
	return &e, nil
}

// Open returns the employee's open entry; nil if none.
func (t *Tx) Open(employeeID string) (*punch.Open, error) {
	v := t.tx.Bucket(bOpen).Get([]byte(employeeID))
	if v == nil {
		return nil, nil
	}
	var o punch.Open
	if err := json.Unmarshal(v, &o); err != nil {
		return nil, fmt.Errorf("%w: open entry of %q: %v", ErrCorrupt, employeeID, err)
	}
	return &o, nil
}

// OpenEntries calls fn for each open entry.
func (t *Tx) OpenEntries(fn func(employeeID string, o punch.Open) error) error {
	return t.tx.Bucket(bOpen).ForEach(func(k, v []byte) error {
		var o punch.Open
		if err := json.Unmarshal(v, &o); err != nil {
			return fmt.Errorf("%w: open entry of %q: %v", ErrCorrupt, k, err)
		}
		return fn(string(k), o)
	})
}

// Record stores one decided punch: its event, the open entry it creates
// or closes, the shift it completes, and their outbox rows. It assigns
// the event's and shift's ids and device id.
func (t *Tx) Record(out *punch.Outcome) error {
	ev := &out.Event
	ev.DeviceID = t.db.deviceID
	events := t.tx.Bucket(bEvents)
	eseq, err := events.NextSequence()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	ev.ID = t.db.recordID('e', eseq)
	if err := t.putJSON(events, u64(eseq), ev); err != nil {
		return err
	}
	if err := t.enqueue(KindEvent, eseq); err != nil {
		return err
	}
	if out.CloseOpen {
		if err := t.tx.Bucket(bOpen).Delete([]byte(ev.EmployeeID)); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if err := addU64(t.meta, kOpenCount, -1); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	if o := out.NewOpen; o != nil {
		o.EventID = ev.ID
		if err := t.putJSON(t.tx.Bucket(bOpen), []byte(ev.EmployeeID), o); err != nil {
			return err
		}
		if err := addU64(t.meta, kOpenCount, 1); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	if sh := out.Shift; sh != nil {
		shifts := t.tx.Bucket(bShifts)
		sseq, err := shifts.NextSequence()
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		sh.ID = t.db.recordID('s', sseq)
		sh.DeviceID = t.db.deviceID
		sh.OutEvent = ev.ID
		if err := t.putJSON(shifts, u64(sseq), sh); err != nil {
			return err
		}
		if err := t.enqueue(KindShift, sseq); err != nil {
			return err
		}
	}
	return nil
}

// recordID is "<device>-<db id>-<kind><seq>": assigned once, stored with
// the record and identical on every resend.
func (db *DB) recordID(kind byte, seq uint64) string {
	return db.deviceID + "-" + db.dbID + "-" + string(kind) + strconv.FormatUint(seq, 10)
}

func (t *Tx) putJSON(b *bolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode: %w", err)
	}
	if err := b.Put(k, data); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

func (t *Tx) enqueue(kind byte, ref uint64) error {
	ob := t.tx.Bucket(bOutbox)
	seq, err := ob.NextSequence()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var v [9]byte
	v[0] = kind
	binary.BigEndian.PutUint64(v[1:], ref)
	if err := ob.Put(u64(seq), v[:]); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return addU64(t.meta, kPending, 1)
}
