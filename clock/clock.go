// Package clock is the system clock as a badge terminal can trust it.
//
// A Raspberry Pi has no real-time clock: it boots in 1970, or, with
// fake-hwclock, at the time it last saved, and runs on that until NTP
// sets the clock. A punch stamped in that window has a wall time nobody
// can pay by. So every punch gets a Stamp: the wall time, a monotonic
// reading, the kernel's boot id and whether the clock was known synced.
// Within one boot the monotonic reading dates an unsynced punch after
// the fact (Correct) and measures a shift whatever the wall clock did
// meanwhile (Elapsed); across boots nothing can, and nothing pretends to.
//
// The monotonic reading is CLOCK_BOOTTIME, not the reading Go keeps
// inside a time.Time: Go's is relative to the start of the process, so
// a stamp stored before the agent restarts could not be compared with
// one taken after, within the same boot. CLOCK_BOOTTIME counts from the
// boot and keeps counting through a suspend, which CLOCK_MONOTONIC does
// not.
package clock

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Stamp is what a terminal knows of the moment of a punch. It is stored
// with open entries, hence the short JSON keys; a record without them
// decodes as an unsynced stamp of an unknown boot, which no rule trusts.
type Stamp struct {
	// Wall is the system's wall time, without Go's monotonic reading.
	Wall time.Time `json:"wall"`
	// Mono is CLOCK_BOOTTIME: time since the boot, suspend included.
	// Zero means there was no reading.
	Mono time.Duration `json:"mono,omitempty"`
	// Boot is the kernel's boot id; empty when unknown.
	Boot string `json:"boot,omitempty"`
	// Synced says the wall clock was known to be set when stamped.
	Synced bool `json:"synced,omitempty"`
}

// Source says how a Clock decides that the wall clock is set.
type Source string

const (
	// SourceKernel: synced once the kernel says so (adjtimex reports
	// STA_UNSYNC clear and a state other than TIME_ERROR) or
	// systemd-timesyncd has created TimesyncFile. The default, and the
	// one for a Raspberry Pi.
	SourceKernel Source = "kernel"
	// SourceTrusted: the wall clock is assumed set (a VM or a CI
	// container, whose host keeps time while the kernel's flags say
	// nothing useful).
	SourceTrusted Source = "trusted"
	// SourceFloor: synced whenever the wall time is at or after the
	// floor (DefaultFloor when Options.Floor is zero). The agent's rule
	// before this package, kept for comparison: fake-hwclock defeats it.
	SourceFloor Source = "floor"
)

// TimesyncFile is created by systemd-timesyncd once it has synchronised
// the clock, and lasts until the next boot.
const TimesyncFile = "/run/systemd/timesync/synchronized"

// BootIDFile holds the kernel's boot id, a fresh random UUID each boot.
const BootIDFile = "/proc/sys/kernel/random/boot_id"

// DefaultFloor is the floor of SourceFloor when Options.Floor is zero
// (the agent's floor before this package).
var DefaultFloor = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// refreshEvery bounds how often the kernel is asked about sync while
// the clock is not yet known synced.
const refreshEvery = time.Second

// ErrSource: Options.Source is none of the known sources.
var ErrSource = errors.New("clock: unknown source")

// Options configure a Clock. The function fields are the seams tests
// drive; nil means the system's own.
type Options struct {
	// Source is how sync is detected; empty means SourceKernel.
	Source Source
	// Floor applies to every source: a wall time before it is never
	// synced, whatever the source says. Zero means no floor, except
	// under SourceFloor, where it means DefaultFloor.
	Floor time.Time
	// Wall reads the wall clock; nil means time.Now.
	Wall func() time.Time
	// Mono reads CLOCK_BOOTTIME; nil means the kernel's. A result of
	// zero or less means no reading (the stamp then has no boot).
	Mono func() time.Duration
	// Adjtimex asks the kernel whether its clock is synchronised; nil
	// means a read-only adjtimex(2), which needs no privilege.
	Adjtimex func() (synced bool, err error)
	// FileExists reports whether a file exists; nil means os.Stat.
	FileExists func(path string) bool
	// BootID is the kernel's boot id; empty means read BootIDFile.
	BootID string
	// Reference is the reference an earlier run of the agent stored
	// (see Clock.Reference). When it is a synced stamp of this boot, the
	// clock was set in this boot: the new Clock starts synced and keeps
	// it as its reference, so a restart does not forget a sync the
	// kernel may no longer report. A stamp of another boot is ignored.
	Reference Stamp
}

// Clock stamps punches. It is safe for concurrent use.
type Clock struct {
	source     Source
	floor      time.Time
	wall       func() time.Time
	mono       func() time.Duration
	adjtimex   func() (bool, error)
	fileExists func(string) bool
	boot       string

	mu        sync.Mutex
	set       bool          // the source says the clock is set (latched)
	checked   bool          // the kernel was asked at least once
	checkedAt time.Duration // Mono of the last question
	err       error         // the last question's error
	ref       Stamp
	hasRef    bool
}

// New returns a Clock reading the sources in opts, with the system's
// own for those left nil. It fails on an unknown source, or when the
// system's boot id or CLOCK_BOOTTIME cannot be read.
func New(opts Options) (*Clock, error) {
	c := &Clock{
		source:     opts.Source,
		floor:      opts.Floor,
		wall:       opts.Wall,
		mono:       opts.Mono,
		adjtimex:   opts.Adjtimex,
		fileExists: opts.FileExists,
		boot:       opts.BootID,
	}
	switch c.source {
	case "":
		c.source = SourceKernel
	case SourceKernel:
	case SourceTrusted:
		c.set = true
	case SourceFloor:
		c.set = true
		if c.floor.IsZero() {
			c.floor = DefaultFloor
		}
	default:
		return nil, fmt.Errorf("%w %q: want %q, %q or %q", ErrSource, string(opts.Source), SourceKernel, SourceTrusted, SourceFloor)
	}
	if c.wall == nil {
		c.wall = time.Now
	}
	if c.mono == nil {
		if _, err := bootTime(); err != nil {
			return nil, err
		}
		c.mono = systemMono
	}
	if c.adjtimex == nil {
		c.adjtimex = kernelSynced
	}
	if c.fileExists == nil {
		c.fileExists = fileExists
	}
	if c.boot == "" {
		id, err := readBootID()
		if err != nil {
			return nil, err
		}
		c.boot = id
	}
	if r := opts.Reference; r.Synced && r.Boot == c.boot && r.Mono > 0 {
		c.ref, c.hasRef, c.set = r, true, true
	}
	return c, nil
}

// Now stamps the present moment. It asks the kernel about sync at most
// once a second, and no more once the kernel has said yes: the answer
// is kept for the life of the Clock (see docs/clock.md for why).
func (c *Clock) Now() Stamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	mono := c.mono()
	if !c.set && (!c.checked || mono-c.checkedAt >= refreshEvery) {
		c.refresh(mono)
		mono = c.mono()
	}
	// The wall clock is read after the sync state, so a stamp that says
	// synced never carries a time from before the clock was set.
	s := Stamp{Wall: c.wall().Round(0), Mono: mono}
	if mono > 0 {
		s.Boot = c.boot
	}
	s.Synced = c.set && !s.Wall.Before(c.floor)
	if s.Synced && !c.hasRef {
		c.ref, c.hasRef = s, true
	}
	return s
}

// refresh asks the kernel whether its clock is set. Called with mu held.
func (c *Clock) refresh(mono time.Duration) {
	c.checked, c.checkedAt = true, mono
	synced, err := c.adjtimex()
	c.err = err
	if synced || c.fileExists(TimesyncFile) {
		c.set = true
	}
}

// Reference returns the first synced stamp this Clock gave, the pair of
// wall and monotonic readings that dates the unsynced stamps of the
// same boot (see Correct). ok is false until the clock has synced.
func (c *Clock) Reference() (ref Stamp, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ref, c.hasRef
}

// Err returns the error of the last question to the kernel about sync,
// nil if it was answered or never asked (another source). A Clock whose kernel cannot answer still detects sync
// through TimesyncFile; status should show the error.
func (c *Clock) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Source returns the source the Clock detects sync with.
func (c *Clock) Source() Source { return c.source }
