// Package keypad is the driver for a matrix keypad (4 rows × 3 or 4
// columns) on GPIO lines: it drives one row low at a time, reads the
// columns (inputs with pull-ups: a pressed key pulls its column to the
// driven row), debounces each key and reports each press once as a
// reader.TypeKey read. The agent assembles PINs.
//
// Scanning is paced so that an idle keypad costs almost nothing: while
// no key is down, every row is held low and one read of the columns per
// IdlePeriod tells that none is pressed; only then are the rows scanned
// one by one, every ActivePeriod, until every key is released again.
//
// The debouncer (debounce.go) is pure; the scan goes through
// reader/gpioline (periph's character device, or the simulator's chip,
// which this package's Twin serves).
package keypad

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/gpioline"
)

// Driver is the `driver = "keypad"` of [[readers]].
var Driver = reader.Driver{
	Name:      "keypad",
	Doc:       "matrix keypad, 4 rows × 3 or 4 columns, on GPIO lines (rows, cols)",
	NewConfig: func() reader.Config { return &Config{} },
}

// Scan pacing and reopening.
const (
	// IdlePeriod: how often an idle pad is checked (one read of the
	// columns with every row low).
	IdlePeriod = 20 * time.Millisecond
	// ActivePeriod: how often the rows are scanned while a key is down
	// or settling; Debounce spans several scans.
	ActivePeriod      = 5 * time.Millisecond
	DefaultMinBackoff = reader.MinBackoff
	DefaultMaxBackoff = reader.MaxBackoff
)

// Config is a keypad's table in [[readers]].
type Config struct {
	Rows []string `toml:"rows"` // the 4 row lines, top row first, e.g. ["GPIO5", "GPIO6", "GPIO13", "GPIO19"]
	Cols []string `toml:"cols"` // the 3 or 4 column lines, left first
	// Chip: "" for /dev/gpiochip0, "/dev/gpiochipN", "rpio" (go-rpio,
	// Raspberry Pi 1 to 4), or "sim:PATH".
	Chip string `toml:"chip"`
	// Layout: the key labels row by row, one character a key; default
	// Layout4x3 or Layout4x4 by the number of columns.
	Layout []string `toml:"layout"`
}

// Validate checks the keys.
func (c *Config) Validate() error {
	var errs []error
	seen := make(map[string]string)
	lines := func(key string, ls []string, want string, ok bool) {
		if !ok {
			errs = append(errs, reader.BadKey(key, "%d lines, want %s", len(ls), want))
		}
		for _, l := range ls {
			switch {
			case !gpioline.ValidLineName(l):
				errs = append(errs, reader.BadKey(key, "%q is not a GPIO line name", l))
			case seen[l] != "":
				errs = append(errs, reader.BadKey(key, "%q is in %s too", l, seen[l]))
			default:
				seen[l] = key
			}
		}
	}
	lines("rows", c.Rows, "4", len(c.Rows) == 4)
	lines("cols", c.Cols, "3 or 4", len(c.Cols) == 3 || len(c.Cols) == 4)
	if _, err := gpioline.ParseSpec(c.Chip); err != nil {
		errs = append(errs, reader.BadKey("chip", "%v", err))
	}
	if c.Layout != nil {
		ok := len(c.Layout) == len(c.Rows)
		for _, row := range c.Layout {
			ok = ok && len(row) == len(c.Cols) && strings.Trim(row, validLabels) == ""
		}
		if !ok {
			errs = append(errs, reader.BadKey("layout", "want %d strings of %d labels from %q, one per row", len(c.Rows), len(c.Cols), validLabels))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) labels() []string {
	layout := c.Layout
	if layout == nil {
		layout = Layout4x3
		if len(c.Cols) == 4 {
			layout = Layout4x4
		}
	}
	var out []string
	for _, row := range layout {
		for _, l := range row {
			out = append(out, string(l))
		}
	}
	return out
}

// Claims names every row and column on its chip, and a simulated chip's
// socket, which this reader's twin owns.
func (c *Config) Claims() []string {
	spec, err := gpioline.ParseSpec(c.Chip)
	if err != nil {
		return nil
	}
	var claims []string
	for _, l := range append(append([]string(nil), c.Rows...), c.Cols...) {
		claims = append(claims, spec.Claim(l))
	}
	if spec.Sim {
		claims = append(claims, spec.String())
	}
	return claims
}

// New builds the reader.
func (c *Config) New(env reader.Env) (reader.Reader, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	spec, _ := gpioline.ParseSpec(c.Chip)
	return New(Options{Name: env.Name, Chip: spec, Rows: c.Rows, Cols: c.Cols, Labels: c.labels(), Now: env.Now, Logger: env.Logger}), nil
}

// Twin builds the simulator's keypad at the `chip = "sim:PATH"` socket.
func (c *Config) Twin(env reader.TwinEnv) (reader.Twin, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	spec, _ := gpioline.ParseSpec(c.Chip)
	if !spec.Sim {
		return nil, fmt.Errorf("keypad: reader %q: a twin needs chip = \"sim:PATH\", not %q: %w", env.Name, c.Chip, reader.ErrConfig)
	}
	return NewTwin(spec.Path, c.Rows, c.Cols, c.labels())
}

// Options configure a Reader. Name, Chip, Rows, Cols and Labels
// (len(Rows)×len(Cols), row by row) are required.
type Options struct {
	Name       string
	Chip       gpioline.Spec
	Rows, Cols []string
	Labels     []string
	Now        func() time.Time // default time.Now
	Logger     *slog.Logger     // default silent
	Open       func(gpioline.Spec) (gpioline.Chip, error)
	// Reopen backoff; defaults DefaultMinBackoff, DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
}

// A Reader is one matrix keypad. It implements reader.Reader and
// reader.StatsReader.
type Reader struct {
	o       Options
	log     *slog.Logger
	running atomic.Bool
	epoch   time.Time

	// Owned by Run's goroutine.
	deb Debouncer

	queue reader.Queue

	reads, garbage, reopens, scans atomic.Uint64
	open                           atomic.Bool
}

var (
	_ reader.Reader      = (*Reader)(nil)
	_ reader.StatsReader = (*Reader)(nil)
)

// New returns a Reader with defaults filled in.
func New(o Options) *Reader {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Open == nil {
		o.Open = gpioline.Open
	}
	return &Reader{o: o, log: o.Logger.With("reader", o.Name, "driver", "keypad")}
}

// Name returns the configured reader name.
func (r *Reader) Name() string { return r.o.Name }

// Stats returns the counters; safe from any goroutine. A keypad has no
// frames: Frames and Reads both count debounced presses; Garbage counts
// bounces (raw changes that did not last Debounce).
func (r *Reader) Stats() reader.Stats {
	n := r.reads.Load()
	return reader.Stats{Frames: n, Reads: n, Garbage: r.garbage.Load(), Reopens: r.reopens.Load()}
}

// Scans returns how many times the columns were read: for measuring the
// idle cost.
func (r *Reader) Scans() uint64 { return r.scans.Load() }

var _ reader.Stater = (*Reader)(nil)

// State implements reader.Stater: online while its chip is open (the
// reader itself sends only when used, so that is all the driver knows).
func (r *Reader) State() string {
	if r.open.Load() {
		return reader.StateOnline
	}
	return reader.StateOffline
}

// Run scans the keypad and sends one Read per key press until ctx is
// done, then returns nil. A chip that cannot be opened or fails is
// reopened with backoff. Presses wait in a reader.Queue that a goroutine
// Run owns hands to out, so a slow consumer never delays the scan.
func (r *Reader) Run(ctx context.Context, out chan<- reader.Read) error {
	if r.o.Name == "" || r.o.Chip.Path == "" || len(r.o.Rows) == 0 || len(r.o.Cols) == 0 ||
		len(r.o.Labels) != len(r.o.Rows)*len(r.o.Cols) || len(r.o.Labels) > MaxKeys {
		return fmt.Errorf("keypad: Name, Chip, Rows, Cols and their Labels are required: %w", reader.ErrConfig)
	}
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("keypad: reader %q: Run is already running: %w", r.o.Name, reader.ErrConfig)
	}
	defer r.running.Store(false)
	r.epoch = r.o.Now()

	reader.Reopen(ctx, out, &r.queue, &reader.Backoff{Min: r.o.MinBackoff, Max: r.o.MaxBackoff}, reader.Wait, r.log, "chip", r.session)
	return nil
}

// matrix is a session's line requests.
type matrix struct {
	rows []gpioline.Out
	cols gpioline.Inputs
	low  []bool // rows driven low now
}

// drive makes exactly the rows in want low, touching only those that
// change.
func (m *matrix) drive(want func(row int) bool) error {
	for i, o := range m.rows {
		if w := want(i); w != m.low[i] {
			if err := o.Set(!w); err != nil {
				return err
			}
			m.low[i] = w
		}
	}
	return nil
}

func (r *Reader) session(ctx context.Context, reopen bool) (scanned bool, err error) {
	chip, err := r.o.Open(r.o.Chip)
	if err != nil {
		return false, fmt.Errorf("keypad: reader %q: open %s: %w", r.o.Name, r.o.Chip, err)
	}
	defer chip.Close()
	m := &matrix{low: make([]bool, len(r.o.Rows))}
	for _, row := range r.o.Rows {
		o, err := chip.Output(row)
		if err != nil {
			return false, fmt.Errorf("keypad: reader %q: row: %w", r.o.Name, err)
		}
		m.rows = append(m.rows, o)
	}
	if m.cols, err = chip.Inputs(r.o.Cols); err != nil {
		return false, fmt.Errorf("keypad: reader %q: cols: %w", r.o.Name, err)
	}
	if reopen {
		r.reopens.Add(1)
		r.log.Info("chip reopened")
	}
	r.open.Store(true)
	defer r.open.Store(false)
	r.deb.Reset()

	tick := time.NewTimer(0)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return scanned, ctx.Err()
		case <-tick.C:
			if err := r.scan(m); err != nil {
				return scanned, fmt.Errorf("keypad: reader %q: scan: %w", r.o.Name, err)
			}
			scanned = true
			if r.deb.Busy() {
				tick.Reset(ActivePeriod)
			} else {
				tick.Reset(IdlePeriod)
			}
		}
	}
}

// scan samples the matrix once and feeds the debouncer. At rest it
// reads the columns with every row low: all high means no key is down,
// one read. Otherwise it drives the rows one at a time, then all low
// again for the next check at rest.
func (r *Reader) scan(m *matrix) error {
	ncols := len(r.o.Cols)
	allHigh := uint64(1)<<ncols - 1
	var down uint64
	if !r.deb.Busy() {
		if err := m.drive(func(int) bool { return true }); err != nil {
			return err
		}
		v, err := m.cols.Read()
		r.scans.Add(1)
		if err != nil {
			return err
		}
		if v&allHigh == allHigh {
			r.sample(0)
			return nil
		}
	}
	for i := range m.rows {
		if err := m.drive(func(row int) bool { return row == i }); err != nil {
			return err
		}
		v, err := m.cols.Read()
		r.scans.Add(1)
		if err != nil {
			return err
		}
		low := ^v & allHigh
		down |= low << (i * ncols)
	}
	if err := m.drive(func(int) bool { return true }); err != nil {
		return err
	}
	r.sample(down)
	return nil
}

func (r *Reader) sample(down uint64) {
	now := r.o.Now()
	r.deb.Sample(now.Sub(r.epoch), down, func(k int) {
		r.reads.Add(1)
		if !r.queue.Push(reader.Read{Reader: r.o.Name, Type: reader.TypeKey, Value: r.o.Labels[k], At: now}) {
			r.log.Warn("consumer stalled: oldest read dropped", "queued", r.queue.Len())
		}
	})
	r.garbage.Store(r.deb.Bounces())
}
