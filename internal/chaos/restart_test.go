package chaos

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/testbroker"
)

// restartDuringBadging runs the agent through a link to b while a crowd
// badges, restarts b restarts times (GatedRestart) at random moments, and
// settles.
func restartDuringBadging(t *testing.T, b Broker, restarts int, scenario string) {
	rng := newRand(t)
	sub := testbroker.NewSubscriber(t, b.URL(), "chaos-consumer", Filter)
	link := NewLink(t, b.Addr())
	tm := NewTerminal(t, binary, link.URL(), 2)
	crowd := NewCrowd(tm, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())), 20*time.Millisecond, 80*time.Millisecond)
	f := Figures{Scenario: scenario, Cycles: restarts}
	tm.Start()
	stopCrowd := crowd.Run(context.Background())
	for i := range restarts {
		// Each restart finds the agent connected and publishing. Its
		// reconnect backoff grows while sessions last under 10 s: every
		// third session lasts 11 s, which resets it.
		tm.WaitConnects(i+1, time.Minute)
		var up time.Duration
		if i%3 == 2 {
			up = 11 * time.Second
			time.Sleep(up)
		} else {
			up = sleepRand(rng, time.Second, 3*time.Second)
		}
		GatedRestart(t, b, link, sub)
		t.Logf("restart %d of %s after %v connected", i+1, b.Name(), up.Round(time.Millisecond))
	}
	tm.WaitConnects(restarts+1, time.Minute)
	time.Sleep(time.Second) // badges after the last restart, too
	if err := stopCrowd(); err != nil {
		t.Fatal(err)
	}
	f.Badged = crowd.Badged()
	Settle(t, tm, sub, 2*time.Minute, &f)
	f.Print(t)
}

// Scenario 3: the broker restarts without persistence, losing the agent's
// session and the consumer's. The consumer reconnects and subscribes
// again; the agent must send again everything the lost broker had not
// acknowledged. GatedRestart keeps the consumer from missing what the
// broker did acknowledge (see docs/reliability.md for what this does not
// prove).
func TestBrokerRestartWithoutPersistence(t *testing.T) {
	restartDuringBadging(t, StartForgetful(t), pick(3, 30), "broker-restart")
}

// Scenario 4: the same agent against three brokers, a burst with one
// restart each.
func TestBrokers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(testing.TB) Broker
	}{
		{"mosquitto", func(t testing.TB) Broker { return Mosquitto{testbroker.Start(t)} }},
		{"nats", func(t testing.TB) Broker { return StartNATS(t) }},
		{"mochi", func(t testing.TB) Broker { return StartMochi(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restartDuringBadging(t, tc.start(t), pick(1, 5), "broker-"+tc.name)
		})
	}
}
