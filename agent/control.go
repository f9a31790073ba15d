package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/roster"
	"github.com/punchclock/punchclock/store"
)

// Status is what `punchclock status` shows.
type Status struct {
	Device  string `json:"device_id"`
	Running bool   `json:"running"`
	Version string `json:"version,omitempty"`
	store.Status
	// Uplink is "connected", "disconnected", "offline" (no broker
	// configured) or "" when the agent is not running.
	Uplink  string         `json:"uplink,omitempty"`
	Readers []ReaderStatus `json:"readers,omitempty"`
	// NoPayrollNo lists the employees the roster gives no payroll
	// number: their punches are kept and sent, flagged no_payroll_no,
	// but a payroll system cannot map them.
	NoPayrollNo []string `json:"no_payroll_no,omitempty"`
	// Orphaned lists the open entries of people the roster no longer
	// knows: max_shift closes them.
	Orphaned []OpenEntry `json:"orphaned_entries,omitempty"`
}

// ReaderStatus is one reader's state and counters.
type ReaderStatus struct {
	Name   string `json:"name"`
	Driver string `json:"driver"`
	Role   string `json:"role"`
	// State is "suspended" (the reader is read, its punches denied
	// reader_suspended), else "online" or "offline" (a polled reader
	// that has not answered for reader.OfflineAfter, a port that is not
	// open).
	State string `json:"state"`
	reader.Stats
}

// StateSuspended is the state of a suspended reader in status.
const StateSuspended = "suspended"

// Status reports the running agent's state.
func (a *Agent) Status() (Status, error) {
	st, err := a.db.Status()
	s := Status{Device: a.cfg.DeviceID, Running: true, Version: a.opts.Version, Status: st, Uplink: "offline"}
	if a.up != nil {
		s.Uplink = "disconnected"
		if a.up.Connected() {
			s.Uplink = "connected"
		}
	}
	s.Readers = a.readerStatus()
	if open, oerr := a.db.OpenEntries(); oerr == nil {
		s.NoPayrollNo, s.Orphaned = rosterIssues(a.idx.Load(), open)
	} else if err == nil {
		err = oerr
	}
	return s, err
}

// enrollContext is cancelled when the agent stops or the client goes
// away: a technician who interrupts `punchclock enroll` must not leave
// the sensor waiting to enrol the next person's finger under this
// employee's id.
func enrollContext(ctx context.Context, c net.Conn) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer cancel()
		var b [1]byte
		c.Read(b[:]) // the client sends nothing more: this returns when it closes
	}()
	return ctx
}

// readerStatus is every reader's state and counters.
func (a *Agent) readerStatus() []ReaderStatus {
	var out []ReaderStatus
	for _, r := range a.opts.Readers {
		info := a.readers[r.Name()]
		rs := ReaderStatus{Name: r.Name(), Driver: info.cfg.Driver, Role: info.cfg.Role, State: reader.StateOnline}
		if sr, ok := r.(reader.StatsReader); ok {
			rs.Stats = sr.Stats()
		}
		if st, ok := r.(reader.Stater); ok {
			rs.State = st.State()
		}
		if info.suspended.Load() {
			rs.State = StateSuspended
		}
		out = append(out, rs)
	}
	return out
}

// The control socket's bounds. Only the technician's commands and the
// agent's own tools use the socket, so the numbers are small: a request
// is one short line, and a handful of clients at once is a lot.
const (
	// controlMaxLine bounds a request line (newline included): a client
	// that sends more is answered an error, so a line without end cannot
	// grow the agent.
	controlMaxLine = 64 << 10
	// controlMaxConns bounds the connections served at once; one more is
	// answered an error and closed at once.
	controlMaxConns = 16
	// controlLineTimeout is how long a client has, from connecting, to
	// send its request line, so that a silent client gives its slot
	// back.
	controlLineTimeout = 5 * time.Second
	// controlAnswerTimeout bounds writing a one-line answer.
	controlAnswerTimeout = 5 * time.Second
	// controlBackoffMax is the longest wait between failed accepts.
	controlBackoffMax = time.Second
)

// controlLimits are the bounds serveControlWith applies; tests shrink
// them.
type controlLimits struct {
	maxLine     int
	maxConns    int
	lineTimeout time.Duration
}

func controlDefaults() controlLimits {
	return controlLimits{maxLine: controlMaxLine, maxConns: controlMaxConns, lineTimeout: controlLineTimeout}
}

// listenControl listens on a unix socket, replacing a stale one left by
// an agent that was killed (one nobody answers on). The socket has mode
// 0660 whatever the umask (listenUnix0660).
func listenControl(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("another agent answers on %s", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return listenUnix0660(path)
}

// peer is a control client as the kernel saw it connect.
type peer struct {
	known    bool // false where the platform cannot tell
	pid      int32
	uid, gid uint32
}

// allowPeer admits root, the agent's own user, and members of the
// agent's group (as primary or supplementary group): the technician
// (sudo, or a user added to the group) and the agent's own commands.
// The error is the line the client is answered.
func allowPeer(p peer) error {
	if !p.known {
		return nil
	}
	uid, gid := agentIDs()
	if p.uid == 0 || p.uid == uid || p.gid == gid {
		return nil
	}
	groups, err := peerGroups(p.pid, p.uid)
	if err != nil {
		return fmt.Errorf("control socket: uid %d (pid %d) refused: its groups cannot be read: %w", p.uid, p.pid, err)
	}
	if slices.Contains(groups, gid) {
		return nil
	}
	return fmt.Errorf("control socket: uid %d (pid %d) refused: only root, the agent's user (uid %d) and members of its group (gid %d) may use it", p.uid, p.pid, uid, gid)
}

// refuse answers c one error line and closes it. The line is written
// into an empty socket buffer, so the short deadline only guards
// against the impossible.
func refuse(c net.Conn, err error) {
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	json.NewEncoder(c).Encode(controlError(err))
	c.Close()
}

// serveControl answers one-line requests: "status", and
// "log FROM TO" (RFC 3339 times, "-" for an open bound) which streams the
// punch log as JSON lines.
// Each connection is served on its own, so a stalled client (a `log` piped
// into a pager) holds up neither `status` nor shutdown: when ctx is done,
// the listener and every open connection are closed, and serveControl
// returns once their handlers have.
func (a *Agent) serveControl(ctx context.Context, ln net.Listener) {
	a.serveControlWith(ctx, ln, controlDefaults())
}

// serveControlWith is serveControl within lim. A failed accept (EMFILE:
// the process is out of file descriptors; ENFILE; ENOBUFS) is waited out
// with a backoff, from 5 ms doubling to a second, and accepting goes on:
// the clients waiting in the backlog are served once descriptors are
// free again. Only the listener's closing ends the loop.
func (a *Agent) serveControlWith(ctx context.Context, ln net.Listener, lim controlLimits) {
	var (
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
		wg    sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			c.Close()
		}
	})
	defer stop()
	defer wg.Wait()
	var (
		failed int
		delay  time.Duration
	)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			if failed++; failed == 1 {
				a.log.Warn("control socket: accept failed; retrying", "err", err)
			}
			delay = min(max(2*delay, 5*time.Millisecond), controlBackoffMax)
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		if failed > 0 {
			a.log.Info("control socket: accepting again", "failed_accepts", failed)
			failed, delay = 0, 0
		}
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			c.Close()
			return
		}
		if len(conns) >= lim.maxConns {
			mu.Unlock()
			a.log.Warn("control socket: connection refused: too many open", "max", lim.maxConns)
			refuse(c, fmt.Errorf("control socket: busy: %d connections already open, try again", lim.maxConns))
			continue
		}
		conns[c] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.handleControl(ctx, c, lim)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
}

// errLineTooLong is a request line over the limit.
var errLineTooLong = errors.New("request line too long")

// readRequest reads one request line of at most max bytes (newline
// included); it never buffers more than that.
func readRequest(c net.Conn, max int) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(c, int64(max)+1)).ReadString('\n')
	if len(line) > max {
		return "", errLineTooLong
	}
	return line, err
}

func (a *Agent) handleControl(ctx context.Context, c net.Conn, lim controlLimits) {
	defer c.Close()
	p, err := peerOf(c)
	if err == nil {
		err = allowPeer(p)
	}
	if err != nil {
		a.log.Warn("control socket: client refused", "uid", p.uid, "gid", p.gid, "pid", p.pid, "err", err)
		refuse(c, err)
		return
	}
	c.SetDeadline(time.Now().Add(lim.lineTimeout))
	line, err := readRequest(c, lim.maxLine)
	switch {
	case errors.Is(err, errLineTooLong):
		a.log.Warn("control socket: request refused: line too long", "max_bytes", lim.maxLine, "uid", p.uid, "pid", p.pid)
		refuse(c, fmt.Errorf("control socket: request longer than %d bytes refused", lim.maxLine))
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		refuse(c, fmt.Errorf("control socket: no request line within %v", lim.lineTimeout))
		return
	case err != nil:
		return
	}
	c.SetDeadline(time.Now().Add(controlAnswerTimeout))
	var resp any
	cmd := strings.TrimSpace(line)
	if rest, ok := strings.CutPrefix(cmd, "log "); ok {
		c.SetDeadline(time.Now().Add(5 * time.Minute))
		enc := json.NewEncoder(c)
		err := a.writeLog(rest, func(e store.LogEntry) error { return enc.Encode(e) })
		if err != nil {
			enc.Encode(controlError(err))
		}
		return
	}
	if rest, ok := strings.CutPrefix(cmd, "errors "); ok {
		c.SetDeadline(time.Now().Add(5 * time.Minute))
		enc := json.NewEncoder(c)
		since, err := parseBoundArg(rest)
		if err == nil {
			err = a.db.DeadLetters(since, func(d store.DeadLetter) error { return enc.Encode(d) })
		}
		if err != nil {
			enc.Encode(controlError(err))
		}
		return
	}
	if rest, ok := strings.CutPrefix(cmd, "replay "); ok {
		ids, all := replayArgs(rest)
		done, err := a.db.Replay(ids, all)
		if err != nil {
			resp = controlError(err)
		} else {
			a.log.Info("dead letters replayed", "records", len(done))
			if a.up != nil {
				a.up.Notify()
				a.up.PublishStatus()
			}
			resp = replayResult{Replayed: done}
		}
		json.NewEncoder(c).Encode(resp)
		return
	}
	if rest, ok := strings.CutPrefix(cmd, "enroll "); ok {
		c.SetDeadline(time.Now().Add(EnrollTimeout + 5*time.Second))
		var resp struct {
			Enrolment
			controlErr
		}
		f := strings.Fields(rest)
		if len(f) != 2 {
			resp.controlErr = controlError(fmt.Errorf("enroll wants READER EMPLOYEE, got %q", rest))
		} else if en, err := a.Enroll(enrollContext(ctx, c), f[0], f[1]); err != nil {
			resp.Enrolment, resp.controlErr = en, controlError(err)
		} else {
			resp.Enrolment = en
		}
		json.NewEncoder(c).Encode(resp)
		return
	}
	switch cmd {
	case "status":
		st, err := a.Status()
		if err != nil {
			resp = controlError(err)
		} else {
			resp = st
		}
	case "present":
		resp = a.ControlPresent()
	case "sync":
		resp = a.controlSync()
	default:
		resp = controlError(fmt.Errorf("unknown request %q", cmd))
	}
	json.NewEncoder(c).Encode(resp)
}

// QueryStatus asks the agent of cfg for its status over the control
// socket; when no agent answers, it reads the database directly.
func QueryStatus(cfg *config.Config) (Status, error) {
	var st Status
	err := ask(cfg, "status", &st)
	if !errors.Is(err, ErrNotRunning) {
		return st, err
	}
	db, err := store.Open(cfg.DataDir, store.Options{ReadOnly: true, DeviceID: cfg.DeviceID, Timeout: 2 * time.Second})
	if err != nil {
		return st, fmt.Errorf("agent: no agent answers on %s and %w", SocketPath(cfg), err)
	}
	defer db.Close()
	s, err := db.Status()
	st = Status{Device: cfg.DeviceID, Status: s}
	if err != nil {
		return st, err
	}
	// The roster's issues read from the store alike.
	r, err := db.Roster()
	if err != nil {
		return st, err
	}
	open, err := db.OpenEntries()
	if err != nil {
		return st, err
	}
	st.NoPayrollNo, st.Orphaned = rosterIssues(roster.NewIndex(r), open)
	return st, nil
}

// writeLog parses "FROM TO" and streams the matching log entries.
func (a *Agent) writeLog(args string, fn func(store.LogEntry) error) error {
	from, to, err := parseRange(args)
	if err != nil {
		return err
	}
	return a.db.Log(from, to, fn)
}

func parseRange(args string) (from, to time.Time, err error) {
	f := strings.Fields(args)
	if len(f) != 2 {
		return from, to, fmt.Errorf("log wants FROM and TO, got %q", args)
	}
	if from, err = parseBoundArg(f[0]); err != nil {
		return from, to, err
	}
	to, err = parseBoundArg(f[1])
	return from, to, err
}

// parseBoundArg reads an RFC 3339 time or "-" (open) from a request.
func parseBoundArg(s string) (time.Time, error) {
	if s = strings.TrimSpace(s); s == "-" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

func bound(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339Nano)
}

// replayArgs reads "-all" or ids separated by spaces.
func replayArgs(s string) (ids []string, all bool) {
	f := strings.Fields(s)
	if len(f) == 1 && f[0] == "-all" {
		return nil, true
	}
	return f, false
}

// controlErr is the answer to a request that failed: a key no record
// has (a dead letter has an "error"), so that a stream of records and a
// failure cannot be mistaken for each other.
type controlErr struct {
	Msg string `json:"control_error"`
}

func controlError(err error) controlErr { return controlErr{Msg: err.Error()} }

type replayResult struct {
	Replayed []string `json:"replayed"`
}

// QueryLog streams the punch log of cfg's terminal for [from, to) (zero
// bounds are open), from the running agent or, when none answers, from
// the database.
func QueryLog(cfg *config.Config, from, to time.Time, fn func(store.LogEntry) error) error {
	return stream(cfg, fmt.Sprintf("log %s %s\n", bound(from), bound(to)), func(db *store.DB) error {
		return db.Log(from, to, fn)
	}, func(raw json.RawMessage) error {
		var le store.LogEntry
		if err := json.Unmarshal(raw, &le); err != nil {
			return fmt.Errorf("agent: control socket: %w", err)
		}
		return fn(le)
	})
}

// QueryDeadLetters streams the dead letters of cfg's terminal that became
// dead letters at or after since (zero: all), from the running agent or,
// when none answers, from the database.
func QueryDeadLetters(cfg *config.Config, since time.Time, fn func(store.DeadLetter) error) error {
	return stream(cfg, fmt.Sprintf("errors %s\n", bound(since)), func(db *store.DB) error {
		return db.DeadLetters(since, fn)
	}, func(raw json.RawMessage) error {
		var d store.DeadLetter
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("agent: control socket: %w", err)
		}
		return fn(d)
	})
}

// stream sends req to the running agent and passes each JSON line of the
// answer to line; when no agent answers, it runs local on the database
// opened read-only.
func stream(cfg *config.Config, req string, local func(*store.DB) error, line func(json.RawMessage) error) error {
	c, err := net.DialTimeout("unix", SocketPath(cfg), time.Second)
	if err != nil {
		db, err := store.Open(cfg.DataDir, store.Options{ReadOnly: true, DeviceID: cfg.DeviceID, Timeout: 2 * time.Second})
		if err != nil {
			return fmt.Errorf("agent: no agent answers on %s and %w", SocketPath(cfg), err)
		}
		defer db.Close()
		return local(db)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		return fmt.Errorf("agent: control socket: %w", err)
	}
	dec := json.NewDecoder(c)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("agent: control socket: %w", err)
		}
		var e controlErr
		if json.Unmarshal(raw, &e) == nil && e.Msg != "" {
			return fmt.Errorf("agent: %s", e.Msg)
		}
		if err := line(raw); err != nil {
			return err
		}
	}
}

// Replay makes dead letters of cfg's terminal unsent again (the ids
// given, or all of them), with their original ids, times and bytes: in
// the running agent, or, when none answers, in the database directly
// (the agent sends them when it next runs).
func Replay(cfg *config.Config, ids []string, all bool) ([]string, error) {
	c, err := net.DialTimeout("unix", SocketPath(cfg), time.Second)
	if err != nil {
		db, err := store.Open(cfg.DataDir, storeOptions(cfg, nil))
		if err != nil {
			return nil, fmt.Errorf("agent: no agent answers on %s and %w", SocketPath(cfg), err)
		}
		done, err := db.Replay(ids, all)
		if cerr := db.Close(); cerr != nil && err == nil {
			err = cerr
		}
		return done, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	arg := strings.Join(ids, " ")
	if all {
		arg = "-all"
	}
	if _, err := fmt.Fprintf(c, "replay %s\n", arg); err != nil {
		return nil, fmt.Errorf("agent: control socket: %w", err)
	}
	var resp struct {
		replayResult
		controlErr
	}
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, fmt.Errorf("agent: control socket: %w", err)
	}
	if resp.Msg != "" {
		return nil, fmt.Errorf("agent: %s", resp.Msg)
	}
	return resp.Replayed, nil
}
