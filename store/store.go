// Package store keeps the agent's durable state in one bbolt file: the
// roster, open entries, the punch log (every decision), completed shifts
// and the outbox of records waiting for the uplink. Every state change of
// one punch is one transaction. The store knows nothing of hardware or
// MQTT.
package store

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
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
	// ErrRosterSame: the stored roster was offered again (same version,
	// same content), as the retained MQTT roster is on every reconnect.
	ErrRosterSame = errors.New("store: roster is the stored one")
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
	kJournalSeq    = []byte("journal_applied")
	kRosterHash    = []byte("roster_sha256")
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
	// ReadOnly opens without taking the writer lock: for technicians'
	// commands while the agent is stopped.
	ReadOnly bool
	// Timeout for the file lock; 0 means one second.
	Timeout time.Duration
	// NoSync disables every fsync, of the journal and of bbolt (bulk
	// loading and benchmarks of the raw cost only).
	NoSync bool
	// NoJournal applies each Update straight to bbolt in its own
	// transaction (bulk loading).
	NoJournal bool
	// ApplyDelay is how long journaled punches may wait before they are
	// applied to bbolt together; 0 means DefaultApplyDelay.
	ApplyDelay time.Duration
	// MaxPending applies at once when this many punches wait; 0 means
	// DefaultMaxPending.
	MaxPending int
}

// Defaults of Options.
const (
	DefaultApplyDelay = 5 * time.Second
	DefaultMaxPending = 256
)

// DB is the agent's database: the bbolt file, the journal, and the
// punches journaled but not yet applied to bbolt.
type DB struct {
	bolt     *bolt.DB
	jnl      *journalPair // nil with NoJournal
	opts     Options
	deviceID string
	dbID     string

	// Locks, always taken in this order. applyMu is held by the commit of
	// pending punches to bbolt, shared by readers that combine bbolt with
	// the pending punches (they must not see both halves of a commit).
	// writeMu serialises writers: Update, ReplaceRoster and the journal.
	applyMu sync.RWMutex
	writeMu sync.Mutex
	// mu guards what readers of the outbox and status share with
	// writers: pending, acked, lastUplink, and the next sequences.
	mu      sync.RWMutex
	pending []*entry // journaled, not applied, oldest first
	// acked holds outbox seqs of pending entries the uplink delivered
	// before they were applied: they never get an outbox row.
	acked      map[uint64]bool
	lastUplink time.Time
	next       seqs // last assigned sequences
	// appliedOutbox is the last outbox seq in bbolt; higher ones are
	// pending.
	appliedOutbox uint64
	journalSeq    uint64
	// journalDamage is what the journal could not read at open.
	journalDamage []journalDamage
	// overlay has the open entries changed by pending entries: nil
	// means closed.
	overlay map[string]*punch.Open
	// applyErr is the last failure of the applier, nil after a success.
	applyErr error
	closed   bool

	// The applier goroutine moves pending punches to bbolt.
	wake chan struct{} // the first punch is pending
	full chan struct{} // MaxPending punches are pending
	quit chan struct{}
	wg   sync.WaitGroup
}

// seqs are the last sequence numbers handed out.
type seqs struct{ event, shift, outbox uint64 }

// Open opens (creating if needed) the database in dir, and applies what
// the journal holds beyond what bbolt has (after a crash or power cut).
// Read-only, the journal is read but not applied.
func Open(dir string, opts Options) (*DB, error) {
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	if opts.ApplyDelay <= 0 {
		opts.ApplyDelay = DefaultApplyDelay
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
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
	db := &DB{
		bolt: b, opts: opts, deviceID: opts.DeviceID,
		acked: map[uint64]bool{}, overlay: map[string]*punch.Open{},
		wake: make(chan struct{}, 1), full: make(chan struct{}, 1), quit: make(chan struct{}),
	}
	if err := db.open(dir); err != nil {
		db.jnl.close()
		b.Close()
		return nil, err
	}
	if !opts.ReadOnly && db.jnl != nil {
		db.wg.Add(1)
		go db.applier()
	}
	return db, nil
}

func (db *DB) open(dir string) error {
	if db.opts.ReadOnly {
		err := db.bolt.View(func(tx *bolt.Tx) error {
			if m := tx.Bucket(bMeta); m != nil {
				db.dbID = string(m.Get(kDBID))
				db.journalSeq = getU64(m, kJournalSeq)
			}
			db.loadSeqs(tx)
			return nil
		})
		if err != nil {
			return err
		}
	} else if err := db.bolt.Update(db.init); err != nil {
		return err
	}
	jnl, jst, err := openJournals(dir, db.journalSeq, db.opts.ReadOnly, db.opts.NoSync)
	if err != nil {
		return err
	}
	db.jnl = jnl
	db.journalDamage = jst.Damage
	for _, r := range jst.Records {
		var batch []*entry
		if err := json.Unmarshal(r.payload, &batch); err != nil {
			return fmt.Errorf("%w: journal record %d: %v", ErrCorrupt, r.seq, err)
		}
		db.stage(batch)
		db.journalSeq = r.seq
	}
	if db.opts.ReadOnly {
		return nil
	}
	// Whatever a crash left in the journal goes into bbolt now; then the
	// journal starts over.
	if err := db.applyAll(); err != nil {
		return err
	}
	if db.opts.NoJournal {
		err := db.jnl.close()
		db.jnl = nil
		return err
	}
	return nil
}

func (db *DB) loadSeqs(tx *bolt.Tx) {
	if b := tx.Bucket(bEvents); b != nil {
		db.next.event = b.Sequence()
	}
	if b := tx.Bucket(bShifts); b != nil {
		db.next.shift = b.Sequence()
	}
	if b := tx.Bucket(bOutbox); b != nil {
		db.next.outbox = b.Sequence()
	}
	db.appliedOutbox = db.next.outbox
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
	db.journalSeq = getU64(m, kJournalSeq)
	db.loadSeqs(tx)
	return nil
}

// Close applies what is pending and closes the database. It is safe to
// call twice.
func (db *DB) Close() error {
	db.writeMu.Lock()
	if db.closed {
		db.writeMu.Unlock()
		return nil
	}
	db.closed = true
	close(db.quit)
	db.writeMu.Unlock()
	db.wg.Wait() // the applier

	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	var err error
	if !db.opts.ReadOnly {
		err = db.applyAll()
	}
	if jerr := db.jnl.close(); jerr != nil && err == nil {
		err = fmt.Errorf("store: close journal: %w", jerr)
	}
	if berr := db.bolt.Close(); berr != nil && err == nil {
		err = fmt.Errorf("store: close: %w", berr)
	}
	return err
}

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
	// ApplyError is why pending punches could not be moved to bbolt
	// the last time it was tried (they stay safe in the journal).
	ApplyError string `json:"apply_error,omitempty"`
}

// Status reads the counters kept in the meta bucket and adds the pending
// punches; it scans nothing.
func (db *DB) Status() (Status, error) {
	s := Status{DBID: db.dbID}
	db.applyMu.RLock()
	defer db.applyMu.RUnlock()
	db.mu.RLock()
	defer db.mu.RUnlock()
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
		// Entries opened or closed by pending punches.
		open := tx.Bucket(bOpen)
		for emp, o := range db.overlay {
			inDB := open != nil && open.Get([]byte(emp)) != nil
			switch {
			case o != nil && !inDB:
				s.OpenEntries++
			case o == nil && inDB:
				s.OpenEntries--
			}
		}
		return nil
	})
	for _, e := range db.pending {
		for _, seq := range e.outboxSeqs() {
			if !db.acked[seq] {
				s.Pending++
			}
		}
	}
	if db.lastUplink.After(s.LastUplink) {
		s.LastUplink = db.lastUplink
	}
	if db.applyErr != nil {
		s.ApplyError = db.applyErr.Error()
	}
	return s, err
}

// ReplaceRoster stores r in place of the current roster, in one
// transaction, if its version is higher. r must be validated.
func (db *DB) ReplaceRoster(r *roster.Roster) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	canon, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	sum := sha256.Sum256(canon)
	return db.bolt.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		cur := int64(getU64(m, kRosterVersion))
		if r.Version == cur && bytes.Equal(m.Get(kRosterHash), sum[:]) {
			return ErrRosterSame
		}
		if r.Version <= cur {
			return fmt.Errorf("%w: offered %d, stored %d", ErrRosterNotNewer, r.Version, cur)
		}
		if err := m.Put(kRosterHash, sum[:]); err != nil {
			return fmt.Errorf("store: %w", err)
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
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	return db.bolt.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		if msg == "" {
			return m.Delete(kRosterError)
		}
		return m.Put(kRosterError, []byte(msg))
	})
}

// ErrReadOnly is returned by Update on a database opened read-only.
var ErrReadOnly = errors.New("store: database is open read-only")

// Update runs fn in one transaction: fn decides punches reading the
// roster and open entries, and Records them. When fn returns nil, what it
// recorded is durable (journaled and fdatasynced) before Update returns;
// when it returns an error, nothing of it is kept.
func (db *DB) Update(fn func(*Tx) error) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.opts.ReadOnly {
		return ErrReadOnly
	}
	if db.closed {
		return bolt.ErrDatabaseNotOpen
	}
	btx, err := db.bolt.Begin(false)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	t := &Tx{db: db, btx: btx, writable: true, next: db.next, overlay: map[string]*punch.Open{}}
	err = fn(t)
	btx.Rollback()
	if err != nil || len(t.entries) == 0 {
		return err
	}
	if db.jnl != nil {
		payload, err := json.Marshal(t.entries)
		if err != nil {
			return fmt.Errorf("store: encode journal record: %w", err)
		}
		seq, err := db.jnl.append(payload)
		if err != nil {
			// The journal voids the record; its record sequences stay
			// used all the same, so that no later punch takes its ids.
			db.mu.Lock()
			db.next = t.next
			db.mu.Unlock()
			return err
		}
		db.journalSeq = seq
	}
	prev := db.next
	first := db.stage(t.entries)
	if db.jnl == nil {
		if err := db.applyAll(); err != nil {
			// Nothing of a failed Update is kept.
			db.mu.Lock()
			db.pending, db.next = nil, prev
			db.overlay = map[string]*punch.Open{}
			db.mu.Unlock()
			return err
		}
		return nil
	}
	// The punches are durable in the journal; the applier moves them to
	// bbolt without holding up the next punch.
	if first {
		poke(db.wake)
	}
	if len(db.pending) >= db.opts.MaxPending {
		poke(db.full)
	}
	return nil
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// View runs fn in a read-only transaction: lookups only.
func (db *DB) View(fn func(*Tx) error) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	return db.bolt.View(func(btx *bolt.Tx) error {
		return fn(&Tx{db: db, btx: btx, overlay: map[string]*punch.Open{}})
	})
}

// Tx is one transaction over the agent's records.
type Tx struct {
	db       *DB
	btx      *bolt.Tx
	writable bool
	next     seqs
	overlay  map[string]*punch.Open // open entries changed in this Tx
	entries  []*entry
}

// Employee finds the employee holding a credential; nil if none. A card is
// looked up under its hex and its printed decimal form.
func (t *Tx) Employee(typ, value string) (*roster.Employee, error) {
	keys := []string{roster.Key(typ, value)}
	if typ == roster.Card {
		keys = roster.CardKeys(value)
	}
	creds := t.btx.Bucket(bCreds)
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
	v := t.btx.Bucket(bEmployees).Get([]byte(id))
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
	if o, ok := t.overlay[employeeID]; ok {
		return o, nil
	}
	if o, ok := t.db.overlay[employeeID]; ok {
		return o, nil
	}
	v := t.btx.Bucket(bOpen).Get([]byte(employeeID))
	if v == nil {
		return nil, nil
	}
	var o punch.Open
	if err := json.Unmarshal(v, &o); err != nil {
		return nil, fmt.Errorf("%w: open entry of %q: %v", ErrCorrupt, employeeID, err)
	}
	return &o, nil
}

// Record stores one decided punch: its event, the open entry it creates
// or closes, the shift it completes, and their outbox rows. It assigns
// the event's and shift's ids and device id.
func (t *Tx) Record(out *punch.Outcome) error {
	if !t.writable {
		return ErrReadOnly
	}
	ev := &out.Event
	t.next.event++
	t.next.outbox++
	e := &entry{EmployeeID: ev.EmployeeID, EventSeq: t.next.event, EventOut: t.next.outbox}
	ev.DeviceID = t.db.deviceID
	ev.ID = t.db.recordID('e', e.EventSeq)
	var err error
	if e.Event, err = json.Marshal(ev); err != nil {
		return fmt.Errorf("store: encode event: %w", err)
	}
	if out.CloseOpen {
		e.Close = true
		t.overlay[ev.EmployeeID] = nil
	}
	if o := out.NewOpen; o != nil {
		o.EventID = ev.ID
		e.Open = o
		t.overlay[ev.EmployeeID] = o
	}
	if sh := out.Shift; sh != nil {
		t.next.shift++
		t.next.outbox++
		e.ShiftSeq, e.ShiftOut = t.next.shift, t.next.outbox
		sh.ID = t.db.recordID('s', e.ShiftSeq)
		sh.DeviceID = t.db.deviceID
		sh.OutEvent = ev.ID
		if e.Shift, err = json.Marshal(sh); err != nil {
			return fmt.Errorf("store: encode shift: %w", err)
		}
	}
	t.entries = append(t.entries, e)
	return nil
}

// recordID is "<device>-<db id>-<kind><seq>": assigned once, stored with
// the record and identical on every resend.
func (db *DB) recordID(kind byte, seq uint64) string {
	return db.deviceID + "-" + db.dbID + "-" + string(kind) + strconv.FormatUint(seq, 10)
}
