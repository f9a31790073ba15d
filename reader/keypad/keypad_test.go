package keypad_test

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/gpioline"
	"github.com/punchclock/punchclock/reader/keypad"
)

const within = 5 * time.Second

var (
	rows = []string{"GPIO5", "GPIO6", "GPIO13", "GPIO19"}
	cols = []string{"GPIO12", "GPIO16", "GPIO20", "GPIO21"}
)

type rig struct {
	t    testing.TB
	twin *keypad.Twin
	r    *keypad.Reader
	out  chan reader.Read
}

func start(t testing.TB, ncols int, layout []string) *rig {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "sim", "pad.sock")
	cfg := keypad.Driver.NewConfig()
	c := cfg.(*keypad.Config)
	c.Rows, c.Cols, c.Chip, c.Layout = rows, cols[:ncols], "sim:"+sock, layout
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tw, err := cfg.Twin(reader.TwinEnv{Name: "pad"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tw.Close() })
	rd, err := cfg.New(reader.Env{Name: "pad", Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	_ = rd
	labels := strings.Join(keypad.Layout4x4, "")
	if ncols == 3 {
		labels = strings.Join(keypad.Layout4x3, "")
	}
	if layout != nil {
		labels = strings.Join(layout, "")
	}
	r := keypad.New(keypad.Options{
		Name: "pad", Chip: gpioline.Spec{Sim: true, Path: sock}, Rows: rows, Cols: cols[:ncols],
		Labels: strings.Split(labels, ""), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	})
	out := make(chan reader.Read, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, out) }()
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
	return &rig{t: t, twin: tw.(*keypad.Twin), r: r, out: out}
}

func (g *rig) do(cmd, arg string) {
	g.t.Helper()
	if _, err := g.twin.Do(context.Background(), cmd, []string{arg}); err != nil {
		g.t.Fatalf("%s %s: %v", cmd, arg, err)
	}
}

func (g *rig) keys(n int) string {
	g.t.Helper()
	var s string
	for range n {
		select {
		case rd := <-g.out:
			if rd.Type != reader.TypeKey || rd.Reader != "pad" || rd.At.IsZero() {
				g.t.Fatalf("read %+v", rd)
			}
			s += rd.Value
		case <-time.After(within):
			g.t.Fatalf("after %q: no read; stats %+v", s, g.r.Stats())
		}
	}
	return s
}

func (g *rig) none() {
	g.t.Helper()
	select {
	case rd := <-g.out:
		g.t.Fatalf("unexpected read %+v", rd)
	case <-time.After(100 * time.Millisecond):
	}
}

// The twin → the simulated chip over a real unix socket → the real
// driver: every key of a 4×4 pad, pressed with bounce, read once each.
func TestRoundTrip4x4(t *testing.T) {
	g := start(t, 4, nil)
	g.do("keys", "4821#")
	if got := g.keys(5); got != "4821#" {
		t.Fatalf("keys %q", got)
	}
	g.do("keys", "0123456789*#ABCD")
	if got := g.keys(16); got != "0123456789*#ABCD" {
		t.Fatalf("keys %q", got)
	}
	g.none()
	// Garbage (bounces seen) depends on whether a scan fell in a
	// bounce: the debouncer's own tests count them.
	if s := g.r.Stats(); s.Reads != 21 || s.Frames != 21 {
		t.Fatalf("stats %+v: want 21 reads", s)
	}
}

func TestRoundTrip4x3AndLayout(t *testing.T) {
	g := start(t, 3, nil)
	g.do("keys", "*0#9")
	if got := g.keys(4); got != "*0#9" {
		t.Fatalf("keys %q", got)
	}
	if _, err := g.twin.Do(context.Background(), "keys", []string{"A"}); !errors.Is(err, keypad.ErrUsage) {
		t.Fatalf("key A on a 4×3 pad: %v", err)
	}
	// A phone layout: 1 2 3 at the bottom.
	g2 := start(t, 3, []string{"789", "456", "123", "*0#"})
	g2.do("keys", "71")
	if got := g2.keys(2); got != "71" {
		t.Fatalf("keys %q", got)
	}
}

func TestBlipIsNoPress(t *testing.T) {
	g := start(t, 4, nil)
	g.do("blip", "5")
	g.none()
	g.do("keys", "5")
	if got := g.keys(1); got != "5" {
		t.Fatalf("keys %q", got)
	}
}

func TestUnplugReplug(t *testing.T) {
	g := start(t, 4, nil)
	g.do("keys", "1")
	g.keys(1)
	if err := g.twin.Unplug(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	if err := g.twin.Replug(); err != nil {
		t.Fatal(err)
	}
	g.do("keys", "2")
	if got := g.keys(1); got != "2" {
		t.Fatalf("keys %q", got)
	}
	if s := g.r.Stats(); s.Reopens < 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestConfig(t *testing.T) {
	cfg := keypad.Driver.NewConfig()
	c := cfg.(*keypad.Config)
	err := cfg.Validate()
	if !errors.Is(err, reader.ErrConfig) || !strings.Contains(err.Error(), "key rows") || !strings.Contains(err.Error(), "key cols") {
		t.Fatalf("empty: %v", err)
	}
	c.Rows, c.Cols = rows, []string{"GPIO12", "GPIO5", "GPIO20"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "in rows too") {
		t.Fatalf("a line twice: %v", err)
	}
	c.Cols = cols[:3]
	c.Layout = []string{"123", "456", "789", "*0X"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "key layout") {
		t.Fatalf("bad layout: %v", err)
	}
	c.Layout = nil
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []string{"/dev/gpiochip0:GPIO5", "/dev/gpiochip0:GPIO6", "/dev/gpiochip0:GPIO13", "/dev/gpiochip0:GPIO19",
		"/dev/gpiochip0:GPIO12", "/dev/gpiochip0:GPIO16", "/dev/gpiochip0:GPIO20"}
	if got := cfg.Claims(); !slices.Equal(got, want) {
		t.Fatalf("claims %v", got)
	}
	c.Chip = "rpio"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("keypad on go-rpio: %v", err)
	}
	if got := cfg.Claims(); !slices.Equal(got, want) {
		t.Fatalf("go-rpio claims %v: the same lines as the character device's", got)
	}
	if _, err := cfg.Twin(reader.TwinEnv{}); !errors.Is(err, reader.ErrConfig) {
		t.Fatalf("twin on hardware: %v", err)
	}
	if err := keypad.New(keypad.Options{}).Run(context.Background(), nil); !errors.Is(err, reader.ErrConfig) {
		t.Fatalf("Run with no options: %v", err)
	}
}

// BenchmarkIdleCPU runs the driver against its twin with no key pressed
// for 10 s and reports the process's CPU time (driver and twin, both in
// this process) as a percentage of one core. Run it with -benchtime 1x.
func BenchmarkIdleCPU(b *testing.B) {
	g := start(b, 4, nil)
	time.Sleep(100 * time.Millisecond)
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	scans0 := g.r.Scans()
	const span = 10 * time.Second
	t0 := time.Now()
	for b.Loop() {
		time.Sleep(span)
	}
	wall := time.Since(t0)
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%core")
	b.ReportMetric(float64(g.r.Scans()-scans0)/wall.Seconds(), "reads/s")
}

// BenchmarkPressToRead: from a key's press (its contact then bounces
// for 5 ms) to its Read: Debounce (20 ms) after the bouncing stops, plus
// up to one scan period, plus the scans themselves over the socket.
func BenchmarkPressToRead(b *testing.B) {
	g := start(b, 4, nil)
	var total time.Duration
	for b.Loop() {
		done := make(chan error, 1)
		t0 := time.Now()
		go func() { _, err := g.twin.Do(context.Background(), "keys", []string{"5"}); done <- err }()
		g.keys(1)
		total += time.Since(t0)
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms-press-to-read")
}

// Run, its chip's connections and the twin's leave nothing behind.
func TestNoGoroutineLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("session", func(t *testing.T) {
		g := start(t, 4, nil)
		g.do("keys", "1")
		g.keys(1)
		g.twin.Unplug()
		g.twin.Replug()
		g.do("keys", "2")
		g.keys(1)
	})
	for deadline := time.Now().Add(within); runtime.NumGoroutine() > before; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
	}
}
