package chaos

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// A Crowd badges random cards (one in ten unknown) at random readers of a
// terminal, with random pauses.
type Crowd struct {
	tm       *Terminal
	rng      *rand.Rand
	minPause time.Duration
	maxPause time.Duration

	mu     sync.Mutex
	badged int
}

// NewCrowd returns a crowd at tm, pausing between minPause and maxPause
// between badges, drawing from rng (one goroutine at a time).
func NewCrowd(tm *Terminal, rng *rand.Rand, minPause, maxPause time.Duration) *Crowd {
	return &Crowd{tm: tm, rng: rng, minPause: minPause, maxPause: maxPause}
}

// Badge presents one random card.
func (c *Crowd) Badge() error {
	reader := c.tm.Readers[c.rng.IntN(len(c.tm.Readers))]
	card := UnknownCard
	if c.rng.IntN(10) != 0 {
		card = Card(c.rng.IntN(Employees))
	}
	if err := c.tm.Badge(reader, card); err != nil {
		return err
	}
	c.mu.Lock()
	c.badged++
	c.mu.Unlock()
	return nil
}

// Pause sleeps a random pause, or until ctx is done (false).
func (c *Crowd) Pause(ctx context.Context) bool {
	d := c.minPause
	if c.maxPause > c.minPause {
		d += time.Duration(c.rng.Int64N(int64(c.maxPause - c.minPause)))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Burst badges n cards with pauses, stopping early when ctx is done.
func (c *Crowd) Burst(ctx context.Context, n int) error {
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if err := c.Badge(); err != nil {
			return err
		}
		if !c.Pause(ctx) {
			break
		}
	}
	return nil
}

// Run badges until ctx is done, in its own goroutine; the returned
// function cancels it, waits for it and returns its error.
func (c *Crowd) Run(ctx context.Context) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		var err error
		for err == nil && ctx.Err() == nil {
			if err = c.Badge(); err == nil {
				c.Pause(ctx)
			}
		}
		done <- err
	}()
	return func() error {
		cancel()
		return <-done
	}
}

// Badged is the number of cards presented so far.
func (c *Crowd) Badged() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.badged
}
