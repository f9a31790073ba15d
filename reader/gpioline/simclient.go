package gpioline

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Timeouts of a simulated chip's client: connecting and each answer to a
// request, GET or SET. The simulator answers at once; a silent one is
// gone.
const (
	simDialTimeout  = 2 * time.Second
	simReplyTimeout = 2 * time.Second
	simEdgeBuffer   = 1024 // edges queued for a slow consumer
)

// A SimClient is the agent's side of a simulated chip: every request is
// a connection to the socket at its path. It keeps no connection of its
// own, so it needs no reconnecting: a request made after the simulator
// replugged its socket simply connects again. A request whose socket went
// away fails (Edges.C closes, Read and Set return errors); the driver
// then closes the chip and opens it again with backoff, as it does a
// character device.
type SimClient struct {
	path string

	mu     sync.Mutex
	reqs   map[interface{ Close() error }]struct{}
	closed bool
}

var _ Chip = (*SimClient)(nil)

// DialSim returns a client of the simulated chip listening at path. It
// does not connect until a line is requested.
func DialSim(path string) *SimClient {
	return &SimClient{path: path, reqs: make(map[interface{ Close() error }]struct{})}
}

func (c *SimClient) open(m Msg) (net.Conn, *bufio.Reader, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, nil, fmt.Errorf("gpioline: sim %s: %w", c.path, ErrClosed)
	}
	conn, err := net.DialTimeout("unix", c.path, simDialTimeout)
	if err != nil {
		return nil, nil, fmt.Errorf("gpioline: sim: %w", err)
	}
	r := bufio.NewReaderSize(conn, MaxLine)
	reply, err := roundTrip(conn, r, m)
	if err == nil && reply.Op != OpOK {
		err = fmt.Errorf("gpioline: sim %s: %s %v: unexpected %s", c.path, m.Op, m.Lines, reply.Op)
	}
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, r, nil
}

// roundTrip sends m and reads the answer; an ERR answer is an error.
func roundTrip(conn net.Conn, r *bufio.Reader, m Msg) (Msg, error) {
	b, err := Append(nil, m)
	if err != nil {
		return Msg{}, err
	}
	conn.SetDeadline(time.Now().Add(simReplyTimeout))
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write(b); err != nil {
		return Msg{}, fmt.Errorf("gpioline: sim: %s: %w", m.Op, err)
	}
	reply, err := readMsg(r)
	if err != nil {
		return Msg{}, fmt.Errorf("gpioline: sim: %s: %w", m.Op, err)
	}
	if reply.Op == OpErr {
		return Msg{}, fmt.Errorf("gpioline: sim: %s %v refused: %s", m.Op, m.Lines, reply.Text)
	}
	return reply, nil
}

func (c *SimClient) track(r interface{ Close() error }) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		r.Close()
		return fmt.Errorf("gpioline: sim %s: %w", c.path, ErrClosed)
	}
	c.reqs[r] = struct{}{}
	return nil
}

func (c *SimClient) untrack(r interface{ Close() error }) {
	c.mu.Lock()
	delete(c.reqs, r)
	c.mu.Unlock()
}

// Watch requests lines' edges.
func (c *SimClient) Watch(lines []string) (Edges, error) {
	conn, r, err := c.open(Msg{Op: OpWatch, Lines: lines})
	if err != nil {
		return nil, err
	}
	w := &simEdges{
		conn:  conn,
		ch:    make(chan Edge, simEdgeBuffer),
		done:  make(chan struct{}),
		index: make(map[string]int, len(lines)),
		c:     c,
	}
	for i, l := range lines {
		w.index[l] = i
	}
	w.wg.Go(func() { w.pump(r) })
	if err := c.track(w); err != nil {
		return nil, err
	}
	return w, nil
}

type simEdges struct {
	conn  net.Conn
	ch    chan Edge
	done  chan struct{}
	index map[string]int
	c     *SimClient
	wg    sync.WaitGroup
	once  sync.Once

	mu  sync.Mutex
	err error
}

func (w *simEdges) pump(r *bufio.Reader) {
	defer close(w.ch)
	for {
		m, err := readMsg(r)
		if err == nil && m.Op != OpEdge {
			err = fmt.Errorf("%w: %s on a WATCH request", ErrMsg, m.Op)
		}
		var i int
		if err == nil {
			var ok bool
			if i, ok = w.index[m.Lines[0]]; !ok {
				err = fmt.Errorf("%w: edge on %s, which is not watched", ErrMsg, m.Lines[0])
			}
		}
		if err != nil {
			select {
			case <-w.done:
			default:
				w.mu.Lock()
				w.err = fmt.Errorf("gpioline: sim: watch: %w", err)
				w.mu.Unlock()
			}
			w.conn.Close()
			return
		}
		select {
		case w.ch <- Edge{Line: i, Rising: m.Rising, At: m.At}:
		case <-w.done:
			return
		}
	}
}

func (w *simEdges) C() <-chan Edge { return w.ch }

func (w *simEdges) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *simEdges) Close() error {
	w.once.Do(func() {
		close(w.done)
		w.conn.Close()
		w.wg.Wait()
		w.c.untrack(w)
	})
	return nil
}

// Inputs requests lines as inputs read on demand.
func (c *SimClient) Inputs(lines []string) (Inputs, error) {
	conn, r, err := c.open(Msg{Op: OpIn, Lines: lines})
	if err != nil {
		return nil, err
	}
	in := &simInputs{simReq: simReq{conn: conn, r: r, c: c}, n: len(lines)}
	if err := c.track(in); err != nil {
		return nil, err
	}
	return in, nil
}

// simReq is a request answered message by message.
type simReq struct {
	mu     sync.Mutex // one round trip at a time
	conn   net.Conn
	r      *bufio.Reader
	c      *SimClient
	closed atomic.Bool
}

func (q *simReq) do(m Msg) (Msg, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed.Load() {
		return Msg{}, fmt.Errorf("gpioline: sim: %w", ErrClosed)
	}
	reply, err := roundTrip(q.conn, q.r, m)
	if err != nil {
		// A connection out of step with its answers is of no
		// further use.
		q.conn.Close()
	}
	return reply, err
}

func (q *simReq) close(self interface{ Close() error }) error {
	// Not under mu: closing the connection is what ends a round trip
	// in progress.
	if !q.closed.CompareAndSwap(false, true) {
		return nil
	}
	q.c.untrack(self)
	if err := q.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("gpioline: sim: %w", err)
	}
	return nil
}

type simInputs struct {
	simReq
	n int
}

func (in *simInputs) Read() (uint64, error) {
	reply, err := in.do(Msg{Op: OpGet})
	if err != nil {
		return 0, err
	}
	if reply.Op != OpLevels || len(reply.Levels) != in.n {
		in.conn.Close()
		return 0, fmt.Errorf("%w: %s with %d levels for %d lines", ErrMsg, reply.Op, len(reply.Levels), in.n)
	}
	var v uint64
	for i, l := range reply.Levels {
		if l {
			v |= 1 << i
		}
	}
	return v, nil
}

func (in *simInputs) Close() error { return in.close(in) }

// Output requests line as an open-drain output.
func (c *SimClient) Output(line string) (Out, error) {
	conn, r, err := c.open(Msg{Op: OpOut, Lines: []string{line}})
	if err != nil {
		return nil, err
	}
	o := &simOut{simReq: simReq{conn: conn, r: r, c: c}}
	if err := c.track(o); err != nil {
		return nil, err
	}
	return o, nil
}

type simOut struct{ simReq }

func (o *simOut) Set(high bool) error {
	reply, err := o.do(Msg{Op: OpSet, High: high})
	if err == nil && reply.Op != OpOK {
		o.conn.Close()
		err = fmt.Errorf("%w: %s in answer to SET", ErrMsg, reply.Op)
	}
	return err
}

func (o *simOut) Close() error { return o.close(o) }

// Close closes every request made through c. Safe to call more than
// once.
func (c *SimClient) Close() error {
	c.mu.Lock()
	c.closed = true
	reqs := make([]interface{ Close() error }, 0, len(c.reqs))
	for r := range c.reqs {
		reqs = append(reqs, r)
	}
	c.mu.Unlock()
	var errs []error
	for _, r := range reqs {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}
