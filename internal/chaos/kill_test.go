package chaos

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/testbroker"
)

// Scenario 1: SIGKILL at random moments. Each cycle starts the agent,
// badges a burst across employees and readers and kills the agent at a
// random moment of it; every fifth cycle kills it while it starts instead
// (opening the store, replaying the journal). bbolt's Check runs after
// every kill. The last run drains. Every decision logged before a kill
// must be in the final log and at the consumer.
func TestKillDuringBursts(t *testing.T) {
	cycles := pick(15, 200)
	rng := newRand(t)
	b := testbroker.Start(t)
	sub := b.Subscribe(t, Filter)
	tm := NewTerminal(t, binary, b.URL(), 3)
	// The crowd badges in another goroutine, with its own random source.
	crowd := NewCrowd(tm, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())), 0, 15*time.Millisecond)
	f := Figures{Scenario: "kill-9", Cycles: cycles}
	for cycle := range cycles {
		if cycle%5 == 4 {
			// Killed while starting: opening the store, replaying
			// the journal, connecting.
			tm.Launch()
			after := sleepRand(rng, time.Millisecond, 400*time.Millisecond)
			tm.Kill()
			t.Logf("cycle %d: killed %v after exec", cycle, after.Round(time.Millisecond))
			tm.CheckDB()
			continue
		}
		tm.Start()
		burst := 5 + rng.IntN(40)
		// The burst lasts up to burst*15ms; kill somewhere in it, or
		// just after it.
		killAt := time.Duration(rng.Int64N(int64(time.Duration(burst)*8*time.Millisecond + 50*time.Millisecond)))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- crowd.Burst(ctx, burst) }()
		time.Sleep(killAt)
		before := tm.Reports()
		tm.Kill()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		t.Logf("cycle %d: burst %d, killed after %v, %d decisions logged so far", cycle, burst, killAt.Round(time.Millisecond), before)
		tm.CheckDB()
	}
	// The last run drains everything; frames still in the ptys are read.
	tm.Start()
	f.Badged = crowd.Badged()
	Settle(t, tm, sub, 2*time.Minute, &f)
	f.Print(t)
}
