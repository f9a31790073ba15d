// Package r30x is the driver for the ZFM-20 family of optical and
// capacitive fingerprint sensors (R305, R307, R503, AS608, ...) on a
// UART. The sensor keeps the template library in its own flash; the host
// asks it, packet by packet, to capture an image (GenImg), turn it into
// a character file (Img2Tz) and search the library (Search), and gets
// back a page number and a match score. Templates never leave the
// sensor: this driver has no UpChar or DownChar.
//
// The sensor speaks only when spoken to, so the driver polls: GenImg at
// a steady pace, and on a finger Img2Tz and Search. One finger left on
// the sensor is one presentation until GenImg says it was lifted.
// Enrolment (Enroll) and erasure (Erase) run on the same goroutine as
// the polling, so the port has one user.
//
// The packet framing (packet.go) is pure and kept apart from the port
// I/O (this file); the simulator's twin (twin.go) speaks the same
// protocol from the sensor's side.
package r30x

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/punchclock/punchclock/reader"
)

// Port is what the driver talks to. A Read that returns (0, nil) or (0,
// io.EOF) is "nothing yet" (reader/serialport returns (0, io.EOF) when
// its read timeout expires), unless it keeps returning at once, as a
// hung-up tty does; any other error is a port failure. Close must make a
// pending Read return.
type Port = io.ReadWriteCloser

// Defaults filled in by NewReader for Options left zero.
//
// DefaultPollInterval is the pace of GenImg polls. At 200 ms a finger
// waits at most that long to be noticed (a sensor's Img2Tz and Search
// take longer), and an idle sensor costs the driver about 0.5 % of one
// core (BenchmarkIdlePollCPU); at 100 ms it was about 1 %.
const (
	DefaultMinScore      = 50
	DefaultPollInterval  = 200 * time.Millisecond
	DefaultAckTimeout    = 2 * time.Second
	DefaultFingerTimeout = 20 * time.Second
	DefaultMinBackoff    = reader.MinBackoff
	DefaultMaxBackoff    = reader.MaxBackoff
)

// Errors. Enroll and Erase wrap them; match with errors.Is.
var (
	// ErrConfig is wrapped by Run's errors for Options that can never work.
	ErrConfig = errors.New("r30x: invalid config")
	// ErrNotRunning: Enroll or Erase was called while Run was not running.
	ErrNotRunning = errors.New("r30x: reader not running")
	// ErrOffline: the sensor's port is not open (unplugged, reopening).
	ErrOffline = errors.New("r30x: sensor port not open")
	// ErrTimeout: the sensor did not answer a command in time.
	ErrTimeout = errors.New("r30x: sensor did not answer")
	// ErrNoFinger: enrolment waited FingerTimeout for a finger (or for
	// it to be lifted) in vain.
	ErrNoFinger = errors.New("r30x: no finger on the sensor in time")
	// ErrMismatch: the two captures of an enrolment are not of the same
	// finger (RegModel confirmation 0x0A).
	ErrMismatch = errors.New("r30x: the two captures do not match")
	// ErrLibraryFull: no free page in the sensor's library.
	ErrLibraryFull = errors.New("r30x: template library is full")
	// ErrSensor is wrapped by a *SensorError.
	ErrSensor = errors.New("r30x: sensor refused")
	// ErrBadPage: a page outside the sensor's library.
	ErrBadPage = errors.New("r30x: page outside the library")
)

// A SensorError is a confirmation code other than success.
type SensorError struct {
	Cmd  byte // instruction code
	Code byte // confirmation code
}

func (e *SensorError) Error() string {
	return fmt.Sprintf("r30x: command 0x%02X: confirmation 0x%02X (%s)", e.Cmd, e.Code, confText(e.Code))
}

// Unwrap makes a SensorError match ErrSensor.
func (e *SensorError) Unwrap() error { return ErrSensor }

func confText(c byte) string {
	switch c {
	case ConfRecvError:
		return "packet receive error"
	case ConfNoFinger:
		return "no finger"
	case ConfImageFail:
		return "image capture failed"
	case ConfDisorderly, ConfTooFew:
		return "poor image"
	case ConfNoMatch:
		return "no match"
	case ConfMergeFail:
		return "captures do not match"
	case ConfBadPage:
		return "page beyond the library"
	case ConfDeleteFail:
		return "delete failed"
	case ConfWrongPwd:
		return "wrong password"
	case ConfNoImage:
		return "no valid image"
	case ConfFlashError:
		return "flash write error"
	case ConfMustVerifyPw:
		return "password not verified"
	}
	return "unknown"
}

// Options configure a Reader. Name and Open are required.
type Options struct {
	Name string               // configured reader name, copied into every Read
	Open func() (Port, error) // opens the port; called again after each failure

	Address  uint32 // module address; zero means DefaultAddress (0xFFFFFFFF)
	Password uint32 // verified with VfyPwd at start when not zero
	// MinScore: a match scoring below it is reported as no match.
	// Negative means 0; zero means DefaultMinScore.
	MinScore int

	// Now is the clock: it stamps Reads and measures how long the
	// sensor has been silent and how long enrolment waits. Default
	// time.Now.
	Now func() time.Time
	// After paces polling, bounds each command and waits out backoff.
	// Default time.After.
	After func(d time.Duration) <-chan time.Time

	Logger *slog.Logger // default: silent

	PollInterval  time.Duration // pause between GenImg polls
	AckTimeout    time.Duration // how long a command may go unanswered
	FingerTimeout time.Duration // how long enrolment waits for a finger
	// Reopen backoff, as rdm6300's.
	MinBackoff time.Duration
	MaxBackoff time.Duration
}

// A Reader is one fingerprint sensor. It implements reader.Reader,
// reader.StatsReader, reader.Stater and reader.Enroller.
type Reader struct {
	opt Options
	log *slog.Logger

	running atomic.Bool
	reqs    chan request
	qmu     sync.Mutex
	quit    chan struct{} // closed when Run returns; nil when not running

	fmu    sync.Mutex // guards framer: the pump feeds it, commands expire it
	framer Framer

	lastAnswer atomic.Int64 // opt.Now() of the last ack, in Unix nanoseconds

	frames, reads, bad, garbage, reopens, timeouts atomic.Uint64

	// Owned by the goroutine in Run.
	needInit   bool
	libSize    int
	fingerDown bool // a finger was reported and has not been lifted
	silent     int  // consecutive timeouts
}

var (
	_ reader.Reader      = (*Reader)(nil)
	_ reader.StatsReader = (*Reader)(nil)
	_ reader.Stater      = (*Reader)(nil)
	_ reader.Enroller    = (*Reader)(nil)
)

// NewReader returns a Reader for opt with defaults filled in.
// Configuration errors are reported by Run.
func NewReader(opt Options) *Reader {
	if opt.Address == 0 {
		opt.Address = DefaultAddress
	}
	switch {
	case opt.MinScore == 0:
		opt.MinScore = DefaultMinScore
	case opt.MinScore < 0:
		opt.MinScore = 0
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.After == nil {
		opt.After = time.After
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.PollInterval == 0 {
		opt.PollInterval = DefaultPollInterval
	}
	if opt.AckTimeout == 0 {
		opt.AckTimeout = DefaultAckTimeout
	}
	if opt.FingerTimeout == 0 {
		opt.FingerTimeout = DefaultFingerTimeout
	}
	if opt.MinBackoff == 0 {
		opt.MinBackoff = DefaultMinBackoff
	}
	if opt.MaxBackoff == 0 {
		opt.MaxBackoff = DefaultMaxBackoff
	}
	r := &Reader{
		opt:  opt,
		log:  opt.Logger.With("reader", opt.Name, "driver", "r30x"),
		reqs: make(chan request),
	}
	// The driver reads no data packets: its longest ack is an index
	// table (a confirmation code and 32 bytes).
	r.framer.MaxPayload = 1 + 32
	return r
}

func (o *Options) validate() error {
	switch {
	case o.Name == "":
		return fmt.Errorf("%w: Name is empty", ErrConfig)
	case o.Open == nil:
		return fmt.Errorf("%w: reader %q: Open is nil", ErrConfig, o.Name)
	case o.PollInterval < 0 || o.AckTimeout <= 0 || o.FingerTimeout <= 0:
		return fmt.Errorf("%w: reader %q: negative interval or timeout", ErrConfig, o.Name)
	case o.MinBackoff <= 0 || o.MaxBackoff < o.MinBackoff:
		return fmt.Errorf("%w: reader %q: backoff %v..%v is not a positive range", ErrConfig, o.Name, o.MinBackoff, o.MaxBackoff)
	}
	return nil
}

// Name returns the configured reader name.
func (r *Reader) Name() string { return r.opt.Name }

// Stats returns the driver's counters. Safe from any goroutine.
func (r *Reader) Stats() reader.Stats {
	return reader.Stats{
		Frames:    r.frames.Load(),
		Reads:     r.reads.Load(),
		BadFrames: r.bad.Load(),
		Garbage:   r.garbage.Load(),
		Reopens:   r.reopens.Load(),
		Timeouts:  r.timeouts.Load(),
	}
}

// State is StateOffline while Run is not running and when the sensor
// has not answered for reader.OfflineAfter, StateOnline otherwise.
func (r *Reader) State() string {
	if !r.running.Load() {
		return reader.StateOffline
	}
	last := time.Unix(0, r.lastAnswer.Load())
	if r.opt.Now().Sub(last) >= reader.OfflineAfter {
		return reader.StateOffline
	}
	return reader.StateOnline
}

// Run polls the sensor and sends one Read per presentation of a finger
// on out until ctx is done, then returns nil, leaving no goroutine
// behind. A port that fails to open or fails while in use is reopened
// with backoff; a sensor that stops answering is re-initialised. Run
// returns an error wrapping ErrConfig only for unusable Options, or if it
// is already running.
func (r *Reader) Run(ctx context.Context, out chan<- reader.Read) error {
	if err := r.opt.validate(); err != nil {
		return err
	}
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: reader %q: Run is already running", ErrConfig, r.opt.Name)
	}
	quit := make(chan struct{})
	r.qmu.Lock()
	r.quit = quit
	r.qmu.Unlock()
	// The sensor gets OfflineAfter to answer for the first time.
	r.lastAnswer.Store(r.opt.Now().UnixNano())
	r.needInit = true

	var q reader.Queue
	var wg sync.WaitGroup
	wg.Go(func() { q.Deliver(ctx, out) })
	defer func() {
		wg.Wait()
		r.qmu.Lock()
		r.quit = nil
		r.qmu.Unlock()
		close(quit)
		r.running.Store(false)
	}()

	backoff := reader.Backoff{Min: r.opt.MinBackoff, Max: r.opt.MaxBackoff}
	failed := false
	for ctx.Err() == nil {
		port, err := r.opt.Open()
		if err != nil {
			err = fmt.Errorf("r30x: reader %q: open: %w", r.opt.Name, err)
		} else {
			if failed {
				r.reopens.Add(1)
				r.log.Info("port reopened")
			}
			var gotData bool
			gotData, err = r.session(ctx, port, &q)
			if ctx.Err() != nil {
				return nil
			}
			if gotData {
				backoff.Reset()
			}
		}
		failed = true
		r.needInit = true
		r.fmu.Lock()
		r.framer.Reset()
		r.publishLocked()
		r.fmu.Unlock()
		wait := backoff.Next()
		r.log.Warn("port failed", "err", err, "retry_in", wait)
		if !r.waitServing(ctx, wait, nil) {
			return nil
		}
	}
	return nil
}

// waitServing waits d, answering Enroll and Erase requests meanwhile: with
// s when the port is open, with ErrOffline when it is not. It returns
// false when ctx is done, and (with s) early when a request failed the
// port, leaving the error in s.err.
func (r *Reader) waitServing(ctx context.Context, d time.Duration, s *session) bool {
	timer := r.opt.After(d)
	for {
		var perr <-chan error
		if s != nil {
			perr = s.perr
		}
		select {
		case <-ctx.Done():
			return false
		case <-timer:
			return true
		case err := <-perr:
			s.err = err
			return true
		case req := <-r.reqs:
			if s == nil {
				req.done <- result{err: fmt.Errorf("r30x: reader %q: %w", r.opt.Name, ErrOffline)}
				continue
			}
			s.serve(req)
			if s.err != nil {
				return true
			}
		}
	}
}

// Guard against a port whose Read returns nothing without blocking, as a
// hung-up tty does: that many empty reads in a row, each returning in
// less than spinFast, are a port failure. Measured on the real clock: it
// is about how the port blocks, not about the sensor.
const (
	spinReads = 64
	spinFast  = time.Millisecond
)

var errSpinning = errors.New("read returns no data without blocking")

// A stamped packet is a packet and when its last byte was processed.
type stamped struct {
	Packet
	at time.Time
}

// A session is one opening of the port.
type session struct {
	r    *Reader
	ctx  context.Context
	port Port
	pkts chan stamped
	perr chan error
	err  error // the port failure that ends the session
	late bool  // a command timed out: its ack may still come
}

// session talks to the sensor on port until the port fails or ctx is
// done. It closes port before returning. gotData reports whether any
// byte arrived.
//
// A pump goroutine reads the port and decodes packets as bytes arrive;
// this goroutine sends commands and takes their acks from the pump.
func (r *Reader) session(ctx context.Context, port Port, q *reader.Queue) (gotData bool, err error) {
	stop := make(chan struct{})
	var data atomic.Bool
	s := &session{r: r, ctx: ctx, port: port, pkts: make(chan stamped, 16), perr: make(chan error, 1)}
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
	wg.Go(func() { s.perr <- r.pump(port, s.pkts, &data) })
	defer func() {
		close(stop)
		wg.Wait()
		gotData = data.Load()
	}()

	for {
		if r.needInit {
			var se *SensorError
			if err := s.init(ctx); errors.As(err, &se) && se.Code == ConfWrongPwd {
				// Retrying at polling pace would only fill the log.
				r.log.Error("sensor refuses the password", "err", err)
				if !r.waitServing(ctx, r.opt.MaxBackoff, s) {
					return false, ctx.Err()
				}
			}
		} else {
			s.poll(q)
		}
		if s.err != nil {
			return false, s.err
		}
		if !r.waitServing(ctx, r.opt.PollInterval, s) {
			return false, ctx.Err()
		}
		if s.err != nil {
			return false, s.err
		}
	}
}

// pump reads and decodes port until a read fails, offering each packet
// to pkts (dropped if nobody is taking them: only the ack of the command
// in flight matters).
func (r *Reader) pump(port Port, pkts chan<- stamped, gotData *atomic.Bool) error {
	buf := make([]byte, 256)
	fast := 0
	for {
		start := time.Now()
		n, err := port.Read(buf)
		if n > 0 {
			gotData.Store(true)
			fast = 0
			now := r.opt.Now()
			r.fmu.Lock()
			r.framer.Feed(buf[:n], func(p Packet) { offer(pkts, stamped{p, now}) })
			r.publishLocked()
			r.fmu.Unlock()
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("r30x: reader %q: read: %w", r.opt.Name, err)
		}
		if n == 0 {
			if time.Since(start) < spinFast {
				fast++
				if fast >= spinReads {
					return fmt.Errorf("r30x: reader %q: %w", r.opt.Name, errSpinning)
				}
			} else {
				fast = 0
			}
		}
	}
}

func offer(pkts chan<- stamped, p stamped) {
	select {
	case pkts <- p:
	default:
	}
}

// expire rejects a packet left incomplete: the line is quiet.
func (r *Reader) expire(pkts chan<- stamped) {
	now := r.opt.Now()
	r.fmu.Lock()
	r.framer.Expire(func(p Packet) { offer(pkts, stamped{p, now}) })
	r.publishLocked()
	r.fmu.Unlock()
}

func (r *Reader) publishLocked() {
	s := r.framer.Stats()
	r.frames.Store(s.Frames)
	r.bad.Store(s.BadFrames)
	r.garbage.Store(s.Garbage)
}

// ackLen is the payload length of a successful ack to cmd; a failed one
// may carry only its confirmation code.
func ackLen(cmd byte) int {
	switch cmd {
	case CmdSearch:
		return 1 + 2 + 2 // confirmation, page, score
	case CmdReadSysPara:
		return 1 + 16
	case CmdReadIndexTable:
		return 1 + 32
	}
	return 1
}

// exchange sends one command and returns its ack. Errors: ctx's, a
// wrapped ErrTimeout, or a port failure (also left in s.err).
func (s *session) exchange(ctx context.Context, payload ...byte) (stamped, error) {
	r := s.r
	if s.err != nil {
		return stamped{}, s.err
	}
	if s.late {
		// The command that timed out may still be answered: let that
		// ack come and go first, or it would pass for this one's.
		if err := s.settle(ctx); err != nil {
			return stamped{}, err
		}
	}
	// Nothing valid is in flight between commands: finish off any
	// partial packet and forget late acks.
	r.expire(s.pkts)
	for len(s.pkts) > 0 {
		<-s.pkts
	}
	if _, err := s.port.Write(mustEncode(r.opt.Address, PIDCommand, payload)); err != nil {
		s.err = fmt.Errorf("r30x: reader %q: write: %w", r.opt.Name, err)
		return stamped{}, s.err
	}
	cmd := payload[0]
	fits := func(p stamped) bool {
		if p.PID != PIDAck || p.Addr != r.opt.Address || len(p.Payload) == 0 {
			return false
		}
		return len(p.Payload) == ackLen(cmd) || (p.Payload[0] != ConfOK && len(p.Payload) == 1)
	}
	timer := r.opt.After(r.opt.AckTimeout)
	for {
		select {
		case <-ctx.Done():
			s.late = true // abandoned, not unanswered
			return stamped{}, ctx.Err()
		case err := <-s.perr:
			s.err = err
			return stamped{}, err
		case p := <-s.pkts:
			if fits(p) {
				s.answered()
				return p, nil
			}
		case <-timer:
			r.expire(s.pkts)
			for len(s.pkts) > 0 {
				if p := <-s.pkts; fits(p) {
					s.answered()
					return p, nil
				}
			}
			r.timeouts.Add(1)
			r.needInit = true
			s.late = true
			r.silent++
			if r.silent == 1 {
				r.log.Warn("sensor does not answer", "cmd", fmt.Sprintf("0x%02X", cmd))
			}
			return stamped{}, fmt.Errorf("r30x: reader %q: command 0x%02X: %w", r.opt.Name, cmd, ErrTimeout)
		}
	}
}

// settle waits for the ack of a command that timed out, up to
// AckTimeout, and discards it.
func (s *session) settle(ctx context.Context) error {
	timer := s.r.opt.After(s.r.opt.AckTimeout)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-s.perr:
			s.err = err
			return err
		case p := <-s.pkts:
			if p.PID == PIDAck {
				s.late = false
				return nil
			}
		case <-timer:
			s.late = false
			return nil
		}
	}
}

func (s *session) answered() {
	r := s.r
	r.lastAnswer.Store(r.opt.Now().UnixNano())
	if r.silent > 0 {
		r.log.Info("sensor answers again", "after_timeouts", r.silent)
		r.silent = 0
	}
}

// command runs one command whose confirmation code the caller judges.
func (s *session) command(ctx context.Context, payload ...byte) (stamped, byte, error) {
	p, err := s.exchange(ctx, payload...)
	if err != nil {
		return p, 0, err
	}
	conf := p.Payload[0]
	if conf == ConfMustVerifyPw {
		s.r.needInit = true
	}
	return p, conf, nil
}

// must runs one command that must succeed.
func (s *session) must(ctx context.Context, payload ...byte) (stamped, error) {
	p, conf, err := s.command(ctx, payload...)
	if err != nil {
		return p, err
	}
	if conf != ConfOK {
		return p, &SensorError{Cmd: payload[0], Code: conf}
	}
	return p, nil
}

// init verifies the password (when one is set) and learns the library
// size.
func (s *session) init(ctx context.Context) error {
	r := s.r
	if r.opt.Password != 0 {
		pw := binary.BigEndian.AppendUint32([]byte{CmdVfyPwd}, r.opt.Password)
		if _, err := s.must(ctx, pw...); err != nil {
			return err
		}
	}
	p, err := s.must(ctx, CmdReadSysPara)
	if err != nil {
		return err
	}
	// Parameters after the confirmation code, in 16-bit words: status,
	// system id, library size, security level, address (2 words),
	// packet size code, baud N.
	size := int(binary.BigEndian.Uint16(p.Payload[5:7]))
	if size == 0 {
		return fmt.Errorf("r30x: reader %q: sensor reports a library of 0 pages", r.opt.Name)
	}
	// ReadIndexTable covers four index pages of 256.
	r.libSize = min(size, 4*256)
	if r.needInit {
		r.log.Info("sensor ready", "library_size", size)
	}
	r.needInit = false
	return nil
}

// poll takes one GenImg and, for a new finger, Img2Tz and Search. Errors
// are counted or left in s.err; the next poll tries again.
func (s *session) poll(q *reader.Queue) {
	r := s.r
	_, conf, err := s.command(s.ctx, CmdGenImg)
	if err != nil {
		return
	}
	switch conf {
	case ConfNoFinger:
		r.fingerDown = false
		return
	case ConfOK:
	default:
		return // a failed capture: try again
	}
	if r.fingerDown {
		return // the finger already reported is still there
	}
	if _, err := s.must(s.ctx, CmdImg2Tz, 1); err != nil {
		return // a poor image: the next poll captures again
	}
	p, conf, err := s.command(s.ctx, CmdSearch, 1, 0, 0, byte(r.libSize>>8), byte(r.libSize))
	if err != nil {
		return
	}
	rd := reader.Read{Reader: r.opt.Name, Type: reader.TypeFingerprint, At: p.at}
	switch conf {
	case ConfOK:
		page := int(binary.BigEndian.Uint16(p.Payload[1:3]))
		score := int(binary.BigEndian.Uint16(p.Payload[3:5]))
		if score >= r.opt.MinScore {
			rd.Value, rd.Score = strconv.Itoa(page), score
		}
	case ConfNoMatch:
	default:
		return
	}
	r.fingerDown = true
	r.reads.Add(1)
	if !q.Push(rd) {
		r.log.Warn("consumer stalled: dropped the oldest read", "dropped", q.Dropped())
	}
}

// A request is an Enroll or Erase call waiting for the Run goroutine.
type request struct {
	ctx    context.Context
	enroll bool
	taken  func(page int) bool // enroll: pages not to use
	pages  []int
	done   chan result // buffered: the Run goroutine never waits on it
}

type result struct {
	page int
	err  error
}

func (s *session) serve(req request) {
	// Stop on the caller's context or on Run's.
	ctx, cancel := context.WithCancel(req.ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	var res result
	if s.r.needInit {
		res.err = s.init(ctx)
	}
	if res.err == nil {
		if req.enroll {
			res.page, res.err = s.enroll(ctx, req.taken)
		} else {
			res.err = s.erase(ctx, req.pages)
		}
	}
	req.done <- res
}

// Enroll takes two captures of one finger, merges them and stores the
// template at the lowest page that is free on the sensor and not taken
// (nil: none is), which it returns. It waits up to
// FingerTimeout for each placing and for the lift between (and first,
// for a finger reported as a punch to leave the sensor). It runs on
// Run's goroutine (polling pauses meanwhile); the captures are not Reads.
func (r *Reader) Enroll(ctx context.Context, taken func(page int) bool) (int, error) {
	res := r.call(ctx, request{ctx: ctx, enroll: true, taken: taken})
	return res.page, res.err
}

// Erase deletes the templates at pages (DeleteChar, one page each). It
// tries every page and returns the failures joined.
func (r *Reader) Erase(ctx context.Context, pages []int) error {
	return r.call(ctx, request{ctx: ctx, pages: pages}).err
}

func (r *Reader) call(ctx context.Context, req request) result {
	req.done = make(chan result, 1)
	r.qmu.Lock()
	quit := r.quit
	r.qmu.Unlock()
	if quit == nil {
		return result{err: fmt.Errorf("r30x: reader %q: %w", r.opt.Name, ErrNotRunning)}
	}
	select {
	case r.reqs <- req:
	case <-quit:
		return result{err: fmt.Errorf("r30x: reader %q: %w", r.opt.Name, ErrNotRunning)}
	case <-ctx.Done():
		return result{err: ctx.Err()}
	}
	// Once taken, the request is answered (Run's goroutine stops it when
	// ctx is done).
	return <-req.done
}

func (s *session) enroll(ctx context.Context, taken func(int) bool) (int, error) {
	r := s.r
	// A finger reported as a punch and still resting on the sensor is
	// not the one to enrol: wait until the sensor is clear.
	if r.fingerDown {
		if err := s.waitLift(ctx); err != nil {
			return 0, err
		}
		r.fingerDown = false
	}
	if err := s.capture(ctx, 1); err != nil {
		return 0, err
	}
	if err := s.waitLift(ctx); err != nil {
		return 0, err
	}
	if err := s.capture(ctx, 2); err != nil {
		return 0, err
	}
	// The finger is still on the sensor: it is no presentation.
	r.fingerDown = true
	if _, err := s.must(ctx, CmdRegModel); err != nil {
		var se *SensorError
		if errors.As(err, &se) && se.Code == ConfMergeFail {
			return 0, fmt.Errorf("r30x: reader %q: %w", r.opt.Name, ErrMismatch)
		}
		return 0, err
	}
	page, err := s.freePage(ctx, taken)
	if err != nil {
		return 0, err
	}
	if _, err := s.must(ctx, CmdStore, 1, byte(page>>8), byte(page)); err != nil {
		return 0, err
	}
	r.log.Info("template enrolled", "page", page)
	return page, nil
}

// capture waits for a finger and turns its image into a character file
// in buffer buf.
func (s *session) capture(ctx context.Context, buf byte) error {
	r := s.r
	deadline := r.opt.Now().Add(r.opt.FingerTimeout)
	for {
		_, conf, err := s.command(ctx, CmdGenImg)
		if err != nil {
			return err
		}
		if conf == ConfOK {
			_, conf, err := s.command(ctx, CmdImg2Tz, buf)
			if err != nil {
				return err
			}
			if conf == ConfOK {
				return nil
			}
			r.log.Info("enrolment: poor image, capturing again", "code", fmt.Sprintf("0x%02X", conf))
		}
		if !r.opt.Now().Before(deadline) {
			return fmt.Errorf("r30x: reader %q: capture %d: %w", r.opt.Name, buf, ErrNoFinger)
		}
		if err := s.pause(ctx); err != nil {
			return err
		}
	}
}

// waitLift waits until GenImg finds no finger.
func (s *session) waitLift(ctx context.Context) error {
	r := s.r
	deadline := r.opt.Now().Add(r.opt.FingerTimeout)
	for {
		_, conf, err := s.command(ctx, CmdGenImg)
		if err != nil {
			return err
		}
		if conf == ConfNoFinger {
			return nil
		}
		if !r.opt.Now().Before(deadline) {
			return fmt.Errorf("r30x: reader %q: finger not lifted between captures: %w", r.opt.Name, ErrNoFinger)
		}
		if err := s.pause(ctx); err != nil {
			return err
		}
	}
}

func (s *session) pause(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-s.perr:
		s.err = err
		return err
	case <-s.r.opt.After(s.r.opt.PollInterval):
		return nil
	}
}

// freePage reads the index tables and returns the lowest free page that
// is not taken. In
// each 32-byte table, bit i (least significant first) of byte j stands
// for page 256*index + 8*j + i (R503 manual, ReadIndexTable).
func (s *session) freePage(ctx context.Context, taken func(int) bool) (int, error) {
	r := s.r
	for ip := 0; ip*256 < r.libSize; ip++ {
		p, err := s.must(ctx, CmdReadIndexTable, byte(ip))
		if err != nil {
			return 0, err
		}
		for j, b := range p.Payload[1:33] {
			for i := range 8 {
				page := ip*256 + j*8 + i
				if page >= r.libSize {
					return 0, fmt.Errorf("r30x: reader %q: %w", r.opt.Name, ErrLibraryFull)
				}
				if b&(1<<i) == 0 && (taken == nil || !taken(page)) {
					return page, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("r30x: reader %q: %w", r.opt.Name, ErrLibraryFull)
}

func (s *session) erase(ctx context.Context, pages []int) error {
	r := s.r
	var errs []error
	for _, page := range pages {
		if page < 0 || page >= r.libSize {
			errs = append(errs, fmt.Errorf("r30x: reader %q: page %d of %d: %w", r.opt.Name, page, r.libSize, ErrBadPage))
			continue
		}
		if _, err := s.must(ctx, CmdDeleteChar, byte(page>>8), byte(page), 0, 1); err != nil {
			errs = append(errs, fmt.Errorf("r30x: reader %q: delete page %d: %w", r.opt.Name, page, err))
			if s.err != nil || ctx.Err() != nil {
				break
			}
			continue
		}
		r.log.Info("template erased", "page", page)
	}
	return errors.Join(errs...)
}
