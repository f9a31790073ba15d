package r30x_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/r30x"
	"github.com/punchclock/punchclock/reader/readertest"
	"github.com/punchclock/punchclock/reader/serialport"
	"github.com/punchclock/punchclock/sim"
)

const within = 10 * time.Second // how long a test waits for the driver

func simSerial(link string) (reader.SerialEnd, error) { return sim.NewSerial(link) }

// A rig is a twin on a real pseudo-terminal and a real driver reading it
// through reader/serialport, as on the terminal.
type rig struct {
	t      *testing.T
	twin   *r30x.Twin
	r      *r30x.Reader
	out    chan reader.Read
	cancel context.CancelFunc
	done   chan error
}

// testWriter sends log lines to t.Log: shown for failed tests only.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// newRig starts a twin and a driver with fast polling; mod may change
// either's options first.
func newRig(t *testing.T, mod func(*r30x.Options, *r30x.TwinOptions)) *rig {
	t.Helper()
	link := filepath.Join(t.TempDir(), "dev", "ttyFP")
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	topt := r30x.TwinOptions{Name: "door", Link: link, Serial: simSerial, Logger: log}
	opt := r30x.Options{
		Name:   "door",
		Logger: log,
		Open: func() (r30x.Port, error) {
			p, err := serialport.Open(link, r30x.DefaultBaud)
			if err != nil {
				return nil, err
			}
			return p.(r30x.Port), nil
		},
		PollInterval: 10 * time.Millisecond,
		// A finger's hold runs on the twin's clock from its first
		// capture: a timeout on a loaded machine could outlast it.
		// Tests of timeouts shorten this.
		AckTimeout:    r30x.DefaultAckTimeout,
		FingerTimeout: 5 * time.Second,
		MinBackoff:    10 * time.Millisecond,
		MaxBackoff:    50 * time.Millisecond,
	}
	if mod != nil {
		mod(&opt, &topt)
	}
	twin, err := r30x.NewTwin(topt)
	if err != nil {
		t.Fatal(err)
	}
	g := &rig{t: t, twin: twin, r: r30x.NewReader(opt), out: make(chan reader.Read, 16), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(t.Context())
	g.cancel = cancel
	go func() { g.done <- g.r.Run(ctx, g.out) }()
	t.Cleanup(func() {
		g.stop()
		if err := twin.Close(); err != nil {
			t.Errorf("twin Close: %v", err)
		}
		if err := twin.Close(); err != nil {
			t.Errorf("second twin Close: %v", err)
		}
	})
	// Running: the driver has asked the sensor for its parameters.
	g.waitFor("the driver's first command", func() bool {
		return twin.Count(r30x.CmdReadSysPara)+twin.Count(r30x.CmdVfyPwd) > 0
	})
	return g
}

func (g *rig) stop() {
	g.t.Helper()
	if g.cancel == nil {
		return
	}
	g.cancel()
	g.cancel = nil
	select {
	case err := <-g.done:
		if err != nil {
			g.t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(within):
		g.t.Fatal("Run did not return after cancel")
	}
}

func (g *rig) do(cmd string, args ...string) string {
	g.t.Helper()
	echo, err := g.twin.Do(g.t.Context(), cmd, args)
	if err != nil {
		g.t.Fatalf("%s %v: %v", cmd, args, err)
	}
	return echo
}

func (g *rig) expect(value string, score int) reader.Read {
	g.t.Helper()
	select {
	case rd := <-g.out:
		if rd.Reader != "door" || rd.Type != reader.TypeFingerprint || rd.Value != value || rd.Score != score || rd.At.IsZero() {
			g.t.Fatalf("read %+v, want fingerprint %q score %d", rd, value, score)
		}
		return rd
	case <-time.After(within):
		g.t.Fatalf("no read of %q; stats %+v", value, g.r.Stats())
	}
	return reader.Read{}
}

func (g *rig) expectNone(d time.Duration) {
	g.t.Helper()
	select {
	case rd := <-g.out:
		g.t.Fatalf("unexpected read %+v", rd)
	case <-time.After(d):
	}
}

// waitFor polls cond until it holds.
func (g *rig) waitFor(what string, cond func() bool) {
	g.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			g.t.Fatalf("timed out waiting for %s; stats %+v", what, g.r.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMatchNoMatchAndMinScore(t *testing.T) {
	g := newRig(t, nil)
	g.do("store", "17", "42")
	g.do("finger", "17")
	g.expect("17", r30x.DefaultTwinScore)
	g.do("finger", "42", "score", "80")
	g.expect("42", 80)
	g.do("finger", "nomatch")
	g.expect("", 0)
	// A match below min_score (50) is no match.
	g.do("finger", "17", "score", "49")
	g.expect("", 0)
	g.do("finger", "17", "score", "50")
	g.expect("17", 50)
	// A page nobody stored matches nothing.
	if echo := g.do("finger", "99"); !strings.Contains(echo, "empty") {
		t.Errorf("echo %q does not say page 99 is empty", echo)
	}
	g.expect("", 0)
	if s := g.r.Stats(); s.Reads != 6 || s.Frames == 0 || s.Timeouts != 0 || s.BadFrames != 0 || s.Garbage != 0 {
		t.Errorf("stats %+v", s)
	}
	if st := g.r.State(); st != reader.StateOnline {
		t.Errorf("State = %s", st)
	}
}

func TestFingerHeldIsOneRead(t *testing.T) {
	g := newRig(t, nil)
	g.do("store", "3", "4")
	g.do("finger", "3", "hold", "800ms")
	g.do("finger", "4")
	g.expect("3", r30x.DefaultTwinScore)
	// The next read is the other finger: the held one was not repeated.
	g.expect("4", r30x.DefaultTwinScore)
	if n := g.twin.Count(r30x.CmdSearch); n != 2 {
		t.Errorf("%d searches, want 2 (one per presentation)", n)
	}
	if n := g.twin.Count(r30x.CmdGenImg); n < 3 {
		t.Errorf("only %d GenImg polls during an 800 ms hold", n)
	}
	// Lifted and placed again: a second presentation.
	g.do("finger", "3")
	g.expect("3", r30x.DefaultTwinScore)
}

func TestEnrollLowestFreePage(t *testing.T) {
	g := newRig(t, nil)
	g.do("store", "0", "1", "3")
	type res struct {
		page int
		err  error
	}
	done := make(chan res, 1)
	go func() {
		p, err := g.r.Enroll(t.Context(), nil)
		done <- res{p, err}
	}()
	g.do("enrollfinger")
	var got res
	select {
	case got = <-done:
	case <-time.After(within):
		t.Fatal("Enroll did not return")
	}
	if got.err != nil || got.page != 2 {
		t.Fatalf("Enroll = %d, %v; want page 2", got.page, got.err)
	}
	if echo := g.do("pages"); echo != "pages: 0 1 2 3" {
		t.Errorf("pages: %q", echo)
	}
	// The two captures were no reads.
	g.expectNone(200 * time.Millisecond)
	if n := g.twin.Count(r30x.CmdSearch); n != 0 {
		t.Errorf("%d searches during enrolment", n)
	}
	// The enrolled finger now matches its page.
	g.do("finger", "2")
	g.expect("2", r30x.DefaultTwinScore)
	// The next enrolment takes page 4. Finger 2 may still be on the
	// sensor: enrolment waits until it is lifted.
	go func() {
		p, err := g.r.Enroll(t.Context(), nil)
		done <- res{p, err}
	}()
	g.do("finger", "new")
	if got = <-done; got.err != nil || got.page != 4 {
		t.Fatalf("second Enroll = %d, %v; want page 4", got.page, got.err)
	}
}

func TestEnrollMismatch(t *testing.T) {
	g := newRig(t, nil)
	done := make(chan error, 1)
	go func() {
		_, err := g.r.Enroll(t.Context(), nil)
		done <- err
	}()
	// Two different fingers for the two captures.
	g.do("finger", "nomatch")
	g.do("finger", "nomatch")
	select {
	case err := <-done:
		if !errors.Is(err, r30x.ErrMismatch) {
			t.Fatalf("Enroll = %v, want ErrMismatch", err)
		}
	case <-time.After(within):
		t.Fatal("Enroll did not return")
	}
	if echo := g.do("pages"); echo != "pages: none" {
		t.Errorf("pages after a failed enrolment: %q", echo)
	}
	// Polling resumes.
	g.do("store", "9")
	g.do("finger", "9")
	g.expect("9", r30x.DefaultTwinScore)
}

func TestEnrollNoFinger(t *testing.T) {
	g := newRig(t, func(o *r30x.Options, _ *r30x.TwinOptions) { o.FingerTimeout = 200 * time.Millisecond })
	_, err := g.r.Enroll(t.Context(), nil)
	if !errors.Is(err, r30x.ErrNoFinger) {
		t.Fatalf("Enroll = %v, want ErrNoFinger", err)
	}
	// The caller's context bounds it too.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := g.r.Enroll(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Enroll with a cancelled context = %v", err)
	}
}

func TestEnrollNotRunning(t *testing.T) {
	r := r30x.NewReader(r30x.Options{Name: "door", Open: func() (r30x.Port, error) { return nil, errors.New("none") }})
	if _, err := r.Enroll(t.Context(), nil); !errors.Is(err, r30x.ErrNotRunning) {
		t.Fatalf("Enroll = %v, want ErrNotRunning", err)
	}
	if err := r.Erase(t.Context(), []int{1}); !errors.Is(err, r30x.ErrNotRunning) {
		t.Fatalf("Erase = %v, want ErrNotRunning", err)
	}
	if st := r.State(); st != reader.StateOffline {
		t.Fatalf("State = %s before Run", st)
	}
}

func TestErase(t *testing.T) {
	g := newRig(t, nil)
	g.do("store", "5", "6", "7")
	if err := g.r.Erase(t.Context(), []int{5, 7}); err != nil {
		t.Fatal(err)
	}
	if got := g.twin.UsedPages(); !slices.Equal(got, []int{6}) {
		t.Fatalf("pages after Erase: %v, want [6]", got)
	}
	// The erased finger no longer matches.
	g.do("finger", "5")
	g.expect("", 0)
	// A page outside the library is an error; the others are erased.
	err := g.r.Erase(t.Context(), []int{r30x.TwinPages, 6})
	if !errors.Is(err, r30x.ErrBadPage) {
		t.Fatalf("Erase = %v, want ErrBadPage", err)
	}
	if got := g.twin.UsedPages(); len(got) != 0 {
		t.Fatalf("pages: %v", got)
	}
}

func TestPassword(t *testing.T) {
	g := newRig(t, func(o *r30x.Options, to *r30x.TwinOptions) {
		o.Password, to.Password = 0x0BADCAFE, 0x0BADCAFE
	})
	g.do("store", "1")
	g.do("finger", "1")
	g.expect("1", r30x.DefaultTwinScore)
	if n := g.twin.Count(r30x.CmdVfyPwd); n != 1 {
		t.Errorf("%d VfyPwd, want 1", n)
	}
}

func TestWrongPasswordReadsNothing(t *testing.T) {
	g := newRig(t, func(o *r30x.Options, to *r30x.TwinOptions) {
		o.Password, to.Password = 0x11111111, 0x22222222
	})
	g.do("store", "1")
	g.do("finger", "1")
	g.expectNone(300 * time.Millisecond)
	if n := g.twin.Count(r30x.CmdGenImg); n != 0 {
		t.Errorf("polled %d times without a verified password", n)
	}
}

// Random bytes on the line between the sensor's acks: every finger is
// read, none invented. Garbage that happens to start a packet can cost
// an ack (a timeout, then re-initialisation), not a read: the finger is
// still on the sensor at the next poll.
func TestMixedGarbageOnTheLine(t *testing.T) {
	g := newRig(t, func(o *r30x.Options, _ *r30x.TwinOptions) { o.AckTimeout = 300 * time.Millisecond })
	pages := []string{"10", "11", "12"}
	g.do("store", pages...)
	for i := range 10 {
		g.do("garbage", "60")
		p := pages[i%len(pages)]
		g.do("finger", p, "hold", "1s")
		g.do("garbage", "25")
		g.expect(p, r30x.DefaultTwinScore)
	}
	g.expectNone(1200 * time.Millisecond)
	s := g.r.Stats()
	if s.Reads != 10 || s.Garbage == 0 {
		t.Errorf("stats %+v, want 10 reads and garbage counted", s)
	}
	t.Logf("stats %+v", s)
}

func TestUnplugReplug(t *testing.T) {
	g := newRig(t, nil)
	g.do("store", "17", "42")
	g.do("finger", "17")
	g.expect("17", r30x.DefaultTwinScore)
	if err := g.twin.Unplug(); err != nil {
		t.Fatal(err)
	}
	if _, err := g.twin.Do(t.Context(), "garbage", []string{"3"}); !errors.Is(err, r30x.ErrUnplugged) {
		t.Errorf("garbage while unplugged: %v", err)
	}
	// While unplugged, enrolment is refused at once.
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	time.Sleep(100 * time.Millisecond) // let the driver notice
	if _, err := g.r.Enroll(ctx, nil); !errors.Is(err, r30x.ErrOffline) && !errors.Is(err, r30x.ErrTimeout) {
		t.Errorf("Enroll while unplugged = %v", err)
	}
	if err := g.twin.Replug(); err != nil {
		t.Fatal(err)
	}
	g.do("finger", "42")
	g.expect("42", r30x.DefaultTwinScore)
	if s := g.r.Stats(); s.Reopens < 1 {
		t.Errorf("stats %+v, want a reopen", s)
	}
}

// A sensor that stops answering: timeouts are counted, it is offline
// after reader.OfflineAfter (on the injected clock), re-initialised and
// online again when it answers.
func TestSilentOfflineOnline(t *testing.T) {
	clock := readertest.NewClock(time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC))
	g := newRig(t, func(o *r30x.Options, _ *r30x.TwinOptions) {
		o.Now = clock.Now
		o.AckTimeout = 50 * time.Millisecond
	})
	g.do("store", "8")
	g.do("finger", "8")
	g.expect("8", r30x.DefaultTwinScore)
	inits := g.twin.Count(r30x.CmdReadSysPara)

	g.do("silent", "1h")
	g.waitFor("a timeout", func() bool { return g.r.Stats().Timeouts > 0 })
	if st := g.r.State(); st != reader.StateOnline {
		t.Fatalf("State = %s right after the first timeout", st)
	}
	clock.Advance(reader.OfflineAfter)
	if st := g.r.State(); st != reader.StateOffline {
		t.Fatalf("State = %s after %v of silence", st, reader.OfflineAfter)
	}
	g.do("silent", "off")
	g.waitFor("online", func() bool { return g.r.State() == reader.StateOnline })
	g.do("finger", "8")
	g.expect("8", r30x.DefaultTwinScore)
	if n := g.twin.Count(r30x.CmdReadSysPara); n <= inits {
		t.Errorf("not re-initialised: %d ReadSysPara, %d before the silence", n, inits)
	}
}

// The twin's silence ends by itself after its duration.
func TestSilentForADuration(t *testing.T) {
	g := newRig(t, func(o *r30x.Options, _ *r30x.TwinOptions) { o.AckTimeout = 50 * time.Millisecond })
	g.do("store", "8")
	g.do("silent", "300ms")
	g.do("finger", "8", "hold", "1s")
	g.expect("8", r30x.DefaultTwinScore)
	if s := g.r.Stats(); s.Timeouts == 0 {
		t.Errorf("stats %+v, want timeouts", s)
	}
}

func TestRunTwiceAndStop(t *testing.T) {
	g := newRig(t, nil)
	if err := g.r.Run(t.Context(), make(chan reader.Read)); !errors.Is(err, r30x.ErrConfig) {
		t.Fatalf("second Run = %v, want ErrConfig", err)
	}
	g.stop()
	if st := g.r.State(); st != reader.StateOffline {
		t.Errorf("State after Run = %s", st)
	}
	if _, err := g.r.Enroll(t.Context(), nil); !errors.Is(err, r30x.ErrNotRunning) {
		t.Errorf("Enroll after Run = %v", err)
	}
}

func TestTwinCommandErrors(t *testing.T) {
	g := newRig(t, nil)
	for _, c := range [][]string{
		{"finger"}, {"finger", "300"}, {"finger", "x"}, {"finger", "1", "score"}, {"finger", "1", "score", "-1"},
		{"finger", "1", "hold", "soon"}, {"store"}, {"store", "300"}, {"garbage", "0"}, {"raw", "zz"},
		{"silent"}, {"silent", "-1s"}, {"dance"},
	} {
		if _, err := g.twin.Do(t.Context(), c[0], c[1:]); !errors.Is(err, r30x.ErrUsage) {
			t.Errorf("%v: %v, want ErrUsage", c, err)
		}
	}
	if echo := g.do("raw", "EF01"); echo != "2 raw bytes" {
		t.Errorf("raw echo %q", echo)
	}
	if echo := g.do("lift"); echo != "finger lifted" {
		t.Errorf("lift echo %q", echo)
	}
}

// Run, the twin and their goroutines are all gone once Run has returned
// and the twin is closed, after a read, an enrolment attempt and an
// unplug/replug.
func TestNoGoroutineLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("work", func(t *testing.T) {
		g := newRig(t, func(o *r30x.Options, _ *r30x.TwinOptions) { o.FingerTimeout = 50 * time.Millisecond })
		g.do("store", "1")
		g.do("finger", "1")
		g.expect("1", r30x.DefaultTwinScore)
		if _, err := g.r.Enroll(t.Context(), nil); !errors.Is(err, r30x.ErrNoFinger) {
			t.Errorf("Enroll = %v", err)
		}
		if err := g.twin.Unplug(); err != nil {
			t.Fatal(err)
		}
		if err := g.twin.Replug(); err != nil {
			t.Fatal(err)
		}
		g.do("finger", "1")
		g.expect("1", r30x.DefaultTwinScore)
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
