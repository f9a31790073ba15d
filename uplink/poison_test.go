package uplink

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/testbroker"
)

// firstArrivals returns the distinct seqs in the order they first arrived.
func firstArrivals(s []uint64) []uint64 {
	seen := map[uint64]bool{}
	var out []uint64
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// checkDelivered fails the test unless the rows 1..n but skip arrived,
// first arrivals in ascending order.
func checkDelivered(t *testing.T, sub *testbroker.Subscriber, n int, skip uint64) {
	t.Helper()
	want := n
	if skip != 0 {
		want--
	}
	msgs := sub.WaitUntil(t, 20*time.Second, fmt.Sprintf("%d distinct rows", want), func(ms []testbroker.Message) bool {
		return len(distinct(seqs(t, ms))) >= want
	})
	got := firstArrivals(seqs(t, msgs))
	var next uint64 = 1
	for i, s := range got {
		if next == skip {
			next++
		}
		if s != next {
			t.Fatalf("first arrival %d is seq %d, want %d (got %v)", i, s, next, got)
		}
		next++
	}
}

// A row larger than MaxPayload is Rejected without being published; the
// rows around it arrive.
func TestOversizeRowRejected(t *testing.T) {
	b := testbroker.Start(t)
	sub := b.Subscribe(t, base+"+")
	ob := newMemOutbox()
	ob.addN(5)
	big := ob.add(KindEvents, fmt.Appendf(nil, `{"seq":6,"kind":"events","pad":%q}`, strings.Repeat("x", 2000)))
	ob.addN(5)
	start(t, b.URL(), ob, func(c *Config) { c.MaxPayload = 1000 })
	waitEmpty(t, ob, 10*time.Second)
	rej, _ := ob.rejections()
	want := fmt.Sprintf("payload of %d bytes exceeds max_payload 1000", 2000+len(`{"seq":6,"kind":"events","pad":""}`))
	if len(rej) != 1 || rej[big] != want {
		t.Fatalf("dead letters %v, want seq %d: %s", rej, big, want)
	}
	checkDelivered(t, sub, 11, big)
	for _, m := range sub.Messages() {
		if len(m.Payload) > 1000 {
			t.Fatalf("a row of %d bytes was published", len(m.Payload))
		}
	}
}

// mosquitto drops the connection of a client that sends a packet over its
// max_packet_size. One such row among normal ones is Rejected after
// MaxTries lone publishes, with the connection error in the reason; every
// other row arrives, in order.
func TestPoisonRowRejected(t *testing.T) {
	b := testbroker.StartWithOptions(t, testbroker.Options{ExtraConfig: "max_packet_size 4096\n"})
	sub := b.Subscribe(t, base+"+")
	ob := newMemOutbox()
	ob.addN(20)
	poison := ob.add(KindShifts, fmt.Appendf(nil, `{"seq":21,"kind":"shifts","pad":%q}`, strings.Repeat("x", 10000)))
	ob.addN(29)
	log, lines := captureLogger(t)
	start(t, b.URL(), ob, func(c *Config) {
		c.Logger = log
		c.Window = 8
	})
	waitEmpty(t, ob, 30*time.Second)
	rej, _ := ob.rejections()
	reason := rej[poison]
	if len(rej) != 1 || !strings.Contains(reason, "dropped the connection 3 times in a row") || !strings.Contains(reason, "last error: ") ||
		strings.HasSuffix(reason, "last error: <nil>") {
		t.Fatalf("dead letters %v, want seq %d with the strikes and the last connection error", rej, poison)
	}
	checkDelivered(t, sub, 50, poison)
	if n := len(lines.matching("strikes=2", fmt.Sprintf("seq=%d", poison), "connection lost right after")); n != 1 {
		t.Fatalf("%d log lines for the second strike, want 1", n)
	}
}

// A healthy row survives connection flaps: cuts that come while the
// broker has not yet acknowledged the session's status (here: the proxy
// stalls from the moment the status is built, then cuts) never strike the
// oldest row, however often they repeat; once the link works the row is
// acknowledged and everything arrives.
func TestFlapsDoNotRejectHealthyRows(t *testing.T) {
	b := testbroker.Start(t)
	p := testbroker.NewProxy(t, b.Addr())
	sub := b.Subscribe(t, base+"+")
	ob := newMemOutbox()
	ob.addN(200)
	var flaps atomic.Int32
	flaps.Store(6)
	log, lines := captureLogger(t)
	start(t, p.URL(), ob, func(c *Config) {
		c.Logger = log
		c.Window = 8
		c.MaxTries = 1 // the most sensitive setting
		c.Status = func() Status {
			if flaps.Add(-1) >= 0 {
				p.Hold()
				time.AfterFunc(100*time.Millisecond, p.Drop)
			}
			return Status{}
		}
	})
	waitEmpty(t, ob, 30*time.Second)
	if rej, tries := ob.rejections(); tries != 0 {
		t.Fatalf("%d Reject calls (%v) for healthy rows", tries, rej)
	}
	checkDelivered(t, sub, 200, 0)
	if flaps.Load() >= 0 {
		t.Fatalf("only %d flaps of 6 happened", 6-flaps.Load())
	}
	if len(lines.matching("publishing the oldest alone")) == 0 || len(lines.matching("acknowledged; window open")) == 0 {
		t.Fatal("the flaps did not make the uplink publish the oldest row alone")
	}
}
