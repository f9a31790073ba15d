package uplink

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/testbroker"
)

func TestProgress(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

	t.Run("backlog at session start", func(t *testing.T) {
		var p progress
		p.session(t0, 5000)
		if p.due(at(9.9)) {
			t.Fatal("due before 10s")
		}
		p.acked(1000)
		if !p.due(at(10)) {
			t.Fatal("not due after 10s")
		}
		if got := fmt.Sprint(p.line(at(10), 4000)); got != "[sent 1000 rate_per_s 100 left 4000 eta 40s]" {
			t.Fatalf("line %s", got)
		}
		p.acked(3000)
		if p.due(at(15)) {
			t.Fatal("due 5s after the last line")
		}
		if got := fmt.Sprint(p.line(at(20), 1000)); got != "[sent 4000 rate_per_s 300 left 1000 eta 3s]" {
			t.Fatalf("line %s", got)
		}
		p.acked(1000)
		attrs, ok := p.drained(at(25))
		if got := fmt.Sprint(attrs); !ok || got != "[sent 5000 took 25s rate_per_s 200]" {
			t.Fatalf("drained %v %s", ok, got)
		}
		if p.busy || p.due(at(100)) {
			t.Fatal("still busy after drained")
		}
	})

	t.Run("small backlog, slow drain", func(t *testing.T) {
		var p progress
		p.session(t0, 10) // not a backlog
		p.publishing(at(1))
		p.acked(3)
		if p.due(at(10.9)) {
			t.Fatal("due before the drain took 10s")
		}
		if !p.due(at(11)) {
			t.Fatal("not due once the drain took 10s")
		}
		if got := fmt.Sprint(p.line(at(11), 0)); got != "[sent 3 rate_per_s 0.3 left 0 eta 0s]" {
			t.Fatalf("line %s", got)
		}
		if _, ok := p.drained(at(12)); !ok {
			t.Fatal("no drained line after a slow drain")
		}
	})

	t.Run("quick drain is silent", func(t *testing.T) {
		var p progress
		p.session(t0, 1000) // exactly the threshold: not more than it
		p.publishing(at(0))
		p.acked(1000)
		if p.due(at(5)) {
			t.Fatal("due")
		}
		if _, ok := p.drained(at(5)); ok {
			t.Fatal("a drained line for a quick drain")
		}
	})

	t.Run("stalled, unknown left", func(t *testing.T) {
		var p progress
		p.session(t0, 2000)
		if got := fmt.Sprint(p.line(at(10), 2000)); got != "[sent 0 rate_per_s 0 left 2000 eta unknown]" {
			t.Fatalf("line %s", got)
		}
		if got := fmt.Sprint(p.line(at(20), -1)); got != "[sent 0 rate_per_s 0 left unknown eta unknown]" {
			t.Fatalf("line %s", got)
		}
	})
}

// fakeClock advances by step on every reading.
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

// A backlog of more than 1000 rows is drained with INFO progress lines
// (rows sent, rate, rows left, time left) and one line when drained.
func TestBacklogProgressLogged(t *testing.T) {
	b := testbroker.Start(t)
	ob := newMemOutbox()
	ob.addN(3000)
	clock := &fakeClock{now: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), step: 3 * time.Second}
	log, lines := captureLogger(t)
	start(t, b.URL(), ob, func(c *Config) {
		c.Logger = log
		c.Now = clock.Now
	})
	waitEmpty(t, ob, 20*time.Second)
	eventually(t, 5*time.Second, "the drained line", func() bool {
		return len(lines.matching("level=INFO", "uplink: backlog drained", "sent=3000")) == 1
	})
	progress := lines.matching("level=INFO", "uplink: draining backlog", "sent=", "rate_per_s=", "left=", "eta=")
	if len(progress) == 0 {
		t.Fatal("no progress line")
	}
	for _, l := range progress {
		if strings.Contains(l, "left=unknown") {
			t.Fatalf("progress line without rows left: %s", l)
		}
	}
	if n := len(lines.matching("uplink: backlog drained")); n != 1 {
		t.Fatalf("%d drained lines, want 1", n)
	}
}
