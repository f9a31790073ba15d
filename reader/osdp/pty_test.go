package osdp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/sim"
)

const within = 5 * time.Second

func ptySerial(link string) (reader.SerialEnd, error) { return sim.NewSerial(link) }

// rig is one pty bus with twins and real readers running on it.
type rig struct {
	t     *testing.T
	link  string
	twins map[byte]*Twin
	rds   map[byte]*Reader
	outs  map[byte]chan reader.Read
	stop  []func()
}

func newRig(t *testing.T, addrs []byte, scbk string, tweak func(*Options)) *rig {
	t.Helper()
	g := &rig{t: t, link: filepath.Join(t.TempDir(), "dev", "ttyOSDP"),
		twins: map[byte]*Twin{}, rds: map[byte]*Reader{}, outs: map[byte]chan reader.Read{}}
	var k *Key
	if scbk != "" {
		k, _ = parseKey(scbk)
	}
	for _, a := range addrs {
		tw, err := NewTwin(g.link, a, k, ptySerial, nil)
		if err != nil {
			t.Fatal(err)
		}
		g.twins[a] = tw
		t.Cleanup(func() {
			if err := tw.Close(); err != nil {
				t.Errorf("twin close: %v", err)
			}
			if err := tw.Close(); err != nil {
				t.Errorf("second twin close: %v", err)
			}
		})
	}
	for _, a := range addrs {
		opt := Options{Name: fmt.Sprintf("door%d", a), Port: g.link, Address: a, SCBK: scbk,
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
		if tweak != nil {
			tweak(&opt)
		}
		r, err := New(opt)
		if err != nil {
			t.Fatal(err)
		}
		out := make(chan reader.Read, 64)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx, out) }()
		g.rds[a], g.outs[a] = r, out
		g.stop = append(g.stop, func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v", err)
				}
			case <-time.After(within):
				t.Error("Run did not return")
			}
		})
	}
	t.Cleanup(g.close)
	return g
}

func (g *rig) close() {
	for _, s := range g.stop {
		s()
	}
	g.stop = nil
	buses.mu.Lock()
	_, left := buses.m[g.link]
	buses.mu.Unlock()
	if left {
		g.t.Error("the bus outlived its readers")
	}
}

func (g *rig) do(a byte, cmd string, args ...string) {
	g.t.Helper()
	if _, err := g.twins[a].Do(g.t.Context(), cmd, args); err != nil {
		g.t.Fatalf("twin %d: %s %v: %v", a, cmd, args, err)
	}
}

func (g *rig) expect(a byte, typ, format, value string) reader.Read {
	g.t.Helper()
	select {
	case rd := <-g.outs[a]:
		if rd.Type != typ || rd.Format != format || rd.Value != value || rd.Reader != fmt.Sprintf("door%d", a) || rd.At.IsZero() {
			g.t.Fatalf("reader %d read %+v, want %s %s %s", a, rd, typ, format, value)
		}
		return rd
	case <-time.After(within):
		g.t.Fatalf("reader %d: no read of %s %s", a, typ, value)
	}
	return reader.Read{}
}

func (g *rig) quiet(a byte, d time.Duration) {
	g.t.Helper()
	select {
	case rd := <-g.outs[a]:
		g.t.Fatalf("reader %d: unexpected read %+v", a, rd)
	case <-time.After(d):
	}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Two PDs on one pty; cards, keys and feedback reach the right one.
func TestTwoAddressesOnOnePort(t *testing.T) {
	g := newRig(t, []byte{1, 2}, "", nil)
	g.do(1, "card", "123:45678")
	g.expect(1, reader.TypeCard, reader.FormatWiegand26, "123:45678")
	g.do(2, "keys", "4821#")
	for _, k := range []string{"4", "8", "2", "1", "#"} {
		g.expect(2, reader.TypeKey, "", k)
	}
	g.do(2, "card", "37", "1234:300000")
	g.expect(2, reader.TypeCard, reader.FormatWiegand37, "1234:300000")
	g.do(1, "card", "34", "4242:31337")
	g.expect(1, reader.TypeCard, reader.FormatWiegand34, "4242:31337")
	g.do(1, "card", "raw", "32", "0A1B2C3D")
	g.expect(1, reader.TypeCard, reader.FormatRaw, "32:0A1B2C3D")
	g.do(2, "fmt", "0001193046")
	g.expect(2, reader.TypeCard, reader.FormatTyped, "0001193046")
	g.quiet(1, 50*time.Millisecond)
	g.quiet(2, 50*time.Millisecond)

	// Feedback: green on reader 1, red on reader 2.
	g.rds[1].Indicate(reader.Signal{Accepted: true})
	g.rds[2].Indicate(reader.Signal{Accepted: false})
	eventually(t, "LED and buzzer commands", func() bool {
		return len(g.twins[1].LEDs()) == 1 && len(g.twins[1].Buzzes()) == 1 &&
			len(g.twins[2].LEDs()) == 1 && len(g.twins[2].Buzzes()) == 1
	})
	if echo, _ := g.twins[1].Do(t.Context(), "leds", nil); echo != "green" {
		t.Errorf("twin 1 LED %q", echo)
	}
	if echo, _ := g.twins[2].Do(t.Context(), "leds", nil); echo != "red" {
		t.Errorf("twin 2 LED %q", echo)
	}
	l := g.twins[1].LEDs()[0]
	b := g.twins[2].Buzzes()[0]
	if l.TempControl != 2 || l.TempOn == 0 || l.TempOff == 0 || l.Timer == 0 || b.Tone != 2 || b.On == 0 {
		t.Errorf("LED %+v, buzzer %+v", l, b)
	}
	for a, r := range g.rds {
		s := r.Stats()
		if r.State() != reader.StateOnline || s.Frames == 0 || s.Reads == 0 {
			t.Errorf("reader %d: %s %+v", a, r.State(), s)
		}
	}
}

// A card held in the field and reported again within the repeat window
// is one presentation.
func TestRepeatFolded(t *testing.T) {
	g := newRig(t, []byte{3}, "", func(o *Options) { o.RepeatWindow = time.Second })
	g.do(3, "card", "1:2")
	g.do(3, "card", "1:2")
	g.expect(3, reader.TypeCard, reader.FormatWiegand26, "1:2")
	g.quiet(3, 300*time.Millisecond)
	if s := g.rds[3].Stats(); s.Reads != 1 {
		t.Errorf("reads %d, want 1", s.Reads)
	}
}

func TestSecureChannelOnPTY(t *testing.T) {
	const scbk = "000102030405060708090A0B0C0D0E0F"
	g := newRig(t, []byte{1, 2}, scbk, nil)
	eventually(t, "secure sessions", func() bool { return g.twins[1].Secure() && g.twins[2].Secure() })
	g.do(1, "card", "123:45678")
	g.expect(1, reader.TypeCard, reader.FormatWiegand26, "123:45678")
	g.do(2, "keys", "9*")
	g.expect(2, reader.TypeKey, "", "9")
	g.expect(2, reader.TypeKey, "", "*")
	g.rds[2].Indicate(reader.Signal{Accepted: true})
	eventually(t, "a green LED through the secure channel", func() bool {
		l := g.twins[2].LEDs()
		return len(l) == 1 && l[0].TempOnColor == ColorGreen
	})
	for a, r := range g.rds {
		if s := r.Stats(); s.BadFrames != 0 {
			t.Errorf("reader %d: %+v", a, s)
		}
	}
}

// Random noise between the PD's replies: every card is read, none is
// invented.
func TestMixedGarbage(t *testing.T) {
	g := newRig(t, []byte{4, 5}, "", nil)
	eventually(t, "both PDs", func() bool { return g.rds[4].Stats().Frames > 2 && g.rds[5].Stats().Frames > 2 })
	rng := rand.New(rand.NewPCG(1, 2))
	reads := map[byte]uint64{}
	for i := range 30 {
		g.do(4, "garbage", fmt.Sprint(1+rng.IntN(40)))
		if i%5 == 0 {
			// Bytes that look like a packet start, with a length
			// (0x4000) over MaxFrame; and one (0x0040) that swallows
			// what follows until the framer gives up on it.
			g.do(5, "raw", "53004000")
			g.do(5, "raw", "53014000")
		}
		v := fmt.Sprintf("%d:%d", rng.IntN(256), rng.IntN(65536))
		a := byte(4 + rng.IntN(2))
		g.do(a, "card", v)
		g.do(5, "garbage", fmt.Sprint(rng.IntN(20)))
		g.expect(a, reader.TypeCard, reader.FormatWiegand26, v)
		reads[a]++
	}
	g.quiet(4, 300*time.Millisecond)
	g.quiet(5, 10*time.Millisecond)
	s4, s5 := g.rds[4].Stats(), g.rds[5].Stats()
	if s4.Garbage+s5.Garbage == 0 || s4.BadFrames+s5.BadFrames == 0 || s4.Reads != reads[4] || s5.Reads != reads[5] {
		t.Errorf("stats %+v, %+v", s4, s5)
	}
	t.Logf("stats 4: %+v; 5: %+v", s4, s5)
}

// The cable is pulled and plugged back: the bus reopens the port and
// both PDs are read again without restarting Run.
func TestUnplugReplug(t *testing.T) {
	g := newRig(t, []byte{1, 2}, "", nil)
	g.do(1, "card", "1:1")
	g.expect(1, reader.TypeCard, reader.FormatWiegand26, "1:1")
	if err := g.twins[1].Unplug(); err != nil {
		t.Fatal(err)
	}
	if err := g.twins[1].Unplug(); err != nil {
		t.Fatal(err)
	}
	if _, err := g.twins[2].Do(t.Context(), "raw", []string{"00"}); err == nil {
		t.Error("raw on an unplugged bus succeeded")
	}
	time.Sleep(100 * time.Millisecond) // let the driver fail a few reopens
	if err := g.twins[2].Replug(); err != nil {
		t.Fatal(err)
	}
	g.do(1, "card", "2:2")
	g.expect(1, reader.TypeCard, reader.FormatWiegand26, "2:2")
	g.do(2, "card", "3:3")
	g.expect(2, reader.TypeCard, reader.FormatWiegand26, "3:3")
	if s := g.rds[1].Stats(); s.Reopens == 0 {
		t.Errorf("reopens %+v", s)
	}
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// A PD that stops answering times out, is re-initialised and goes
// offline after reader.OfflineAfter; it is online again when it answers.
func TestSilentOfflineOnline(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	g := newRig(t, []byte{6}, "", func(o *Options) { o.Now = clk.Now; o.ReplyTimeout = 50 * time.Millisecond })
	r := g.rds[6]
	eventually(t, "first answers", func() bool { return r.Stats().Frames >= 3 })
	g.do(6, "silent", "1s")
	eventually(t, "re-initialisation", func() bool { return r.Stats().Timeouts >= retriesBeforeReset })
	if r.State() != reader.StateOnline {
		t.Fatal("offline before OfflineAfter")
	}
	clk.Add(reader.OfflineAfter)
	if r.State() != reader.StateOffline {
		t.Fatal("still online after OfflineAfter without an answer")
	}
	eventually(t, "online again", func() bool { return r.State() == reader.StateOnline })
	g.do(6, "card", "9:9")
	g.expect(6, reader.TypeCard, reader.FormatWiegand26, "9:9")
}

func TestConfig(t *testing.T) {
	c := Driver.NewConfig().(*Config)
	if c.Baud != 9600 {
		t.Errorf("default baud %d", c.Baud)
	}
	err := c.Validate()
	var ke *reader.KeyError
	if !errors.As(err, &ke) || !errors.Is(err, reader.ErrConfig) {
		t.Fatalf("empty config: %v", err)
	}
	for _, key := range []string{"port", "address"} {
		if !containsKey(err, key) {
			t.Errorf("no error for %s in %v", key, err)
		}
	}
	c = &Config{Port: "/dev/ttyAMA0", Baud: 9600, Address: 0}
	if err := c.Validate(); err != nil {
		t.Errorf("good config: %v", err)
	}
	if got := c.Claims(); len(got) != 3 || got[0] != "shared:/dev/ttyAMA0" || got[1] != "/dev/ttyAMA0 address 0" {
		t.Errorf("claims %v", got)
	}
	for _, bad := range []struct {
		key string
		c   Config
	}{
		{"address", Config{Port: "p", Baud: 9600, Address: 127}},
		{"address", Config{Port: "p", Baud: 9600, Address: -2}},
		{"baud", Config{Port: "p", Baud: 9601, Address: 1}},
		{"scbk", Config{Port: "p", Baud: 9600, Address: 1, SCBK: "0011"}},
		{"scbk", Config{Port: "p", Baud: 9600, Address: 1, SCBK: "zz0102030405060708090A0B0C0D0E0F"}},
	} {
		if err := bad.c.Validate(); !containsKey(err, bad.key) {
			t.Errorf("%+v: %v, want an error for %s", bad.c, err, bad.key)
		}
	}
}

func containsKey(err error, key string) bool {
	if err == nil {
		return false
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if containsKey(e, key) {
				return true
			}
		}
		return false
	}
	var ke *reader.KeyError
	return errors.As(err, &ke) && ke.Key == key
}

// Two readers of one port must agree on the baud rate and differ in
// address.
func TestBusConflicts(t *testing.T) {
	g := newRig(t, []byte{1}, "", nil)
	eventually(t, "the bus", func() bool { return g.rds[1].Stats().Frames > 0 })
	for _, o := range []Options{
		{Name: "x", Port: g.link, Address: 1},
		{Name: "y", Port: g.link, Address: 2, Baud: 19200},
	} {
		r, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Run(t.Context(), make(chan reader.Read)); !errors.Is(err, reader.ErrConfig) {
			t.Errorf("%+v: Run = %v", o, err)
		}
	}
}

// Through the driver's Config and TwinEnv, as the simulator builds it.
func TestConfigTwinAndNew(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyX")
	c := &Config{Port: link, Baud: 19200, Address: 9}
	tw, err := c.Twin(reader.TwinEnv{Name: "x", Serial: ptySerial})
	if err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	rr, err := c.New(reader.Env{Name: "x", Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan reader.Read, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- rr.Run(ctx, out) }()
	defer func() { cancel(); <-done }()
	if _, err := tw.Do(t.Context(), "card", []string{"12:34"}); err != nil {
		t.Fatal(err)
	}
	select {
	case rd := <-out:
		if rd.Value != "12:34" {
			t.Fatalf("read %+v", rd)
		}
	case <-time.After(within):
		t.Fatal("no read")
	}
	if _, err := tw.Do(t.Context(), "nonsense", nil); !errors.Is(err, ErrTwin) {
		t.Errorf("unknown command: %v", err)
	}
	if tw.Path() != link {
		t.Errorf("path %q", tw.Path())
	}
}

// A PD with another key never gets a secure session, and what it might
// send in clear is not read.
func TestSecureChannelWrongKey(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyK")
	k1, _ := parseKey("000102030405060708090A0B0C0D0E0F")
	tw, err := NewTwin(link, 1, k1, ptySerial, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	tw2, err := NewTwin(link, 2, nil, ptySerial, nil) // no key at all
	if err != nil {
		t.Fatal(err)
	}
	defer tw2.Close()
	var rds []*Reader
	outs := make(chan reader.Read, 8)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for _, a := range []byte{1, 2} {
		r, err := New(Options{Name: fmt.Sprint(a), Port: link, Address: a, SCBK: "F00102030405060708090A0B0C0D0E0F"})
		if err != nil {
			t.Fatal(err)
		}
		rds = append(rds, r)
		wg.Go(func() {
			if err := r.Run(ctx, outs); err != nil {
				t.Error(err)
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()
	if _, err := tw.Do(t.Context(), "card", []string{"1:1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw2.Do(t.Context(), "card", []string{"2:2"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "refused handshakes", func() bool { return rds[0].Stats().BadFrames >= 2 && rds[1].Stats().BadFrames >= 1 })
	select {
	case rd := <-outs:
		t.Fatalf("read %+v without a secure channel", rd)
	case <-time.After(300 * time.Millisecond):
	}
	if tw.Secure() {
		t.Error("a session with the wrong key")
	}
}
