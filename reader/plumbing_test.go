package reader

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

func TestQueueDeliversInOrderWithoutBlockingPush(t *testing.T) {
	var q Queue
	for i := range 10 {
		if !q.Push(Read{Value: fmt.Sprint(i)}) {
			t.Fatal("push refused below MaxQueued")
		}
	}
	out := make(chan Read)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { q.Deliver(ctx, out); close(done) }()
	for i := range 10 {
		if rd := <-out; rd.Value != fmt.Sprint(i) {
			t.Fatalf("read %d = %q", i, rd.Value)
		}
	}
	q.Push(Read{Value: "late"})
	if rd := <-out; rd.Value != "late" {
		t.Fatalf("late read %q", rd.Value)
	}
	cancel()
	<-done
}

// A driver blocks in a read of its port right after Push: the read must
// be handed to the consumer before that, not when the Go scheduler takes
// the processor back from the driver's system call. With one processor,
// nothing but Push's own yield lets Deliver run before Push returns (the
// scheduler looks at its global queue first one time in 61, so a few
// pushes may still return first).
func TestPushHandsTheReadOverBeforeItReturns(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var q Queue
	out := make(chan Read, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { q.Deliver(ctx, out); close(done) }()
	defer func() { cancel(); <-done }()
	const pushes = 200
	handed := 0
	for i := range pushes {
		q.Push(Read{Value: fmt.Sprint(i)})
		if len(out) == 1 {
			handed++
		}
		if rd := <-out; rd.Value != fmt.Sprint(i) {
			t.Fatalf("read %d = %q", i, rd.Value)
		}
		for q.Len() > 0 || len(q.ready) > 0 {
			runtime.Gosched() // Deliver back to waiting
		}
	}
	if handed < pushes*9/10 {
		t.Errorf("%d of %d reads reached the consumer before Push returned, want at least 90%%", handed, pushes)
	}
}

func TestQueueDropsOldestWhenFullAndKeepsUndelivered(t *testing.T) {
	var q Queue
	for i := range MaxQueued + 3 {
		q.Push(Read{Value: fmt.Sprint(i)})
	}
	if q.Len() != MaxQueued || q.Dropped() != 3 {
		t.Fatalf("len %d dropped %d", q.Len(), q.Dropped())
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if q.Flush(ctx, make(chan Read)) {
		t.Fatal("Flush to nobody with ctx done returned true")
	}
	if q.Len() != MaxQueued {
		t.Fatalf("a read not delivered was lost: len %d", q.Len())
	}
	out := make(chan Read, 1)
	go q.Flush(t.Context(), out)
	if rd := <-out; rd.Value != "3" {
		t.Fatalf("first read after the drops %q, want 3", rd.Value)
	}
}

func TestRepeats(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	r := Repeats{Window: 500 * time.Millisecond}
	for _, tc := range []struct {
		v    string
		at   time.Duration
		want bool
	}{
		{"A", 0, true},
		{"A", 100 * time.Millisecond, false}, // held
		{"B", 150 * time.Millisecond, true},  // another card
		{"A", 550 * time.Millisecond, false}, // the window slid with the repeat at 100 ms
		{"A", 1100 * time.Millisecond, true}, // away for 550 ms
		{"A", 1000 * time.Millisecond, true}, // the clock went back: a new presentation
		{"B", 1200 * time.Millisecond, true}, // forgotten
	} {
		if got := r.New(tc.v, t0.Add(tc.at)); got != tc.want {
			t.Errorf("%s at %v: new %v, want %v", tc.v, tc.at, got, tc.want)
		}
	}
	if len(r.last) > 2 {
		t.Errorf("remembers %d values", len(r.last))
	}
	r.Reset()
	if !r.New("A", t0.Add(1300*time.Millisecond)) {
		t.Error("after Reset a held card is new")
	}
}

func TestBackoff(t *testing.T) {
	var b Backoff
	var got []time.Duration
	for range 8 {
		got = append(got, b.Next())
	}
	want := "[100ms 200ms 400ms 800ms 1.6s 3.2s 5s 5s]"
	if fmt.Sprint(got) != want {
		t.Errorf("backoff %v, want %s", got, want)
	}
	b.Reset()
	if d := b.Next(); d != MinBackoff {
		t.Errorf("after Reset %v", d)
	}
	c := Backoff{Min: 10 * time.Millisecond, Max: 30 * time.Millisecond}
	if a, b2, c3 := c.Next(), c.Next(), c.Next(); a != 10*time.Millisecond || b2 != 20*time.Millisecond || c3 != 30*time.Millisecond {
		t.Errorf("custom backoff %v %v %v", a, b2, c3)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Wait(ctx, time.Hour); err == nil {
		t.Error("Wait ignored a done context")
	}
}

func TestReopen(t *testing.T) {
	var (
		q     Queue
		waits []time.Duration
		calls []bool
	)
	ctx, cancel := context.WithCancel(t.Context())
	out := make(chan Read, 8)
	session := func(ctx context.Context, reopen bool) (bool, error) {
		calls = append(calls, reopen)
		switch len(calls) {
		case 1, 2:
			return false, fmt.Errorf("open failed")
		case 3:
			q.Push(Read{Value: "x"})
			return true, fmt.Errorf("port gone") // after data: backoff restarts
		case 4:
			return false, fmt.Errorf("open failed")
		}
		cancel()
		return false, ctx.Err()
	}
	wait := func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	Reopen(ctx, out, &q, &Backoff{Min: time.Millisecond, Max: 3 * time.Millisecond}, wait, slog.New(slog.DiscardHandler), "port", session)
	if fmt.Sprint(calls) != "[false true true true true]" {
		t.Errorf("reopen flags %v", calls)
	}
	if fmt.Sprint(waits) != "[1ms 2ms 1ms 2ms]" {
		t.Errorf("waits %v", waits)
	}
	select {
	case rd := <-out:
		if rd.Value != "x" {
			t.Errorf("read %+v", rd)
		}
	default:
		// Reopen returned before its goroutine took it: it stays
		// queued, never lost.
		if q.Len() != 1 {
			t.Errorf("the read queued by a session is gone: %d queued", q.Len())
		}
	}
}
