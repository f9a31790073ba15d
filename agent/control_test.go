package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
)

// A technician's client that is connected but silent (or a
// `punchclock log ... | less` that stopped reading, with its 5-minute
// deadline) must block neither other clients nor the agent's shutdown.

// SIGTERM must not wait for a control client.
func TestShutdownNotBlockedByControlClient(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	h := startAgent(t, cfg)
	c := dialControl(t, SocketPath(cfg))
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // accepted; handleControl waits for a line
	start := time.Now()
	h.stop()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Run took %v to return after cancel while a control client was connected", d)
	}
}

// `punchclock status` must answer while another client is connected.
func TestStatusNotBlockedByOtherClient(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	startAgent(t, cfg)
	c := dialControl(t, SocketPath(cfg))
	defer c.Close()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	_, err := QueryStatus(cfg)
	if d := time.Since(start); err != nil || d > time.Second {
		t.Fatalf("QueryStatus = %v after %v while another control client was connected", err, d)
	}
}

// dialControl connects once Run has started listening.
func dialControl(t *testing.T, path string) net.Conn {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The socket has mode 0660 whatever the umask the agent starts under:
// a umask of 0 does not open it to everyone, one of 077 does not close
// it to the agent's group (the technician).
func TestControlSocketMode(t *testing.T) {
	for _, umask := range []int{0, 0o077, 0o022} {
		t.Run(fmt.Sprintf("umask %04o", umask), func(t *testing.T) {
			old := syscall.Umask(umask)
			defer syscall.Umask(old)
			dir := t.TempDir()
			path := filepath.Join(dir, "punchclock.sock")
			ln, err := listenControl(path)
			if err != nil {
				t.Fatal(err)
			}
			// The process's umask is the same: only the binding
			// thread's was changed.
			if got := syscall.Umask(umask); got != umask {
				t.Fatalf("process umask %04o after listenControl, want %04o", got, umask)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
				t.Fatalf("%s: mode %v, want a socket of mode 0660", path, fi.Mode())
			}
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatalf("dial the socket renamed into place: %v", err)
			}
			c.Close()
			if err := ln.Close(); err != nil {
				t.Fatal(err)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 0 {
				t.Fatalf("left in %s after Close: %v", dir, ents)
			}
		})
	}
}

// A client sending a 256 MiB line without a newline is answered an
// error after 64 KiB, and the agent does not grow: before, the line was
// buffered whole (276 MB resident).
func TestControlLongLineRefused(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	startAgent(t, cfg)
	c := dialControl(t, SocketPath(cfg))
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)

	chunk := bytes.Repeat([]byte("a"), 64<<10)
	sent := make(chan int64, 1)
	go func() {
		var n int64
		for range (256 << 20) / len(chunk) {
			k, err := c.Write(chunk)
			n += int64(k)
			if err != nil {
				break // the agent closed the connection
			}
		}
		sent <- n
	}()
	var resp controlErr
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		t.Fatalf("no answer to an endless line: %v", err)
	}
	n := <-sent
	runtime.ReadMemStats(&after)
	if !strings.Contains(resp.Msg, "request longer than 65536 bytes") {
		t.Fatalf("answer %q, want the request refused as too long", resp.Msg)
	}
	// TotalAlloc only grows: it counts what was allocated even if freed
	// again, so a line buffered whole cannot hide behind a GC.
	grew := after.TotalAlloc - before.TotalAlloc
	t.Logf("client sent %d bytes before the agent closed; the process allocated %d KiB meanwhile", n, grew>>10)
	if grew > 32<<20 {
		t.Fatalf("the process allocated %d MiB while refusing the line, want < 32 MiB", grew>>20)
	}
	if _, err := QueryStatus(cfg); err != nil {
		t.Fatalf("status after the long line: %v", err)
	}
}

// 16 connections are served at once; the 17th is answered an error at
// once, and the 16 are still served.
func TestControlConnectionLimit(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	startAgent(t, cfg)
	var conns []net.Conn
	for range 16 {
		c := dialControl(t, SocketPath(cfg))
		defer c.Close()
		conns = append(conns, c)
	}
	// Connections are accepted in order, so the 17th is accepted after
	// the 16 hold their slots.
	extra := dialControl(t, SocketPath(cfg))
	defer extra.Close()
	extra.SetDeadline(time.Now().Add(2 * time.Second))
	var resp controlErr
	if err := json.NewDecoder(extra).Decode(&resp); err != nil {
		t.Fatalf("17th connection: no answer: %v", err)
	}
	if !strings.Contains(resp.Msg, "busy: 16 connections already open") {
		t.Fatalf("17th connection answered %q, want busy", resp.Msg)
	}
	for i, c := range conns {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(c, "status\n"); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		var st Status
		if err := json.NewDecoder(c).Decode(&st); err != nil || !st.Running {
			t.Fatalf("connection %d: status %+v, %v", i, st, err)
		}
	}
	if _, err := QueryStatus(cfg); err != nil {
		t.Fatalf("status once the 16 are done: %v", err)
	}
}

// A client that sends nothing is answered an error when its time to
// send a request is up, and its slot serves the next client.
func TestControlSilentClientGivesSlotBack(t *testing.T) {
	dir := t.TempDir()
	h := startAgent(t, testConfig(t, dir))
	path := filepath.Join(dir, "t.sock")
	serveTestControl(t, h.a, path, controlLimits{maxLine: controlMaxLine, maxConns: 1, lineTimeout: 200 * time.Millisecond}, nil)

	silent := dialControl(t, path)
	defer silent.Close()
	silent.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	var resp controlErr
	if err := json.NewDecoder(silent).Decode(&resp); err != nil {
		t.Fatalf("silent client: %v", err)
	}
	if !strings.Contains(resp.Msg, "no request line within 200ms") {
		t.Fatalf("silent client answered %q", resp.Msg)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("silent client held its slot %v", d)
	}
	// The only slot is free again (the handler removes the connection
	// once it has closed it: allow it that moment).
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := statusAt(path)
		if err == nil && st.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after the silent client: %+v, %v", st, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// failingListener fails its first n Accepts as a process out of file
// descriptors does (EMFILE), then accepts.
type failingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.n.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// A failed accept does not stop the socket: the client waiting in the
// backlog is served once accepting works again.
func TestControlAcceptErrorRetried(t *testing.T) {
	dir := t.TempDir()
	var logs lockedBuffer
	h := startAgent(t, testConfig(t, dir), func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	path := filepath.Join(dir, "t.sock")
	serveTestControl(t, h.a, path, controlDefaults(), func(ln net.Listener) net.Listener {
		fl := &failingListener{Listener: ln}
		fl.n.Store(6)
		return fl
	})
	st, err := statusAt(path)
	if err != nil || !st.Running {
		t.Fatalf("status after 6 failed accepts: %+v, %v", st, err)
	}
	out := logs.String()
	if !strings.Contains(out, "control socket: accept failed; retrying") || !strings.Contains(out, "failed_accepts=6") {
		t.Fatalf("log does not tell of the failures and the recovery:\n%s", out)
	}
}

// serveTestControl serves a's control requests on a socket of its own
// at path, within lim, until the test ends; wrap, when set, wraps the
// listener.
func serveTestControl(t *testing.T, a *Agent, path string, lim controlLimits, wrap func(net.Listener) net.Listener) {
	t.Helper()
	ln, err := listenControl(path)
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.serveControlWith(ctx, ln, lim)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// statusAt asks for status on the socket at path.
func statusAt(path string) (Status, error) {
	var st Status
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return st, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "status\n"); err != nil {
		return st, err
	}
	var raw json.RawMessage
	if err := json.NewDecoder(c).Decode(&raw); err != nil {
		return st, err
	}
	var e controlErr
	if json.Unmarshal(raw, &e) == nil && e.Msg != "" {
		return st, errors.New(e.Msg)
	}
	err = json.Unmarshal(raw, &st)
	return st, err
}

// lockedBuffer is a log destination safe for the agent's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestControlHelperClient is not a test of its own: TestControlPeerCheck
// runs this test binary as another user with PUNCHCLOCK_CTL_SOCKET set,
// and this asks for status there and prints what happened.
func TestControlHelperClient(t *testing.T) {
	path := os.Getenv("PUNCHCLOCK_CTL_SOCKET")
	if path == "" {
		return
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		fmt.Printf("dial: %v\n", err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "status\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	fmt.Printf("answer: %s\n", strings.TrimSpace(line))
	if err != nil {
		fmt.Printf("read: %v\n", err)
	}
}

// Clients run as other users: the socket's mode keeps out a user
// outside the agent's group; a member of the group (primary, or
// supplementary as read from /proc) is served; and with the mode opened
// wide (by mistake), SO_PEERCRED still refuses the stranger, with a
// warning naming its uid and pid. The agent runs as root, so its group
// is 0. It needs root to run clients as other users.
func TestControlPeerCheck(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("runs clients as other users (syscall.Credential): run as root")
	}
	// Everything the clients need is reachable by every user: the
	// test's directory, the data directory, a copy of this test binary.
	base, err := os.MkdirTemp("", "ctlpeer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "agent.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, base)
	var logs lockedBuffer
	startAgent(t, cfg, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	sock := SocketPath(cfg)
	dialControl(t, sock).Close()
	if err := os.Chmod(cfg.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	client := func(cred *syscall.Credential) string {
		t.Helper()
		cmd := exec.Command(bin, "-test.run=^TestControlHelperClient$")
		cmd.Env = append(os.Environ(), "PUNCHCLOCK_CTL_SOCKET="+sock)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client as uid %d: %v\n%s", cred.Uid, err, out)
		}
		for l := range strings.Lines(string(out)) {
			if strings.HasPrefix(l, "dial: ") || strings.HasPrefix(l, "answer: ") {
				return strings.TrimSpace(l)
			}
		}
		t.Fatalf("client as uid %d said nothing:\n%s", cred.Uid, out)
		return ""
	}
	cases := []struct {
		name string
		cred syscall.Credential
		want string
	}{
		{"outside the group: the mode refuses", syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}, "permission denied"},
		{"supplementary member of the group", syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{nobody, 0}}, `"running":true`},
		{"primary member of the group", syscall.Credential{Uid: nobody, Gid: 0, Groups: []uint32{}}, `"running":true`},
	}
	for _, c := range cases {
		if got := client(&c.cred); !strings.Contains(got, c.want) {
			t.Fatalf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	got := client(&syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}})
	if !strings.Contains(got, "control socket: uid 65534 (pid ") || !strings.Contains(got, "refused: only root, the agent's user (uid 0) and members of its group (gid 0)") {
		t.Fatalf("stranger on a socket of mode 0666: %s, want refused by its credentials", got)
	}
	if out := logs.String(); !strings.Contains(out, "level=WARN msg=\"control socket: client refused\" uid=65534 gid=65534 pid=") {
		t.Fatalf("no warning naming the refused client:\n%s", out)
	}
}

// TestControlHelperAgent is not a test of its own: TestControlEMFILE runs
// this test binary with PUNCHCLOCK_CTL_AGENT set to a directory, and
// this runs an agent there with only a few file descriptors to spare,
// logging to stderr, until stdin closes.
func TestControlHelperAgent(t *testing.T) {
	dir := os.Getenv("PUNCHCLOCK_CTL_AGENT")
	if dir == "" {
		return
	}
	startAgent(t, testConfig(t, dir), func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	})
	dialControl(t, SocketPath(testConfig(t, dir))).Close()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = uint64(len(fds)) + 2 // ReadDir's own descriptor is closed again: 3 to spare
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
}

// A process out of file descriptors fails accept (EMFILE). The socket
// must come back once descriptors are free again: before, the accept
// loop ended at the first failure and every later `status` hung. The
// agent runs in a process of its own whose RLIMIT_NOFILE leaves it 3
// descriptors to spare; 10 clients connect and stay silent.
func TestControlEMFILE(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestControlHelperAgent$")
	cmd.Env = append(os.Environ(), "PUNCHCLOCK_CTL_AGENT="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	t.Cleanup(func() {
		if !exited {
			stdin.Close()
			cmd.Wait()
		}
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("helper said %q", line)
		}
		ready <- err
		io.Copy(io.Discard, stdout)
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("helper agent: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("helper agent not ready:\n%s", stderr.String())
	}
	sock := SocketPath(testConfig(t, dir))
	var clients []net.Conn
	for range 10 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	waitFor := func(what, s string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(stderr.String(), s) {
			if time.Now().After(deadline) {
				t.Fatalf("agent never logged %s:\n%s", what, stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("running out of descriptors", "too many open files")
	for _, c := range clients {
		c.Close()
	}
	var (
		st   Status
		err2 error
	)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, err2 = statusAt(sock); err2 == nil && st.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status once descriptors are free: %+v, %v\n%s", st, err2, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitFor("accepting again", "control socket: accepting again")
	stdin.Close()
	exited = true
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper agent: %v\n%s", err, stderr.String())
	}
}

// slowSensor is a fingerprint sensor whose enrolment lasts until the
// test releases it or its context ends (the client went away).
type slowSensor struct {
	chanReader
	started  chan struct{}
	release  chan struct{}
	canceled chan error
}

var _ reader.Enroller = (*slowSensor)(nil)

func (s *slowSensor) Enroll(ctx context.Context, taken func(int) bool) (int, error) {
	s.started <- struct{}{}
	select {
	case <-s.release:
		return 6, nil
	case <-ctx.Done():
		s.canceled <- ctx.Err()
		return 0, ctx.Err()
	}
}

func (s *slowSensor) Erase(context.Context, []int) error { return nil }

// `punchclock enroll` keeps its connection open, silent, while the
// sensor works, for longer than a client has to send its request: the
// request line is bounded in time, not the enrolment. A client that
// goes away still cancels the enrolment.
func TestControlEnrollOutlivesTheRequestTimeout(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	os.WriteFile(cfg.RosterFile, []byte(`{"version": 1, "employees": [{"id": "A", "biometric_consent": true}]}`), 0o644)
	sensor := &slowSensor{chanReader: chanReader{name: "tog", reads: make(chan reader.Read)},
		started: make(chan struct{}, 1), release: make(chan struct{}), canceled: make(chan error, 1)}
	h := startAgent(t, cfg, func(o *Options) {
		for i, r := range o.Readers {
			if r.Name() == "tog" {
				o.Readers[i] = sensor
			}
		}
	})
	const lineTimeout = 100 * time.Millisecond
	path := filepath.Join(dir, "t.sock")
	serveTestControl(t, h.a, path, controlLimits{maxLine: controlMaxLine, maxConns: 4, lineTimeout: lineTimeout}, nil)

	c := dialControl(t, path)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "enroll tog A\n")
	<-sensor.started
	// The sensor works for three request timeouts (a real one takes
	// seconds); the kernel's deadline cannot be given a fake clock.
	time.Sleep(3 * lineTimeout)
	sensor.release <- struct{}{}
	var resp struct {
		Enrolment
		controlErr
	}
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		t.Fatalf("enroll answer: %v", err)
	}
	// Offline, the enrolment is made but not published: the error says so.
	if resp.Credential.Value != "6" || resp.EmployeeID != "A" {
		t.Fatalf("enroll answered %+v, want page 6 for A", resp)
	}

	c2 := dialControl(t, path)
	io.WriteString(c2, "enroll tog A\n")
	<-sensor.started
	c2.Close()
	select {
	case err := <-sensor.canceled:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("enrolment ended by %v, want cancelled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the enrolment went on after its client went away")
	}
}
