package osdp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/punchclock/punchclock/reader"
)

// The readers of one port share one bus: one goroutine that owns the
// port and polls the PDs in turn, since on RS-485 only one device may
// talk at a time and every reply must be matched to the command that
// asked for it. Buses are kept in a registry keyed by port path; the
// first reader's Run starts its bus, the last one's stops it and waits
// for it.

var buses = struct {
	mu sync.Mutex
	m  map[string]*bus
}{m: make(map[string]*bus)}

type bus struct {
	path string
	opt  Options // of the reader that started it
	log  *slog.Logger
	wake chan struct{}

	warnedRTS bool // owned by the bus goroutine

	mu      sync.Mutex
	members map[byte]*member

	cancel context.CancelFunc
	done   chan struct{}
}

// A member is a reader on the bus with its conversation; a reader that
// leaves and joins again gets a new one, so the bus goroutine may finish
// a cycle with the old one undisturbed.
type member struct {
	r  *Reader
	cp *cp
}

func join(r *Reader) error {
	buses.mu.Lock()
	defer buses.mu.Unlock()
	b := buses.m[r.opt.Port]
	if b != nil {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch {
		case b.opt.Baud != r.opt.Baud:
			return fmt.Errorf("%w: osdp: reader %q: port %s runs at %d baud for reader %q, not %d", reader.ErrConfig, r.opt.Name, r.opt.Port, b.opt.Baud, b.opt.Name, r.opt.Baud)
		case b.opt.RTS != r.opt.RTS:
			return fmt.Errorf("%w: osdp: reader %q: readers of port %s disagree on rts_direction or rts_invert", reader.ErrConfig, r.opt.Name, r.opt.Port)
		case b.members[r.opt.Address] != nil:
			return fmt.Errorf("%w: osdp: reader %q: address %d on %s is reader %q's", reader.ErrConfig, r.opt.Name, r.opt.Address, r.opt.Port, b.members[r.opt.Address].r.opt.Name)
		}
		b.members[r.opt.Address] = &member{r: r, cp: newCP(r.opt.Address, r.scbk, b.opt.Rand)}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	b = &bus{
		path:    r.opt.Port,
		opt:     r.opt,
		log:     r.opt.Logger.With("driver", "osdp", "port", r.opt.Port),
		wake:    make(chan struct{}, 1),
		members: map[byte]*member{r.opt.Address: {r: r, cp: newCP(r.opt.Address, r.scbk, r.opt.Rand)}},
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	buses.m[b.path] = b
	go func() {
		defer close(b.done)
		b.run(ctx)
	}()
	return nil
}

func leave(r *Reader) {
	buses.mu.Lock()
	defer buses.mu.Unlock()
	b := buses.m[r.opt.Port]
	if b == nil {
		return
	}
	b.mu.Lock()
	if m := b.members[r.opt.Address]; m != nil && m.r == r {
		delete(b.members, r.opt.Address)
	}
	empty := len(b.members) == 0
	b.mu.Unlock()
	if empty {
		delete(buses.m, b.path)
		b.cancel()
		<-b.done
	}
}

// wakeBus makes the bus of port start its next cycle now (feedback to
// send).
func wakeBus(port string) {
	buses.mu.Lock()
	b := buses.m[port]
	buses.mu.Unlock()
	if b == nil {
		return
	}
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *bus) snapshot() []*member {
	b.mu.Lock()
	defer b.mu.Unlock()
	ms := make([]*member, 0, len(b.members))
	for _, m := range b.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(x, y *member) int { return int(x.r.opt.Address) - int(y.r.opt.Address) })
	return ms
}

// run opens the port and polls until ctx is done, reopening the port
// with backoff when it fails.
func (b *bus) run(ctx context.Context) {
	backoff := reader.Backoff{Min: b.opt.MinBackoff, Max: b.opt.MaxBackoff}
	failed := false
	for ctx.Err() == nil {
		port, err := b.opt.Open(b.path, b.opt.Baud, b.opt.RTS)
		if err == nil {
			if n, ok := port.(interface{ NoRTS() bool }); ok && n.NoRTS() && !b.warnedRTS {
				b.warnedRTS = true
				b.log.Warn("the port has no RTS line (a pseudo-terminal?): rts_direction ignored")
			}
			if failed {
				for _, m := range b.snapshot() {
					m.r.reopens.Add(1)
				}
				b.log.Info("port reopened")
			}
			var gotData bool
			gotData, err = b.serve(ctx, port)
			if ctx.Err() != nil {
				return
			}
			if gotData {
				backoff.Reset()
			}
		}
		failed = true
		wait := backoff.Next()
		b.log.Warn("port failed", "err", err, "retry_in", wait)
		if reader.Wait(ctx, wait) != nil {
			return
		}
	}
}

// Guard against a port whose Read returns nothing without blocking, as
// a hung-up tty may.
const (
	spinReads  = 64
	spinWindow = time.Second
)

var errSpinning = errors.New("osdp: read returns no data without blocking")

// serve polls the PDs over port until it fails or ctx is done; it closes
// port before returning. A pump goroutine reads and frames what arrives,
// so that the port is read while the bus waits and nothing a PD sends
// is left in the tty.
func (b *bus) serve(ctx context.Context, port Port) (gotData bool, err error) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		if err := port.Close(); err != nil {
			b.log.Debug("close port", "err", err)
		}
	})

	var (
		fmu     sync.Mutex
		framer  Framer
		current atomic.Pointer[member] // the PD whose reply is awaited
		data    atomic.Bool
		frames  = make(chan Frame, 64)
		pumpErr = make(chan error, 1)
	)
	// account attributes the framer's noise counters to the PD awaited.
	account := func(before reader.Stats) {
		after := framer.Stats()
		m := current.Load()
		if m == nil { // nothing asked yet: the first PD's
			if ms := b.snapshot(); len(ms) > 0 {
				m = ms[0]
			}
		}
		if m != nil {
			m.r.garbage.Add(after.Garbage - before.Garbage)
			m.r.bad.Add(after.BadFrames - before.BadFrames)
		}
	}
	wg.Go(func() {
		buf := make([]byte, 512)
		empties := 0
		var emptySince time.Time
		var got []Frame
		collect := func(f Frame) { got = append(got, f) }
		for {
			n, err := port.Read(buf)
			if n > 0 {
				data.Store(true)
				empties = 0
				fmu.Lock()
				before := framer.Stats()
				framer.Feed(buf[:n], collect)
				account(before)
				fmu.Unlock()
				for _, f := range got {
					select {
					case frames <- f:
					case <-stop:
						return
					}
				}
				got = got[:0]
			}
			if err == nil && n == 0 {
				now := time.Now()
				if empties == 0 {
					emptySince = now
				}
				if empties++; empties >= spinReads {
					if now.Sub(emptySince) < spinWindow {
						err = errSpinning
					}
					empties = 0
				}
			}
			if err != nil {
				pumpErr <- fmt.Errorf("osdp: read %s: %w", b.path, err)
				return
			}
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
		gotData = data.Load()
	}()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	arm := func(d time.Duration) {
		timer.Stop()
		select {
		case <-timer.C:
		default:
		}
		timer.Reset(d)
	}
	for {
		start := time.Now()
		for _, m := range b.snapshot() {
			for _, s := range m.r.takeSignals() {
				m.cp.indicate(s)
			}
			pkt, err := m.cp.next()
			if err != nil {
				m.r.log.Error("cannot build command", "err", err)
				continue
			}
			current.Store(m)
			if _, err := port.Write(pkt); err != nil {
				return false, fmt.Errorf("osdp: write %s: %w", b.path, err)
			}
			arm(b.opt.ReplyTimeout + wireTime(len(pkt), b.opt.Baud))
			if err := b.await(ctx, m, timer, frames, pumpErr, func() []Frame {
				var got []Frame
				fmu.Lock()
				before := framer.Stats()
				framer.Flush(func(f Frame) { got = append(got, f) })
				account(before)
				fmu.Unlock()
				return got
			}); err != nil {
				return false, err
			}
		}
		arm(max(0, b.opt.PollInterval-time.Since(start)))
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case err := <-pumpErr:
			return false, err
		case <-b.wake:
		case <-timer.C:
		}
	}
}

// await waits for m's reply to the packet just sent, or for the timer.
// flush is called on a timeout and returns what the framer had held
// back.
func (b *bus) await(ctx context.Context, m *member, timer *time.Timer, frames <-chan Frame, pumpErr <-chan error, flush func() []Frame) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-pumpErr:
			return err
		case f := <-frames:
			if b.reply(m, f) {
				return nil
			}
		case <-timer.C:
			for _, f := range flush() {
				if b.reply(m, f) {
					return nil
				}
			}
			m.r.timeouts.Add(1)
			if m.cp.timeout() {
				m.r.log.Debug("no answer: re-initialising the PD")
			}
			if m.r.State() == reader.StateOffline && m.r.online.Swap(false) {
				m.r.log.Warn("PD offline", "after", reader.OfflineAfter)
			}
			return nil
		}
	}
}

// reply handles frame f while m's reply is awaited, and reports whether
// it was that reply. Commands (an echo of the CP's own on a bus that
// hears itself) and other PDs' replies are skipped.
func (b *bus) reply(m *member, f Frame) bool {
	if !f.Reply || f.Addr != m.r.opt.Address {
		return false
	}
	r := m.r
	now := r.opt.Now()
	items, err := m.cp.handle(f)
	if errors.Is(err, errStale) {
		r.bad.Add(1)
		return false
	}
	r.frames.Add(1)
	r.answered(now)
	switch {
	case errors.Is(err, reader.ErrBadFrame):
		r.bad.Add(1)
		r.logLimited(now, "bad reply", err)
	case err != nil:
		r.logLimited(now, "PD restarts", err)
	}
	r.deliver(items, now)
	return true
}

// wireTime is how long n bytes take on the wire at baud, 8N1.
func wireTime(n, baud int) time.Duration {
	return time.Duration(n) * 10 * time.Second / time.Duration(baud)
}
