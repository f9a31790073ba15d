package wiegand_test

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/gpioline"
	"github.com/punchclock/punchclock/reader/wiegand"
)

const within = 5 * time.Second

type rig struct {
	t    *testing.T
	twin *wiegand.Twin
	r    *wiegand.Reader
	out  chan reader.Read
}

// start builds the twin and the driver from a config, as the agent and
// the simulator do, and runs the driver against the twin's socket.
func start(t *testing.T, repeat time.Duration) *rig {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "sim", "front.sock")
	cfg := wiegand.Driver.NewConfig()
	c := cfg.(*wiegand.Config)
	c.D0Pin, c.D1Pin, c.Chip = "GPIO17", "GPIO27", "sim:"+sock
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tw, err := cfg.Twin(reader.TwinEnv{Name: "front"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tw.Close() })
	rd, err := cfg.New(reader.Env{Name: "front", RepeatWindow: repeat, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	r := rd.(*wiegand.Reader)
	// Fast reopening for the unplug test.
	r2 := wiegand.New(wiegand.Options{
		Name: "front", Chip: gpioline.Spec{Sim: true, Path: sock}, D0: "GPIO17", D1: "GPIO27",
		RepeatWindow: repeat, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	})
	_ = r
	out := make(chan reader.Read)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r2.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(within):
			t.Error("Run did not return after cancel")
		}
	})
	return &rig{t: t, twin: tw.(*wiegand.Twin), r: r2, out: out}
}

func (g *rig) do(cmd string, args ...string) {
	g.t.Helper()
	if _, err := g.twin.Do(g.t.Context(), cmd, args); err != nil {
		g.t.Fatalf("%s %v: %v", cmd, args, err)
	}
}

func (g *rig) read() reader.Read {
	g.t.Helper()
	select {
	case rd := <-g.out:
		return rd
	case <-time.After(within):
		g.t.Fatalf("no read; stats %+v", g.r.Stats())
	}
	return reader.Read{}
}

// none checks that nothing is read within the frame gap and a margin.
func (g *rig) none() {
	g.t.Helper()
	select {
	case rd := <-g.out:
		g.t.Fatalf("unexpected read %+v", rd)
	case <-time.After(3 * wiegand.FrameGap):
	}
}

func TestRoundTripThroughTheSimulatedChip(t *testing.T) {
	g := start(t, 0)
	before := time.Now()
	g.do("wiegand", "26", "123", "45678")
	rd := g.read()
	if rd.Reader != "front" || rd.Type != reader.TypeCard || rd.Format != reader.FormatWiegand26 || rd.Value != "123:45678" || rd.At.Before(before) {
		t.Fatalf("read %+v", rd)
	}
	g.do("wiegand", "34", "18838", "722")
	if rd := g.read(); rd.Format != reader.FormatWiegand34 || rd.Value != "18838:722" {
		t.Fatalf("read %+v", rd)
	}
	g.do("wiegand", "37", "1234", "98765")
	if rd := g.read(); rd.Format != reader.FormatWiegand37 || rd.Value != "1234:98765" {
		t.Fatalf("read %+v", rd)
	}
	for _, cmd := range []string{"keys", "keys8"} {
		g.do(cmd, "4821#*")
		var keys string
		for range 6 {
			rd := g.read()
			if rd.Type != reader.TypeKey {
				t.Fatalf("read %+v", rd)
			}
			keys += rd.Value
		}
		if keys != "4821#*" {
			t.Fatalf("%s: keys %q", cmd, keys)
		}
	}
	g.do("raw", "00001010000110110010110000111101")
	if rd := g.read(); rd.Format != reader.FormatRaw || rd.Value != "32:0A1B2C3D" {
		t.Fatalf("read %+v", rd)
	}
	s := g.r.Stats()
	if s.Frames != 16 || s.Reads != 16 || s.BadFrames != 0 || s.Garbage != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBadParityAndGlitchesAreRejectedAndCounted(t *testing.T) {
	g := start(t, 0)
	g.do("badparity", "26", "123", "45678")
	g.do("glitch")
	g.do("raw", "0111101110110010011011101") // 25 bits: a bit lost
	g.do("wiegand", "26", "1", "2")
	if rd := g.read(); rd.Value != "1:2" {
		t.Fatalf("read %+v, want 1:2 only", rd)
	}
	g.none()
	if s := g.r.Stats(); s.BadFrames != 2 || s.Frames != 1 || s.Reads != 1 || s.Garbage != 4 {
		t.Fatalf("stats %+v, want 2 bad frames and 4 edges of garbage", s)
	}
}

func TestACardHeldIsOnePresentation(t *testing.T) {
	g := start(t, 300*time.Millisecond)
	// A reader repeating the card while it is held: three frames ~70 ms
	// apart fold into one presentation; a key is never folded.
	for range 3 {
		g.do("wiegand", "26", "7", "7")
	}
	if rd := g.read(); rd.Value != "7:7" {
		t.Fatalf("read %+v", rd)
	}
	g.do("keys", "11")
	if a, b := g.read(), g.read(); a.Value != "1" || b.Value != "1" {
		t.Fatalf("keys %+v %+v", a, b)
	}
	time.Sleep(350 * time.Millisecond)
	g.do("wiegand", "26", "7", "7")
	if rd := g.read(); rd.Value != "7:7" {
		t.Fatalf("read %+v", rd)
	}
	if s := g.r.Stats(); s.Frames != 6 || s.Reads != 4 {
		t.Fatalf("stats %+v, want 6 frames, 4 reads", s)
	}
}

// The simulated chip's socket is closed and recreated (a pulled and
// replaced cable); the same Run reads again.
func TestUnplugReplug(t *testing.T) {
	g := start(t, 0)
	g.do("wiegand", "26", "10", "100")
	if rd := g.read(); rd.Value != "10:100" {
		t.Fatalf("read %+v", rd)
	}
	if err := g.twin.Unplug(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	if _, err := g.twin.Do(ctx, "wiegand", []string{"26", "10", "101"}); err == nil {
		t.Fatal("a card was played with the chip unplugged")
	}
	cancel()
	time.Sleep(80 * time.Millisecond) // a few failed reopens
	if err := g.twin.Replug(); err != nil {
		t.Fatal(err)
	}
	g.do("wiegand", "26", "10", "102")
	if rd := g.read(); rd.Value != "10:102" {
		t.Fatalf("read %+v", rd)
	}
	if s := g.r.Stats(); s.Reopens < 1 || s.Reads != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// A consumer that stops reading does not stop decoding: the reads wait
// in the driver's queue, in order.
func TestSlowConsumer(t *testing.T) {
	g := start(t, 0)
	for i := range 5 {
		g.do("wiegand", "26", "1", string(rune('1'+i)))
	}
	for deadline := time.Now().Add(within); g.r.Stats().Reads != 5; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: decoding waited for the consumer", g.r.Stats())
		}
	}
	for i := range 5 {
		if rd := g.read(); rd.Value != "1:"+string(rune('1'+i)) {
			t.Fatalf("read %d: %+v", i, rd)
		}
	}
}

func TestConfig(t *testing.T) {
	cfg := wiegand.Driver.NewConfig()
	err := cfg.Validate()
	var ke *reader.KeyError
	if !errors.As(err, &ke) || !errors.Is(err, reader.ErrConfig) || !strings.Contains(err.Error(), "d0_pin") || !strings.Contains(err.Error(), "d1_pin") {
		t.Fatalf("empty config: %v", err)
	}
	c := cfg.(*wiegand.Config)
	c.D0Pin, c.D1Pin, c.Chip = "GPIO4", "GPIO4", "/dev/ttyS0"
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "key d1_pin") || !strings.Contains(err.Error(), "key chip") {
		t.Fatalf("got %v", err)
	}
	c.D1Pin, c.Chip = "GPIO5", "rpio"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "no edge events") {
		t.Fatalf("wiegand on go-rpio: %v", err)
	}
	c.Chip = ""
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Claims(); !slices.Equal(got, []string{"/dev/gpiochip0:GPIO4", "/dev/gpiochip0:GPIO5"}) {
		t.Fatalf("claims %v", got)
	}
	if _, err := cfg.Twin(reader.TwinEnv{Name: "x"}); !errors.Is(err, reader.ErrConfig) {
		t.Fatalf("a twin on a hardware chip: %v", err)
	}
	c.Chip = "sim:/run/x.sock"
	if got := cfg.Claims(); !slices.Equal(got, []string{"sim:/run/x.sock:GPIO4", "sim:/run/x.sock:GPIO5", "sim:/run/x.sock"}) {
		t.Fatalf("claims %v", got)
	}
}

func TestRunTwiceAndBadOptions(t *testing.T) {
	if err := wiegand.New(wiegand.Options{}).Run(t.Context(), nil); !errors.Is(err, reader.ErrConfig) {
		t.Fatalf("Run with no options = %v", err)
	}
	g := start(t, 0)
	g.do("wiegand", "26", "1", "1") // Run is surely running
	g.read()
	if err := g.r.Run(t.Context(), nil); !errors.Is(err, reader.ErrConfig) {
		t.Fatalf("second Run = %v", err)
	}
}

func TestTwinUsage(t *testing.T) {
	g := start(t, 0)
	for _, c := range [][]string{
		{"wiegand", "26", "256", "1"}, {"wiegand", "35", "1", "1"}, {"wiegand", "26"}, {"keys", "12A"},
		{"keys"}, {"raw", "012"}, {"glitch", "x"}, {"nope"},
	} {
		if _, err := g.twin.Do(t.Context(), c[0], c[1:]); !errors.Is(err, wiegand.ErrUsage) {
			t.Errorf("%v: %v", c, err)
		}
	}
}

// BenchmarkLastEdgeToRead: a 26-bit card's edges, stamped with real
// timing, arrive through the simulated chip's socket at once (as a
// kernel queue read after a delay); the time from their arrival, the
// last edge included, to the Read out of the real driver. FrameGap of
// it is the silence that ends every Wiegand frame; "overhead-µs" is the
// rest: socket, decoding, delivery. The frame's own time on the wire is
// 26 bits × 2 ms = 52 ms before that.
func BenchmarkLastEdgeToRead(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "b.sock")
	tw, err := wiegand.NewTwin(sock, "D0", "D1")
	if err != nil {
		b.Fatal(err)
	}
	defer tw.Close()
	r := wiegand.New(wiegand.Options{Name: "b", Chip: gpioline.Spec{Sim: true, Path: sock}, D0: "D0", D1: "D1", RepeatWindow: time.Nanosecond})
	out := make(chan reader.Read, 1)
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, out) }()
	defer func() { cancel(); <-done }()
	chip := tw.Chip()
	if err := chip.WaitClaimed(b.Context(), "D0", "D1"); err != nil {
		b.Fatal(err)
	}
	bits, _ := wiegand.EncodeCard(26, 1, 2)
	var total time.Duration
	for b.Loop() {
		var edges []gpioline.SimEdge
		for _, e := range wiegand.Pulses(bits, chip.Now()+time.Second, 80*time.Microsecond, 2*time.Millisecond) {
			edges = append(edges, gpioline.SimEdge{Line: []string{"D0", "D1"}[e.Line], Rising: e.Rising, At: e.At})
		}
		t0 := time.Now()
		chip.Inject(edges...)
		<-out
		total += time.Since(t0)
	}
	b.ReportMetric(float64((total/time.Duration(b.N) - wiegand.FrameGap).Microseconds()), "overhead-µs")
}

// Run, its chip's goroutines and the twin's leave nothing behind.
func TestNoGoroutineLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("session", func(t *testing.T) {
		g := start(t, 0)
		g.do("wiegand", "26", "1", "1")
		g.read()
		g.twin.Unplug()
		g.twin.Replug()
		g.do("keys", "1")
		g.read()
	})
	for deadline := time.Now().Add(within); runtime.NumGoroutine() > before; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
	}
}
