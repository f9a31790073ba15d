package uplink

import "time"

// firstRetrySpread is the widest the first reconnect wait after a working
// connection can be. A broker restart drops a whole fleet at once; with
// full jitter over this spread a thousand terminals come back at about
// 200 a second instead of all in the same instant.
const firstRetrySpread = 5 * time.Second

// backoff computes reconnect waits: exponential with full jitter. The
// ceiling starts at first and doubles after every failed attempt up to
// max; each wait is uniform in [0, ceiling), drawn from rand. reset starts
// again from first (after a connection that lasted).
type backoff struct {
	first, max time.Duration
	rand       func() float64 // uniform in [0, 1)
	ceil       time.Duration  // of the last wait; 0 before the first
}

func newBackoff(maxWait time.Duration, rand func() float64) *backoff {
	return &backoff{first: min(firstRetrySpread, maxWait), max: maxWait, rand: rand}
}

// next returns the wait before the next attempt.
func (b *backoff) next() time.Duration {
	if b.ceil == 0 {
		b.ceil = b.first
	} else {
		b.ceil = min(2*b.ceil, b.max)
	}
	return time.Duration(b.rand() * float64(b.ceil))
}

func (b *backoff) reset() { b.ceil = 0 }
