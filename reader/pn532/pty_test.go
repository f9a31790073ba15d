package pn532

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/serialport"
	"github.com/punchclock/punchclock/sim"
)

const within = 5 * time.Second // how long a test waits for the driver

func simSerial(link string) (reader.SerialEnd, error) { return sim.NewSerial(link) }

// offsetClock is real time plus an offset a test may jump forward, so
// that "five seconds without an answer" does not take five seconds.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time       { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) Jump(d time.Duration) { c.off.Add(int64(d)) }

// A rig is the twin on a real pseudo-terminal and the real driver
// reading it through reader/serialport, with short timeouts.
type rig struct {
	t      *testing.T
	link   string
	twin   *Twin
	r      *Reader
	clock  *offsetClock
	out    chan reader.Read
	cancel context.CancelFunc
	done   chan error

	openFailures atomic.Int32
	bauds        chan int // the rate of each Open, while there is room
}

// Generous times throughout: these tests share a small machine with
// other builds, and a poll starved of CPU for a while must neither split
// one presentation in two nor miss a card.
const (
	testWindow = 500 * time.Millisecond
	testHold   = 300 * time.Millisecond
)

func newRig(t *testing.T, mod func(*Options)) *rig {
	t.Helper()
	link := filepath.Join(t.TempDir(), "dev", "ttyNFC")
	g := &rig{
		t:     t,
		link:  link,
		twin:  NewTwin(link, simSerial),
		clock: &offsetClock{},
		out:   make(chan reader.Read),
		done:  make(chan error, 1),
		bauds: make(chan int, 1000),
	}
	g.twin.Rand = rand.New(rand.NewPCG(7, 8))
	if testing.Verbose() {
		g.twin.Logger = slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if err := g.twin.Replug(); err != nil {
		t.Fatal(err)
	}
	opt := Options{
		Name: "door",
		Open: func(baud int) (Port, error) {
			select {
			case g.bauds <- baud:
			default:
			}
			p, err := serialport.Open(link, baud)
			if err != nil {
				g.openFailures.Add(1)
			}
			return p, err
		},
		RepeatWindow:    testWindow,
		Now:             g.clock.Now,
		PollWait:        200 * time.Millisecond,
		PollInterval:    20 * time.Millisecond,
		AckTimeout:      time.Second,
		ResponseTimeout: time.Second,
		RetryInterval:   50 * time.Millisecond,
		MinBackoff:      10 * time.Millisecond,
		MaxBackoff:      50 * time.Millisecond,
	}
	if testing.Verbose() {
		opt.Logger = g.twin.Logger
	}
	if mod != nil {
		mod(&opt)
	}
	g.r = New(opt)
	ctx, cancel := context.WithCancel(t.Context())
	g.cancel = cancel
	go func() { g.done <- g.r.Run(ctx, g.out) }()
	t.Cleanup(g.stop)
	t.Cleanup(func() { _ = g.twin.Close() })
	return g
}

func (g *rig) stop() {
	g.t.Helper()
	g.cancel()
	select {
	case err, ok := <-g.done:
		if ok && err != nil {
			g.t.Errorf("Run = %v, want nil", err)
		}
		if ok {
			close(g.done)
		}
	case <-time.After(within):
		g.t.Fatal("Run did not return after cancel")
	}
}

func (g *rig) do(cmd string, args ...string) {
	g.t.Helper()
	if _, err := g.twin.Do(g.t.Context(), cmd, args); err != nil {
		g.t.Fatalf("twin %s %v: %v", cmd, args, err)
	}
}

// card presents uid (held for hold) and expects exactly one Read of it.
func (g *rig) card(uid string, hold time.Duration) {
	g.t.Helper()
	g.do("card", uid, "hold", hold.String())
	g.expect(uid)
	// The card has left; nothing more comes of it.
	g.quiet(testWindow)
}

func (g *rig) expect(uid string) reader.Read {
	g.t.Helper()
	select {
	case rd := <-g.out:
		if rd.Reader != "door" || rd.Type != reader.TypeCard || rd.Format != reader.FormatUID || rd.Value != uid || rd.At.IsZero() {
			g.t.Fatalf("read %+v, want card %s", rd, uid)
		}
		return rd
	case <-time.After(within):
		g.t.Fatalf("no read of %s; stats %+v", uid, g.r.Stats())
	}
	return reader.Read{}
}

// quiet checks that no Read arrives for d.
func (g *rig) quiet(d time.Duration) {
	g.t.Helper()
	select {
	case rd := <-g.out:
		g.t.Fatalf("unexpected read %+v", rd)
	case <-time.After(d):
	}
}

// eventually waits until cond holds.
func (g *rig) eventually(what string, cond func() bool) {
	g.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			g.t.Fatalf("never %s; stats %+v state %s", what, g.r.Stats(), g.r.State())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (g *rig) initialised(n int) {
	g.t.Helper()
	g.eventually("initialised", func() bool { return g.twin.Commands(CmdRFConfiguration) >= n })
}

// The twin on a real pty, the real driver through serialport: 4-, 7- and
// 10-byte UIDs; a card held for many polls is one presentation; the same
// card again after it left is another.
func TestTwinRoundTrip(t *testing.T) {
	g := newRig(t, nil)
	g.initialised(1)
	if g.r.State() != reader.StateOnline {
		t.Errorf("State = %s after initialisation", g.r.State())
	}
	if fw, ok := g.r.Firmware(); !ok || fw != TwinFirmware {
		t.Errorf("Firmware = %v, %v", fw, ok)
	}
	for _, uid := range []string{"DEADBEEF", "04A1B2C3D4E5F6", "0102030405060708090A"} {
		g.card(uid, testHold)
	}
	// Held for four windows: one presentation.
	before := g.twin.Commands(CmdInListPassiveTarget)
	g.card("04A1B2C3D4E5F6", 4*testWindow)
	if polls := g.twin.Commands(CmdInListPassiveTarget) - before; polls < 10 {
		t.Errorf("%d polls; the card was held for 100 polls' time", polls)
	}
	g.card("04A1B2C3D4E5F6", testHold)
	st := g.r.Stats()
	if st.Reads != 5 || st.BadFrames != 0 || st.Reopens != 0 {
		t.Errorf("stats %+v, want 5 reads and no trouble", st)
	}
	// On an idle machine there is no timeout, and one initialisation;
	// a starved one may time out and initialise again.
	t.Logf("stats %+v, initialised %d times", st, g.twin.Commands(CmdSAMConfiguration))
}

// Random bytes between and around the module's frames, and frames with
// bad checksums: every card is read, nothing else, and the driver keeps
// its footing.
func TestTwinMixedGarbage(t *testing.T) {
	g := newRig(t, nil)
	g.initialised(1)
	stopNoise := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(3, 4))
		for {
			select {
			case <-stopNoise:
				return
			case <-time.After(time.Duration(rng.IntN(15)) * time.Millisecond):
			}
			var err error
			switch rng.IntN(3) {
			case 0, 1:
				_, err = g.twin.Do(t.Context(), "garbage", []string{"7"})
			case 2: // a SAMConfiguration response with DCS 17 for 16
				_, err = g.twin.Do(t.Context(), "raw", []string{"0000FF02FED5151700"})
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	})
	uids := []string{"DEADBEEF", "04A1B2C3D4E5F6", "0102030405060708090A", "CAFEBABE", "04112233445566"}
	for _, uid := range uids {
		g.card(uid, testHold)
	}
	close(stopNoise)
	wg.Wait()
	st := g.r.Stats()
	if st.Reads != uint64(len(uids)) || st.Garbage == 0 || st.BadFrames == 0 {
		t.Errorf("stats %+v, want %d reads, garbage and bad frames", st, len(uids))
	}
}

// The pty is closed (a pulled cable) and recreated at the same path: the
// driver reopens it, initialises the module again and reads on, without
// a restart of Run.
func TestTwinUnplugReplug(t *testing.T) {
	g := newRig(t, nil)
	g.initialised(1)
	g.card("DEADBEEF", testHold)
	if err := g.twin.Unplug(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the driver finds its port gone
	if err := g.twin.Replug(); err != nil {
		t.Fatal(err)
	}
	g.initialised(2)
	g.card("04A1B2C3D4E5F6", testHold)
	if st := g.r.Stats(); st.Reopens < 1 || st.Reads != 2 {
		t.Errorf("stats %+v, want 2 reads after a reopen", st)
	}
	if err := g.twin.Unplug(); err != nil {
		t.Fatal(err)
	}
	if err := g.twin.Close(); err != nil { // unplugged: nothing to close
		t.Fatal(err)
	}
}

// The module resets: it sleeps and forgets its configuration. The next
// poll goes unanswered, which counts as a timeout, and the driver wakes
// and configures it again.
func TestTwinResetReinitialised(t *testing.T) {
	g := newRig(t, nil)
	g.initialised(1)
	g.card("DEADBEEF", testHold)
	g.do("reset")
	g.initialised(2)
	g.card("DEADBEEF", testHold)
	st := g.r.Stats()
	if st.Timeouts < 1 || st.Reads != 2 || st.Reopens != 0 {
		t.Errorf("stats %+v, want a timeout, 2 reads, no reopen", st)
	}
}

// A module that stops answering is offline after reader.OfflineAfter,
// and online again as soon as it answers.
func TestTwinSilentOfflineOnline(t *testing.T) {
	g := newRig(t, nil)
	g.initialised(1)
	g.do("silent", "2s") // longer than AckTimeout: offline is checked while it lasts
	g.eventually("timed out", func() bool { return g.r.Stats().Timeouts > 0 })
	if g.r.State() != reader.StateOnline {
		t.Errorf("State = %s right after the first timeout", g.r.State())
	}
	g.clock.Jump(reader.OfflineAfter)
	if s := g.r.State(); s != reader.StateOffline {
		t.Errorf("State = %s after %v of silence", s, reader.OfflineAfter)
	}
	g.eventually("online again", func() bool { return g.r.State() == reader.StateOnline })
	g.initialised(2)
	g.card("CAFEBABE", testHold)
}

// An unopenable port: the reader is offline, and online once the module
// appears.
func TestOfflineUntilPortAppears(t *testing.T) {
	g := newRig(t, nil)
	g.initialised(1)
	if err := g.twin.Unplug(); err != nil {
		t.Fatal(err)
	}
	g.eventually("failing to open", func() bool { return g.openFailures.Load() > 0 })
	g.clock.Jump(reader.OfflineAfter)
	if s := g.r.State(); s != reader.StateOffline {
		t.Errorf("State = %s, unplugged", s)
	}
	if err := g.twin.Replug(); err != nil {
		t.Fatal(err)
	}
	g.eventually("online", func() bool { return g.r.State() == reader.StateOnline })
	g.card("DEADBEEF", testHold)
}

// Nobody receives the Reads: the driver keeps polling (the card held in
// the field is still one presentation), and cancelling returns at once.
func TestConsumerStalled(t *testing.T) {
	g := newRig(t, nil)
	g.initialised(1)
	polls := g.twin.Commands(CmdInListPassiveTarget)
	g.do("card", "DEADBEEF", "hold", "600ms") // nobody reads g.out
	if n := g.twin.Commands(CmdInListPassiveTarget); n < polls+3 {
		t.Errorf("%d polls while the consumer stalled", n-polls)
	}
	if st := g.r.Stats(); st.Reads != 1 {
		t.Errorf("stats %+v, want 1 read", st)
	}
}

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// Run and the twin leave no goroutine behind.
func TestNoGoroutineLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("run", func(t *testing.T) {
		g := newRig(t, nil)
		g.initialised(1)
		g.card("DEADBEEF", testHold)
		g.stop()
		if err := g.twin.Close(); err != nil {
			t.Fatal(err)
		}
		if err := g.twin.Close(); err != nil { // twice is fine
			t.Fatal(err)
		}
	})
	deadline := time.Now().Add(within)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// At another rate than 115200, the driver switches the twin with
// SetSerialBaudRate and reopens the pty at that rate.
func TestTwinBaudSwitch(t *testing.T) {
	g := newRig(t, func(o *Options) { o.Baud = 38400 })
	g.initialised(2) // at 115200, then again at 38400
	g.card("04A1B2C3D4E5F6", testHold)
	if a, b := <-g.bauds, <-g.bauds; a != 115200 || b != 38400 {
		t.Errorf("opened at %d then %d, want 115200 then 38400", a, b)
	}
	if n := g.twin.Commands(CmdSetSerialBaudRate); n != 1 {
		t.Errorf("SetSerialBaudRate sent %d times", n)
	}
}
