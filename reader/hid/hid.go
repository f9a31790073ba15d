// Package hid is the driver for USB keyboard-wedge card readers: readers
// that present themselves to the host as a keyboard and type what they
// read (most type an EM card's ten-digit decimal) followed by Enter. The
// driver reads such a reader through Linux evdev, its
// /dev/input/by-id/...-event-kbd node, grabbed exclusively so that the
// console and any login prompt do not also receive the digits, and turns
// each value typed into one reader.Read of a card in FormatTyped.
//
// The decoding of the struct input_event stream (decoder.go) is pure and
// kept apart from the device I/O (device.go). The simulator's twin
// (twin.go) is a FIFO carrying the same records, which the driver opens
// in place of the evdev node.
package hid

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/punchclock/punchclock/reader"
)

// Driver is the hid driver, `driver = "hid"`.
var Driver = reader.Driver{
	Name:      "hid",
	Doc:       "USB keyboard-wedge card reader through Linux evdev (device = /dev/input/by-id/...)",
	NewConfig: func() reader.Config { return &Config{} },
}

// Config is a hid reader's table in [[readers]].
type Config struct {
	// Device is the reader's evdev node. Use its /dev/input/by-id/
	// link, which names the reader and survives replugging; eventN
	// numbers change. In the simulator it is where the twin makes its
	// FIFO.
	Device string `toml:"device"`
}

var _ reader.Config = (*Config)(nil)

// Validate checks the keys.
func (c *Config) Validate() error {
	switch {
	case c.Device == "":
		return reader.BadKey("device", "is required: the reader's /dev/input/by-id/... path")
	case !filepath.IsAbs(c.Device):
		return reader.BadKey("device", "%q is not an absolute path", c.Device)
	}
	return nil
}

// Claims returns the device path.
func (c *Config) Claims() []string { return []string{filepath.Clean(c.Device)} }

// New builds the reader on the configured device.
func (c *Config) New(env reader.Env) (reader.Reader, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("hid: reader %q: %w", env.Name, err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	path := c.Device
	return NewReader(Options{
		Name:         env.Name,
		Open:         func() (Device, error) { return OpenDevice(path, log) },
		RepeatWindow: env.RepeatWindow,
		Now:          env.Now,
		Logger:       log,
	}), nil
}

// Twin builds the simulator's wedge reader: a FIFO at the configured
// device path.
func (c *Config) Twin(env reader.TwinEnv) (reader.Twin, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("hid: reader %q: %w", env.Name, err)
	}
	return NewTwin(env.Name, c.Device, env.Logger)
}

// Device is what the driver reads input_event records from: an evdev
// node, a FIFO or a socket. A Read error, io.EOF included, means the
// device is gone (an unplugged reader's node fails with ENODEV; a FIFO
// whose writer left reads EOF). Close must make a pending Read return.
type Device = io.ReadCloser

// Defaults for Options fields left zero.
const (
	DefaultRepeatWindow = 500 * time.Millisecond
	DefaultMinBackoff   = reader.MinBackoff
	DefaultMaxBackoff   = reader.MaxBackoff
)

// Options configure a Reader. Only Name and Open are required.
type Options struct {
	Name string                 // reader name, copied into every Read
	Open func() (Device, error) // opens the device; called again after each failure

	// RepeatWindow folds a value typed again into one presentation: the
	// same value less than RepeatWindow after its previous typing is a
	// repeat, and the window slides with each repeat (readers that
	// retype while the card stays in the field). Zero means
	// DefaultRepeatWindow.
	RepeatWindow time.Duration

	// Now stamps Read.At when a value's Enter is decoded. Default
	// time.Now.
	Now func() time.Time
	// Wait waits d or until ctx is done, returning ctx.Err() then. It
	// paces reopening. Default: reader.Wait.
	Wait func(ctx context.Context, d time.Duration) error
	// Logger receives device failures and reopens; it should carry
	// reader= and driver=, as reader.Env's does. Default: silent.
	Logger *slog.Logger

	// Reopen backoff: MinBackoff after the first failure, doubling up
	// to MaxBackoff; a device that delivered data starts again at
	// MinBackoff. Defaults DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
}

// A Reader is one keyboard-wedge reader. It implements reader.Reader and
// reader.StatsReader.
type Reader struct {
	opt     Options
	log     *slog.Logger
	running atomic.Bool

	// Owned by the pump goroutine while a device is open, by Run between.
	dec     Decoder
	repeats reader.Repeats

	frames, reads, bad, garbage, reopens atomic.Uint64
	open                                 atomic.Bool
}

var (
	_ reader.Reader      = (*Reader)(nil)
	_ reader.StatsReader = (*Reader)(nil)
)

// NewReader returns a Reader for opt with defaults filled in. Errors in
// opt are reported by Run.
func NewReader(opt Options) *Reader {
	if opt.RepeatWindow == 0 {
		opt.RepeatWindow = DefaultRepeatWindow
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Wait == nil {
		opt.Wait = reader.Wait
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.MinBackoff == 0 {
		opt.MinBackoff = DefaultMinBackoff
	}
	if opt.MaxBackoff == 0 {
		opt.MaxBackoff = DefaultMaxBackoff
	}
	return &Reader{
		opt:     opt,
		log:     opt.Logger,
		repeats: reader.Repeats{Window: opt.RepeatWindow},
	}
}

func (o *Options) validate() error {
	switch {
	case o.Name == "":
		return fmt.Errorf("hid: %w: Name is empty", reader.ErrConfig)
	case o.Open == nil:
		return fmt.Errorf("hid: %w: reader %q: Open is nil", reader.ErrConfig, o.Name)
	case o.RepeatWindow < 0:
		return fmt.Errorf("hid: %w: reader %q: RepeatWindow %v is negative", reader.ErrConfig, o.Name, o.RepeatWindow)
	case o.MinBackoff <= 0 || o.MaxBackoff < o.MinBackoff:
		return fmt.Errorf("hid: %w: reader %q: backoff %v..%v is not a positive range", reader.ErrConfig, o.Name, o.MinBackoff, o.MaxBackoff)
	}
	return nil
}

// Name returns the configured reader name.
func (r *Reader) Name() string { return r.opt.Name }

// Stats returns the driver's counters; safe from any goroutine. Frames
// are values decoded, Reads presentations (repeats folded), BadFrames
// values discarded, Garbage key presses discarded with them (and bytes
// skipped to realign records), Reopens devices reopened after a failure.
func (r *Reader) Stats() reader.Stats {
	return reader.Stats{
		Frames:    r.frames.Load(),
		Reads:     r.reads.Load(),
		BadFrames: r.bad.Load(),
		Garbage:   r.garbage.Load(),
		Reopens:   r.reopens.Load(),
	}
}

var _ reader.Stater = (*Reader)(nil)

// State implements reader.Stater: online while its device is open (the
// reader itself sends only when used, so that is all the driver knows).
func (r *Reader) State() string {
	if r.open.Load() {
		return reader.StateOnline
	}
	return reader.StateOffline
}

// Run opens the device and sends one Read per value typed on out until
// ctx is done, then returns nil. A device that fails to open or fails
// while reading (unplugged) is closed and reopened with backoff; Run does
// not return for that. It returns an error wrapping reader.ErrConfig only
// for unusable Options, or if Run is already running. It returns promptly
// when ctx is done and leaves no goroutine behind.
func (r *Reader) Run(ctx context.Context, out chan<- reader.Read) error {
	if err := r.opt.validate(); err != nil {
		return err
	}
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("hid: %w: reader %q: Run is already running", reader.ErrConfig, r.opt.Name)
	}
	defer r.running.Store(false)

	// One queue a Run: what was decoded before a device failed still
	// reaches out while the device is reopened, and nothing outlives Run.
	ctx, cancel := context.WithCancel(ctx)
	var (
		q  reader.Queue
		wg sync.WaitGroup
	)
	wg.Go(func() { q.Deliver(ctx, out) })
	defer wg.Wait()
	defer cancel()

	backoff := reader.Backoff{Min: r.opt.MinBackoff, Max: r.opt.MaxBackoff}
	failed, failing := false, false
	for ctx.Err() == nil {
		// Errors are only logged, by a logger that names the reader.
		dev, err := r.opt.Open()
		if err == nil {
			if failed {
				r.reopens.Add(1)
				r.log.Info("device reopened")
			}
			failing = false
			var gotData bool
			r.open.Store(true)
			gotData, err = r.serve(ctx, dev, &q)
			r.open.Store(false)
			if ctx.Err() != nil {
				return nil
			}
			if gotData {
				backoff.Reset()
			}
		}
		failed = true
		r.dec.Reset()
		r.publish()
		wait := backoff.Next()
		// Loud when a working device fails, quiet while it stays away
		// (an unplugged reader retries every MaxBackoff).
		if failing {
			r.log.Debug("device still unavailable", "err", err, "retry_in", wait)
		} else {
			r.log.Warn("device failed", "err", err, "retry_in", wait)
		}
		failing = true
		if r.opt.Wait(ctx, wait) != nil {
			return nil
		}
	}
	return nil
}

// errNoProgress: a Read returned no bytes and no error, which no file
// does; taken as a failed device rather than spun on.
var errNoProgress = errors.New("read returned nothing")

// serve reads and decodes dev until it fails or ctx is done, and closes
// it. gotData reports whether any byte arrived.
//
// Reading never waits for the consumer: a pump goroutine reads and
// decodes as events arrive and pushes the Reads on q, which Run's
// goroutine hands to out. A reader typing into a full evdev buffer would
// lose events (SYN_DROPPED), and so values, while the agent was busy.
func (r *Reader) serve(ctx context.Context, dev Device, q *reader.Queue) (gotData bool, err error) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		if err := dev.Close(); err != nil {
			r.log.Debug("close device", "err", err)
		}
	})

	var (
		data    atomic.Bool
		pumpErr = make(chan error, 1)
	)
	wg.Go(func() { pumpErr <- r.pump(dev, q, &data) })
	defer func() {
		close(stop)
		wg.Wait()
		gotData = data.Load()
	}()

	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case err := <-pumpErr:
		return false, err
	}
}

// readBuf holds 64 records of either layout. evdev returns whole records
// only, as many as fit.
const readBuf = 64 * int(Layout64)

// pump reads dev until a read fails (Close makes it fail), decoding and
// queueing each new presentation.
func (r *Reader) pump(dev Device, q *reader.Queue, data *atomic.Bool) error {
	onValue := func(v string) {
		now := r.opt.Now()
		r.publish() // this value's frame counted before anyone has its read
		if r.repeats.New(v, now) {
			// Counted when decided, so that Stats includes a Read
			// still on its way to the consumer.
			r.reads.Add(1)
			if !q.Push(reader.Read{Reader: r.opt.Name, Type: reader.TypeCard, Format: reader.FormatTyped, Value: v, At: now}) {
				r.log.Warn("oldest read dropped: the consumer is not reading", "dropped", q.Dropped())
			}
		}
	}
	buf := make([]byte, readBuf)
	for {
		n, err := dev.Read(buf)
		if n > 0 {
			data.Store(true)
			r.dec.Feed(buf[:n], onValue)
			r.publish()
		}
		switch {
		case err != nil:
			return fmt.Errorf("hid: read: %w", err)
		case n == 0:
			return fmt.Errorf("hid: read: %w", errNoProgress)
		}
	}
}

func (r *Reader) publish() {
	s := r.dec.Stats()
	r.frames.Store(s.Frames)
	r.bad.Store(s.BadFrames)
	r.garbage.Store(s.Garbage)
}
