package reader

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"time"
)

// The plumbing every driver needs, in one place: a queue that lets a
// driver decode without waiting for the agent, the repeat window that
// makes a card held in the field one presentation, and the backoff with
// which a lost port is reopened.

// MaxQueued bounds a Queue: past it the oldest read is dropped (the agent
// has stalled for minutes; the newest presentations matter most).
const MaxQueued = 1024

// A Queue holds the reads a driver decoded until Deliver hands them to
// the agent, so that decoding never waits for the consumer: a reader
// whose bytes pile up in a tty while the agent is busy would otherwise
// decode a held card's repeats late, as a new presentation. Push may be
// called from any goroutine. The zero Queue is ready to use.
type Queue struct {
	mu      sync.Mutex
	reads   []Read
	dropped uint64
	ready   chan struct{}
	once    sync.Once
}

func (q *Queue) init() { q.once.Do(func() { q.ready = make(chan struct{}, 1) }) }

// Push queues rd. It never blocks. It reports false when the queue was
// full and the oldest read was dropped to make room.
//
// Having woken Deliver, Push yields the processor. A driver goes back to
// a blocking read of its port right after Push, and a read is a system
// call: the Go scheduler queues the goroutine it woke on the processor of
// the goroutine that woke it, and if no idle thread takes that goroutine
// at once, it waits until the runtime's monitor takes the processor back
// from the system call, 20 µs to 10 ms later. make bench measured a third
// of rdm6300 presentations waiting there (p99 0.14 ms, up to 2.7 ms)
// before this yield; now the read is on its way before the driver reads
// again (docs/performance.md).
func (q *Queue) Push(rd Read) bool {
	q.init()
	q.mu.Lock()
	ok := true
	if len(q.reads) >= MaxQueued {
		q.reads = q.reads[1:]
		q.dropped++
		ok = false
	}
	q.reads = append(q.reads, rd)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
		runtime.Gosched()
	default:
	}
	return ok
}

// Dropped is how many reads a full queue has dropped.
func (q *Queue) Dropped() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// Len is the number of reads waiting.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.reads)
}

// Deliver sends the queued reads to out, oldest first, as they come,
// until ctx is done.
func (q *Queue) Deliver(ctx context.Context, out chan<- Read) {
	q.init()
	for {
		if !q.Flush(ctx, out) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-q.ready:
		}
	}
}

// Flush sends the reads queued now to out, oldest first. It returns
// false if ctx ended first.
func (q *Queue) Flush(ctx context.Context, out chan<- Read) bool {
	for {
		q.mu.Lock()
		if len(q.reads) == 0 {
			q.mu.Unlock()
			return true
		}
		rd := q.reads[0]
		q.reads = q.reads[1:]
		q.mu.Unlock()
		select {
		case out <- rd:
		case <-ctx.Done():
			q.mu.Lock()
			q.reads = append([]Read{rd}, q.reads...) // not delivered: keep it first
			q.mu.Unlock()
			return false
		}
	}
}

// Repeats folds the repeated sightings of one value (a card held in the
// field, a wedge retyping) into one presentation: a sighting less than
// Window after the previous sighting of the same value is a repeat, and
// the window slides with each repeat. It remembers only values seen
// within the window. Not safe for concurrent use.
type Repeats struct {
	Window time.Duration
	last   map[string]time.Time
}

// New reports whether a sighting of v at now is a new presentation, and
// records it.
func (r *Repeats) New(v string, now time.Time) bool {
	if r.last == nil {
		r.last = make(map[string]time.Time)
	}
	last, seen := r.last[v]
	isNew := !seen || now.Sub(last) >= r.Window || now.Before(last)
	for k, t := range r.last {
		if now.Sub(t) >= r.Window {
			delete(r.last, k)
		}
	}
	r.last[v] = now
	return isNew
}

// Reset forgets every value (the port was reopened).
func (r *Repeats) Reset() { clear(r.last) }

// Default reopen backoff of drivers.
const (
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 5 * time.Second
)

// A Backoff paces reopening a lost port: the first retry waits Min, each
// further failure doubles the wait up to Max; Reset (a port that
// delivered data) starts again at Min. Zero Min and Max take MinBackoff
// and MaxBackoff.
type Backoff struct {
	Min, Max time.Duration
	next     time.Duration
}

// Next returns the wait before the next retry and doubles the one after.
func (b *Backoff) Next() time.Duration {
	if b.Min <= 0 {
		b.Min = MinBackoff
	}
	if b.Max < b.Min {
		b.Max = max(MaxBackoff, b.Min)
	}
	if b.next < b.Min {
		b.next = b.Min
	}
	d := b.next
	b.next = min(2*b.next, b.Max)
	return d
}

// Reset starts again at Min.
func (b *Backoff) Reset() { b.next = 0 }

// Wait waits d or until ctx is done, returning ctx.Err() in that case.
func Wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A Session opens a reader's port (or chip, or device) and serves it
// until it fails or ctx is done, pushing what it decodes on a Queue.
// reopen says whether it follows a failure; progress whether the port
// delivered anything (then the backoff starts again).
type Session func(ctx context.Context, reopen bool) (progress bool, err error)

// Reopen is the loop of a driver whose port can go away: it hands q to
// out on a goroutine of its own, runs session, and after each failure
// logs it (as "<what> failed") and waits b's next backoff with wait (nil:
// Wait). It returns when ctx is done, once its goroutine has stopped.
func Reopen(ctx context.Context, out chan<- Read, q *Queue, b *Backoff, wait func(context.Context, time.Duration) error, log *slog.Logger, what string, session Session) {
	if wait == nil {
		wait = Wait
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { q.Deliver(ctx, out) })
	defer wg.Wait()
	defer cancel()
	failed := false
	for ctx.Err() == nil {
		progress, err := session(ctx, failed)
		if ctx.Err() != nil {
			return
		}
		if progress {
			b.Reset()
		}
		failed = true
		d := b.Next()
		log.Warn(what+" failed", "err", err, "retry_in", d)
		if wait(ctx, d) != nil {
			return
		}
	}
}
