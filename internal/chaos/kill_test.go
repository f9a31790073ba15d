package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/testbroker"
)

// Scenario 1: SIGKILL at random moments during punch bursts. Each cycle
// starts the agent, badges a burst across employees and readers, kills the
// agent at a random moment of it and checks the bbolt file; the last run
// drains. Every decision logged before a kill must be in the final log and
// at the consumer.
func TestKillDuringBursts(t *testing.T) {
	cycles := pick(15, 200)
	rng := newRand(t)
	b := testbroker.Start(t)
	sub := b.Subscribe(t, Filter)
	tm := NewTerminal(t, binary, b.URL(), 3)
	crowd := NewCrowd(tm, rng, 0, 15*time.Millisecond)
	f := Figures{Scenario: "kill-9", Cycles: cycles}
	for cycle := range cycles {
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
