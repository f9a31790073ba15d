package uplink

import (
	"math/rand/v2"
	"testing"
	"time"
)

// The first retry after a broker restart is spread over firstRetrySpread:
// of 1000 terminals (each with its own random source, as each process has)
// none waits longer, no 100 ms bucket holds more than 4% of them and no
// second more than 25% (uniform: 2% and 20%).
func TestBackoffFirstRetrySpread(t *testing.T) {
	const terminals = 1000
	var per100ms [50]int
	var perSecond [5]int
	for i := range terminals {
		src := rand.New(rand.NewPCG(uint64(i), 0x5eed))
		b := newBackoff(DefaultMaxReconnectInterval, src.Float64)
		// A working connection, then the broker restarts.
		b.next()
		b.reset()
		w := b.next()
		if w < 0 || w >= firstRetrySpread {
			t.Fatalf("terminal %d waits %v, want [0, %v)", i, w, firstRetrySpread)
		}
		per100ms[w/(100*time.Millisecond)]++
		perSecond[w/time.Second]++
	}
	for i, n := range per100ms {
		if n > terminals*4/100 {
			t.Errorf("%d of %d terminals retry in [%v, %v)", n, terminals, time.Duration(i)*100*time.Millisecond, time.Duration(i+1)*100*time.Millisecond)
		}
	}
	for i, n := range perSecond {
		if n > terminals/4 {
			t.Errorf("%d of %d terminals retry in second %d", n, terminals, i)
		}
	}
}

// The ceiling doubles from firstRetrySpread up to the maximum and starts
// again after reset; a small maximum caps the first one too.
func TestBackoffCeiling(t *testing.T) {
	top := func() float64 { return 1 - 1e-12 } // the top of every interval
	b := newBackoff(30*time.Second, top)
	var got []time.Duration
	for range 6 {
		got = append(got, b.next().Round(time.Second))
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
	b.reset()
	if w := b.next().Round(time.Second); w != 5*time.Second {
		t.Fatalf("after reset: %v, want 5s", w)
	}
	small := newBackoff(300*time.Millisecond, top)
	if w := small.next().Round(time.Millisecond); w != 300*time.Millisecond {
		t.Fatalf("with a 300ms maximum the first wait is %v", w)
	}
	if w := newBackoff(30*time.Second, func() float64 { return 0 }).next(); w != 0 {
		t.Fatalf("bottom of the interval: %v, want 0", w)
	}
}
