package gpioline

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/punchclock/punchclock/reader"
)

// Timeouts of the simulated chip's connections: a request must arrive
// this soon after connecting, and a client must take each message this
// soon, or its connection is closed.
const (
	simHelloTimeout = 5 * time.Second
	simWriteTimeout = 2 * time.Second
)

// A SimEdge is an edge a simulator injects on a line of a SimChip.
type SimEdge struct {
	Line   string
	Rising bool
	At     time.Duration // since the chip's epoch (SimChip.Now)
}

// A SimChip is the simulator's side of a simulated GPIO chip: it owns a
// unix socket at a path, grants the line requests of the clients that
// connect (DialSim), sends them the edges the simulator injects, answers
// their reads of input lines, and records the levels they drive on
// output lines. Unplug and Replug take the socket away and bring it back
// at the same path, as a pulled cable does.
//
// Input lines are high (pulled up) until an injected edge changes them;
// SetLevels replaces that with a function, for a twin whose input levels
// depend on the outputs (a keypad matrix).
type SimChip struct {
	path  string
	epoch time.Time

	mu       sync.Mutex
	ln       net.Listener // nil while unplugged or closed
	conns    map[*simConn]struct{}
	claims   map[string]*simConn // line -> the connection holding it
	levels   map[string]bool     // input levels set by Inject
	outputs  map[string]bool     // output levels driven by clients
	levelsFn func(line string) bool
	changed  chan struct{} // closed and replaced when claims change
	closed   bool
	wg       sync.WaitGroup
}

type simConn struct {
	c     net.Conn
	op    Op
	lines []string
	wmu   sync.Mutex // serialises writes
}

// NewSimChip listens at path, creating its parent directories. A stale
// socket file at path is replaced; any other file there is an error.
func NewSimChip(path string) (*SimChip, error) {
	s := &SimChip{
		path:    path,
		epoch:   time.Now(),
		conns:   make(map[*simConn]struct{}),
		claims:  make(map[string]*simConn),
		levels:  make(map[string]bool),
		outputs: make(map[string]bool),
		changed: make(chan struct{}),
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	return s, nil
}

// Path returns the socket's path.
func (s *SimChip) Path() string { return s.path }

// Spec returns the `chip` value that opens this chip.
func (s *SimChip) Spec() string { return SimPrefix + s.path }

// Now returns the chip's clock: the time since its epoch.
func (s *SimChip) Now() time.Duration { return time.Since(s.epoch) }

func (s *SimChip) listen() error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("gpioline: sim chip: %w", err)
	}
	if fi, err := os.Lstat(s.path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return fmt.Errorf("gpioline: sim chip: %s exists and is not a socket", s.path)
		}
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("gpioline: sim chip: %w", err)
		}
	}
	ln, err := net.Listen("unix", s.path)
	if err != nil {
		return fmt.Errorf("gpioline: sim chip: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Go(func() { s.accept(ln) })
	return nil
}

func (s *SimChip) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		sc := &simConn{c: c}
		s.mu.Lock()
		if s.closed || s.ln != ln {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[sc] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() { s.serve(sc) })
	}
}

// serve handles one connection until it closes.
func (s *SimChip) serve(sc *simConn) {
	defer s.drop(sc)
	r := bufio.NewReaderSize(sc.c, MaxLine)
	sc.c.SetReadDeadline(time.Now().Add(simHelloTimeout))
	m, err := readMsg(r)
	if err != nil {
		return
	}
	sc.c.SetReadDeadline(time.Time{})
	switch m.Op {
	case OpWatch, OpIn, OpOut:
	default:
		s.send(sc, Msg{Op: OpErr, Text: "want WATCH, IN or OUT first"})
		return
	}
	if err := s.claim(sc, m.Op, m.Lines); err != nil {
		s.send(sc, Msg{Op: OpErr, Text: err.Error()})
		return
	}
	if s.send(sc, Msg{Op: OpOK}) != nil {
		return
	}
	for {
		m, err := readMsg(r)
		if err != nil {
			return
		}
		var reply Msg
		switch {
		case sc.op == OpIn && m.Op == OpGet:
			reply = Msg{Op: OpLevels, Levels: s.read(sc.lines)}
		case sc.op == OpOut && m.Op == OpSet:
			s.mu.Lock()
			s.outputs[sc.lines[0]] = m.High
			s.mu.Unlock()
			reply = Msg{Op: OpOK}
		default:
			s.send(sc, Msg{Op: OpErr, Text: fmt.Sprintf("%s is not allowed on a %s request", m.Op, sc.op)})
			return
		}
		if s.send(sc, reply) != nil {
			return
		}
	}
}

func readMsg(r *bufio.Reader) (Msg, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return Msg{}, err
	}
	return Parse(line)
}

func (s *SimChip) claim(sc *simConn, op Op, lines []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[string]bool)
	for _, l := range lines {
		if _, busy := s.claims[l]; busy || seen[l] {
			return fmt.Errorf("line %s is busy", l)
		}
		seen[l] = true
	}
	sc.op, sc.lines = op, lines
	for _, l := range lines {
		s.claims[l] = sc
	}
	if op == OpOut {
		s.outputs[lines[0]] = true
	}
	s.signal()
	return nil
}

// drop forgets a closed connection and releases its lines.
func (s *SimChip) drop(sc *simConn) {
	sc.c.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, sc)
	for _, l := range sc.lines {
		if s.claims[l] == sc {
			delete(s.claims, l)
			if sc.op == OpOut {
				delete(s.outputs, l)
			}
		}
	}
	s.signal()
}

func (s *SimChip) signal() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *SimChip) send(sc *simConn, m Msg) error {
	b, err := Append(nil, m)
	if err != nil {
		return err
	}
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	sc.c.SetWriteDeadline(time.Now().Add(simWriteTimeout))
	if _, err := sc.c.Write(b); err != nil {
		sc.c.Close()
		return err
	}
	return nil
}

// read returns the levels of input lines.
func (s *SimChip) read(lines []string) []bool {
	s.mu.Lock()
	fn := s.levelsFn
	out := make([]bool, len(lines))
	for i, l := range lines {
		v, set := s.levels[l]
		out[i] = v || !set
	}
	s.mu.Unlock()
	if fn != nil {
		for i, l := range lines {
			out[i] = fn(l)
		}
	}
	return out
}

// SetLevels makes fn answer the clients' reads of input lines (nil: the
// levels Inject left, high by default). fn is called without the chip's
// lock held, so it may call Output.
func (s *SimChip) SetLevels(fn func(line string) bool) {
	s.mu.Lock()
	s.levelsFn = fn
	s.mu.Unlock()
}

// Output returns the level a client drives on line: high when released,
// and ok false when no client holds the line as an output.
func (s *SimChip) Output(line string) (high, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	high, ok = s.outputs[line]
	return high, ok
}

// Watched reports whether a client watches line's edges.
func (s *SimChip) Watched(line string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.claims[line]
	return sc != nil && sc.op == OpWatch
}

// WaitClaimed waits until a client holds every one of lines (watching,
// reading or driving it), or ctx is done.
func (s *SimChip) WaitClaimed(ctx context.Context, lines ...string) error {
	for {
		s.mu.Lock()
		all := true
		for _, l := range lines {
			all = all && s.claims[l] != nil
		}
		ch := s.changed
		s.mu.Unlock()
		if all {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("gpioline: sim chip %s: waiting for a client to request %v: %w", s.path, lines, ctx.Err())
		}
	}
}

// Inject sends edges, in order, to the clients watching their lines,
// and sets the lines' input levels. An edge on a line nobody watches is
// lost, as it is on hardware; Inject reports how many were delivered.
func (s *SimChip) Inject(edges ...SimEdge) (delivered int) {
	for _, e := range edges {
		s.mu.Lock()
		s.levels[e.Line] = e.Rising
		sc := s.claims[e.Line]
		s.mu.Unlock()
		if sc == nil || sc.op != OpWatch {
			continue
		}
		if s.send(sc, Msg{Op: OpEdge, Lines: []string{e.Line}, Rising: e.Rising, At: e.At}) == nil {
			delivered++
		}
	}
	return delivered
}

// Play injects edges in real time: each when the chip's clock reaches
// its At (edges already due go at once, together). It returns how many
// were delivered, early if ctx is done.
func (s *SimChip) Play(ctx context.Context, edges []SimEdge) (delivered int, err error) {
	for i := 0; i < len(edges); {
		if d := edges[i].At - s.Now(); d > 0 {
			if err := reader.Wait(ctx, d); err != nil {
				return delivered, err
			}
		}
		now := s.Now()
		j := i + 1
		for j < len(edges) && edges[j].At <= now {
			j++
		}
		delivered += s.Inject(edges[i:j]...)
		i = j
	}
	return delivered, nil
}

// Unplug closes the socket and every connection, and removes the socket
// file, as a pulled cable takes the chip away. Idempotent.
func (s *SimChip) Unplug() error {
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	conns := make([]*simConn, 0, len(s.conns))
	for sc := range s.conns {
		conns = append(conns, sc)
	}
	// The lines are free from now on, not once each connection's
	// goroutine has noticed.
	clear(s.claims)
	clear(s.outputs)
	s.signal()
	s.mu.Unlock()
	var err error
	if ln != nil {
		err = ln.Close()
	}
	for _, sc := range conns {
		sc.c.Close()
	}
	return err
}

// Replug listens at the same path again. It is a no-op while plugged.
func (s *SimChip) Replug() error {
	s.mu.Lock()
	plugged, closed := s.ln != nil, s.closed
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("gpioline: sim chip %s: %w", s.path, ErrClosed)
	}
	if plugged {
		return nil
	}
	return s.listen()
}

// Close unplugs the chip for good and waits for its goroutines. Safe to
// call more than once.
func (s *SimChip) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.Unplug()
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
