// Package store keeps the agent's durable state in one bbolt file: the
// roster, open entries, every record (punch events and completed shifts)
// with its delivery state, and dead letters. A decided punch becomes
// durable with one journal append (journal.go); the applier moves it to
// bbolt later (apply.go). The store knows nothing of hardware or MQTT and
// never calls back into its caller: the agent decides, the store keeps.
//
// A record's road: unsent → (broker PUBACK) → done, or with connector
// confirmation unsent → unconfirmed → (connector ack) → done; a connector's
// rejection or a record the broker will never take makes it a dead letter,
// which a replay makes unsent again. Done records are pruned after the
// retention horizon (or earlier, oldest first, under space pressure);
// unsent, unconfirmed and dead records are never evicted.
//
// A punch stamped before the system clock synced (punch.Outcome.Unsynced)
// has its records listed in the unsynced index until they are re-dated
// or given up on (amend.go): Unsynced lists them, Amend and AmendAll
// replace a record's payload and time under the same id and make it due
// again (a consumer gets the corrected record under the id it already
// has), and Settle drops records of an earlier boot, which can never be
// re-dated, from the index. Records in the index are not pruned.
package store

import (
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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/roster"
)

// Sentinel errors.
var (
	// ErrRosterSame: the stored roster was offered again (same content),
	// as the retained MQTT roster is on every reconnect.
	ErrRosterSame = errors.New("store: roster is the stored one")
	// ErrLocked: another process (the running agent) holds the database.
	ErrLocked = errors.New("store: database is in use by another process")
	// ErrCorrupt: a stored record could not be decoded.
	ErrCorrupt = errors.New("store: corrupt record")
	// ErrReadOnly is returned by writes on a database opened read-only.
	ErrReadOnly = errors.New("store: database is open read-only")
	// ErrFull: the store cannot take more records (max_data_mb reached,
	// the disk is full, or too many punches wait for bbolt). Nothing
	// accepted before is affected; the store recovers by itself when
	// space frees.
	ErrFull = errors.New("store: storage full")
	// ErrUnknownID: no record (or no dead letter) has this id.
	ErrUnknownID = errors.New("store: unknown record id")
	// ErrClosed: the database was closed.
	ErrClosed = errors.New("store: closed")
)

// FileName is the database file inside the data directory.
const FileName = "punchclock.db"

// journalSkip is how far record sequences skip ahead after journal
// damage: more than one journal record can hold (maxBatch punches, two
// records each).
const journalSkip = 1024

// schemaVersion is the layout of the buckets below. A database of another
// layout is moved aside at Open and its records salvaged.
const schemaVersion = 2

// Bucket names.
var (
	bMeta    = []byte("meta")
	bRoster  = []byte("roster")  // u64 generation + u32 chunk -> canonical JSON of the roster, in chunks
	bOpen    = []byte("open")    // employee id -> JSON punch.Open
	bRec     = []byte("rec")     // seq -> record (record.go)
	bUnsent  = []byte("unsent")  // seq -> nothing: not yet acknowledged by the broker
	bUnconf  = []byte("unconf")  // seq -> u64 sent-at (unix ms): PUBACKed, no connector ack yet
	bDue     = []byte("due")     // u64 sent-at + u64 seq -> nothing: unconf by sent time
	bDead    = []byte("dead")    // seq -> JSON DeadLetter
	bDone    = []byte("done")    // u64 time (unix ms) + u64 seq -> nothing: done records, by time
	bDay     = []byte("day")     // "YYYY-MM-DD" (UTC) -> u64 first seq + u64 last seq
	bIDs     = []byte("ids")     // foreign record id (salvaged) -> u64 seq
	bReaders = []byte("readers") // reader name -> JSON ReaderState
	// bUnsynced: seq -> nothing: a record stamped on an unsynced clock,
	// neither amended nor settled yet (amend.go). A database written
	// before it gets it empty at Open: no layout change.
	bUnsynced = []byte("unsynced")
	bCmds     = []byte("commands") // remote command id -> u64 executed at (unix ms) + its reply (commands.go)
	buckets   = [][]byte{bMeta, bRoster, bOpen, bRec, bUnsent, bUnconf, bDue, bDead, bDone, bDay, bIDs, bReaders, bUnsynced, bCmds}
)

// present is the value of a key that only says its record is in a state
// (unsent): bbolt's Get returns nil for an empty value put in the same
// transaction, which would read as absent.
var present = []byte{1}

// Meta keys.
var (
	kSchema        = []byte("schema")
	kDBID          = []byte("db_id")
	kRosterVersion = []byte("roster_version")
	kRosterSize    = []byte("roster_size")
	kRosterError   = []byte("roster_error")
	kRosterHash    = []byte("roster_sha256")
	kUnsent        = []byte("n_unsent")
	kUnconf        = []byte("n_unconf")
	kDead          = []byte("n_dead")
	kOpenCount     = []byte("open_count")
	kLastUplink    = []byte("last_uplink")
	kJournalSeq    = []byte("journal_applied")
	kAlarm         = []byte("alarm")
)

// Record kinds.
const (
	KindEvent = 'e'
	KindShift = 's'
)

// Delivery confirmation modes.
const (
	// ConfirmBroker: the broker's PUBACK ends a record's road.
	ConfirmBroker = "broker"
	// ConfirmConnector: a record stays unconfirmed until a connector acks
	// it; unconfirmed records are published again after ResendAfter.
	ConfirmConnector = "connector"
)

// Options configure Open. Zero values take the defaults below.
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
	// NoJournal applies each Append straight to bbolt in its own
	// transaction (bulk loading).
	NoJournal bool
	// ApplyDelay is how long journaled punches may wait before they are
	// applied to bbolt together.
	ApplyDelay time.Duration
	// MaxPending applies at once when this many punches wait.
	MaxPending int
	// MaxUnapplied is how many journaled punches may wait while bbolt
	// cannot take them (a failing disk): beyond it Append fails with
	// ErrFull instead of growing the journal and memory without bound.
	MaxUnapplied int
	// Confirm is ConfirmBroker (default) or ConfirmConnector.
	Confirm string
	// ResendAfter is when an unconfirmed record is published again.
	ResendAfter time.Duration
	// Retention is how long done records are kept for the log.
	Retention time.Duration
	// MaxDataBytes bounds the database and journal; 0 means no bound.
	MaxDataBytes int64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Defaults of Options.
const (
	DefaultApplyDelay   = 5 * time.Second
	DefaultMaxPending   = 256
	DefaultMaxUnapplied = 8192
	DefaultResendAfter  = 15 * time.Minute
	DefaultRetention    = 30 * 24 * time.Hour
)

func (o *Options) setDefaults() {
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	if o.ApplyDelay <= 0 {
		o.ApplyDelay = DefaultApplyDelay
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.MaxUnapplied <= 0 {
		o.MaxUnapplied = DefaultMaxUnapplied
	}
	if o.Confirm == "" {
		o.Confirm = ConfirmBroker
	}
	if o.ResendAfter <= 0 {
		o.ResendAfter = DefaultResendAfter
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// DB is the agent's database: the bbolt file, the journal, and the
// punches journaled but not yet applied to bbolt.
type DB struct {
	bolt     *bolt.DB
	dir      string
	jnl      *journalPair // nil with NoJournal
	opts     Options
	deviceID string
	dbID     string
	codec    *codec // nil: records are stored raw

	// Locks, always taken in this order. applyMu is held by the commit of
	// pending punches to bbolt and by every change of a record's delivery
	// state (so that a record is either pending or in bbolt for it);
	// shared by readers that combine bbolt with the pending punches.
	// writeMu serialises appends to the journal.
	applyMu sync.RWMutex
	writeMu sync.Mutex
	// mu guards what readers share with writers: pending, early,
	// lastUplink, next, applyErr, full.
	mu      sync.RWMutex
	pending []*entry // journaled, not applied, oldest first
	// early holds delivery states reached by pending records before
	// they were applied.
	early      map[uint64]early
	lastUplink time.Time
	next       uint64 // last record seq assigned
	// appliedSeq is the last record seq in bbolt; higher ones are
	// pending.
	appliedSeq uint64
	journalSeq uint64
	// overlay has the open entries changed by pending entries: nil
	// means closed.
	overlay map[string]*punch.Open
	// applyErr is the last failure of the applier, nil after a success.
	applyErr error
	// full is why Append refuses new records, nil when it does not.
	full error
	// journalDamage is what openJournals found at open; journalAlarm
	// the alarm it raised (corruption, not a torn tail).
	journalDamage []journalDamage
	journalAlarm  string
	closed        bool
	// shut is closed for those that must not take writeMu to read it:
	// Amend and Settle hold applyMu, which Close takes before writeMu
	// (and Append without a journal after it).
	shut atomic.Bool

	// rosterMu serialises ReplaceRoster (it writes in several
	// transactions).
	rosterMu sync.Mutex

	// The applier goroutine moves pending punches to bbolt.
	wake chan struct{} // the first punch is pending
	kick chan struct{} // MaxPending punches are pending
	quit chan struct{}
	wg   sync.WaitGroup
}

// Open opens (creating if needed) the database in dir, and applies what
// the journal holds beyond what bbolt has (after a crash or power cut).
// Read-only, the journal is read but not applied. A failure to apply is
// not a failure to open: the punches stay in the journal, status shows
// the error, and the applier tries again.
func Open(dir string, opts Options) (*DB, error) {
	opts.setDefaults()
	if !opts.ReadOnly {
		if err := makeDir(dir, opts.NoSync); err != nil {
			return nil, err
		}
	}
	path := filepath.Join(dir, FileName)
	_, statErr := os.Stat(path)
	b, err := openBolt(path, opts)
	if errors.Is(err, ErrLocked) {
		return nil, err
	}
	var why error
	switch {
	case err != nil && opts.ReadOnly:
		return nil, err
	case err != nil:
		why = err
	case !opts.ReadOnly:
		if why = needsSalvage(b); why != nil {
			b.Close()
		}
	}
	if why != nil {
		if _, err := salvage(dir, path, opts.DeviceID, why, opts.Now()); err != nil {
			return nil, err
		}
		if b, err = openBolt(path, opts); err != nil {
			return nil, err
		}
	}
	if errors.Is(statErr, os.ErrNotExist) && !opts.ReadOnly && !opts.NoSync {
		// The new file's directory entry must be durable too.
		if err := syncDir(dir); err != nil {
			b.Close()
			return nil, err
		}
	}
	db := &DB{
		bolt: b, dir: dir, opts: opts, deviceID: opts.DeviceID,
		early: map[uint64]early{}, overlay: map[string]*punch.Open{},
		wake: make(chan struct{}, 1), kick: make(chan struct{}, 1), quit: make(chan struct{}),
	}
	if err := db.open(dir); err != nil {
		db.jnl.close()
		b.Close()
		return nil, err
	}
	if !opts.ReadOnly && db.jnl != nil {
		db.wg.Add(1)
		go db.applier()
		if len(db.pending) > 0 {
			poke(db.wake)
		}
	}
	return db, nil
}

// makeDir creates dir and the directories above it that are missing, and
// makes their entries durable: a new database and journal in a directory
// whose own entry was never synced could vanish at a power cut.
func makeDir(dir string, noSync bool) error {
	dir = filepath.Clean(dir)
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if noSync {
		return nil
	}
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

func openBolt(path string, opts Options) (*bolt.DB, error) {
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
	return b, nil
}

// needsSalvage says why an opened database must be moved aside and
// salvaged: the layout of an earlier version, or a failed consistency
// check after an unclean stop. nil: it is fine as it is.
func needsSalvage(b *bolt.DB) error {
	var old, unclean bool
	err := b.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		if m == nil {
			return nil // new
		}
		old = getU64(m, kSchema) != schemaVersion
		unclean = getU64(m, kClean) != 1
		return nil
	})
	switch {
	case err != nil:
		return err
	case old:
		return errOldLayout
	case unclean:
		return checkDB(b)
	}
	return nil
}

func (db *DB) open(dir string) error {
	if db.opts.ReadOnly {
		err := db.bolt.View(func(tx *bolt.Tx) error {
			m := tx.Bucket(bMeta)
			if m == nil {
				return nil
			}
			if v := getU64(m, kSchema); v != schemaVersion {
				return fmt.Errorf("%w: database layout %d, this agent reads %d: start the agent once to convert it", ErrCorrupt, v, schemaVersion)
			}
			db.dbID = string(m.Get(kDBID))
			if d := m.Get(kDict); d != nil {
				db.codec = newCodec(append([]byte(nil), d...))
			}
			db.journalSeq = getU64(m, kJournalSeq)
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
	var unreadable []string
	for _, r := range jst.Records {
		var batch []*entry
		if err := json.Unmarshal(r.payload, &batch); err != nil {
			// A record that passed both CRCs but does not decode was
			// written by another version: say so, keep the others.
			unreadable = append(unreadable, fmt.Sprintf("journal record %d: %v", r.seq, err))
			continue
		}
		db.replay(batch)
	}
	db.journalSeq = max(db.journalSeq, jst.Last)
	db.journalDamage = jst.Damage
	if len(jst.Damage) > 0 || len(unreadable) > 0 {
		// A lost record may have held record sequences whose ids were
		// shown: no later punch takes them.
		db.next += journalSkip
	}
	if jst.Corrupt() || len(unreadable) > 0 {
		var what []string
		for _, d := range jst.Damage {
			what = append(what, d.String())
		}
		db.journalAlarm = fmt.Sprintf("journal damaged (found at %s): %s; the readable records after it were kept",
			db.opts.Now().UTC().Format(time.RFC3339), strings.Join(append(what, unreadable...), "; "))
	}
	if db.opts.ReadOnly {
		return nil
	}
	if db.journalAlarm != "" {
		if err := db.SetAlarm(db.journalAlarm); err != nil {
			db.applyErr = err
		}
	}
	// Whatever a crash left in the journal goes into bbolt now; then the
	// journal starts over. If bbolt cannot take it, the punches stay
	// pending (and in the journal) and the applier retries.
	if err := db.applyAll(); err != nil {
		db.applyErr = err
	}
	if db.opts.NoJournal {
		if db.applyErr != nil {
			return db.applyErr
		}
		err := db.jnl.close()
		db.jnl = nil
		return err
	}
	db.updateFull()
	return nil
}

// loadSeqs reads the last record seq handed out (the bucket's sequence:
// a commit sets it to every seq handed out by then, pending ones
// included) and the last one in bbolt (its last key): records above it
// are pending in the journal.
func (db *DB) loadSeqs(tx *bolt.Tx) {
	b := tx.Bucket(bRec)
	if b == nil {
		return
	}
	db.next = b.Sequence()
	if k, _ := b.Cursor().Last(); len(k) == 8 {
		db.appliedSeq = binary.BigEndian.Uint64(k)
	}
	db.next = max(db.next, db.appliedSeq)
}

func (db *DB) init(tx *bolt.Tx) error {
	if m := tx.Bucket(bMeta); m != nil {
		if v := getU64(m, kSchema); v != schemaVersion {
			return fmt.Errorf("%w: database layout %d, this agent writes %d", ErrCorrupt, v, schemaVersion)
		}
	}
	for _, name := range buckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("store: create bucket %s: %w", name, err)
		}
	}
	m := tx.Bucket(bMeta)
	if err := m.Put(kSchema, u64(schemaVersion)); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := m.Put(kClean, u64(0)); err != nil {
		return fmt.Errorf("store: %w", err)
	}
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
	dict := m.Get(kDict)
	if dict == nil {
		dict = makeDict(db.deviceID, db.dbID)
		if err := m.Put(kDict, dict); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	db.codec = newCodec(append([]byte(nil), dict...))
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
	db.shut.Store(true)
	close(db.quit)
	db.writeMu.Unlock()
	db.wg.Wait() // the applier

	// In lock order: an Amend holds applyMu while it journals.
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	var err error
	if !db.opts.ReadOnly {
		err = db.applyAllLocked()
		if err == nil {
			err = db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put(kClean, u64(1)) })
		}
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

// ConfirmMode reports the delivery confirmation mode.
func (db *DB) ConfirmMode() string { return db.opts.Confirm }

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
	if delta == 0 {
		return nil
	}
	v := int64(getU64(b, k)) + delta
	if v < 0 {
		v = 0
	}
	return b.Put(k, u64(uint64(v)))
}

// Status is a snapshot for technicians and the uplink's status message.
type Status struct {
	DBID          string `json:"db_id"`
	RosterVersion int64  `json:"roster_version"`
	RosterSize    int    `json:"roster_size"`
	RosterError   string `json:"roster_error,omitempty"`
	// Pending counts records the broker has not acknowledged yet.
	Pending int `json:"pending"`
	// Unconfirmed counts records no connector has confirmed yet, pending
	// ones included (connector confirmation only); dead letters are not
	// counted. OldestUnconfirmed is the time of the oldest of them.
	Unconfirmed       int       `json:"unconfirmed"`
	OldestUnconfirmed time.Time `json:"oldest_unconfirmed,omitzero"`
	DeadLetters       int       `json:"dead_letters"`
	OpenEntries       int       `json:"open_entries"`
	LastUplink        time.Time `json:"last_uplink,omitzero"`
	// LastRosterRequest and LastRosterUpdate are the roster refresh
	// (commands.go).
	LastRosterRequest *RosterRequest `json:"last_roster_request,omitempty"`
	LastRosterUpdate  *RosterUpdate  `json:"last_roster_update,omitempty"`
	// DataBytes is what the database and journal hold (free pages not
	// counted); DataLimit is max_data_mb in bytes, 0 without a bound.
	DataBytes int64 `json:"data_bytes"`
	DataLimit int64 `json:"data_limit,omitempty"`
	// StorageWarning is set at 80 % and 95 % of the limit, and when the
	// store refuses new records.
	StorageWarning string `json:"storage_warning,omitempty"`
	// ApplyError is why pending punches could not be moved to bbolt
	// the last time it was tried (they stay safe in the journal).
	ApplyError string `json:"apply_error,omitempty"`
	// Alarm is damage found and survived (a corrupt journal record, a
	// database moved aside): a technician should look.
	Alarm string `json:"alarm,omitempty"`
}

// Status reads the counters kept in the meta bucket and adds the pending
// punches; it scans nothing.
func (db *DB) Status() (Status, error) {
	s := Status{DBID: db.dbID, DataLimit: db.opts.MaxDataBytes}
	db.applyMu.RLock()
	defer db.applyMu.RUnlock()
	db.mu.RLock()
	defer db.mu.RUnlock()
	var oldestSeq uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		if m == nil {
			return nil
		}
		s.RosterVersion = int64(getU64(m, kRosterVersion))
		s.RosterSize = int(getU64(m, kRosterSize))
		s.RosterError = string(m.Get(kRosterError))
		s.Alarm = string(m.Get(kAlarm))
		s.Pending = int(getU64(m, kUnsent))
		s.DeadLetters = int(getU64(m, kDead))
		if db.opts.Confirm == ConfirmConnector {
			s.Unconfirmed = s.Pending + int(getU64(m, kUnconf))
			oldestSeq = firstSeq(tx.Bucket(bUnsent), tx.Bucket(bUnconf))
			if oldestSeq != 0 {
				if r, err := getRecord(tx, oldestSeq); err == nil {
					s.OldestUnconfirmed = r.at
				}
			}
		}
		s.OpenEntries = int(getU64(m, kOpenCount))
		s.LastRosterRequest, s.LastRosterUpdate = rosterRefresh(m)
		if v := m.Get(kLastUplink); v != nil {
			if t, err := time.Parse(time.RFC3339Nano, string(v)); err == nil {
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
		s.DataBytes = db.dataBytes(tx)
		return nil
	})
	for _, e := range db.pending {
		for _, r := range e.records() {
			st := db.early[r.seq]
			switch st.state {
			case stNone:
				s.Pending++
			case stDead:
				s.DeadLetters++
				continue
			case stDone:
				continue
			}
			if db.opts.Confirm == ConfirmConnector {
				s.Unconfirmed++
				if s.OldestUnconfirmed.IsZero() {
					// Pending records are newer than those in bbolt.
					s.OldestUnconfirmed = r.time()
				}
			}
		}
	}
	if db.lastUplink.After(s.LastUplink) {
		s.LastUplink = db.lastUplink
	}
	if db.applyErr != nil {
		s.ApplyError = db.applyErr.Error()
	}
	s.StorageWarning = storageWarning(s.DataBytes, s.DataLimit, db.full)
	return s, err
}

func storageWarning(used, limit int64, full error) string {
	switch {
	case full != nil:
		return "full: new punches are refused (" + full.Error() + ")"
	case limit <= 0:
		return ""
	case used*100 >= limit*95:
		return fmt.Sprintf("95%%: %d of %d MB used", used>>20, limit>>20)
	case used*100 >= limit*80:
		return fmt.Sprintf("80%%: %d of %d MB used", used>>20, limit>>20)
	}
	return ""
}

// firstSeq returns the lowest key of the buckets, 0 if all are empty.
func firstSeq(bs ...*bolt.Bucket) uint64 {
	var min uint64
	for _, b := range bs {
		if b == nil {
			continue
		}
		if k, _ := b.Cursor().First(); len(k) == 8 {
			if s := binary.BigEndian.Uint64(k); min == 0 || s < min {
				min = s
			}
		}
	}
	return min
}

// RosterDigest is the fingerprint of a roster's content, to tell the
// stored roster offered again from another one.
func RosterDigest(r *roster.Roster) ([]byte, []byte, error) {
	canon, err := json.Marshal(r)
	if err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	sum := sha256.Sum256(canon)
	return canon, sum[:], nil
}

// The roster is stored as its canonical JSON in chunks, under a
// generation number: a new roster's chunks are written in transactions of
// their own (each commit forces at most rosterTxBytes to the disk, so a
// punch's fdatasync on the same file system never waits behind the
// write-back of a 20 MB roster), then one short transaction makes the new
// generation current and deletes the old one's chunks.
const (
	rosterChunk   = 256 << 10
	rosterTxBytes = 1 << 20
)

var (
	kRosterGen    = []byte("roster_gen")
	kRosterChunks = []byte("roster_chunks")
)

func rosterKey(gen uint64, i int) []byte {
	k := make([]byte, 12)
	binary.BigEndian.PutUint64(k, gen)
	binary.BigEndian.PutUint32(k[8:], uint32(i))
	return k
}

// putRosterChunks writes canon's chunks of generation gen into rb.
func putRosterChunks(rb *bolt.Bucket, gen uint64, canon []byte, from, to int) error {
	rb.FillPercent = 1
	for i := from; i < to; i++ {
		end := min(len(canon), (i+1)*rosterChunk)
		if err := rb.Put(rosterKey(gen, i), canon[i*rosterChunk:end]); err != nil {
			return err
		}
	}
	return nil
}

// ReplaceRoster stores r (validated, and accepted by the caller's version
// rule) in place of the current roster: the new roster is written aside
// and swapped in by one short transaction, so that a failure on the way
// leaves the old roster whole. The stored roster offered again returns
// ErrRosterSame.
func (db *DB) ReplaceRoster(r *roster.Roster) error {
	if db.opts.ReadOnly {
		return ErrReadOnly
	}
	db.rosterMu.Lock()
	defer db.rosterMu.Unlock()
	canon, sum, err := RosterDigest(r)
	if err != nil {
		return err
	}
	var gen uint64
	err = db.bolt.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		if int64(getU64(m, kRosterVersion)) == r.Version && string(m.Get(kRosterHash)) == string(sum) {
			return ErrRosterSame
		}
		gen = getU64(m, kRosterGen) + 1
		return nil
	})
	if err != nil {
		return err
	}
	chunks := (len(canon) + rosterChunk - 1) / rosterChunk
	perTx := rosterTxBytes / rosterChunk
	for from := 0; from < chunks; from += perTx {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			return putRosterChunks(tx.Bucket(bRoster), gen, canon, from, min(chunks, from+perTx))
		})
		if err != nil {
			return fmt.Errorf("store: write roster: %w", err)
		}
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		m, rb := tx.Bucket(bMeta), tx.Bucket(bRoster)
		for _, kv := range []struct{ k, v []byte }{
			{kRosterHash, sum},
			{kRosterVersion, u64(uint64(r.Version))},
			{kRosterSize, u64(uint64(len(r.Employees)))},
			{kRosterGen, u64(gen)},
			{kRosterChunks, u64(uint64(chunks))},
		} {
			if err := m.Put(kv.k, kv.v); err != nil {
				return fmt.Errorf("store: %w", err)
			}
		}
		// Every chunk of another generation: the old roster's, and
		// those of a replacement that failed on the way.
		var old [][]byte
		rb.ForEach(func(k, _ []byte) error {
			if len(k) != 12 || binary.BigEndian.Uint64(k) != gen {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range old {
			if err := rb.Delete(k); err != nil {
				return fmt.Errorf("store: %w", err)
			}
		}
		return m.Delete(kRosterError)
	})
}

// Roster returns the stored roster; nil if none was ever stored.
func (db *DB) Roster() (*roster.Roster, error) {
	var blob []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		m, rb := tx.Bucket(bMeta), tx.Bucket(bRoster)
		if m == nil || rb == nil {
			return nil
		}
		gen, n := getU64(m, kRosterGen), int(getU64(m, kRosterChunks))
		chunks := make([][]byte, 0, n)
		for i := range n {
			c := rb.Get(rosterKey(gen, i))
			if c == nil {
				return fmt.Errorf("%w: stored roster: chunk %d of %d missing", ErrCorrupt, i, n)
			}
			blob = append(blob, c...)
			chunks = append(chunks, c)
		}
		// Released after the last is read: a fault in one chunk may
		// map its neighbours' pages again (fault-around, large folios).
		for _, c := range chunks {
			releaseMapped(tx, c)
		}
		return nil
	})
	if err != nil || len(blob) == 0 {
		return nil, err
	}
	var r roster.Roster
	if err := json.Unmarshal(blob, &r); err != nil {
		return nil, fmt.Errorf("%w: stored roster: %v", ErrCorrupt, err)
	}
	return &r, nil
}

// SetRosterError records why the last offered roster was rejected (shown
// in status); an empty msg clears it.
func (db *DB) SetRosterError(msg string) error {
	return db.setMeta(kRosterError, msg)
}

// SetAlarm records damage found and survived (shown in status); an empty
// msg clears it.
func (db *DB) SetAlarm(msg string) error {
	return db.setMeta(kAlarm, msg)
}

func (db *DB) setMeta(k []byte, msg string) error {
	if db.opts.ReadOnly {
		return ErrReadOnly
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		if msg == "" {
			return m.Delete(k)
		}
		return m.Put(k, []byte(msg))
	})
}

// OpenEntries returns every employee's open entry, pending punches
// included: the agent keeps them in memory from then on.
func (db *DB) OpenEntries() (map[string]*punch.Open, error) {
	out := map[string]*punch.Open{}
	db.applyMu.RLock()
	defer db.applyMu.RUnlock()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bOpen).ForEach(func(k, v []byte) error {
			var o punch.Open
			if err := json.Unmarshal(v, &o); err != nil {
				return fmt.Errorf("%w: open entry of %q: %v", ErrCorrupt, k, err)
			}
			out[string(k)] = &o
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	for emp, o := range db.overlay {
		if o == nil {
			delete(out, emp)
		} else {
			c := *o
			out[emp] = &c
		}
	}
	return out, nil
}

// recordID is "<device>-<db id>-<kind><seq>": assigned once, stored with
// the record and identical on every resend.
func (db *DB) recordID(kind byte, seq uint64) string {
	return db.deviceID + "-" + db.dbID + "-" + string(kind) + strconv.FormatUint(seq, 10)
}

// parseID returns the seq of one of this database's record ids.
func (db *DB) parseID(id string) (uint64, bool) {
	rest, ok := strings.CutPrefix(id, db.deviceID+"-"+db.dbID+"-")
	if !ok || len(rest) < 2 || (rest[0] != KindEvent && rest[0] != KindShift) {
		return 0, false
	}
	seq, err := strconv.ParseUint(rest[1:], 10, 64)
	return seq, err == nil && seq > 0
}
