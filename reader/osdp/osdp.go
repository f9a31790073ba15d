// Package osdp is the driver for OSDP v2 readers (SIA Open Supervised
// Device Protocol, v2.2) on an RS-485 bus: the agent is the control panel
// (CP) and each reader a peripheral device (PD) at its own address. The
// CP polls every PD in turn; a PD answers each poll with an ACK or with
// what it has to report: card data (osdp_RAW, osdp_FMT) and key presses
// (osdp_KEYPPAD). The CP drives the reader's LED and buzzer (osdp_LED,
// osdp_BUZ) to show the agent's decision, and, when a key is configured,
// wraps the conversation in the AES-128 secure channel.
//
// Several readers may share one port: the readers of one port share one
// bus goroutine (bus.go), started by the first Run and stopped when the
// last Run returns. The framing (frame.go), the card formats (card.go),
// the secure channel (sc.go) and the conversation with one PD (cp.go)
// are pure and kept apart from the port I/O.
package osdp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/punchclock/punchclock/reader"
)

// Driver is the `driver = "osdp"` of [[readers]].
var Driver = reader.Driver{
	Name: "osdp",
	Doc:  "OSDP v2 reader on RS-485 (port, baud, address, scbk, rts_direction, rts_invert); card, keypad, LED and buzzer",
	NewConfig: func() reader.Config {
		return &Config{Baud: DefaultBaud, Address: -1}
	},
}

// Defaults.
const (
	DefaultBaud         = 9600
	DefaultPollInterval = 150 * time.Millisecond
	// DefaultReplyTimeout: a PD must start its reply within 200 ms
	// (§5.7); the wire time of the command is added.
	DefaultReplyTimeout = 200 * time.Millisecond
	DefaultRepeatWindow = 500 * time.Millisecond
	DefaultMinBackoff   = reader.MinBackoff
	DefaultMaxBackoff   = reader.MaxBackoff
)

// Config is the [[readers]] table of an OSDP reader.
type Config struct {
	Port    string `toml:"port"`    // the RS-485 UART, e.g. /dev/ttyAMA0
	Baud    int    `toml:"baud"`    // default 9600
	Address int    `toml:"address"` // the PD's address, 0–126 (required)
	// SCBK is the Secure Channel Base Key, 32 hex digits; set, the
	// secure channel is used and card data in clear is refused.
	SCBK string `toml:"scbk"`
	// RTSDirection asserts RTS while the CP sends, for transceivers
	// whose DE/RE pins are driven by RTS.
	RTSDirection bool `toml:"rts_direction"`
	// RTSInvert (with RTSDirection) drops RTS while sending and asserts
	// it when idle: for DE/RE wired straight to an active-low RTS pin,
	// such as the Raspberry Pi's GPIO17 (RTS0), whose level is high
	// when RTS is not asserted.
	RTSInvert bool `toml:"rts_invert"`
}

// RTSMode is how the driver uses RTS for RS-485 direction control.
type RTSMode int

// RTS modes.
const (
	// RTSOff: RTS is left alone (a transceiver with automatic
	// direction control).
	RTSOff RTSMode = iota
	// RTSAssert: RTS asserted while sending, dropped when idle.
	RTSAssert
	// RTSDrop: RTS dropped while sending, asserted when idle.
	RTSDrop
)

// RTSMode returns the mode the rts_ keys select.
func (c *Config) RTSMode() RTSMode {
	switch {
	case c.RTSDirection && c.RTSInvert:
		return RTSDrop
	case c.RTSDirection:
		return RTSAssert
	}
	return RTSOff
}

var bauds = []int{9600, 19200, 38400, 57600, 115200, 230400}

// Validate checks the keys.
func (c *Config) Validate() error {
	var errs []error
	if c.Port == "" {
		errs = append(errs, reader.BadKey("port", "is required"))
	}
	okBaud := false
	for _, b := range bauds {
		okBaud = okBaud || b == c.Baud
	}
	if !okBaud {
		errs = append(errs, reader.BadKey("baud", "%d is not an OSDP rate (9600, 19200, 38400, 57600, 115200, 230400)", c.Baud))
	}
	switch {
	case c.Address == -1:
		errs = append(errs, reader.BadKey("address", "is required (0–126)"))
	case c.Address < 0 || c.Address > MaxAddress:
		errs = append(errs, reader.BadKey("address", "%d is not 0–126", c.Address))
	}
	if c.RTSInvert && !c.RTSDirection {
		errs = append(errs, reader.BadKey("rts_invert", "needs rts_direction = true"))
	}
	if c.SCBK != "" {
		if _, err := parseKey(c.SCBK); err != nil {
			errs = append(errs, reader.BadKey("scbk", "must be 32 hex digits"))
		}
	}
	return errors.Join(errs...)
}

func parseKey(s string) (*Key, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return nil, fmt.Errorf("%w: scbk is not 32 hex digits", reader.ErrConfig)
	}
	var k Key
	copy(k[:], b)
	return &k, nil
}

// Claims returns the port, shared: several PDs may sit on one bus.
func (c *Config) Claims() []string {
	// The bus is shared; an address on it is not; its settings are the
	// same for every reader on it.
	return []string{"shared:" + c.Port, fmt.Sprintf("%s address %d", c.Port, c.Address),
		fmt.Sprintf("agree:%s settings=baud %d, rts_direction %v, rts_invert %v", c.Port, c.Baud, c.RTSDirection, c.RTSInvert)}
}

// New builds the reader on the real port.
func (c *Config) New(env reader.Env) (reader.Reader, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return New(Options{
		Name: env.Name, Port: c.Port, Baud: c.Baud, Address: byte(c.Address), SCBK: c.SCBK,
		RTS: c.RTSMode(), RepeatWindow: env.RepeatWindow, Logger: env.Logger, Now: env.Now,
	})
}

// Port is what the bus talks through. Close must make a pending Read
// return.
type Port = io.ReadWriteCloser

// Options configures a Reader. Name, Port and Address are required.
type Options struct {
	Name         string
	Port         string
	Baud         int // 0: DefaultBaud
	Address      byte
	SCBK         string // 32 hex digits, or empty for no secure channel
	RTS          RTSMode
	RepeatWindow time.Duration    // 0: DefaultRepeatWindow
	Logger       *slog.Logger     // nil: silent
	Now          func() time.Time // nil: time.Now

	// The rest are taken from the first reader of a bus. Zero means
	// the default.
	Open         func(path string, baud int, rts RTSMode) (Port, error)
	PollInterval time.Duration
	ReplyTimeout time.Duration
	MinBackoff   time.Duration
	MaxBackoff   time.Duration
	Rand         func([]byte) // the CP's random numbers; nil: crypto/rand
}

// A Reader is one PD on a bus. It implements reader.Reader,
// reader.StatsReader, reader.Stater and reader.Indicator.
type Reader struct {
	opt  Options
	scbk *Key
	log  *slog.Logger

	running atomic.Bool

	queue reader.Queue // reads the bus decoded, for Run to hand out

	mu      sync.Mutex
	signals []reader.Signal

	// Owned by the bus goroutine while joined.
	cp      *cp
	repeats reader.Repeats // card values, for repeat folding

	lastWarn time.Time // owned by the bus goroutine

	lastAnswer atomic.Int64 // unix nanoseconds
	online     atomic.Bool

	frames, reads, bad, garbage, reopens, timeouts atomic.Uint64
}

var (
	_ reader.Reader      = (*Reader)(nil)
	_ reader.StatsReader = (*Reader)(nil)
	_ reader.Stater      = (*Reader)(nil)
	_ reader.Indicator   = (*Reader)(nil)
)

// New returns a Reader for opt with defaults filled in.
func New(opt Options) (*Reader, error) {
	if opt.Name == "" || opt.Port == "" || opt.Address > MaxAddress {
		return nil, fmt.Errorf("%w: osdp: reader %q: name, port and an address 0–126 are required", reader.ErrConfig, opt.Name)
	}
	var scbk *Key
	if opt.SCBK != "" {
		k, err := parseKey(opt.SCBK)
		if err != nil {
			return nil, fmt.Errorf("osdp: reader %q: %w", opt.Name, err)
		}
		scbk = k
	}
	if opt.Baud == 0 {
		opt.Baud = DefaultBaud
	}
	if opt.RepeatWindow == 0 {
		opt.RepeatWindow = DefaultRepeatWindow
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Open == nil {
		opt.Open = openSerial
	}
	if opt.PollInterval == 0 {
		opt.PollInterval = DefaultPollInterval
	}
	if opt.ReplyTimeout == 0 {
		opt.ReplyTimeout = DefaultReplyTimeout
	}
	if opt.MinBackoff == 0 {
		opt.MinBackoff = DefaultMinBackoff
	}
	if opt.MaxBackoff == 0 {
		opt.MaxBackoff = DefaultMaxBackoff
	}
	if opt.Rand == nil {
		opt.Rand = func(b []byte) { _, _ = rand.Read(b) } // never fails (Go 1.24+)
	}
	return &Reader{
		opt:     opt,
		scbk:    scbk,
		log:     opt.Logger.With("reader", opt.Name, "driver", "osdp", "address", opt.Address),
		repeats: reader.Repeats{Window: opt.RepeatWindow},
	}, nil
}

// Name returns the configured reader name.
func (r *Reader) Name() string { return r.opt.Name }

// Stats returns the reader's counters. Garbage and frames that fail
// their CRC cannot be told apart by address: they are counted for the
// PD the bus was waiting for when they arrived. Reopens are the bus's.
func (r *Reader) Stats() reader.Stats {
	return reader.Stats{
		Frames: r.frames.Load(), Reads: r.reads.Load(), BadFrames: r.bad.Load(),
		Garbage: r.garbage.Load(), Reopens: r.reopens.Load(), Timeouts: r.timeouts.Load(),
	}
}

// State is StateOffline once the PD has not answered for
// reader.OfflineAfter (counted from Run's start), StateOnline otherwise.
func (r *Reader) State() string {
	last := time.Unix(0, r.lastAnswer.Load())
	if r.opt.Now().Sub(last) >= reader.OfflineAfter {
		return reader.StateOffline
	}
	return reader.StateOnline
}

// Indicate queues the LED and buzzer commands that show s; the bus
// goroutine sends them at the PD's next turn. It never blocks.
func (r *Reader) Indicate(s reader.Signal) {
	r.mu.Lock()
	const maxSignals = 4
	if len(r.signals) >= maxSignals {
		r.signals = r.signals[1:]
	}
	r.signals = append(r.signals, s)
	r.mu.Unlock()
	wakeBus(r.opt.Port)
}

func (r *Reader) takeSignals() []reader.Signal {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.signals
	r.signals = nil
	return s
}

// Run joins the reader's bus (starting it if it is the first reader of
// its port) and hands its reads to out until ctx is done; then it leaves
// the bus (stopping it if it was the last) and returns nil. It returns
// an error wrapping reader.ErrConfig if the port's other readers use
// another baud rate or this address, or if Run is already running.
func (r *Reader) Run(ctx context.Context, out chan<- reader.Read) error {
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: osdp: reader %q: Run is already running", reader.ErrConfig, r.opt.Name)
	}
	defer r.running.Store(false)
	r.lastAnswer.Store(r.opt.Now().UnixNano())
	if err := join(r); err != nil {
		return err
	}
	defer leave(r)
	r.queue.Deliver(ctx, out)
	return nil
}

// deliver queues what a reply carried (called by the bus goroutine). A
// card held in the field is one presentation.
func (r *Reader) deliver(items []item, now time.Time) {
	for _, it := range items {
		if it.typ == reader.TypeCard && !r.repeats.New(it.value, now) {
			continue
		}
		r.reads.Add(1)
		rd := reader.Read{Reader: r.opt.Name, Type: it.typ, Value: it.value, Format: it.format, At: now}
		if !r.queue.Push(rd) {
			r.log.Warn("oldest read dropped: the consumer is not reading", "dropped", r.queue.Dropped())
		}
	}
}

// answered records that the PD answered.
func (r *Reader) answered(now time.Time) {
	r.lastAnswer.Store(now.UnixNano())
	if !r.online.Swap(true) {
		r.log.Info("PD answers")
	}
}

// warnEvery limits the warnings of a PD that keeps failing the same way
// (a wrong key makes every handshake fail): one per interval, the rest
// at debug level.
const warnEvery = time.Minute

func (r *Reader) logLimited(now time.Time, msg string, err error) {
	if r.lastWarn.IsZero() || now.Sub(r.lastWarn) >= warnEvery {
		r.lastWarn = now
		r.log.Warn(msg, "err", err)
		return
	}
	r.log.Debug(msg, "err", err)
}
