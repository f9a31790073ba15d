// Package pn532 is the driver for an NXP PN532 13.56 MHz NFC module on
// its HSU (high-speed UART) interface. Unlike a module that pushes card
// frames (RDM6300), the PN532 answers commands: the driver wakes it, puts
// it in normal mode (SAMConfiguration), checks that it is a PN532
// (GetFirmwareVersion), then polls for one ISO 14443A target at a time
// with InListPassiveTarget, and reports each UID (4, 7 or 10 bytes) as a
// card in upper-case hex. A card held in the field answers every poll;
// the driver folds those answers into one presentation.
//
// The module is told to retry passive activation forever, so a poll is
// answered only when a card is there: the driver listens for up to
// PollWait, then aborts the command (an ACK frame) and issues it again.
// An idle reader thus costs one short exchange per PollWait, and a card
// is reported as soon as the module sees it. The ACK to each poll shows
// that the module is alive.
//
// A PN532 that stops answering (reset, brown-out, cable) is re-initialised
// on the next poll; after reader.OfflineAfter without any answer the
// reader is offline until it answers again.
//
// The framing (frame.go) and the command codec (command.go) are pure and
// kept apart from the port I/O (this file).
package pn532

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

// Port is the serial link to the module. A Read that returns (0, nil) or
// (0, io.EOF) is "nothing yet" (tarm/serial's read timeout), unless it
// keeps doing so without blocking, as a hung-up tty does; any other error
// is a port failure, as is a failed Write. Close must make a pending Read
// return.
type Port = io.ReadWriteCloser

// Defaults filled in by New for Options left zero.
const (
	DefaultRepeatWindow = 500 * time.Millisecond
	DefaultMinBackoff   = reader.MinBackoff
	DefaultMaxBackoff   = reader.MaxBackoff
	// DefaultPollWait is how long one InListPassiveTarget waits for a
	// card before the driver aborts and reissues it. It bounds how long
	// a reset or vanished module goes unnoticed.
	DefaultPollWait = time.Second
	// DefaultPollInterval is the pause after a poll that was answered
	// (a card, or a module that answers "no target" at once) before the
	// next: a card held in the field is seen again every interval. It is
	// shortened to half the repeat window if that is smaller, so that a
	// held card is seen within every window.
	DefaultPollInterval = 100 * time.Millisecond
	// DefaultAckTimeout: a PN532 acknowledges a command within a few
	// milliseconds at any HSU rate.
	DefaultAckTimeout = 100 * time.Millisecond
	// DefaultResponseTimeout: InListPassiveTarget with one retry
	// answers within tens of milliseconds.
	DefaultResponseTimeout = 500 * time.Millisecond
	// DefaultRetryInterval paces initialisation attempts of a module
	// that does not answer.
	DefaultRetryInterval = time.Second
	minPollInterval      = 10 * time.Millisecond
)

// Errors of an exchange with the module.
var (
	// ErrConfig is wrapped by Run's errors for Options that can never
	// work; it matches reader.ErrConfig too.
	ErrConfig = fmt.Errorf("pn532: %w", reader.ErrConfig)
	// ErrTimeout: the module did not acknowledge or answer in time.
	ErrTimeout = errors.New("pn532: no answer in time")
	// ErrSyntax: the module answered with the error frame (it did not
	// understand the command, as after a reset before SAMConfiguration).
	ErrSyntax = errors.New("pn532: error frame")
	// ErrNotPN532: GetFirmwareVersion named another chip.
	ErrNotPN532 = errors.New("pn532: not a PN532")
)

// Options configure a Reader. Only Name and Open are required.
type Options struct {
	Name string // configured reader name, copied into every Read
	// Open opens the port at a rate; it is called again after each
	// failure and to change rates.
	Open func(baud int) (Port, error)
	// Baud is the HSU rate to talk at (a key of BaudCode); default
	// PowerUpBaud. At another rate the driver opens the port at
	// PowerUpBaud, initialises the module, switches it with
	// SetSerialBaudRate and reopens at Baud; when the module stops
	// answering at Baud (it was reset, so it is back at PowerUpBaud),
	// it goes back to PowerUpBaud and switches again.
	Baud int

	// RepeatWindow: a card held in the field is one presentation until
	// it has not been seen for RepeatWindow. Default DefaultRepeatWindow.
	RepeatWindow time.Duration

	// Now is the clock: it stamps Reads and measures how long the
	// module has been silent (State). Default time.Now.
	Now func() time.Time
	// Wait waits d or until ctx is done, returning ctx.Err() then. It
	// paces polls, initialisation retries and reopening. Default
	// reader.Wait.
	Wait func(ctx context.Context, d time.Duration) error

	// Logger receives port failures, (re)initialisations and state
	// changes. Default: silent.
	Logger *slog.Logger

	// Reopen backoff: MinBackoff doubling up to MaxBackoff; a port that
	// delivered data starts again at MinBackoff.
	MinBackoff, MaxBackoff time.Duration

	PollWait        time.Duration // default DefaultPollWait
	PollInterval    time.Duration // default DefaultPollInterval
	AckTimeout      time.Duration // default DefaultAckTimeout
	ResponseTimeout time.Duration // default DefaultResponseTimeout
	RetryInterval   time.Duration // default DefaultRetryInterval
}

// A Reader is one PN532 module. It implements reader.Reader,
// reader.StatsReader and reader.Stater.
type Reader struct {
	opt     Options
	log     *slog.Logger
	running atomic.Bool

	fmu    sync.Mutex // guards framer: fed by the pump, flushed by the poller
	framer Framer

	// Owned by the poller.
	repeats reader.Repeats
	offline bool // last logged state

	lastAnswer atomic.Int64 // Now().UnixNano() of the last good frame; 0 before Run
	firmware   atomic.Value // Firmware

	frames, reads, bad, garbage, badResp, reopens, timeouts atomic.Uint64
}

var (
	_ reader.Reader      = (*Reader)(nil)
	_ reader.StatsReader = (*Reader)(nil)
	_ reader.Stater      = (*Reader)(nil)
)

// New returns a Reader for opt with defaults filled in. Configuration
// errors are reported by Run.
func New(opt Options) *Reader {
	if opt.RepeatWindow == 0 {
		opt.RepeatWindow = DefaultRepeatWindow
	}
	if opt.Baud == 0 {
		opt.Baud = PowerUpBaud
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
	if opt.PollWait == 0 {
		opt.PollWait = DefaultPollWait
	}
	if opt.PollInterval == 0 {
		opt.PollInterval = DefaultPollInterval
	}
	if opt.RepeatWindow > 0 {
		opt.PollInterval = max(min(opt.PollInterval, opt.RepeatWindow/2), minPollInterval)
	}
	if opt.AckTimeout == 0 {
		opt.AckTimeout = DefaultAckTimeout
	}
	if opt.ResponseTimeout == 0 {
		opt.ResponseTimeout = DefaultResponseTimeout
	}
	if opt.RetryInterval == 0 {
		opt.RetryInterval = DefaultRetryInterval
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
		return fmt.Errorf("%w: Name is empty", ErrConfig)
	case o.Open == nil:
		return fmt.Errorf("%w: reader %q: Open is nil", ErrConfig, o.Name)
	case !validBaud(o.Baud):
		return fmt.Errorf("%w: reader %q: %d is not an HSU rate the driver supports", ErrConfig, o.Name, o.Baud)
	case o.RepeatWindow < 0:
		return fmt.Errorf("%w: reader %q: RepeatWindow %v is negative", ErrConfig, o.Name, o.RepeatWindow)
	case o.MinBackoff <= 0 || o.MaxBackoff < o.MinBackoff:
		return fmt.Errorf("%w: reader %q: backoff %v..%v is not a positive range", ErrConfig, o.Name, o.MinBackoff, o.MaxBackoff)
	case o.PollWait < 0 || o.PollInterval < 0 || o.AckTimeout < 0 || o.ResponseTimeout < 0 || o.RetryInterval < 0:
		return fmt.Errorf("%w: reader %q: negative interval or timeout", ErrConfig, o.Name)
	}
	return nil
}

func validBaud(b int) bool {
	_, ok := BaudCode[b]
	return ok
}

// Name returns the configured reader name.
func (r *Reader) Name() string { return r.opt.Name }

// Stats returns the driver's counters; safe from any goroutine. Frames
// counts every good frame (ACKs included); BadFrames adds responses
// that framed well but made no sense.
func (r *Reader) Stats() reader.Stats {
	return reader.Stats{
		Frames:    r.frames.Load(),
		Reads:     r.reads.Load(),
		BadFrames: r.bad.Load() + r.badResp.Load(),
		Garbage:   r.garbage.Load(),
		Reopens:   r.reopens.Load(),
		Timeouts:  r.timeouts.Load(),
	}
}

// State implements reader.Stater: offline when the module has sent no
// good frame for reader.OfflineAfter (counted from the start of Run
// before its first answer), or when Run is not running.
func (r *Reader) State() string {
	la := r.lastAnswer.Load()
	if la == 0 || r.opt.Now().Sub(time.Unix(0, la)) >= reader.OfflineAfter {
		return reader.StateOffline
	}
	return reader.StateOnline
}

// Firmware returns what GetFirmwareVersion last answered, and whether it
// has answered.
func (r *Reader) Firmware() (Firmware, bool) {
	f, ok := r.firmware.Load().(Firmware)
	return f, ok
}

// Run opens the port, initialises the module and polls it, sending one
// Read per card presentation on out until ctx is done; then it returns
// nil, leaving no goroutine behind. A port that fails is reopened with
// backoff; a module that stops answering is re-initialised. Reads are
// queued and handed to out by a goroutine of Run's, so a slow consumer
// never holds up polling. Run returns an error wrapping ErrConfig only
// for unusable Options or if it is already running.
func (r *Reader) Run(ctx context.Context, out chan<- reader.Read) error {
	if err := r.opt.validate(); err != nil {
		return err
	}
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: reader %q: Run is already running", ErrConfig, r.opt.Name)
	}
	defer r.running.Store(false)
	r.lastAnswer.Store(r.opt.Now().UnixNano())
	defer r.lastAnswer.Store(0)

	ctx, cancel := context.WithCancel(ctx)
	var q reader.Queue
	var wg sync.WaitGroup
	wg.Go(func() { q.Deliver(ctx, out) })
	defer func() {
		cancel()
		wg.Wait()
	}()

	rate := PowerUpBaud // the module's rate until it is switched
	backoff := reader.Backoff{Min: r.opt.MinBackoff, Max: r.opt.MaxBackoff}
	failed := false
	for ctx.Err() == nil {
		port, err := r.opt.Open(rate)
		if err != nil {
			err = fmt.Errorf("pn532: reader %q: open at %d baud: %w", r.opt.Name, rate, err)
		} else {
			if failed {
				r.reopens.Add(1)
				r.log.Info("port reopened", "baud", rate)
			}
			var gotData bool
			gotData, err = r.serve(ctx, port, rate, r.emitTo(&q))
			if ctx.Err() != nil {
				return nil
			}
			if gotData {
				backoff.Reset()
			}
			if rc, ok := errors.AsType[*rateChange](err); ok {
				// Not a failure: reopen at the other rate.
				r.log.Info("changing rate", "from", rate, "to", rc.to)
				rate, failed = rc.to, false
				r.fmu.Lock()
				r.framer.Reset()
				r.publishLocked()
				r.fmu.Unlock()
				if rc.wait > 0 && r.opt.Wait(ctx, rc.wait) != nil {
					return nil
				}
				continue
			}
		}
		failed = true
		r.fmu.Lock()
		r.framer.Reset()
		r.publishLocked()
		r.fmu.Unlock()
		wait := backoff.Next()
		r.log.Warn("port failed", "err", err, "retry_in", wait)
		if r.opt.Wait(ctx, wait) != nil {
			return nil
		}
		r.noteState()
	}
	return nil
}

// A rateChange ends a session so that the port is reopened at another
// rate: after SetSerialBaudRate, or to look for a module that does not
// answer at this one.
type rateChange struct {
	to   int
	wait time.Duration // before reopening
}

func (e *rateChange) Error() string { return fmt.Sprintf("pn532: reopening at %d baud", e.to) }

// initRateTries: after this many initialisations in a row that got no
// answer, the driver tries the other rate (when Baud is not
// PowerUpBaud): a reset module is back at PowerUpBaud, and a module left
// switched by an earlier run is still at Baud.
const initRateTries = 2

// Guard against a port whose Read returns nothing without blocking (a
// hung-up tty): that many empty reads within spinWindow are a failure.
const (
	spinReads  = 64
	spinWindow = time.Second
)

var errSpinning = errors.New("read returns no data without blocking")

// A portError is a failure of the port itself: serve returns and the
// port is reopened.
type portError struct{ err error }

func (e *portError) Error() string { return e.err.Error() }
func (e *portError) Unwrap() error { return e.err }

// serve runs one opened port: a pump goroutine reads and frames what the
// module sends, the calling goroutine polls. It closes port before
// returning.
func (r *Reader) serve(ctx context.Context, port Port, rate int, emit func(reader.Read)) (gotData bool, err error) {
	stop := make(chan struct{})
	var data atomic.Bool
	s := &session{
		r:       r,
		port:    port,
		rate:    rate,
		frames:  make(chan Frame, 32),
		pumpErr: make(chan error, 1),
		emit:    emit,
	}
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
	wg.Go(func() { s.pumpErr <- s.pump(ctx, stop, &data) })
	defer func() {
		close(stop)
		wg.Wait()
		gotData = data.Load()
	}()
	return false, s.run(ctx)
}

// A session is the poller's side of one opened port.
type session struct {
	r       *Reader
	port    Port
	rate    int        // the port's rate
	frames  chan Frame // good frames, in order; dropped when the poller is not listening
	pumpErr chan error
	emit    func(reader.Read)
}

// pump reads the port and frames what arrives until a read fails, the
// port spins, ctx is done or stop is closed.
func (s *session) pump(ctx context.Context, stop <-chan struct{}, data *atomic.Bool) error {
	r := s.r
	buf := make([]byte, 512)
	empties := 0
	var emptySince time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return nil
		default:
		}
		n, err := s.port.Read(buf)
		if n > 0 {
			data.Store(true)
			empties = 0
			r.fmu.Lock()
			r.framer.Feed(buf[:n], s.onFrame)
			r.publishLocked()
			r.fmu.Unlock()
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return &portError{fmt.Errorf("pn532: reader %q: read: %w", r.opt.Name, err)}
		}
		if n == 0 {
			now := r.opt.Now()
			if empties == 0 {
				emptySince = now
			}
			empties++
			if empties >= spinReads {
				if now.Sub(emptySince) < spinWindow {
					return &portError{fmt.Errorf("pn532: reader %q: %w", r.opt.Name, errSpinning)}
				}
				empties = 0
			}
		}
	}
}

// onFrame runs under fmu for each good frame: the module answered.
func (s *session) onFrame(fr Frame) {
	s.r.lastAnswer.Store(s.r.opt.Now().UnixNano())
	select {
	case s.frames <- fr:
	default: // nobody is waiting for this many frames: stale
	}
}

// run initialises and polls until the port fails or ctx is done.
func (s *session) run(ctx context.Context) error {
	r := s.r
	needInit := true
	unanswered := 0 // initialisations in a row that timed out
	for {
		if needInit {
			err := s.init(ctx)
			if err == nil && s.rate != r.opt.Baud {
				err = s.switchRate(ctx)
				if err == nil {
					return &rateChange{to: r.opt.Baud}
				}
			}
			if err == nil {
				needInit, unanswered = false, 0
			} else {
				if fatal(ctx, err) {
					return err
				}
				if errors.Is(err, ErrTimeout) {
					unanswered++
				}
				if r.opt.Baud != PowerUpBaud && unanswered >= initRateTries {
					other := PowerUpBaud
					if s.rate == PowerUpBaud {
						other = r.opt.Baud
					}
					r.log.Warn("no answer; trying another rate", "err", err, "baud", other)
					return &rateChange{to: other, wait: r.opt.RetryInterval}
				}
				r.log.Warn("initialisation failed", "err", err, "retry_in", r.opt.RetryInterval)
				if err := r.opt.Wait(ctx, r.opt.RetryInterval); err != nil {
					return err
				}
				r.noteState()
				continue
			}
		}
		err := s.poll(ctx)
		r.noteState()
		switch {
		case errors.Is(err, errNoCard):
			continue // aborted after PollWait: listen again at once
		case err == nil:
		case fatal(ctx, err):
			return err
		case errors.Is(err, ErrTimeout) || errors.Is(err, ErrSyntax):
			r.log.Warn("module stopped answering; re-initialising", "err", err)
			needInit = true
			continue
		default:
			r.log.Debug("poll", "err", err)
		}
		if err := r.opt.Wait(ctx, r.opt.PollInterval); err != nil {
			return err
		}
	}
}

// fatal reports whether err ends the session: a port failure or ctx.
func fatal(ctx context.Context, err error) bool {
	var pe *portError
	return ctx.Err() != nil || errors.As(err, &pe)
}

// init wakes the module and configures it: wake-up preamble and
// SAMConfiguration (normal mode) in one write, GetFirmwareVersion, and
// RFConfiguration MaxRetries so that a poll waits for a card.
func (s *session) init(ctx context.Context) error {
	r := s.r
	wake := append(append([]byte(nil), WakeUp...), SAMConfiguration...)
	if _, err := s.exchange(ctx, wake, CmdSAMConfiguration, 0); err != nil {
		return fmt.Errorf("pn532: reader %q: SAMConfiguration: %w", r.opt.Name, err)
	}
	data, err := s.exchange(ctx, GetFirmwareVersion, CmdGetFirmwareVersion, 0)
	if err != nil {
		return fmt.Errorf("pn532: reader %q: GetFirmwareVersion: %w", r.opt.Name, err)
	}
	fw, err := ParseFirmware(data)
	if err != nil {
		r.badResp.Add(1)
		return fmt.Errorf("pn532: reader %q: %w", r.opt.Name, err)
	}
	if fw.IC != ICPN532 {
		return fmt.Errorf("%w: reader %q: %v", ErrNotPN532, r.opt.Name, fw)
	}
	r.firmware.Store(fw)
	if _, err := s.exchange(ctx, RFMaxRetries, CmdRFConfiguration, 0); err != nil {
		return fmt.Errorf("pn532: reader %q: RFConfiguration: %w", r.opt.Name, err)
	}
	r.log.Info("PN532 initialised", "firmware", fw.String())
	return nil
}

// switchRate tells the module to talk at Baud from now on: it answers
// SetSerialBaudRate at the old rate and switches when it has the host's
// ACK.
func (s *session) switchRate(ctx context.Context) error {
	r := s.r
	req, err := SetSerialBaudRate(r.opt.Baud)
	if err != nil {
		return err
	}
	if _, err := s.exchange(ctx, req, CmdSetSerialBaudRate, 0); err != nil {
		return fmt.Errorf("pn532: reader %q: SetSerialBaudRate %d: %w", r.opt.Name, r.opt.Baud, err)
	}
	if _, err := s.port.Write(ACK); err != nil {
		return &portError{fmt.Errorf("pn532: reader %q: write: %w", r.opt.Name, err)}
	}
	return nil
}

// errNoCard: a poll saw no card within PollWait and was aborted.
var errNoCard = errors.New("pn532: no card")

// poll lists at most one ISO 14443A target and reports a new
// presentation.
func (s *session) poll(ctx context.Context) error {
	r := s.r
	data, err := s.exchange(ctx, InListPassiveTarget, CmdInListPassiveTarget, r.opt.PollWait)
	if errors.Is(err, errNoCard) {
		return err
	}
	if err != nil {
		return fmt.Errorf("pn532: reader %q: InListPassiveTarget: %w", r.opt.Name, err)
	}
	now := r.opt.Now()
	targets, err := ParseInList(data)
	if err != nil {
		r.badResp.Add(1)
		return fmt.Errorf("pn532: reader %q: %w", r.opt.Name, err)
	}
	for _, t := range targets {
		uid := UIDString(t.UID)
		if r.repeats.New(uid, now) {
			r.reads.Add(1)
			s.emit(reader.Read{Reader: r.opt.Name, Type: reader.TypeCard, Value: uid, Format: reader.FormatUID, At: now})
		}
	}
	return nil
}

// exchange sends req (a command frame, possibly after a wake-up
// preamble) and returns the data of the response to command code cmd,
// from its response code on. It waits AckTimeout for the ACK and then
// ResponseTimeout for the response (a response whose ACK was lost is
// taken too). On a timeout it sends an ACK, which makes the PN532 abort
// the command, and gives up on any partial frame.
//
// A listen > 0 is a poll that may wait that long after its ACK: when it
// passes, the command is aborted and exchange returns errNoCard, which
// is no timeout.
func (s *session) exchange(ctx context.Context, req []byte, cmd byte, listen time.Duration) ([]byte, error) {
	r := s.r
	for drained := false; !drained; { // stale frames belong to an earlier command
		select {
		case <-s.frames:
		default:
			drained = true
		}
	}
	if _, err := s.port.Write(req); err != nil {
		return nil, &portError{fmt.Errorf("pn532: reader %q: write: %w", r.opt.Name, err)}
	}
	t := time.NewTimer(r.opt.AckTimeout)
	defer t.Stop()
	acked := false
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-s.pumpErr:
			s.pumpErr <- err // for the next exchange, if any
			return nil, err
		case fr := <-s.frames:
			switch fr.Kind {
			case KindACK:
				if !acked {
					acked = true
					if listen > 0 {
						t.Reset(listen)
					} else {
						t.Reset(r.opt.ResponseTimeout)
					}
				}
			case KindError:
				return nil, ErrSyntax
			case KindInfo:
				if fr.TFI == TFIPN532 && len(fr.Data) > 0 && fr.Data[0] == cmd+1 {
					return fr.Data, nil
				}
			}
		case <-t.C:
			// The ACK makes the PN532 abort the command.
			if _, err := s.port.Write(ACK); err != nil {
				return nil, &portError{fmt.Errorf("pn532: reader %q: write: %w", r.opt.Name, err)}
			}
			if acked && listen > 0 {
				return nil, errNoCard
			}
			r.timeouts.Add(1)
			r.fmu.Lock()
			r.framer.Flush(s.onFrame)
			r.publishLocked()
			r.fmu.Unlock()
			if acked {
				return nil, fmt.Errorf("%w: no response after ACK", ErrTimeout)
			}
			return nil, fmt.Errorf("%w: no ACK", ErrTimeout)
		}
	}
}

// noteState logs a change of State.
func (r *Reader) noteState() {
	off := r.State() == reader.StateOffline
	if off != r.offline {
		r.offline = off
		if off {
			r.log.Warn("reader offline: no answer", "for", reader.OfflineAfter)
		} else {
			r.log.Info("reader online")
		}
	}
}

func (r *Reader) publishLocked() {
	st := r.framer.Stats()
	r.frames.Store(st.Frames)
	r.bad.Store(st.BadFrames)
	r.garbage.Store(st.Garbage)
}

// emitTo returns the poller's emit: it queues a read for Run's delivery
// goroutine, so that polling never waits for the consumer, and says when
// a stalled consumer made the queue drop its oldest read.
func (r *Reader) emitTo(q *reader.Queue) func(reader.Read) {
	return func(rd reader.Read) {
		if !q.Push(rd) {
			r.log.Warn("consumer stalled: dropped the oldest read", "dropped", q.Dropped())
		}
	}
}
