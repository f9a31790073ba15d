package hid

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
)

// within bounds every wait for the driver.
const within = 5 * time.Second

func TestConfig(t *testing.T) {
	c, ok := Driver.NewConfig().(*Config)
	if !ok || Driver.Name != "hid" {
		t.Fatalf("NewConfig = %T, Name %q", Driver.NewConfig(), Driver.Name)
	}
	var ke *reader.KeyError
	if err := c.Validate(); !errors.As(err, &ke) || ke.Key != "device" || !errors.Is(err, reader.ErrConfig) {
		t.Errorf("empty device: %v", err)
	}
	c.Device = "dev/input/by-id/x"
	if err := c.Validate(); !errors.As(err, &ke) || ke.Key != "device" {
		t.Errorf("relative device: %v", err)
	}
	c.Device = "/dev/input/by-id/usb-Sycreader_RFID-event-kbd/"
	if err := c.Validate(); err != nil {
		t.Errorf("valid device: %v", err)
	}
	if got := c.Claims(); !slices.Equal(got, []string{"/dev/input/by-id/usb-Sycreader_RFID-event-kbd"}) {
		t.Errorf("Claims = %q", got)
	}
	if _, err := (&Config{}).New(reader.Env{Name: "x"}); !errors.Is(err, reader.ErrConfig) {
		t.Errorf("New with no device: %v", err)
	}
	if _, err := (&Config{}).Twin(reader.TwinEnv{Name: "x"}); !errors.Is(err, reader.ErrConfig) {
		t.Errorf("Twin with no device: %v", err)
	}
}

// rig is a twin and the real driver reading its FIFO, both built from a
// Config as the agent and the simulator build them.
type rig struct {
	t    *testing.T
	twin *Twin
	r    *Reader
	out  chan reader.Read
	stop func()
}

func newRig(t *testing.T, repeat time.Duration, now func() time.Time) *rig {
	t.Helper()
	cfg := &Config{Device: filepath.Join(t.TempDir(), "dev", "input", "by-id", "usb-wedge-event-kbd")}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tw, err := cfg.Twin(reader.TwinEnv{Name: "door"})
	if err != nil {
		t.Fatal(err)
	}
	rd, err := cfg.New(reader.Env{Name: "door", RepeatWindow: repeat, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	g := &rig{t: t, twin: tw.(*Twin), r: rd.(*Reader), out: make(chan reader.Read)}
	g.twin.rng = rand.New(rand.NewPCG(1, 2))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- g.r.Run(ctx, g.out) }()
	var once sync.Once
	g.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v", err)
				}
			case <-time.After(within):
				t.Errorf("Run did not return")
			}
			if stacks := driverGoroutines(); stacks != "" {
				t.Errorf("goroutines left behind by Run:\n%s", stacks)
			}
			if err := g.twin.Close(); err != nil {
				t.Errorf("twin Close: %v", err)
			}
		})
	}
	t.Cleanup(g.stop)
	return g
}

// driverGoroutines returns the stacks of goroutines running the
// driver's code. Tests do not run in parallel, so after Run returns there
// must be none.
func driverGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var left []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "reader/hid.(*Reader)") || strings.Contains(g, "reader/hid.(*queue)") {
			left = append(left, g)
		}
	}
	return strings.Join(left, "\n\n")
}

func (g *rig) do(cmd string, args ...string) string {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(g.t.Context(), within)
	defer cancel()
	echo, err := g.twin.Do(ctx, cmd, args)
	if err != nil {
		g.t.Fatalf("%s %q: %v", cmd, args, err)
	}
	return echo
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

func (g *rig) waitFrames(n uint64) {
	g.t.Helper()
	deadline := time.Now().Add(within)
	for g.r.Stats().Frames < n {
		if time.Now().After(deadline) {
			g.t.Fatalf("driver did not decode %d values; stats %+v", n, g.r.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

func (g *rig) none(d time.Duration) {
	g.t.Helper()
	select {
	case rd := <-g.out:
		g.t.Fatalf("unexpected read %+v", rd)
	case <-time.After(d):
	}
}

// Twin → real FIFO → real driver: values typed come out as card reads.
func TestRoundTripFIFO(t *testing.T) {
	at := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	g := newRig(t, 0, func() time.Time { return at })
	if echo := g.do("hid", "0001193046"); echo != "hid door 0001193046" {
		t.Errorf("echo = %q", echo)
	}
	want := reader.Read{Reader: "door", Type: reader.TypeCard, Format: reader.FormatTyped, Value: "0001193046", At: at}
	if rd := g.read(); rd != want {
		t.Errorf("read %+v, want %+v", rd, want)
	}
	for _, v := range [][]string{{"4294967295", "keypad"}, {"04A1b2C3"}} {
		g.do("hid", v...)
		if rd := g.read(); rd.Value != v[0] {
			t.Errorf("read %+v, want %s", rd, v[0])
		}
	}
	if s := g.r.Stats(); s != (reader.Stats{Frames: 3, Reads: 3}) {
		t.Errorf("stats %+v", s)
	}
}

// Random key events between values: every value is read, in order, and
// nothing else.
func TestGarbageInterleaved(t *testing.T) {
	g := newRig(t, 0, nil)
	rng := rand.New(rand.NewPCG(3, 4))
	var want, got []string
	for i := range 40 {
		g.do("garbage", fmt.Sprint(1+rng.IntN(60)))
		v := fmt.Sprintf("%010d", rng.Uint32())
		if i%3 == 0 {
			v = fmt.Sprintf("%X", rng.Uint64())
		}
		want = append(want, v)
		g.do("hid", v)
	}
	g.do("garbage", "200")
	for range want {
		got = append(got, g.read().Value)
	}
	g.none(100 * time.Millisecond)
	if !slices.Equal(got, want) {
		t.Errorf("read %q\nwant %q", got, want)
	}
	s := g.r.Stats()
	if s.Frames != 40 || s.Reads != 40 || s.BadFrames < 41 || s.Garbage == 0 {
		t.Errorf("stats %+v, want 40 frames and reads, a bad frame per garbage", s)
	}
}

// Raw bytes that misalign the stream cost the value after them, never
// invent one; a Reset on reopen is not needed to recover.
func TestRawMisaligned(t *testing.T) {
	g := newRig(t, 0, nil)
	g.do("raw", "ff", "00", "ff")
	g.do("hid", "111")
	g.do("hid", "222")
	if rd := g.read(); rd.Value != "222" {
		t.Errorf("read %+v, want 222", rd)
	}
	if s := g.r.Stats(); s.BadFrames != 1 || s.Garbage != 3+3 {
		t.Errorf("stats %+v", s)
	}
}

// The twin's FIFO goes away and comes back: the driver reads what was
// written before, sees EOF, reopens with backoff and reads again without
// a restart.
func TestUnplugReplug(t *testing.T) {
	g := newRig(t, 0, nil)
	g.do("hid", "1")
	if rd := g.read(); rd.Value != "1" {
		t.Fatalf("read %+v", rd)
	}
	g.do("hid", "2") // written, then the cable is pulled
	if err := g.twin.Unplug(); err != nil {
		t.Fatal(err)
	}
	if rd := g.read(); rd.Value != "2" {
		t.Errorf("read %+v, want 2 (written before the unplug)", rd)
	}
	if _, err := g.twin.Do(t.Context(), "hid", []string{"3"}); !errors.Is(err, ErrUnplugged) {
		t.Errorf("Do while unplugged: %v", err)
	}
	if err := g.twin.Unplug(); !errors.Is(err, ErrUnplugged) {
		t.Errorf("Unplug twice: %v", err)
	}
	if _, err := os.Stat(g.twin.Path()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("FIFO still there after Unplug: %v", err)
	}
	time.Sleep(150 * time.Millisecond) // let the driver fail to reopen at least once
	if err := g.twin.Replug(); err != nil {
		t.Fatal(err)
	}
	if err := g.twin.Replug(); !errors.Is(err, ErrPlugged) {
		t.Errorf("Replug twice: %v", err)
	}
	for _, v := range []string{"4", "5"} {
		g.do("hid", v)
		if rd := g.read(); rd.Value != v {
			t.Errorf("read %+v after replug, want %s", rd, v)
		}
	}
	if s := g.r.Stats(); s.Reopens != 1 || s.Reads != 4 {
		t.Errorf("stats %+v, want 1 reopen, 4 reads", s)
	}
	g.stop()
	if err := g.twin.Close(); err != nil {
		t.Errorf("Close twice: %v", err)
	}
	if err := g.twin.Replug(); !errors.Is(err, ErrTwinClosed) {
		t.Errorf("Replug after Close: %v", err)
	}
}

// A value typed again within the repeat window is one presentation; the
// window slides with each repeat.
func TestRepeatWindow(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	g := newRig(t, time.Second, clock)

	// The clock moves only once the driver has decoded what was typed.
	typed := func(v string) {
		n := g.r.Stats().Frames
		g.do("hid", v)
		g.waitFrames(n + 1)
	}
	typed("0001193046")
	first := g.read()
	for range 3 {
		advance(900 * time.Millisecond) // retyped while the card stays
		typed("0001193046")
	}
	typed("0000000042") // another card meanwhile is read
	if rd := g.read(); rd.Value != "0000000042" {
		t.Fatalf("read %+v, want the other card", rd)
	}
	advance(time.Second) // the card left the field for the window
	typed("0001193046")
	second := g.read()
	if second.Value != first.Value || second.At.Sub(first.At) != 3700*time.Millisecond {
		t.Errorf("reads %+v then %+v", first, second)
	}
	if s := g.r.Stats(); s.Frames != 6 || s.Reads != 3 {
		t.Errorf("stats %+v, want 6 frames, 3 reads", s)
	}
}

// The driver keeps reading while the consumer does not: values typed
// meanwhile wait in its queue, none lost.
func TestSlowConsumer(t *testing.T) {
	g := newRig(t, 0, nil)
	var want []string
	for i := range 100 {
		v := fmt.Sprint(1000 + i)
		want = append(want, v)
		g.do("hid", v)
	}
	deadline := time.Now().Add(within)
	for g.r.Stats().Reads < 100 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	var got []string
	for range want {
		got = append(got, g.read().Value)
	}
	if !slices.Equal(got, want) {
		t.Errorf("read %q", got)
	}
}

func TestTwinCommands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wedge")
	tw, err := NewTwin("door", path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	ctx := t.Context()
	for _, bad := range [][]string{
		{"hid"}, {"hid", "12x"}, {"hid", "1", "numpad"}, {"hid", strings.Repeat("1", 65)},
		{"garbage"}, {"garbage", "0"}, {"garbage", "x"}, {"garbage", "10001"},
		{"raw"}, {"raw", "0g"}, {"card", "0A00123456"},
	} {
		if _, err := tw.Do(ctx, bad[0], bad[1:]); !errors.Is(err, ErrCommand) {
			t.Errorf("Do %q: %v, want ErrCommand", bad, err)
		}
	}
	if echo, err := tw.Do(ctx, "raw", []string{"01", "02ff"}); err != nil || echo != "raw door 01 02 FF" {
		t.Errorf("raw: %q, %v", echo, err)
	}
	if echo, err := tw.Do(ctx, "garbage", []string{"3"}); err != nil || echo != "garbage door 3" {
		t.Errorf("garbage: %q, %v", echo, err)
	}
	// With no driver reading, the FIFO fills and a write times out.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	var werr error
	for range 100 {
		if _, werr = tw.Do(short, "garbage", []string{"10000"}); werr != nil {
			break
		}
	}
	if !errors.Is(werr, os.ErrDeadlineExceeded) {
		t.Errorf("writing into a full FIFO: %v", werr)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Do(ctx, "hid", []string{"1"}); !errors.Is(err, ErrTwinClosed) {
		t.Errorf("Do after Close: %v", err)
	}
}

func TestTwinPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "regular")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewTwin("x", file, nil); !errors.Is(err, ErrPathInUse) {
		t.Errorf("NewTwin over a regular file: %v", err)
	}
	// A stale FIFO (a crashed simulator's) is replaced.
	fifo := filepath.Join(dir, "a", "b", "fifo")
	t1, err := NewTwin("x", fifo, nil)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := NewTwin("x", fifo, nil)
	if err != nil {
		t.Fatalf("NewTwin over a FIFO: %v", err)
	}
	t2.Close()
	t1.Close()
}

func TestOpenDevice(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenDevice(filepath.Join(dir, "missing"), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	file := filepath.Join(dir, "regular")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDevice(file, nil); !errors.Is(err, ErrNotDevice) {
		t.Errorf("regular file: %v", err)
	}
	// /dev/null is a character device that evdev's ioctls do not know.
	if _, err := OpenDevice(os.DevNull, nil); !errors.Is(err, ErrNotEvdev) {
		t.Errorf("%s: %v", os.DevNull, err)
	}
}

// A unix socket works in place of the evdev node too.
func TestSocketDevice(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "wedge.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		ty := typist{l: NativeLayout, t: t0}
		b, _ := ty.typeValue(nil, "0001193046", false)
		c.Write(b)
	}()
	r := NewReader(Options{Name: "sock", Open: func() (Device, error) { return OpenDevice(sock, nil) }})
	ctx, cancel := context.WithCancel(t.Context())
	out := make(chan reader.Read)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, out) }()
	select {
	case rd := <-out:
		if rd.Value != "0001193046" {
			t.Errorf("read %+v", rd)
		}
	case <-time.After(within):
		t.Errorf("no read over the socket; stats %+v", r.Stats())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// Run's own errors, and a device that keeps failing to open: backoff
// doubles to MaxBackoff and Run returns when ctx is done.
func TestRunBackoff(t *testing.T) {
	if err := NewReader(Options{Name: "x"}).Run(t.Context(), nil); !errors.Is(err, reader.ErrConfig) {
		t.Errorf("no Open: %v", err)
	}
	var waits []time.Duration
	ctx, cancel := context.WithCancel(t.Context())
	opens := 0
	r := NewReader(Options{
		Name: "x",
		Open: func() (Device, error) {
			opens++
			return nil, fs.ErrNotExist
		},
		MinBackoff: time.Millisecond,
		MaxBackoff: 8 * time.Millisecond,
		Wait: func(ctx context.Context, d time.Duration) error {
			waits = append(waits, d)
			if len(waits) == 6 {
				cancel()
				return ctx.Err()
			}
			return nil
		},
	})
	if err := r.Run(ctx, make(chan reader.Read)); err != nil {
		t.Errorf("Run = %v", err)
	}
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(waits, want) || opens != 6 {
		t.Errorf("waits %v after %d opens, want %v", waits, opens, want)
	}
}

// A device that delivered data resets the backoff; a partial value when
// it fails is discarded and counted, and the reopen counted.
func TestReopenResetsBackoff(t *testing.T) {
	ty := typist{l: NativeLayout, t: t0}
	v1, _ := ty.typeValue(nil, "11", false)
	v2, _ := ty.typeValue(nil, "22", false)
	scripts := [][]byte{append(slices.Clone(v1), v2[:len(v2)/2]...), nil, v2}
	var (
		mu       sync.Mutex
		waits    []time.Duration
		last     = make(chan struct{})
		lastOnce sync.Once
	)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	opens := 0
	r := NewReader(Options{
		Name: "x",
		Open: func() (Device, error) {
			if opens >= len(scripts) {
				// Run may ask again between the test's cancel and its
				// own derived context's (children are cancelled after
				// the parent's Done closes).
				lastOnce.Do(func() { close(last) })
				<-ctx.Done()
				return nil, ctx.Err()
			}
			s := scripts[opens]
			opens++
			if s == nil {
				return nil, fs.ErrNotExist
			}
			return io.NopCloser(strings.NewReader(string(s))), nil // then EOF: gone
		},
		MinBackoff: time.Millisecond,
		Wait: func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			waits = append(waits, d)
			mu.Unlock()
			return nil
		},
	})
	out := make(chan reader.Read, 2)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, out) }()
	for _, want := range []string{"11", "22"} {
		select {
		case rd := <-out:
			if rd.Value != want {
				t.Errorf("read %+v, want %s", rd, want)
			}
		case <-time.After(within):
			t.Fatalf("no read; stats %+v", r.Stats())
		}
	}
	<-last
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	// The wait after the last open (cancelled) is not the point.
	if len(waits) < 3 || !slices.Equal(waits[:3], []time.Duration{time.Millisecond, 2 * time.Millisecond, time.Millisecond}) {
		t.Errorf("waits %v", waits)
	}
	if s := r.Stats(); s.Reopens != 1 || s.Reads != 2 || s.BadFrames != 1 {
		t.Errorf("stats %+v, want 1 reopen, 2 reads, 1 bad (the half value)", s)
	}
}

// Errors read well: one package prefix, the path, the cause.
func TestOpenDeviceMessages(t *testing.T) {
	// The errno is ENOTTY on Linux (ENOSYS under qemu-user).
	_, err := OpenDevice(os.DevNull, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "hid: not an evdev device: EVIOCGVERSION: ") || !strings.HasSuffix(err.Error(), " (/dev/null)") {
		t.Errorf("got %v, want hid: not an evdev device: EVIOCGVERSION: <errno> (/dev/null)", err)
	}
	dir := t.TempDir()
	_, err = OpenDevice(dir, nil)
	if want := "hid: not an input device, FIFO or socket: " + dir + " is a directory"; err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}
