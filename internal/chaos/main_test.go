package chaos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/punchclock/punchclock/internal/agentbin"
)

var binary string

// long is set by PUNCHCLOCK_CHAOS=long (`make chaos`); the default is the
// short form that `make test` runs.
var long = os.Getenv("PUNCHCLOCK_CHAOS") == "long"

func TestMain(m *testing.M) {
	if v := os.Getenv("PUNCHCLOCK_CHAOS"); v != "" && v != "long" {
		fmt.Fprintf(os.Stderr, "chaos: PUNCHCLOCK_CHAOS=%q: only \"long\" (or unset) is known\n", v)
		os.Exit(2)
	}
	// toxiproxy's toxics log through zerolog's global logger, not the
	// one a Link passes in; this process has no other zerolog user.
	zerolog.SetGlobalLevel(zerolog.Disabled)
	path, remove, err := agentbin.Build(raceEnabled)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = path
	code := m.Run()
	remove()
	os.Exit(code)
}

// pick is short in the short form and long in the long one.
func pick[T any](short, long_ T) T {
	if long {
		return long_
	}
	return short
}

// newRand returns a random source whose seed is logged, so that a failing
// run's sequence of faults can be told apart; PUNCHCLOCK_CHAOS_SEED
// replays one.
func newRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PUNCHCLOCK_CHAOS_SEED"); s != "" {
		if _, err := fmt.Sscan(s, &seed); err != nil {
			t.Fatalf("PUNCHCLOCK_CHAOS_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (PUNCHCLOCK_CHAOS_SEED replays the same faults, timing aside)", seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}
