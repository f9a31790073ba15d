package chaos

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/testbroker"
)

// sleepRand sleeps a random duration in [lo, hi).
func sleepRand(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	d := lo + time.Duration(rng.Int64N(int64(hi-lo)))
	time.Sleep(d)
	return d
}

// grepLines returns the lines of text that contain any of subs.
func grepLines(text string, subs ...string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		for _, s := range subs {
			if strings.Contains(l, s) {
				b.WriteString("  " + l + "\n")
				break
			}
		}
	}
	return b.String()
}

// Scenario 2: the network between agent and broker fails in the ways a
// shop's network does, through toxiproxy, while people keep badging:
// flaps, a long outage, latency, a thin pipe, and a broker that stops
// answering without closing the socket. Afterwards the backlog drains and
// every record arrives.
func TestNetworkFaults(t *testing.T) {
	rng := newRand(t)
	b := testbroker.Start(t)
	sub := b.Subscribe(t, Filter)
	link := NewLink(t, b.Addr())
	tm := NewTerminal(t, binary, link.URL(), 3)
	// The crowd badges in its own goroutine, with its own random source.
	crowd := NewCrowd(tm, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())), 20*time.Millisecond, 80*time.Millisecond)
	f := Figures{Scenario: "network"}
	tm.Start()
	stopCrowd := crowd.Run(context.Background())

	// Cuts of a live connection: each waits for the agent to reconnect
	// (its backoff grows while sessions last under 10 s, so every fourth
	// stays up 11 s and resets it), lets it publish 1–4 s, and cuts.
	for i := range pick(3, 20) {
		tm.WaitConnected(time.Minute)
		n := tm.Connects()
		upFor := time.Second + time.Duration(rng.Int64N(int64(3*time.Second)))
		if i%4 == 3 {
			upFor = 11 * time.Second
		}
		time.Sleep(upFor)
		link.Cut()
		f.Cycles++
		down := sleepRand(rng, 200*time.Millisecond, 4*time.Second)
		link.Restore()
		t.Logf("cut of connection %d after %v, down %v", n, upFor.Round(time.Millisecond), down.Round(time.Millisecond))
	}

	// The faults below each start on a live connection. The latency
	// and bandwidth toxics keep it open, which resets the backoff.

	// Latency, then a thin pipe (toxiproxy's rate is in KB/s).
	toxicTime := pick(4*time.Second, time.Minute)
	tm.WaitConnected(time.Minute)
	toxicFrom := len(tm.LogText())
	link.Toxic("lat_up", "latency", "upstream", map[string]any{"latency": 300, "jitter": 200})
	link.Toxic("lat_down", "latency", "downstream", map[string]any{"latency": 300, "jitter": 200})
	time.Sleep(toxicTime)
	link.Heal("lat_up", "lat_down")
	tm.WaitConnected(time.Minute)
	link.Toxic("thin", "bandwidth", "upstream", map[string]any{"rate": 2})
	time.Sleep(toxicTime)
	link.Heal("thin")
	t.Logf("latency and bandwidth toxics for %v each; the agent logged meanwhile:\n%s", toxicTime,
		grepLines(tm.LogText()[toxicFrom:], "uplink: disconnected", "uplink: publish failed"))

	// A long outage.
	tm.WaitConnected(time.Minute)
	outage := pick(10*time.Second, 2*time.Minute)
	link.Cut()
	f.Cycles++
	time.Sleep(outage)
	link.Restore()
	t.Logf("outage of %v over", outage)

	// Flaps (long form): cut and restore every 1–4 s, whatever the agent
	// is doing (connecting, in backoff, publishing). Its reconnect backoff
	// doubles up to 30 s while sessions last under 10 s, so these mostly
	// hit refused connects; the cuts above hit live connections.
	flapEnd := time.Now().Add(pick(0, 3*time.Minute))
	for time.Now().Before(flapEnd) {
		up := sleepRand(rng, time.Second, 4*time.Second)
		link.Cut()
		f.Cycles++
		down := sleepRand(rng, time.Second, 4*time.Second)
		link.Restore()
		t.Logf("flap %d: up %v, down %v", f.Cycles, up.Round(time.Millisecond), down.Round(time.Millisecond))
	}

	// The broker stops answering, the socket stays open: toxiproxy's
	// timeout toxic with timeout 0 drops everything in both directions and
	// closes nothing. The long form holds it past the agent's keepalive
	// (30 s) and ping timeout (10 s), so the agent must notice on its own;
	// the short form ends it as a stateful firewall would, with a reset.
	stall := pick(8*time.Second, 60*time.Second)
	tm.WaitConnected(time.Minute)
	link.Toxic("stall_up", "timeout", "upstream", map[string]any{"timeout": 0})
	link.Toxic("stall_down", "timeout", "downstream", map[string]any{"timeout": 0})
	stallFrom := len(tm.LogText())
	time.Sleep(stall)
	link.Heal("stall_up", "stall_down")
	if !long {
		link.Cut()
		f.Cycles++
		link.Restore()
	}
	t.Logf("stall of %v over; the agent logged meanwhile:\n%s", stall, grepLines(tm.LogText()[stallFrom:], "uplink: disconnected", "uplink: publish failed"))

	if err := stopCrowd(); err != nil {
		t.Fatal(err)
	}
	f.Badged = crowd.Badged()
	Settle(t, tm, sub, pick(2*time.Minute, 5*time.Minute), &f)
	f.Print(t)
}
