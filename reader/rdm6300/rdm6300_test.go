package rdm6300_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/rdm6300"
	"github.com/punchclock/punchclock/reader/readertest"
)

var _ rdm6300.Port = (*readertest.Port)(nil)

const (
	cardA  = "0A00123456"
	cardB  = "1A2B3C4D5E"
	window = 500 * time.Millisecond
	within = 5 * time.Second // how long a test waits for the driver
)

var t0 = time.Date(2025, 1, 6, 8, 0, 0, 0, time.UTC)

type harness struct {
	t      *testing.T
	clock  *readertest.Clock
	opener *readertest.Opener
	r      *rdm6300.Reader
	out    chan reader.Read
	cancel context.CancelFunc
	done   chan error

	mu    sync.Mutex
	waits []time.Duration // backoff waits requested by the driver
}

// start runs a driver on an Opener with a manual clock and a Wait that
// records the backoff and returns at once. mod may change the Config and
// the Opener before Run starts.
func start(t *testing.T, mod func(*rdm6300.Config, *readertest.Opener)) *harness {
	t.Helper()
	h := &harness{
		t:      t,
		clock:  readertest.NewClock(t0),
		opener: readertest.NewOpener(),
		out:    make(chan reader.Read),
		done:   make(chan error, 1),
	}
	cfg := rdm6300.Config{
		Name:         "front",
		Open:         h.opener.Open,
		RepeatWindow: window,
		Now:          h.clock.Now,
		Wait: func(ctx context.Context, d time.Duration) error {
			h.mu.Lock()
			h.waits = append(h.waits, d)
			h.mu.Unlock()
			return ctx.Err()
		},
	}
	if mod != nil {
		mod(&cfg, h.opener)
	}
	h.r = rdm6300.New(cfg)
	ctx, cancel := context.WithCancel(t.Context())
	h.cancel = cancel
	go func() { h.done <- h.r.Run(ctx, h.out) }()
	t.Cleanup(func() { h.stop() })
	return h
}

// stop cancels Run and checks that it returns nil promptly.
func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	select {
	case err, ok := <-h.done:
		if ok && err != nil {
			h.t.Errorf("Run returned %v, want nil", err)
		}
		if ok {
			close(h.done)
		}
	case <-time.After(within):
		h.t.Fatal("Run did not return after cancel")
	}
}

func (h *harness) port(n int) *readertest.Port {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), within)
	defer cancel()
	p, err := h.opener.Port(ctx, n)
	if err != nil {
		h.t.Fatalf("port %d never opened: %v", n, err)
	}
	return p
}

func (h *harness) write(p *readertest.Port, b []byte) {
	h.t.Helper()
	if _, err := p.Write(b); err != nil {
		h.t.Fatalf("write: %v", err)
	}
}

func (h *harness) card(p *readertest.Port, value string) {
	h.t.Helper()
	fr, err := rdm6300.Encode(value)
	if err != nil {
		h.t.Fatal(err)
	}
	h.write(p, fr)
}

// fold writes a frame the driver is expected to fold into an earlier
// presentation, and waits until the driver has processed it.
func (h *harness) fold(p *readertest.Port, value string) {
	h.t.Helper()
	h.card(p, value)
	if err := p.Sync(); err != nil {
		h.t.Fatalf("sync: %v", err)
	}
}

// expect waits for the next Read and checks it. Since reads arrive in
// order, expecting a different card after some repeats proves the
// repeats were not reported.
func (h *harness) expect(value string, at time.Time) {
	h.t.Helper()
	select {
	case rd := <-h.out:
		want := reader.Read{Reader: "front", Type: reader.TypeCard, Format: reader.FormatEM4100, Value: value, At: at}
		if rd != want {
			h.t.Fatalf("got %+v, want %+v", rd, want)
		}
	case <-time.After(within):
		h.t.Fatalf("no read of %s", value)
	}
}

func (h *harness) recordedWaits() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.waits)
}

func TestRepeatsFolded(t *testing.T) {
	h := start(t, nil)
	p := h.port(1)
	h.card(p, cardA)
	h.expect(cardA, t0)
	for range 5 { // the module repeats while the card stays in the field
		h.clock.Advance(100 * time.Millisecond)
		h.fold(p, cardA)
	}
	h.card(p, cardB)
	h.expect(cardB, t0.Add(500*time.Millisecond))
	if s := h.r.Stats(); s.Frames != 7 || s.Reads != 2 {
		t.Errorf("stats = %+v, want 7 frames, 2 reads", s)
	}
}

func TestWindowSlidesWithRepeats(t *testing.T) {
	h := start(t, nil)
	p := h.port(1)
	h.card(p, cardA)
	h.expect(cardA, t0)
	// Each repeat comes just inside the window of the previous one: the
	// card never left, so it is one presentation however long it stays.
	for range 4 {
		h.clock.Advance(window - time.Millisecond)
		h.fold(p, cardA)
	}
	// Silence for a whole window: the card left and is presented again.
	h.clock.Advance(window)
	h.card(p, cardA)
	h.expect(cardA, t0.Add(4*(window-time.Millisecond)+window))
	if s := h.r.Stats(); s.Frames != 6 || s.Reads != 2 {
		t.Errorf("stats = %+v, want 6 frames, 2 reads", s)
	}
}

func TestTwoCardsAlternating(t *testing.T) {
	h := start(t, nil)
	p := h.port(1)
	h.card(p, cardA)
	h.expect(cardA, t0)
	// A different card is reported at once, even inside A's window.
	h.clock.Advance(10 * time.Millisecond)
	h.card(p, cardB)
	h.expect(cardB, t0.Add(10*time.Millisecond))
	// Both in the field: the module alternates, each is folded with its
	// own earlier frames.
	for range 4 {
		h.clock.Advance(50 * time.Millisecond)
		h.fold(p, cardA)
		h.clock.Advance(50 * time.Millisecond)
		h.fold(p, cardB)
	}
	// B taken away; A stays, then is presented again after a gap.
	h.clock.Advance(window)
	h.card(p, cardA)
	at := t0.Add(10*time.Millisecond + 400*time.Millisecond + window)
	h.expect(cardA, at)
	h.card(p, cardB)
	h.expect(cardB, at)
	if s := h.r.Stats(); s.Frames != 12 || s.Reads != 4 {
		t.Errorf("stats = %+v, want 12 frames, 4 reads", s)
	}
}

func TestReadAtIsWhenETXArrives(t *testing.T) {
	h := start(t, nil)
	p := h.port(1)
	fr, _ := rdm6300.Encode(cardA)
	h.write(p, fr[:7])
	_ = p.Sync()
	h.clock.Advance(40 * time.Millisecond)
	h.write(p, fr[7:13])
	_ = p.Sync()
	h.clock.Advance(5 * time.Millisecond)
	h.write(p, fr[13:])
	h.expect(cardA, t0.Add(45*time.Millisecond))
}

func TestBadFramesCounted(t *testing.T) {
	h := start(t, nil)
	p := h.port(1)
	h.write(p, []byte("\x00\xff"))                   // 2 garbage
	h.write(p, []byte("\x02"+"0A00123456"+"00\x03")) // bad checksum: 13 garbage
	h.card(p, cardB)
	h.expect(cardB, t0)
	if s := h.r.Stats(); s != (reader.Stats{Frames: 1, Reads: 1, BadFrames: 1, Garbage: 15}) {
		t.Errorf("stats = %+v", s)
	}
}

func TestEOFAndEmptyReadsAreNotFatal(t *testing.T) {
	h := start(t, nil)
	p := h.port(1)
	for range 10 { // serial read timeouts
		h.clock.Advance(100 * time.Millisecond)
		if err := p.ReadError(io.EOF); err != nil {
			t.Fatal(err)
		}
	}
	h.card(p, cardA)
	h.expect(cardA, t0.Add(time.Second))
	if n := h.opener.Attempts(); n != 1 {
		t.Errorf("opened %d times, want 1", n)
	}
	if s := h.r.Stats(); s.Reopens != 0 {
		t.Errorf("Reopens = %d, want 0", s.Reopens)
	}
}

func TestReopenAfterReadError(t *testing.T) {
	h := start(t, nil)
	p1 := h.port(1)
	h.write(p1, []byte("\x02"+"0A00")) // a frame cut short by the failure
	if err := p1.ReadError(syscall.EIO); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p1.Closed():
	case <-time.After(within):
		t.Fatal("failed port not closed")
	}
	p2 := h.port(2)
	h.write(p2, []byte("123456"+"7A"+"\x03")) // the rest is garbage now
	h.card(p2, cardB)
	h.expect(cardB, t0)
	s := h.r.Stats()
	if s != (reader.Stats{Frames: 1, Reads: 1, BadFrames: 1, Garbage: 9, Reopens: 1}) {
		t.Errorf("stats = %+v", s)
	}
	if w := h.recordedWaits(); !slices.Equal(w, []time.Duration{100 * time.Millisecond}) {
		t.Errorf("waits = %v, want [100ms]", w)
	}
}

func TestOpenFailuresBackOff(t *testing.T) {
	h := start(t, func(_ *rdm6300.Config, o *readertest.Opener) {
		o.FailNext(9, errors.New("no such device"))
	})
	p := h.port(1)
	h.card(p, cardA)
	h.expect(cardA, t0)
	ms := time.Millisecond
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5000 * ms, 5000 * ms, 5000 * ms}
	if w := h.recordedWaits(); !slices.Equal(w, want) {
		t.Errorf("waits = %v, want %v", w, want)
	}
	if s := h.r.Stats(); s.Reopens != 1 {
		t.Errorf("Reopens = %d, want 1", s.Reopens)
	}
	if n := h.opener.Attempts(); n != 10 {
		t.Errorf("attempts = %d, want 10", n)
	}
}

func TestBackoffRestartsAfterData(t *testing.T) {
	h := start(t, func(_ *rdm6300.Config, o *readertest.Opener) {
		o.FailNext(2, nil)
	})
	p1 := h.port(1)
	h.card(p1, cardA)
	h.expect(cardA, t0)
	_ = p1.ReadError(syscall.EIO) // port delivered data: back to 100ms
	p2 := h.port(2)
	_ = p2.ReadError(syscall.EIO) // no data: 200ms
	p3 := h.port(3)
	h.card(p3, cardB)
	h.expect(cardB, t0)
	ms := time.Millisecond
	want := []time.Duration{100 * ms, 200 * ms, 100 * ms, 200 * ms}
	if w := h.recordedWaits(); !slices.Equal(w, want) {
		t.Errorf("waits = %v, want %v", w, want)
	}
	if s := h.r.Stats(); s.Reopens != 3 {
		t.Errorf("Reopens = %d, want 3", s.Reopens)
	}
}

// A port whose Read returns (0, EOF) without ever blocking would spin;
// the driver treats it as failed.
func TestSpinningPortReopened(t *testing.T) {
	h := start(t, nil)
	p1 := h.port(1)
	go func() {
		for p1.ReadError(io.EOF) == nil {
		}
	}()
	p2 := h.port(2)
	h.card(p2, cardA)
	h.expect(cardA, t0)
}

func TestCancelWhileReadBlocked(t *testing.T) {
	h := start(t, nil)
	p := h.port(1) // the driver is now blocked in p.Read
	h.stop()
	select {
	case <-p.Closed():
	default:
		t.Error("port not closed after Run returned")
	}
}

func TestCancelWhileSending(t *testing.T) {
	h := start(t, nil)
	p := h.port(1)
	h.card(p, cardA) // nobody receives from out
	h.stop()
}

// With the real timer and a one-hour backoff, cancelling still returns
// at once.
func TestCancelDuringBackoff(t *testing.T) {
	opened := make(chan struct{}, 1)
	h := start(t, func(c *rdm6300.Config, o *readertest.Opener) {
		c.Wait = nil
		c.MinBackoff, c.MaxBackoff = time.Hour, time.Hour
		o.FailNext(1, nil)
		c.Open = func() (rdm6300.Port, error) {
			opened <- struct{}{}
			return o.Open()
		}
	})
	<-opened
	h.stop()
}

func TestStatsWhileRunning(t *testing.T) {
	h := start(t, nil)
	p := h.port(1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				_ = h.r.Stats()
			}
		}
	})
	for i := range 20 {
		h.clock.Advance(window)
		h.card(p, cardA)
		h.expect(cardA, t0.Add(time.Duration(i+1)*window))
	}
	close(stop)
	wg.Wait()
	if s := h.r.Stats(); s.Reads != 20 {
		t.Errorf("Reads = %d, want 20", s.Reads)
	}
}

func TestConfigErrors(t *testing.T) {
	open := readertest.NewOpener().Open
	for _, tc := range []struct {
		name string
		cfg  rdm6300.Config
	}{
		{"no name", rdm6300.Config{Open: open}},
		{"no open", rdm6300.Config{Name: "front"}},
		{"negative window", rdm6300.Config{Name: "front", Open: open, RepeatWindow: -1}},
		{"backoff range", rdm6300.Config{Name: "front", Open: open, MinBackoff: time.Second, MaxBackoff: time.Millisecond}},
	} {
		err := rdm6300.New(tc.cfg).Run(t.Context(), make(chan reader.Read))
		if !errors.Is(err, rdm6300.ErrConfig) {
			t.Errorf("%s: Run = %v, want ErrConfig", tc.name, err)
		}
	}
}

func TestRunTwice(t *testing.T) {
	h := start(t, nil)
	h.port(1) // first Run is running
	err := h.r.Run(t.Context(), h.out)
	if !errors.Is(err, rdm6300.ErrConfig) {
		t.Errorf("second Run = %v, want ErrConfig", err)
	}
	if h.r.Name() != "front" {
		t.Errorf("Name = %q", h.r.Name())
	}
}

// The driver keeps reading while the consumer is slow: the module's
// repeats of a card still in the field are folded as they arrive, not
// read late from the tty and taken for a new presentation (an in and an
// out for a toggle reader).
func TestRepeatsFoldedWhileConsumerBlocked(t *testing.T) {
	h := start(t, nil)
	p := h.port(1)
	h.fold(p, cardA) // decoded at t0; nobody receives it yet
	for range 3 {
		h.clock.Advance(100 * time.Millisecond)
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			h.card(p, cardA)
		}()
		select {
		case <-wrote:
		case <-time.After(within):
			t.Fatal("the driver stopped reading the port while its consumer was blocked")
		}
		if err := p.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	h.clock.Advance(2 * time.Second) // the consumer comes back much later
	h.expect(cardA, t0)
	h.card(p, cardB)
	h.expect(cardB, t0.Add(2300*time.Millisecond))
	if st := h.r.Stats(); st.Reads != 2 || st.Frames != 5 {
		t.Fatalf("stats = %+v, want 2 reads of 5 frames", st)
	}
}
