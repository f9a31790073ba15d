package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/rdm6300"
	"github.com/punchclock/punchclock/reader/serialport"
)

const wait = 5 * time.Second

// writeConfig writes an agent configuration whose readers' ports lie
// under dir/dev, and returns its path and the ports.
func writeConfig(t *testing.T, dir string, names ...string) (string, map[string]string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "device_id = \"test-1\"\ndata_dir = %q\n", filepath.Join(dir, "data"))
	ports := map[string]string{}
	for _, n := range names {
		ports[n] = filepath.Join(dir, "dev", "tty-"+n)
		fmt.Fprintf(&b, "\n[[readers]]\nname = %q\ndriver = \"rdm6300\"\nport = %q\n", n, ports[n])
	}
	path := filepath.Join(dir, "punchclock.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, ports
}

// lines collects what run writes, safe to read while run is writing.
type lines struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLines() *lines { return &lines{changed: make(chan struct{})} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.changed)
	l.changed = make(chan struct{})
	return l.buf.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor waits until the output matches re and returns the match.
func (l *lines) waitFor(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(wait)
	for {
		l.mu.Lock()
		m := rx.FindStringSubmatch(l.buf.String())
		ch := l.changed
		l.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("output never matched %q:\n%s", re, l.String())
		}
	}
}

func readBytes(t *testing.T, r io.Reader, n int) []byte {
	t.Helper()
	deadline := time.Now().Add(wait)
	var got []byte
	buf := make([]byte, 64)
	for len(got) < n && time.Now().Before(deadline) {
		k, err := r.Read(buf)
		got = append(got, buf[:k]...)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("read: %v", err)
		}
	}
	return got
}

func TestServePresentsCardsOnLinkedPorts(t *testing.T) {
	dir := t.TempDir()
	cfg, ports := writeConfig(t, dir, "front", "back")
	stdinR, stdinW := io.Pipe()
	stdout, stderr := newLines(), newLines()
	code := make(chan int, 1)
	go func() { code <- run([]string{"serve", "-config", cfg}, stdinR, stdout, stderr) }()

	m := stdout.waitFor(t, `punchsim: ready front=(/dev/pts/\d+) back=(/dev/pts/\d+)\n`)
	for i, name := range []string{"front", "back"} {
		if target, err := os.Readlink(ports[name]); err != nil || target != m[i+1] {
			t.Errorf("%s: link %s -> %q, %v; ready said %s", name, ports[name], target, err, m[i+1])
		}
	}
	port, err := serialport.Open(ports["front"], 9600)
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()

	fmt.Fprintln(stdinW, "# the agent is listening now")
	fmt.Fprintln(stdinW, "card front 0a00123456 x2")
	fr, _ := rdm6300.Encode("0A00123456")
	want := append(append([]byte{}, fr...), fr...)
	if got := readBytes(t, port, len(want)); !bytes.Equal(got, want) {
		t.Errorf("front read %q, want %q", got, want)
	}
	stdout.waitFor(t, "sim: card front 0A00123456 x2\n")

	// A bad line is reported and the next one still runs.
	fmt.Fprintln(stdinW, "card side 0A00123456")
	fmt.Fprintln(stdinW, "raw front 02 03")
	if got := readBytes(t, port, 2); !bytes.Equal(got, []byte{2, 3}) {
		t.Errorf("front read %q after the bad line", got)
	}
	stdinW.Close()

	select {
	case c := <-code:
		if c != 1 {
			t.Errorf("exit code %d, want 1 (a bad line)", c)
		}
	case <-time.After(wait):
		t.Fatal("run did not return after EOF")
	}
	if !strings.Contains(stderr.String(), `line 3: card: unknown reader "side"`) {
		t.Errorf("stderr = %q", stderr.String())
	}
	for name, p := range ports {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: link left behind: %v", name, err)
		}
	}
}

// The whole chain: punchsim serve, the linked pty, serialport, and the
// rdm6300 driver folding the simulated module's repeats.
func TestServeDrivesTheDriver(t *testing.T) {
	dir := t.TempDir()
	cfg, ports := writeConfig(t, dir, "front")
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	stdout, stderr := newLines(), newLines()
	ctx, cancel := context.WithCancel(t.Context())
	code := make(chan int, 1)
	go func() { code <- serve(ctx, []string{"-config", cfg}, stdinR, stdout, stderr) }()
	stdout.waitFor(t, "punchsim: ready ")

	r := rdm6300.New(rdm6300.Config{
		Name: "front",
		Open: func() (rdm6300.Port, error) { return serialport.Open(ports["front"], 9600) },
	})
	out := make(chan reader.Read)
	rctx, rcancel := context.WithCancel(t.Context())
	rdone := make(chan error, 1)
	go func() { rdone <- r.Run(rctx, out) }()
	// Cards written before the driver opened the port wait in the pty.
	// The last card, sent after all of B's frames, is a barrier: once it
	// is read, every frame before it has been.
	fmt.Fprintln(stdinW, "card front 0A00123456\nsleep 100ms\ncard front 1A2B3C4D5E x5\ncard front 0000000001 x1")
	for _, want := range []string{"0A00123456", "1A2B3C4D5E", "0000000001"} {
		select {
		case rd := <-out:
			if rd.Value != want || rd.Reader != "front" {
				t.Errorf("read %+v, want %s", rd, want)
			}
		case <-time.After(wait):
			t.Fatalf("no read of %s", want)
		}
	}
	rcancel()
	if err := <-rdone; err != nil {
		t.Errorf("driver Run = %v", err)
	}
	if s := r.Stats(); s.Frames != 9 || s.Reads != 3 || s.BadFrames != 0 {
		t.Errorf("driver stats %+v, want 9 frames folded into 3 reads", s)
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("serve exit code %d after interrupt, want 0", c)
		}
	case <-time.After(wait):
		t.Fatal("serve did not return after cancel")
	}
}

func TestServeScriptFileAndHold(t *testing.T) {
	dir := t.TempDir()
	cfg, ports := writeConfig(t, dir, "front")
	script := filepath.Join(dir, "day.sim")
	if err := os.WriteFile(script, []byte("garbage front 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr := newLines(), newLines()
	ctx, cancel := context.WithCancel(t.Context())
	code := make(chan int, 1)
	go func() {
		code <- serve(ctx, []string{"-config", cfg, "-script", script, "-hold"}, strings.NewReader(""), stdout, stderr)
	}()
	stdout.waitFor(t, "holding the links")
	if !strings.Contains(stdout.String(), "sim: garbage front 5\n") {
		t.Errorf("stdout = %q", stdout.String())
	}
	if _, err := os.Readlink(ports["front"]); err != nil {
		t.Errorf("link gone while holding: %v", err)
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit code %d, want 0; stderr %q", c, stderr.String())
		}
	case <-time.After(wait):
		t.Fatal("serve -hold did not return after cancel")
	}
	if _, err := os.Lstat(ports["front"]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("link left behind: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	cfg, ports := writeConfig(t, dir, "front")
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("device_id = \"x\"\n[[readers]]\nname = \"front\"\ndriver = \"nfc\"\nport = \"/dev/x\"\n"), 0o644)
	none := filepath.Join(dir, "none.toml")
	os.WriteFile(none, []byte("device_id = \"x\"\n"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"serve"}, 2, "-config is required"},
		{[]string{"serve", "-config"}, 2, "flag needs an argument"},
		{[]string{"serve", "-config", cfg, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"serve", "-config", filepath.Join(dir, "missing.toml")}, 2, "missing.toml"},
		{[]string{"serve", "-config", bad}, 2, `"nfc" is not one of`},
		{[]string{"serve", "-config", none}, 2, "has no readers to simulate"},
		{[]string{"serve", "-config", cfg, "-script", filepath.Join(dir, "nope.sim")}, 2, "-script:"},
		{[]string{"serve", "-config", cfg, "-repeats", "0"}, 2, "-repeats 0"},
	} {
		var stdout, stderr bytes.Buffer
		if c := run(tc.args, strings.NewReader(""), &stdout, &stderr); c != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("run %q = %d, stderr %q; want %d and %q", tc.args, c, stderr.String(), tc.code, tc.want)
		}
	}

	// A port path holding something real is refused, and left alone.
	if err := os.MkdirAll(filepath.Dir(ports["front"]), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ports["front"], []byte("real device"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if c := run([]string{"serve", "-config", cfg}, strings.NewReader(""), &stdout, &stderr); c != 2 || !strings.Contains(stderr.String(), "not a symlink") {
		t.Errorf("serve over a real file = %d, stderr %q", c, stderr.String())
	}
	if b, _ := os.ReadFile(ports["front"]); string(b) != "real device" {
		t.Errorf("port file changed to %q", b)
	}

	var help bytes.Buffer
	if c := run([]string{"help"}, nil, &help, io.Discard); c != 0 || !strings.Contains(help.String(), "punchsim serve") {
		t.Errorf("help = %d, %q", c, help.String())
	}
}
