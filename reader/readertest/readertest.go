// Package readertest provides in-memory fakes for testing reader drivers
// and the code that consumes them: a Port whose bytes and errors a test
// scripts, an Opener that hands out Ports and can fail on demand, and a
// manual Clock. All are safe for concurrent use and under -race.
package readertest

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// ErrClosed is returned by a Port's Read and Write after Close.
var ErrClosed = errors.New("readertest: port closed")

// ErrOpen is the error an Opener returns for a scripted failure when the
// test gave none.
var ErrOpen = errors.New("readertest: scripted open failure")

var _ io.ReadCloser = (*Port)(nil)

type chunk struct {
	data []byte
	err  error
	sync bool // a marker Read takes without returning
}

// A Port is an in-memory serial port. The driver under test calls Read
// and Close; the test calls Write and ReadError, which block until the
// driver's Read has taken the bytes or the error, or until the port is
// closed. Sync waits until the driver is back in Read, so it has
// finished with everything written before.
type Port struct {
	ch        chan chunk
	closed    chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex
	pending []byte // bytes of a chunk larger than the reader's buffer
}

// NewPort returns an open Port.
func NewPort() *Port {
	return &Port{ch: make(chan chunk), closed: make(chan struct{})}
}

// Read returns scripted bytes or errors, blocking until there are some or
// the port is closed.
func (p *Port) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) > 0 {
		n := copy(b, p.pending)
		p.pending = p.pending[n:]
		return n, nil
	}
	select {
	case <-p.closed:
		return 0, ErrClosed
	default:
	}
	for {
		select {
		case c := <-p.ch:
			if c.sync {
				continue
			}
			if c.err != nil {
				return 0, c.err
			}
			n := copy(b, c.data)
			p.pending = c.data[n:]
			return n, nil
		case <-p.closed:
			return 0, ErrClosed
		}
	}
}

// Sync waits until the driver calls Read again and finds nothing
// pending: it has then processed every byte written before. Do not call
// it while the driver is blocked elsewhere, for instance sending a read
// nobody receives.
func (p *Port) Sync() error {
	select {
	case p.ch <- chunk{sync: true}:
		return nil
	case <-p.closed:
		return ErrClosed
	}
}

// Write hands b to the driver's next Read and waits until it was taken.
func (p *Port) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	select {
	case p.ch <- chunk{data: append([]byte(nil), b...)}:
		return len(b), nil
	case <-p.closed:
		return 0, ErrClosed
	}
}

// ReadError makes the driver's next Read return (0, err) and waits until
// it did. Use io.EOF for a serial read timeout, syscall.EIO for a
// pseudo-terminal whose other side went away.
func (p *Port) ReadError(err error) error {
	select {
	case p.ch <- chunk{err: err}:
		return nil
	case <-p.closed:
		return ErrClosed
	}
}

// Close closes the port, making a blocked Read return ErrClosed. It is
// safe to call more than once.
func (p *Port) Close() error {
	p.closeOnce.Do(func() { close(p.closed) })
	return nil
}

// Closed is closed once Close has been called.
func (p *Port) Closed() <-chan struct{} { return p.closed }

// An Opener hands out a new Port on each successful Open and can be told
// to fail. Pass its Open method (adapted as the driver needs) to the
// driver.
type Opener struct {
	mu       sync.Mutex
	fail     int
	failErr  error
	attempts int
	ports    []*Port
	changed  chan struct{} // closed and replaced on every Open
}

// NewOpener returns an Opener that succeeds until told otherwise.
func NewOpener() *Opener {
	return &Opener{changed: make(chan struct{})}
}

// FailNext makes the next n calls to Open fail with err (ErrOpen if nil).
func (o *Opener) FailNext(n int, err error) {
	if err == nil {
		err = ErrOpen
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.fail, o.failErr = n, err
}

// Open returns a new Port, or the scripted error.
func (o *Opener) Open() (io.ReadCloser, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.attempts++
	close(o.changed)
	o.changed = make(chan struct{})
	if o.fail > 0 {
		o.fail--
		return nil, o.failErr
	}
	p := NewPort()
	o.ports = append(o.ports, p)
	return p, nil
}

// Attempts returns how many times Open was called.
func (o *Opener) Attempts() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.attempts
}

// Port waits until Open has succeeded n times (n >= 1) and returns the
// n-th Port it handed out, or ctx.Err().
func (o *Opener) Port(ctx context.Context, n int) (*Port, error) {
	for {
		o.mu.Lock()
		if len(o.ports) >= n {
			p := o.ports[n-1]
			o.mu.Unlock()
			return p, nil
		}
		ch := o.changed
		o.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// A Clock is a manual clock for injecting as a Now function. The zero
// value starts at the zero time; use NewClock for a readable start.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
