package main

// End-to-end tests: the built punchclock binary, real pseudo-terminals
// from the simulator, a real bbolt file and a real mosquitto broker.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/agentbin"
	"github.com/punchclock/punchclock/internal/syncbuf"
	"github.com/punchclock/punchclock/internal/testbroker"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/reader/rdm6300"
	"github.com/punchclock/punchclock/sim"
)

var binary string

func TestMain(m *testing.M) {
	path, remove, err := agentbin.Build(raceEnabled)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = path
	code := m.Run()
	remove()
	os.Exit(code)
}

// The roster of the tests: three employees and their cards.
const rosterV3 = `{"version": 3, "employees": [
 {"id": "E100", "name": "Anna de Vries", "payroll_no": "1001", "department": "Brugsestraat",
  "valid_from": "2025-01-01", "valid_until": "",
  "credentials": [{"type": "card", "value": "0A00123456"}, {"type": "pin", "value": "4821"}]},
 {"id": "E101", "name": "Bram Jansen", "payroll_no": "1002", "department": "Magazijn",
  "credentials": [{"type": "card", "value": "0001193047"}]},
 {"id": "E102", "name": "Chris Peeters", "payroll_no": "1003", "department": "Kassa",
  "credentials": [{"type": "card", "value": "1F00ABCDEF"}]}]}`

var cards = map[string]struct{ payroll, dept string }{
	"0A00123456": {"1001", "Brugsestraat"},
	"0A00123457": {"1002", "Magazijn"}, // enrolled by its printed decimal 0001193047
	"1F00ABCDEF": {"1003", "Kassa"},
}

const unknownCard = "0B0BADCAFE"

// terminal is one agent process with its virtual reader.
type terminal struct {
	t      *testing.T
	dir    string
	config string
	port   *sim.Serial
	log    syncbuf.Buffer
	cmd    *exec.Cmd
}

func newTerminal(t *testing.T, broker string) *terminal {
	t.Helper()
	return newTerminalWith(t, broker, termOptions{})
}

// termOptions vary a test terminal: zero fields take the defaults.
type termOptions struct {
	dataDir string // default <dir>/data
	roster  string // default rosterV3
	extra   string // TOML appended to the configuration
}

func newTerminalWith(t *testing.T, broker string, o termOptions) *terminal {
	t.Helper()
	dir := t.TempDir()
	tm := &terminal{t: t, dir: dir, config: filepath.Join(dir, "punchclock.toml")}
	if o.dataDir == "" {
		o.dataDir = filepath.Join(dir, "data")
	}
	if o.roster == "" {
		o.roster = rosterV3
	}
	if err := os.WriteFile(filepath.Join(dir, "roster.json"), []byte(o.roster), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`device_id = "door-1"
data_dir = %q
timezone = "Europe/Amsterdam"
roster_file = %q

[mqtt]
broker = %q
topic_prefix = "punchclock"

[[readers]]
name = "front"
driver = "rdm6300"
port = %q
baud = 9600
direction = "toggle"
repeat_window = "150ms"
`, o.dataDir, filepath.Join(dir, "roster.json"), broker, filepath.Join(dir, "dev", "ttyFront")) + o.extra
	if err := os.WriteFile(tm.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port, err := sim.NewSerial(filepath.Join(dir, "dev", "ttyFront"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { port.Close() })
	tm.port = port
	return tm
}

func (tm *terminal) Write(p []byte) (int, error) { return tm.log.Write(p) }

func (tm *terminal) logText() string { return tm.log.String() }

// start runs the agent and waits until it is ready.
func (tm *terminal) start() {
	tm.t.Helper()
	off := len(tm.logText())
	cmd := exec.Command(binary, "run", "-config", tm.config, "-log-level", "debug")
	cmd.Stdout, cmd.Stderr = tm, tm
	if err := cmd.Start(); err != nil {
		tm.t.Fatal(err)
	}
	tm.cmd = cmd
	tm.t.Cleanup(tm.kill)
	tm.waitLog("ready", func(s string) bool { return strings.Contains(s[off:], "msg=ready") })
}

func (tm *terminal) kill() {
	if tm.cmd == nil {
		return
	}
	tm.cmd.Process.Signal(syscall.SIGKILL)
	tm.cmd.Wait()
	tm.cmd = nil
}

// stop ends the agent with SIGTERM and checks it exits cleanly.
func (tm *terminal) stop() {
	tm.t.Helper()
	tm.cmd.Process.Signal(syscall.SIGTERM)
	if err := tm.cmd.Wait(); err != nil {
		tm.t.Fatalf("agent exit: %v\n%s", err, tm.logText())
	}
	tm.cmd = nil
}

func (tm *terminal) waitLog(what string, cond func(string) bool) {
	tm.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond(tm.logText()) {
		if time.Now().After(deadline) {
			tm.t.Fatalf("timed out waiting for %s; agent log:\n%s", what, tm.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// badge presents a card as the module does (the frame, repeated while in
// the field) and waits until the agent has logged its decision.
func (tm *terminal) badge(card string) {
	tm.t.Helper()
	frame, err := rdm6300.Encode(card)
	if err != nil {
		tm.t.Fatal(err)
	}
	want := strings.Count(tm.logText(), "msg=punch ") + 1
	// Three frames back to back: the driver must fold them into one
	// presentation whatever the scheduling.
	if _, err := tm.port.Write(bytes.Repeat(frame, 3)); err != nil {
		tm.t.Fatal(err)
	}
	tm.waitLog("decision on "+card, func(s string) bool { return strings.Count(s, "msg=punch ") >= want })
	// Let the presentation end so that the next badge of the same card
	// is a new one.
	time.Sleep(200 * time.Millisecond)
}

// scenario: three employees in, an unknown card, three out.
func (tm *terminal) scenario() {
	order := []string{"0A00123456", "0A00123457", "1F00ABCDEF"}
	for _, c := range order {
		tm.badge(c)
	}
	tm.badge(unknownCard)
	for _, c := range order {
		tm.badge(c)
	}
}

func (tm *terminal) status() map[string]any {
	tm.t.Helper()
	out, err := exec.Command(binary, "status", "-config", tm.config, "-json").CombinedOutput()
	if err != nil {
		tm.t.Fatalf("status: %v\n%s", err, out)
	}
	var st map[string]any
	if err := json.Unmarshal(out, &st); err != nil {
		tm.t.Fatalf("status output %s: %v", out, err)
	}
	return st
}

// checkDelivery asserts 3 shifts and 7 events with the right content.
func checkDelivery(t *testing.T, sub *testbroker.Subscriber) {
	t.Helper()
	msgs := sub.WaitUntil(t, 30*time.Second, "3 shifts and 7 events", func(ms []testbroker.Message) bool {
		s, e := split(t, ms)
		return len(s) >= 3 && len(e) >= 7
	})
	shifts, events := split(t, msgs)
	if len(shifts) != 3 || len(events) != 7 {
		t.Fatalf("got %d distinct shifts and %d distinct events, want 3 and 7", len(shifts), len(events))
	}
	byPayroll := map[string]punch.Shift{}
	for _, sh := range shifts {
		byPayroll[sh.PayrollNo] = sh
		if !sh.In.Before(sh.Out) {
			t.Errorf("shift %s: in %v not before out %v", sh.ID, sh.In, sh.Out)
		}
		if _, off := sh.In.Zone(); off != 3600 && off != 7200 {
			t.Errorf("shift %s: in carries offset %d, want Amsterdam's", sh.ID, off)
		}
		if sh.DeviceID != "door-1" || sh.InReader != "front" || sh.OutReader != "front" {
			t.Errorf("shift %+v", sh)
		}
	}
	for card, want := range cards {
		sh, ok := byPayroll[want.payroll]
		if !ok || sh.Department != want.dept {
			t.Errorf("card %s: shift %+v, want payroll %s department %s", card, sh, want.payroll, want.dept)
		}
	}
	denied := 0
	for _, ev := range events {
		if ev.Decision == punch.Denied {
			denied++
			if ev.Reason != punch.ReasonUnknownCredential || ev.CredentialValue != unknownCard {
				t.Errorf("denied event %+v", ev)
			}
		}
	}
	if denied != 1 {
		t.Errorf("%d denied events, want 1", denied)
	}
}

// split decodes messages into distinct shifts and events (by id; a resend
// after a reconnect carries the same id).
func split(t *testing.T, msgs []testbroker.Message) (shifts []punch.Shift, events []punch.Event) {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range msgs {
		switch {
		case strings.HasSuffix(m.Topic, "/shifts"):
			var sh punch.Shift
			if err := json.Unmarshal(m.Payload, &sh); err != nil {
				t.Fatalf("shift payload %s: %v", m.Payload, err)
			}
			if !seen[sh.ID] {
				seen[sh.ID] = true
				shifts = append(shifts, sh)
			}
		case strings.HasSuffix(m.Topic, "/events"):
			var ev punch.Event
			if err := json.Unmarshal(m.Payload, &ev); err != nil {
				t.Fatalf("event payload %s: %v", m.Payload, err)
			}
			if !seen[ev.ID] {
				seen[ev.ID] = true
				events = append(events, ev)
			}
		}
	}
	return shifts, events
}

func TestE2EShiftsArrive(t *testing.T) {
	b := testbroker.Start(t)
	sub := b.Subscribe(t, "punchclock/door-1/#")
	tm := newTerminal(t, b.URL())
	tm.start()
	tm.scenario()
	checkDelivery(t, sub)
	// The retained status says online; pending drains to zero.
	sub.WaitUntil(t, 10*time.Second, "status online with 0 pending", func(ms []testbroker.Message) bool {
		for i := len(ms) - 1; i >= 0; i-- {
			if strings.HasSuffix(ms[i].Topic, "/status") {
				var st struct {
					State         string
					RosterVersion int64 `json:"roster_version"`
					Pending       int
				}
				json.Unmarshal(ms[i].Payload, &st)
				return st.State == "online" && st.RosterVersion == 3 && st.Pending == 0
			}
		}
		return false
	})
	st := tm.status()
	if st["running"] != true || st["pending"] != float64(0) || st["open_entries"] != float64(0) || st["roster_version"] != float64(3) {
		t.Errorf("status = %v", st)
	}
	tm.stop()
}

func TestE2EBrokerDownDuringPunches(t *testing.T) {
	b := testbroker.Start(t)
	sub := b.Subscribe(t, "punchclock/door-1/#")
	tm := newTerminal(t, b.URL())
	tm.start()
	b.Stop()
	tm.scenario()
	st := tm.status()
	if st["pending"] != float64(10) {
		t.Errorf("pending while the broker is down = %v, want 10 (7 events + 3 shifts)", st["pending"])
	}
	b.Start()
	checkDelivery(t, sub)
	tm.stop()
}

func TestE2EKilledAndRestarted(t *testing.T) {
	b := testbroker.Start(t)
	sub := b.Subscribe(t, "punchclock/door-1/#")
	proxy := testbroker.NewProxy(t, b.Addr())
	proxy.SetDown(true)
	tm := newTerminal(t, proxy.URL())
	tm.start()
	tm.scenario()
	tm.kill() // SIGKILL: no chance to flush anything
	// The stopped agent's database is readable by the technician command.
	if st := tm.status(); st["running"] != false || st["pending"] != float64(10) {
		t.Fatalf("status after kill = %v, want 10 pending", st)
	}
	proxy.SetDown(false)
	tm.start()
	checkDelivery(t, sub)
	tm.stop()
}

func TestE2EMalformedRosterKeepsOld(t *testing.T) {
	b := testbroker.Start(t)
	sub := b.Subscribe(t, "punchclock/door-1/#")
	tm := newTerminal(t, b.URL())
	tm.start()
	b.Publish(t, "punchclock/door-1/roster", []byte(`{"version": 4, "employees": [{"id": }]}`), true)
	tm.waitLog("roster rejection", func(s string) bool { return strings.Contains(s, "roster rejected") })
	st := tm.status()
	if st["roster_version"] != float64(3) || !strings.Contains(fmt.Sprint(st["roster_error"]), "mqtt roster rejected") {
		t.Fatalf("status = %v", st)
	}
	// An older roster is rejected too.
	b.Publish(t, "punchclock/door-1/roster", []byte(`{"version": 2, "employees": [], "empty": true}`), true)
	tm.waitLog("old roster rejection", func(s string) bool { return strings.Count(s, "roster rejected") >= 2 })
	// The old roster still works.
	tm.badge("0A00123456")
	tm.badge("0A00123456")
	msgs := sub.WaitUntil(t, 10*time.Second, "1 shift", func(ms []testbroker.Message) bool {
		s, _ := split(t, ms)
		return len(s) == 1
	})
	if s, _ := split(t, msgs); s[0].PayrollNo != "1001" {
		t.Fatalf("shift = %+v", s[0])
	}
	// A newer, valid roster replaces it.
	b.Publish(t, "punchclock/door-1/roster", []byte(`{"version": 5, "employees": [], "empty": true}`), true)
	tm.waitLog("roster 5", func(s string) bool { return strings.Contains(s, "version=5") })
	if st := tm.status(); st["roster_version"] != float64(5) || st["roster_size"] != float64(0) || st["roster_error"] != nil {
		t.Fatalf("status after v5 = %v", st)
	}
	tm.stop()
}

func TestConfigErrorsExit2(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct{ cfg, want string }{
		"unknown key": {"device_id = \"d\"\ndata_dir = \"/tmp/x\"\nbrokr = 1\n", `unknown key "brokr"`},
		"missing id":  {"data_dir = \"/tmp/x\"\n", `key "device_id": required`},
		"bad zone":    {"device_id = \"d\"\ntimezone = \"Mars/Base\"\n", `key "timezone"`},
		"bad reader":  {"device_id = \"d\"\n[[readers]]\nname = \"f\"\ndriver = \"x\"\nport = \"/dev/null\"\n", `key "readers[0].driver"`},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".toml")
			os.WriteFile(path, []byte(tc.cfg), 0o644)
			cmd := exec.Command(binary, "run", "-config", path)
			out, err := cmd.CombinedOutput()
			if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 {
				t.Fatalf("exit = %v, want 2; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), path) || !strings.Contains(string(out), tc.want) {
				t.Fatalf("output %q does not name the file and %q", out, tc.want)
			}
		})
	}
}
