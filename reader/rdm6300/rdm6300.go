// Package rdm6300 is the driver for the RDM6300 125 kHz EM4100 card
// module, which sends each card it sees on a 9600 baud UART as a 14-byte
// frame: STX, ten ASCII hex digits (a version byte and four ID bytes), two
// hex digits holding the XOR of those five bytes, and ETX. The module
// repeats the frame for as long as the card stays in the field; the driver
// folds the repeats into one reader.Read per presentation. It also takes
// the ID-12/ID-20 frame (ID-Innovations modules on the same kind of board),
// which has CR LF between the checksum and ETX (16 bytes).
//
// The framing (framer.go) is pure and kept apart from the port I/O
// (this file). The driver consumes a Port, not a serial type: cmd/ wires
// in reader/serialport, tests use reader/readertest.
package rdm6300

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/punchclock/punchclock/reader"
)

// Port is what the driver reads frames from. A Read that returns (0, nil)
// or (0, io.EOF) is taken as "nothing yet" (tarm/serial returns (0,
// io.EOF) when its read timeout expires), unless it keeps doing so without
// blocking, as a hung-up tty does; any other error is a port failure. A
// failed port is closed and reopened. Close must make a pending Read
// return, possibly after a short timeout.
type Port = io.ReadCloser

// Defaults filled in by New for Config fields left zero.
const (
	DefaultRepeatWindow = 500 * time.Millisecond
	DefaultMinBackoff   = reader.MinBackoff
	DefaultMaxBackoff   = reader.MaxBackoff
)

// ErrConfig is wrapped by the errors Run returns for a configuration that
// can never work.
var ErrConfig = errors.New("rdm6300: invalid config")

// Config configures a Reader. Only Name and Open are required.
type Config struct {
	Name string               // configured reader name, copied into every Read
	Open func() (Port, error) // opens the port; called again after each failure

	// RepeatWindow folds repeated frames of one card into one
	// presentation: a frame of the same value less than RepeatWindow
	// after the previous frame of that value is a repeat, and the window
	// slides with each repeat. Zero means DefaultRepeatWindow.
	RepeatWindow time.Duration

	// Now is the clock; it stamps Read.At when a frame's ETX is
	// processed. Default time.Now.
	Now func() time.Time

	// Wait waits d or until ctx is done, returning ctx.Err() in the
	// latter case. It paces reopening. Default reader.Wait.
	Wait func(ctx context.Context, d time.Duration) error

	// Logger receives port failures and reopens. Default: silent.
	Logger *slog.Logger

	// Reopen backoff: the first retry waits MinBackoff, each further
	// failure doubles the wait up to MaxBackoff. A port that delivered
	// data starts again at MinBackoff. Defaults DefaultMinBackoff and
	// DefaultMaxBackoff.
	MinBackoff time.Duration
	MaxBackoff time.Duration
}

// A Reader is one RDM6300 module. It implements reader.Reader.
type Reader struct {
	cfg     Config
	log     *slog.Logger
	running atomic.Bool

	// Owned by the goroutine in Run.
	framer  Framer
	repeats reader.Repeats

	frames, reads, bad, garbage, reopens atomic.Uint64
	// open: the port is open (the module itself sends only when a card
	// is near, so an open port is all the driver can know).
	open atomic.Bool
}

var _ reader.Stater = (*Reader)(nil)

// State implements reader.Stater: online while the port is open.
func (r *Reader) State() string {
	if r.open.Load() {
		return reader.StateOnline
	}
	return reader.StateOffline
}

var _ reader.Reader = (*Reader)(nil)

// New returns a Reader for cfg with defaults filled in. Configuration
// errors are reported by Run.
func New(cfg Config) *Reader {
	if cfg.RepeatWindow == 0 {
		cfg.RepeatWindow = DefaultRepeatWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Wait == nil {
		cfg.Wait = reader.Wait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	return &Reader{
		cfg:     cfg,
		log:     cfg.Logger.With("reader", cfg.Name, "driver", "rdm6300"),
		repeats: reader.Repeats{Window: cfg.RepeatWindow},
	}
}

func (c *Config) validate() error {
	switch {
	case c.Name == "":
		return fmt.Errorf("%w: Name is empty", ErrConfig)
	case c.Open == nil:
		return fmt.Errorf("%w: reader %q: Open is nil", ErrConfig, c.Name)
	case c.RepeatWindow < 0:
		return fmt.Errorf("%w: reader %q: RepeatWindow %v is negative", ErrConfig, c.Name, c.RepeatWindow)
	case c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("%w: reader %q: backoff %v..%v is not a positive range", ErrConfig, c.Name, c.MinBackoff, c.MaxBackoff)
	}
	return nil
}

// Name returns the configured reader name.
func (r *Reader) Name() string { return r.cfg.Name }

// Stats returns the driver's counters. It is safe to call at any time
// from any goroutine.
func (r *Reader) Stats() reader.Stats {
	return reader.Stats{
		Frames:    r.frames.Load(),
		Reads:     r.reads.Load(),
		BadFrames: r.bad.Load(),
		Garbage:   r.garbage.Load(),
		Reopens:   r.reopens.Load(),
	}
}

// Run opens the port and sends one Read per card presentation on out
// until ctx is done, then returns nil. A port that fails to open or fails
// while reading is closed and reopened with backoff; Run does not return
// for that. It returns an error wrapping ErrConfig only for an unusable
// Config, or if Run is already running. Run returns promptly when ctx is
// done, even while a Read is blocked, and leaves no goroutine behind.
func (r *Reader) Run(ctx context.Context, out chan<- reader.Read) error {
	if err := r.cfg.validate(); err != nil {
		return err
	}
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: reader %q: Run is already running", ErrConfig, r.cfg.Name)
	}
	defer r.running.Store(false)

	// Reading never waits for the consumer: Run's goroutine reads,
	// decodes and folds repeats as bytes arrive, and queues the
	// presentations, which a goroutine Run owns hands to out. Otherwise,
	// while a send on out waited (the agent stalled on a slow SD card),
	// the module's repeats would pile up in the tty and, decoded late,
	// look like a new presentation of the card still in the field.
	ctx, cancel := context.WithCancel(ctx)
	var q reader.Queue
	var wg sync.WaitGroup
	wg.Go(func() { q.Deliver(ctx, out) })
	defer wg.Wait()
	defer cancel()

	backoff := reader.Backoff{Min: r.cfg.MinBackoff, Max: r.cfg.MaxBackoff}
	failed := false
	for ctx.Err() == nil {
		port, err := r.cfg.Open()
		if err != nil {
			err = fmt.Errorf("rdm6300: reader %q: open: %w", r.cfg.Name, err)
		} else {
			if failed {
				r.reopens.Add(1)
				r.log.Info("port reopened")
			}
			var gotData bool
			r.open.Store(true)
			gotData, err = r.serve(ctx, port, &q)
			r.open.Store(false)
			if ctx.Err() != nil {
				return nil
			}
			if gotData {
				backoff.Reset()
			}
		}
		failed = true
		r.framer.Reset()
		r.publish()
		d := backoff.Next()
		r.log.Warn("port failed", "err", err, "retry_in", d)
		if r.cfg.Wait(ctx, d) != nil {
			return nil
		}
	}
	return nil
}

// Guard against a port whose Read returns nothing without blocking: a
// tty that was hung up (the master of a pseudo-terminal closed, a USB
// serial adapter unplugged) returns (0, io.EOF) at once, forever. That
// many empty reads within spinWindow are a port failure. A serial port
// with a 100 ms read timeout needs 6.4 s for spinReads empty reads.
const (
	spinReads  = 64
	spinWindow = time.Second
)

var errSpinning = errors.New("read returns no data without blocking")

// serve reads and decodes port until it fails or ctx is done, queueing
// each new presentation on q. It closes port before returning. gotData
// reports whether any byte arrived.
func (r *Reader) serve(ctx context.Context, port Port, q *reader.Queue) (gotData bool, err error) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		if err := port.Close(); err != nil {
			r.log.Debug("close port", "err", err)
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
	}()
	err = r.pump(ctx, port, func(rd reader.Read) {
		if !q.Push(rd) {
			r.log.Warn("consumer stalled: oldest read dropped", "queued", q.Len())
		}
	}, func() { gotData = true })
	return gotData, err
}

// pump reads and decodes port until a read fails or ctx is done, calling
// emit for each new presentation, stamped when its frame was read, and
// got when bytes arrive.
func (r *Reader) pump(ctx context.Context, port Port, emit func(reader.Read), got func()) error {
	onFrame := func(v string) {
		now := r.cfg.Now()
		// Counters first, so that whoever has the Read sees its frame
		// counted.
		r.publish()
		if r.repeats.New(v, now) {
			// Counted when decided, so that Stats includes a Read
			// still on its way to the consumer.
			r.reads.Add(1)
			emit(reader.Read{Reader: r.cfg.Name, Type: reader.TypeCard, Format: reader.FormatEM4100, Value: v, At: now})
		}
	}
	buf := make([]byte, 256)
	empties := 0
	var emptySince time.Time
	for ctx.Err() == nil {
		n, err := port.Read(buf)
		if n > 0 {
			got()
			empties = 0
			r.framer.Feed(buf[:n], onFrame)
			r.publish()
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("rdm6300: reader %q: read: %w", r.cfg.Name, err)
		}
		if n == 0 {
			now := r.cfg.Now()
			if empties == 0 {
				emptySince = now
			}
			empties++
			if empties >= spinReads {
				if now.Sub(emptySince) < spinWindow {
					return fmt.Errorf("rdm6300: reader %q: %w", r.cfg.Name, errSpinning)
				}
				empties = 0
			}
		}
	}
	return ctx.Err()
}

func (r *Reader) publish() {
	s := r.framer.Stats()
	r.frames.Store(s.Frames)
	r.bad.Store(s.BadFrames)
	r.garbage.Store(s.Garbage)
}
