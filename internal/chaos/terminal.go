package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/punchclock/punchclock/reader/rdm6300"
	"github.com/punchclock/punchclock/sim"
	"github.com/punchclock/punchclock/store"
)

// Device and topics of the suite's terminal.
const (
	DeviceID = "door-1"
	Filter   = "punchclock/" + DeviceID + "/#"
)

// Employees is the size of the suite's roster; Card(i) is employee i's
// card. UnknownCard is enrolled nowhere.
const (
	Employees   = 8
	UnknownCard = "0B0BADCAFE"
)

// Card returns employee i's card as the reader sends it (ten hex digits).
func Card(i int) string { return fmt.Sprintf("1C%08X", 0x100+i) }

func rosterJSON() string {
	var b strings.Builder
	b.WriteString(`{"version": 1, "employees": [`)
	for i := range Employees {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id": "E%d", "name": "Employee %d", "payroll_no": "%d", "department": "D%d", "credentials": [{"type": "card", "value": %q}]}`,
			i, i, 1000+i, i%3, Card(i))
	}
	b.WriteString("]}")
	return b.String()
}

// Reported is a decision the agent logged ("msg=punch", written after the
// decision is durable).
type Reported struct {
	ID, Reader, Decision, Employee, Direction string
}

// A Terminal is the punchclock agent binary with its configuration, data
// directory and virtual RDM6300 readers on pseudo-terminals. It is started
// and killed many times; its log accumulates across runs.
type Terminal struct {
	tb      testing.TB
	bin     string
	Dir     string
	Config  string
	Readers []string
	ports   map[string]*sim.Serial

	mu       sync.Mutex
	log      bytes.Buffer // every run's stderr
	cmd      *exec.Cmd
	runStart int // offset of the current run in log
}

// NewTerminal writes the configuration (nReaders toggle readers, broker
// brokerURL) and links the readers' pseudo-terminals. The agent is not
// started. Everything is removed by t.Cleanup.
func NewTerminal(t testing.TB, bin, brokerURL string, nReaders int) *Terminal {
	t.Helper()
	dir := t.TempDir()
	tm := &Terminal{tb: t, bin: bin, Dir: dir, Config: filepath.Join(dir, "punchclock.toml"), ports: map[string]*sim.Serial{}}
	rosterPath := filepath.Join(dir, "roster.json")
	if err := os.WriteFile(rosterPath, []byte(rosterJSON()), 0o644); err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "device_id = %q\ndata_dir = %q\ntimezone = \"Europe/Amsterdam\"\nroster_file = %q\n\n[mqtt]\nbroker = %q\ntopic_prefix = \"punchclock\"\n",
		DeviceID, filepath.Join(dir, "data"), rosterPath, brokerURL)
	for i := range nReaders {
		name := fmt.Sprintf("r%d", i)
		port := filepath.Join(dir, "dev", "tty-"+name)
		// A 1ms repeat window: every frame written is a presentation
		// (the suite never repeats a frame to mean "held").
		fmt.Fprintf(&cfg, "\n[[readers]]\nname = %q\ndriver = \"rdm6300\"\nport = %q\nbaud = 9600\ndirection = \"toggle\"\nrepeat_window = \"1ms\"\n", name, port)
		s, err := sim.NewSerial(port)
		if err != nil {
			t.Fatalf("chaos: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		tm.ports[name] = s
		tm.Readers = append(tm.Readers, name)
	}
	if err := os.WriteFile(tm.Config, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tm.Kill()
		if t.Failed() {
			t.Logf("chaos: agent log (last 16 KiB):\n%s", tail(tm.LogText(), 16<<10))
		}
	})
	return tm
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func (tm *Terminal) Write(p []byte) (int, error) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.log.Write(p)
}

// LogText is the agent's stderr across all runs.
func (tm *Terminal) LogText() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.log.String()
}

// Start runs the agent and waits for its ready line.
func (tm *Terminal) Start() {
	tm.tb.Helper()
	tm.Launch()
	tm.waitLog("the ready line", 60*time.Second, func(run string) bool { return strings.Contains(run, "msg=ready") })
}

// Launch runs the agent without waiting for it.
func (tm *Terminal) Launch() {
	tm.tb.Helper()
	tm.mu.Lock()
	if tm.cmd != nil {
		tm.mu.Unlock()
		tm.tb.Fatal("chaos: agent already running")
	}
	tm.runStart = tm.log.Len()
	fmt.Fprintf(&tm.log, "\n--- chaos: start at %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(tm.bin, "run", "-config", tm.Config, "-log-level", "debug")
	cmd.Stdout, cmd.Stderr = tm, tm
	if err := cmd.Start(); err != nil {
		tm.mu.Unlock()
		tm.tb.Fatalf("chaos: start agent: %v", err)
	}
	tm.cmd = cmd
	tm.mu.Unlock()
}

// waitLog waits until cond holds for the current run's log.
func (tm *Terminal) waitLog(what string, timeout time.Duration, cond func(run string) bool) {
	tm.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		tm.mu.Lock()
		run := tm.log.String()[tm.runStart:]
		tm.mu.Unlock()
		if cond(run) {
			return
		}
		if time.Now().After(deadline) {
			tm.tb.Fatalf("chaos: waited %v for %s; this run's log:\n%s", timeout, what, tail(run, 16<<10))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill ends the agent with SIGKILL and waits for it (and for its last log
// bytes). It is a no-op when the agent is not running.
func (tm *Terminal) Kill() { tm.end(syscall.SIGKILL) }

// Stop ends the agent with SIGTERM and fails the test unless it exits
// cleanly.
func (tm *Terminal) Stop() {
	tm.tb.Helper()
	if err := tm.end(syscall.SIGTERM); err != nil {
		tm.tb.Fatalf("chaos: agent exit after SIGTERM: %v", err)
	}
}

func (tm *Terminal) end(sig syscall.Signal) error {
	tm.mu.Lock()
	cmd := tm.cmd
	tm.cmd = nil
	tm.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	return cmd.Wait()
}

// Badge presents card at reader: one RDM6300 frame on its pty. It does
// not wait for the decision. It is safe from any goroutine.
func (tm *Terminal) Badge(reader, card string) error {
	frame, err := rdm6300.Encode(card)
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	if _, err := tm.ports[reader].Write(frame); err != nil {
		return fmt.Errorf("chaos: badge at %s: %w", reader, err)
	}
	return nil
}

// Reported returns every decision the agent logged, across runs, by id.
// A decision logged twice (it must not be: a restart does not decide a
// journaled punch again) fails the test.
func (tm *Terminal) Reported() map[string]Reported {
	tm.tb.Helper()
	out := map[string]Reported{}
	sc := bufio.NewScanner(strings.NewReader(tm.LogText()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, " msg=punch ") {
			continue
		}
		f := logfmt(line)
		r := Reported{ID: f["id"], Reader: f["reader"], Decision: f["decision"], Employee: f["employee"], Direction: f["direction"]}
		if r.ID == "" {
			tm.tb.Fatalf("chaos: punch line without id: %s", line)
		}
		if _, dup := out[r.ID]; dup {
			tm.tb.Errorf("chaos: decision %s reported twice", r.ID)
		}
		out[r.ID] = r
	}
	return out
}

// logfmt splits a slog text line into its key=value pairs (values
// without spaces, as the punch line's are).
func logfmt(line string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Fields(line) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = strings.Trim(v, `"`)
		}
	}
	return m
}

// Connects is the number of uplink connections made so far, across runs.
func (tm *Terminal) Connects() int { return strings.Count(tm.LogText(), `msg="uplink: connected"`) }

// WaitConnects waits until the agent has made n uplink connections.
func (tm *Terminal) WaitConnects(n int, timeout time.Duration) {
	tm.tb.Helper()
	tm.waitLog(fmt.Sprintf("uplink connection %d", n), timeout, func(string) bool { return tm.Connects() >= n })
}

// Reports is the number of punch lines logged so far.
func (tm *Terminal) Reports() int { return strings.Count(tm.LogText(), " msg=punch ") }

// Status is the part of `punchclock status -json` the suite reads.
type Status struct {
	Running     bool   `json:"running"`
	Pending     int    `json:"pending"`
	OpenEntries int    `json:"open_entries"`
	Uplink      string `json:"uplink"`
}

// Status runs `punchclock status -json`.
func (tm *Terminal) Status() Status {
	tm.tb.Helper()
	out, err := exec.Command(tm.bin, "status", "-config", tm.Config, "-json").Output()
	if err != nil {
		tm.tb.Fatalf("chaos: punchclock status: %v\n%s", err, out)
	}
	var st Status
	if err := json.Unmarshal(out, &st); err != nil {
		tm.tb.Fatalf("chaos: status output %s: %v", out, err)
	}
	return st
}

// WaitDrained waits until the running agent's outbox is empty.
func (tm *Terminal) WaitDrained(timeout time.Duration) Status {
	tm.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := tm.Status()
		if st.Running && st.Pending == 0 {
			return st
		}
		if time.Now().After(deadline) {
			tm.tb.Fatalf("chaos: outbox not drained within %v: %+v", timeout, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitConnected waits until the running agent's uplink is connected.
func (tm *Terminal) WaitConnected(timeout time.Duration) {
	tm.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := tm.Status()
		if st.Running && st.Uplink == "connected" {
			return
		}
		if time.Now().After(deadline) {
			tm.tb.Fatalf("chaos: uplink not connected within %v: %+v", timeout, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Log runs `punchclock log -json` and returns every entry.
func (tm *Terminal) Log() []store.LogEntry {
	tm.tb.Helper()
	out, err := exec.Command(tm.bin, "log", "-config", tm.Config, "-json").Output()
	if err != nil {
		tm.tb.Fatalf("chaos: punchclock log: %v\n%s", err, out)
	}
	var entries []store.LogEntry
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var e store.LogEntry
		if err := dec.Decode(&e); err != nil {
			tm.tb.Fatalf("chaos: punchclock log output: %v", err)
		}
		entries = append(entries, e)
	}
	return entries
}

// CheckDB opens the stopped agent's bbolt file read-only, with bbolt
// itself (not the store), and runs its consistency check.
func (tm *Terminal) CheckDB() {
	tm.tb.Helper()
	path := filepath.Join(tm.Dir, "data", store.FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		tm.tb.Fatalf("chaos: open %s: %v", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var errs []string
		for err := range tx.Check() {
			errs = append(errs, err.Error())
		}
		if len(errs) > 0 {
			return fmt.Errorf("%d errors: %s", len(errs), strings.Join(errs, "; "))
		}
		return nil
	})
	if err != nil {
		tm.tb.Fatalf("chaos: bbolt Check on %s: %v", path, err)
	}
}
