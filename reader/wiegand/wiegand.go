// Package wiegand is the driver for Wiegand card readers and keypads on
// two GPIO input lines, D0 and D1: a pulse to low on D0 is a 0 bit, on
// D1 a 1 bit, and a frame ends with 25 ms of silence. It decodes 26-bit
// H10301, 34-bit and 37-bit H10304 cards as "facility:card" in decimal,
// keypad bursts of 4 and 8 bits per key as key presses, and other frame
// lengths as raw bits.
//
// The decoding (decoder.go: edges to frames; formats.go: frames to
// credentials) is pure and kept apart from the GPIO I/O (this file),
// which goes through reader/gpioline: periph's character device on a
// Raspberry Pi, or a simulated chip on a unix socket, which this
// package's Twin serves.
package wiegand

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/gpioline"
)

// Driver is the `driver = "wiegand"` of [[readers]].
var Driver = reader.Driver{
	Name:      "wiegand",
	Doc:       "Wiegand card reader or keypad on two GPIO lines (d0_pin, d1_pin)",
	NewConfig: func() reader.Config { return &Config{} },
}

// Defaults of the driver.
const (
	DefaultRepeatWindow = 500 * time.Millisecond
	DefaultMinBackoff   = reader.MinBackoff
	DefaultMaxBackoff   = reader.MaxBackoff
)

// Config is a wiegand reader's table in [[readers]].
type Config struct {
	D0Pin string `toml:"d0_pin"` // the line D0 (green wire) is on, e.g. "GPIO17"
	D1Pin string `toml:"d1_pin"` // the line D1 (white wire) is on, e.g. "GPIO27"
	// Chip: "" for /dev/gpiochip0, "/dev/gpiochipN", or "sim:PATH" for
	// the simulator's chip at the unix socket PATH.
	Chip string `toml:"chip"`
}

// Validate checks the keys.
func (c *Config) Validate() error {
	var errs []error
	for _, p := range []struct{ key, v string }{{"d0_pin", c.D0Pin}, {"d1_pin", c.D1Pin}} {
		switch {
		case p.v == "":
			errs = append(errs, reader.BadKey(p.key, "is required (a GPIO line name such as \"GPIO17\")"))
		case !gpioline.ValidLineName(p.v):
			errs = append(errs, reader.BadKey(p.key, "%q is not a GPIO line name", p.v))
		}
	}
	if c.D0Pin != "" && c.D0Pin == c.D1Pin {
		errs = append(errs, reader.BadKey("d1_pin", "%q is d0_pin too", c.D1Pin))
	}
	if spec, err := gpioline.ParseSpec(c.Chip); err != nil {
		errs = append(errs, reader.BadKey("chip", "%v", err))
	} else if spec.Mem {
		errs = append(errs, reader.BadKey("chip", "%q (go-rpio) has no edge events, which Wiegand needs: use the character device (\"\" or /dev/gpiochipN)", c.Chip))
	}
	return errors.Join(errs...)
}

// Claims names the two lines on their chip, and a simulated chip's
// socket, which this reader's twin owns.
func (c *Config) Claims() []string {
	spec, err := gpioline.ParseSpec(c.Chip)
	if err != nil {
		return nil
	}
	claims := []string{spec.Claim(c.D0Pin), spec.Claim(c.D1Pin)}
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
	return New(Options{
		Name:         env.Name,
		Chip:         spec,
		D0:           c.D0Pin,
		D1:           c.D1Pin,
		RepeatWindow: env.RepeatWindow,
		Now:          env.Now,
		Logger:       env.Logger,
	}), nil
}

// Twin builds the simulator's side: a simulated chip at the socket the
// `chip = "sim:PATH"` key names.
func (c *Config) Twin(env reader.TwinEnv) (reader.Twin, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	spec, _ := gpioline.ParseSpec(c.Chip)
	if !spec.Sim {
		return nil, fmt.Errorf("wiegand: reader %q: a twin needs chip = \"sim:PATH\", not %q: %w", env.Name, c.Chip, reader.ErrConfig)
	}
	return NewTwin(spec.Path, c.D0Pin, c.D1Pin)
}

// Options configure a Reader. Name, Chip, D0 and D1 are required.
type Options struct {
	Name   string
	Chip   gpioline.Spec
	D0, D1 string
	// RepeatWindow folds a card read again within it (sliding) into one
	// presentation, for readers that repeat a card while it is held.
	// Key presses are never folded. Zero: DefaultRepeatWindow.
	RepeatWindow time.Duration
	Now          func() time.Time // stamps reads; default time.Now
	Logger       *slog.Logger     // default silent
	// Open opens a chip; default gpioline.Open.
	Open func(gpioline.Spec) (gpioline.Chip, error)
	// Reopen backoff; defaults DefaultMinBackoff, DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
}

// A Reader is one Wiegand reader. It implements reader.Reader and
// reader.StatsReader.
type Reader struct {
	o       Options
	log     *slog.Logger
	running atomic.Bool

	// Owned by Run's goroutine.
	dec     Decoder
	repeats reader.Repeats // cards only

	queue reader.Queue

	frames, reads, bad, garbage, reopens atomic.Uint64
	open                                 atomic.Bool
}

var (
	_ reader.Reader      = (*Reader)(nil)
	_ reader.StatsReader = (*Reader)(nil)
)

// New returns a Reader with defaults filled in.
func New(o Options) *Reader {
	if o.RepeatWindow <= 0 {
		o.RepeatWindow = DefaultRepeatWindow
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Open == nil {
		o.Open = gpioline.Open
	}
	return &Reader{
		o:       o,
		log:     o.Logger.With("reader", o.Name, "driver", "wiegand"),
		repeats: reader.Repeats{Window: o.RepeatWindow},
	}
}

// Name returns the configured reader name.
func (r *Reader) Name() string { return r.o.Name }

// Stats returns the counters; safe from any goroutine. Garbage counts
// edges discarded as glitches.
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

// State implements reader.Stater: online while its chip is open (the
// reader itself sends only when used, so that is all the driver knows).
func (r *Reader) State() string {
	if r.open.Load() {
		return reader.StateOnline
	}
	return reader.StateOffline
}

// Run watches D0 and D1 and sends a Read per card presentation and per
// key press until ctx is done, then returns nil. A chip that cannot be
// opened or goes away is reopened with backoff. Decoding happens on
// Run's goroutine (the chip's edges come on a channel); reads wait in a
// reader.Queue that a goroutine Run owns hands to out, so a slow
// consumer never delays decoding.
func (r *Reader) Run(ctx context.Context, out chan<- reader.Read) error {
	if r.o.Name == "" || r.o.D0 == "" || r.o.D1 == "" || r.o.Chip.Path == "" {
		return fmt.Errorf("wiegand: Name, Chip, D0 and D1 are required: %w", reader.ErrConfig)
	}
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("wiegand: reader %q: Run is already running: %w", r.o.Name, reader.ErrConfig)
	}
	defer r.running.Store(false)

	reader.Reopen(ctx, out, &r.queue, &reader.Backoff{Min: r.o.MinBackoff, Max: r.o.MaxBackoff}, reader.Wait, r.log, "chip", r.session)
	return nil
}

// session opens the chip and decodes its edges until it fails or ctx is
// done. got reports whether any edge came.
func (r *Reader) session(ctx context.Context, reopen bool) (got bool, err error) {
	chip, err := r.o.Open(r.o.Chip)
	if err != nil {
		return false, fmt.Errorf("wiegand: reader %q: open %s: %w", r.o.Name, r.o.Chip, err)
	}
	defer chip.Close()
	edges, err := chip.Watch([]string{r.o.D0, r.o.D1})
	if err != nil {
		return false, fmt.Errorf("wiegand: reader %q: watch: %w", r.o.Name, err)
	}
	defer edges.Close()
	if reopen {
		r.reopens.Add(1)
		r.log.Info("chip reopened")
	}
	r.open.Store(true)
	defer r.open.Store(false)
	r.dec.Reset()

	var lastAt time.Time // when the last edge arrived
	emit := func(f Frame) { r.frame(f, lastAt) }
	silence := time.NewTimer(FrameGap)
	silence.Stop()
	defer silence.Stop()
	onEdge := func(e gpioline.Edge) {
		now := r.o.Now()
		r.dec.Edge(e, emit) // a frame it ends is stamped with its own last edge
		lastAt = now
		r.garbage.Store(r.dec.Garbage())
		silence.Reset(FrameGap)
	}
	edgesDone := func() error {
		r.dec.Flush(emit)
		r.garbage.Store(r.dec.Garbage())
		err := edges.Err()
		if err == nil {
			err = errors.New("edges closed")
		}
		return fmt.Errorf("wiegand: reader %q: %w", r.o.Name, err)
	}
	for {
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case e, ok := <-edges.C():
			if !ok {
				return got, edgesDone()
			}
			got = true
			onEdge(e)
		case <-silence.C:
			// After a stall, the timer and edges may be ready at
			// once: edges already there belong to the frame.
			select {
			case e, ok := <-edges.C():
				if !ok {
					return got, edgesDone()
				}
				onEdge(e)
				continue
			default:
			}
			r.dec.Flush(emit)
			r.garbage.Store(r.dec.Garbage())
		}
	}
}

// frame interprets a frame whose last edge arrived at at, and queues
// what it carries.
func (r *Reader) frame(f Frame, at time.Time) {
	c, err := Interpret(f)
	if err != nil {
		r.bad.Add(1)
		r.log.Debug("frame rejected", "bits", f.Len, "err", err)
		return
	}
	r.frames.Add(1)
	if c.Type == reader.TypeCard && !r.repeats.New(c.Value, at) {
		return
	}
	r.reads.Add(1)
	if !r.queue.Push(reader.Read{Reader: r.o.Name, Type: c.Type, Value: c.Value, Format: c.Format, At: at}) {
		r.log.Warn("consumer stalled: oldest read dropped", "queued", r.queue.Len())
	}
}
