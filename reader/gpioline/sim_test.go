package gpioline

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

const within = 5 * time.Second

func newSim(t *testing.T) (*SimChip, *SimClient) {
	t.Helper()
	s, err := NewSimChip(filepath.Join(t.TempDir(), "run", "chip.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	spec, err := ParseSpec(s.Spec())
	if err != nil {
		t.Fatal(err)
	}
	chip, err := Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chip.Close() })
	return s, chip.(*SimClient)
}

func nextEdge(t *testing.T, w Edges) Edge {
	t.Helper()
	select {
	case e, ok := <-w.C():
		if !ok {
			t.Fatalf("edges closed: %v", w.Err())
		}
		return e
	case <-time.After(within):
		t.Fatal("no edge")
	}
	return Edge{}
}

func TestSimWatchDeliversEdgesInOrderWithTheirTimes(t *testing.T) {
	s, c := newSim(t)
	w, err := c.Watch([]string{"GPIO4", "GPIO17"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !s.Watched("GPIO17") || s.Watched("GPIO5") {
		t.Fatal("Watched does not say which lines are watched")
	}
	sent := []SimEdge{
		{Line: "GPIO17", At: 1000},
		{Line: "GPIO17", Rising: true, At: 81000},
		{Line: "GPIO4", At: 2_000_000},
		{Line: "GPIO4", Rising: true, At: 2_080_000},
		{Line: "GPIO5", At: 2_100_000}, // not watched: lost
	}
	if n := s.Inject(sent...); n != 4 {
		t.Fatalf("delivered %d, want 4", n)
	}
	want := []Edge{{1, false, 1000}, {1, true, 81000}, {0, false, 2_000_000}, {0, true, 2_080_000}}
	for _, we := range want {
		if got := nextEdge(t, w); got != we {
			t.Fatalf("edge %+v, want %+v", got, we)
		}
	}
}

func TestSimPlayPacesEdges(t *testing.T) {
	s, c := newSim(t)
	w, err := c.Watch([]string{"D0"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	start := s.Now() + 5*time.Millisecond
	edges := []SimEdge{{Line: "D0", At: start}, {Line: "D0", Rising: true, At: start + 20*time.Millisecond}}
	if n, err := s.Play(t.Context(), edges); err != nil || n != 2 {
		t.Fatalf("Play = %d, %v", n, err)
	}
	if s.Now() < start+20*time.Millisecond {
		t.Fatal("Play returned before its last edge was due")
	}
	nextEdge(t, w)
	if e := nextEdge(t, w); e.At != start+20*time.Millisecond {
		t.Fatalf("edge %+v: its time is not the one injected", e)
	}
}

func TestSimInputsAndOutputs(t *testing.T) {
	s, c := newSim(t)
	row, err := c.Output("ROW1")
	if err != nil {
		t.Fatal(err)
	}
	if high, ok := s.Output("ROW1"); !ok || !high {
		t.Fatalf("a new output is (%v, %v), want released", high, ok)
	}
	if err := row.Set(false); err != nil {
		t.Fatal(err)
	}
	if high, ok := s.Output("ROW1"); !ok || high {
		t.Fatalf("after Set(false) the output is (%v, %v)", high, ok)
	}
	cols, err := c.Inputs([]string{"COL1", "COL2", "COL3"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := cols.Read(); err != nil || v != 0b111 {
		t.Fatalf("idle columns read %03b, %v; want all high", v, err)
	}
	// COL2 is low while ROW1 is driven low: key 2 is pressed.
	s.SetLevels(func(line string) bool {
		high, _ := s.Output("ROW1")
		return line != "COL2" || high
	})
	if v, err := cols.Read(); err != nil || v != 0b101 {
		t.Fatalf("read %03b, %v; want 101", v, err)
	}
	row.Set(true)
	if v, _ := cols.Read(); v != 0b111 {
		t.Fatalf("with the row released read %03b", v)
	}
	row.Close()
	for deadline := time.Now().Add(within); ; time.Sleep(time.Millisecond) {
		if _, ok := s.Output("ROW1"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed output is still held")
		}
	}
	if err := row.Set(false); !errors.Is(err, ErrClosed) {
		t.Fatalf("Set after Close = %v", err)
	}
	row.Close()
}

func TestSimRefusesBusyLines(t *testing.T) {
	_, c := newSim(t)
	w, err := c.Watch([]string{"GPIO4"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := c.Inputs([]string{"GPIO5", "GPIO4"}); err == nil {
		t.Fatal("a line watched was granted again")
	}
	if _, err := c.Watch([]string{"GPIO6", "GPIO6"}); err == nil {
		t.Fatal("a line was granted twice in one request")
	}
}

func TestSimUnplugFailsRequestsAndReplugServesNewOnes(t *testing.T) {
	s, c := newSim(t)
	w, err := c.Watch([]string{"D0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unplug(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-w.C():
		if ok {
			t.Fatal("an edge after unplug")
		}
	case <-time.After(within):
		t.Fatal("edges still open after unplug")
	}
	if w.Err() == nil {
		t.Fatal("Err is nil after the chip went away")
	}
	w.Close()
	if _, err := c.Watch([]string{"D0"}); err == nil {
		t.Fatal("Watch succeeded while unplugged")
	}
	if err := s.Replug(); err != nil {
		t.Fatal(err)
	}
	w2, err := c.Watch([]string{"D0"})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	s.Inject(SimEdge{Line: "D0", At: 7})
	if e := nextEdge(t, w2); e.At != 7 {
		t.Fatalf("edge %+v", e)
	}
}

func TestSimCloseIsIdempotentAndEndsClients(t *testing.T) {
	s, c := newSim(t)
	w, err := c.Watch([]string{"D0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-w.C(); ok {
		t.Fatal("edges open after the chip was closed")
	}
	if w.Err() != nil {
		t.Fatalf("Err after Close = %v, want nil", w.Err())
	}
	c.Close()
	if _, err := c.Watch([]string{"D0"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Watch after Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Replug(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Replug after Close = %v", err)
	}
}

func TestSimWaitClaimed(t *testing.T) {
	s, c := newSim(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := s.WaitClaimed(ctx, "D0"); err == nil {
		t.Fatal("WaitClaimed returned with no client")
	}
	go func() {
		if w, err := c.Watch([]string{"D0"}); err == nil {
			t.Cleanup(func() { w.Close() })
		}
	}()
	ctx2, cancel2 := context.WithTimeout(t.Context(), within)
	defer cancel2()
	if err := s.WaitClaimed(ctx2, "D0"); err != nil {
		t.Fatal(err)
	}
}

func TestParseSpec(t *testing.T) {
	for in, want := range map[string]Spec{
		"":                    {Path: DefaultChip},
		"/dev/gpiochip4":      {Path: "/dev/gpiochip4"},
		"sim:/run/front.sock": {Sim: true, Path: "/run/front.sock"},
		"rpio":                {Mem: true},
	} {
		if got, err := ParseSpec(in); err != nil || got != want {
			t.Errorf("ParseSpec(%q) = %+v, %v", in, got, err)
		}
	}
	if got := (Spec{Mem: true}).Claim("GPIO5"); got != "/dev/gpiochip0:GPIO5" {
		t.Errorf("go-rpio claims %q: the lines are the first chip's", got)
	}
	if got := (Spec{Sim: true, Path: "/s"}).Claim("GPIO5"); got != "sim:/s:GPIO5" {
		t.Errorf("claim %q", got)
	}
	for _, in := range []string{"sim:", "RPIO", "rpio:", "/dev/ttyS0", "gpiochip0", "/dev/gpiochip", "/dev/gpiochipX"} {
		if _, err := ParseSpec(in); !errors.Is(err, ErrBadSpec) {
			t.Errorf("ParseSpec(%q) = %v", in, err)
		}
	}
}

// The character device cannot be opened here (no GPIO hardware); it
// must fail cleanly, not panic.
func TestCharDevAbsent(t *testing.T) {
	if _, err := OpenCharDev("/dev/gpiochip99"); err == nil {
		t.Skip("this machine has a /dev/gpiochip99")
	}
}
