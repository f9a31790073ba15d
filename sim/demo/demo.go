// Package demo runs a whole simulated terminal on this machine: a broker,
// the real punchclock agent binary, virtual readers on pseudo-terminals,
// a scripted day of badges, and a connector that prints each shift as it
// arrives and confirms it on the acks topic. The connector's payroll
// system refuses one shift: the demo shows it in `punchclock errors`,
// replays it, and the connector then takes it. `make demo` runs it.
package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/sim"
	"github.com/punchclock/punchclock/sim/samples"
)

// Options configure Run.
type Options struct {
	Agent string    // path to the punchclock binary
	Out   io.Writer // where the demo narrates
	// Pace is the pause between badges; 0 means 800ms. Keep it above the
	// readers' repeat window (500ms), or a card shown twice in a row at one
	// reader is one presentation.
	Pace time.Duration
	// Dir keeps the demo's files; empty means a temporary directory that
	// is removed at the end.
	Dir string
	// Broker is "mosquitto", "embedded" (mochi-mqtt in this process), or
	// empty: mosquitto when it is installed, embedded otherwise.
	Broker string
}

const roster = `{"version": 1, "employees": [
 {"id": "E100", "name": "Anna de Vries", "payroll_no": "1001", "department": "Brugsestraat",
  "valid_from": "2025-01-01", "credentials": [{"type": "card", "value": "0A00123456"}]},
 {"id": "E101", "name": "Bram Jansen", "payroll_no": "1002", "department": "Magazijn",
  "credentials": [{"type": "card", "value": "0001193047"}]},
 {"id": "E102", "name": "Chris Peeters", "payroll_no": "1003", "department": "Kassa",
  "credentials": [{"type": "card", "value": "1F00ABCDEF"}]},
 {"id": "E103", "name": "Dana Smit", "payroll_no": "1004", "department": "Kassa",
  "valid_until": "2024-12-31", "credentials": [{"type": "card", "value": "2200C0FFEE"}]},
 {"id": "E104", "name": "Eva Mertens", "payroll_no": "1005", "department": "Kassa",
  "credentials": [{"type": "pin", "value": "2580"}]},
 {"id": "E105", "name": "Gus Willems", "payroll_no": "1006", "department": "Magazijn",
  "credentials": [{"type": "card", "value": "123:45678"}]},
 {"id": "E106", "name": "Finn Claes", "payroll_no": "1007", "department": "Magazijn", "biometric_consent": true,
  "credentials": [{"type": "fingerprint", "value": "17"}]}]}`

// step is one line of the demo's day: a scenario line for the readers'
// twins (see sim.Script) and what it shows.
type step struct {
	line, what string
}

var day = []step{
	{"store finger 17", "(the sensor holds Finn's template at page 17: he enrolled last week)"},
	{"card front 0A00123456", "Anna arrives"},
	{"finger finger 17", "Finn arrives: he puts his finger on the sensor"},
	{"keys pad 2580#", "Eva arrives: she types her PIN on the keypad"},
	{"wiegand gate 26 123 45678", "Gus arrives at the gate's Wiegand reader (facility 123, card 45678)"},
	{"keys pad 1111#", "someone types a wrong PIN"},
	{"card front 0A00123457", "Bram arrives (enrolled by the number printed on his card)"},
	{"card front 0B0BADCAFE", "a visitor tries an unknown card"},
	{"raw front 17A06E6F697365FF025A", "electrical noise on the reader's line"},
	{"card front 1F00ABCDEF", "Chris arrives"},
	{"card front 2200C0FFEE", "Dana, whose contract ended, tries"},
	{"card front 0A00123456", "Anna leaves"},
	{"card back 0A00123457", "Bram leaves by the back door (exit-only reader)"},
	{"card back 0A00123457", "Bram badges out again by mistake"},
	{"card front 1F00ABCDEF", "Chris leaves"},
	{"keys pad 2580#", "Eva leaves"},
	{"wiegand gate 26 123 45678", "Gus leaves by the gate"},
	{"finger finger nomatch", "a finger the sensor does not know"},
	{"finger finger 17", "Finn leaves"},
}

// readers are the demo terminal's readers: their config tables (%[1]s is
// the demo's directory).
const readers = `
[[readers]]
name = "front"
driver = "rdm6300"
port = "%[1]s/dev/tty-front"
direction = "toggle"

[[readers]]
name = "back"
driver = "rdm6300"
port = "%[1]s/dev/tty-back"
direction = "out"

[[readers]]
name = "pad"
driver = "keypad"
rows = ["GPIO5", "GPIO6", "GPIO13", "GPIO19"]
cols = ["GPIO12", "GPIO16", "GPIO20"]
chip = "sim:%[1]s/dev/gpio-pad.sock"

[[readers]]
name = "finger"
driver = "r30x"
port = "%[1]s/dev/tty-finger"

[[readers]]
name = "gate"
driver = "wiegand"
d0_pin = "GPIO5"
d1_pin = "GPIO6"
chip = "sim:%[1]s/dev/gpio-gate.sock"
`

const wantShifts = 6

// Run plays the demo and returns nil when every expected shift arrived.
func Run(ctx context.Context, o Options) error {
	if o.Pace == 0 {
		o.Pace = 800 * time.Millisecond
	}
	out := &lockedWriter{w: o.Out}
	dir := o.Dir
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	} else {
		d, err := os.MkdirTemp("", "punchclock-demo")
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	say := func(format string, args ...any) { fmt.Fprintf(out, "demo   | "+format+"\n", args...) }

	b, err := startBroker(dir, o.Broker)
	if err != nil {
		return err
	}
	defer b.Close()
	say("broker: %s at %s", b.Kind, b.URL)

	cfgPath := filepath.Join(dir, "punchclock.toml")
	if err := os.WriteFile(filepath.Join(dir, "roster.json"), []byte(roster), 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	cfgText := fmt.Sprintf(`device_id = "demo-door"
data_dir = %q
timezone = "Europe/Amsterdam"
roster_file = %q

[mqtt]
broker = %q
topic_prefix = "punchclock"

[delivery]
confirm = "connector"

# The demo runs on a machine whose clock is set (on a Pi: "kernel").
[clock]
source = "trusted"
`, filepath.Join(dir, "data"), filepath.Join(dir, "roster.json"), b.URL) + fmt.Sprintf(readers, dir)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	// Every reader's twin, built as punchsim serve builds it.
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	twins, err := samples.Twins(cfg)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer samples.Close(twins)
	script := &sim.Script{Twins: twins}

	// The connector.
	sub, shifts, err := subscribe(b.URL, out)
	if err != nil {
		return err
	}
	defer sub.Disconnect(100)

	// The agent.
	agent := exec.Command(o.Agent, "run", "-config", cfgPath)
	stderr, err := agent.StderrPipe()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := agent.Start(); err != nil {
		return fmt.Errorf("demo: start agent %s: %w (run `make build` first)", o.Agent, err)
	}
	defer func() {
		agent.Process.Signal(syscall.SIGTERM)
		agent.Wait()
	}()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(out, "agent  | %s\n", line)
			if strings.Contains(line, "msg=ready") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("demo: agent did not become ready")
	case <-ctx.Done():
		return ctx.Err()
	}

	for _, s := range day {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(o.Pace):
		}
		say("%-22s %s", s.line, s.what)
		if err := script.Run(ctx, strings.NewReader(s.line)); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}

	deadline := time.After(15 * time.Second)
	seen := map[string]bool{}
	var refused string
	for len(seen) < wantShifts {
		select {
		case sh := <-shifts:
			seen[sh.ID] = true
			if sh.PayrollNo == refusedPayroll {
				refused = sh.ID
			}
		case <-deadline:
			return fmt.Errorf("demo: only %d of %d shifts arrived", len(seen), wantShifts)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	got := len(seen)
	run := func(args ...string) (string, error) {
		b, err := exec.Command(o.Agent, append(args[:1:1], append([]string{"-config", cfgPath}, args[1:]...)...)...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("demo: punchclock %s: %v\n%s", args[0], err, b)
		}
		return string(b), nil
	}
	// The refused shift is a dead letter on the terminal, with the
	// payroll system's words; an admin fixes the contract and replays it.
	if err := waitStatus(ctx, run, "a dead letter", func(st statusJSON) bool { return st.DeadLetters == 1 && st.Unconfirmed == 0 }); err != nil {
		return err
	}
	errs, err := run("errors")
	if err != nil {
		return err
	}
	say("punchclock errors:\n%s", errs)
	say("the admin adds the missing contract, then: punchclock replay %s", refused)
	rep, err := run("replay", refused)
	if err != nil {
		return err
	}
	say("%s", strings.TrimSpace(rep))
	if err := waitStatus(ctx, run, "everything confirmed", func(st statusJSON) bool { return st.DeadLetters == 0 && st.Unconfirmed == 0 }); err != nil {
		return err
	}
	status, err := run("status")
	if err != nil {
		return err
	}
	say("punchclock status:\n%s", status)
	say("done: %d shifts arrived.", got)
	say("to drive the readers yourself: punchsim demo -dir DIR keeps the files; then run")
	say("  punchclock run -config DIR/punchclock.toml   and   punchsim serve -config DIR/punchclock.toml")
	say("and type 'card front 0A00123456' (the demo's broker is gone: the agent buffers the shifts)")
	return nil
}

// refusedPayroll is the payroll number whose first shift the demo's
// payroll system refuses.
const refusedPayroll = "1003"

type statusJSON struct {
	Unconfirmed int `json:"unconfirmed"`
	DeadLetters int `json:"dead_letters"`
}

func waitStatus(ctx context.Context, run func(...string) (string, error), what string, cond func(statusJSON) bool) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := run("status", "-json")
		if err != nil {
			return err
		}
		var st statusJSON
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return fmt.Errorf("demo: status -json: %v", err)
		}
		if cond(st) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: timed out waiting for %s: %s", what, out)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// subscribe connects the demo's connector: it prints what arrives and
// acks each event and shift on the device's acks topic, refusing the
// first shift of refusedPayroll as a payroll system would.
func subscribe(url string, out io.Writer) (mqtt.Client, <-chan punch.Shift, error) {
	shifts := make(chan punch.Shift, 16)
	refusedOnce := false
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID("demo-connector").SetCleanSession(true)
	c := mqtt.NewClient(opts)
	if t := c.Connect(); t.WaitTimeout(5*time.Second) && t.Error() != nil {
		return nil, nil, fmt.Errorf("demo: subscriber: %w", t.Error())
	}
	t := c.Subscribe("punchclock/+/+", 1, func(_ mqtt.Client, m mqtt.Message) {
		switch {
		case strings.HasSuffix(m.Topic(), "/shifts"):
			var sh punch.Shift
			if err := json.Unmarshal(m.Payload(), &sh); err != nil {
				fmt.Fprintf(out, "shifts | bad payload %s: %v\n", m.Payload(), err)
				return
			}
			fmt.Fprintf(out, "SHIFT  | %s payroll %s (%s): in %s, out %s, %s  id %s\n", sh.EmployeeID, sh.PayrollNo,
				sh.Department, sh.In.Format("15:04:05.000"), sh.Out.Format("15:04:05.000"),
				sh.Out.Sub(sh.In).Round(time.Millisecond), sh.ID)
			ack := fmt.Sprintf(`{"id":%q,"ok":true}`, sh.ID)
			if sh.PayrollNo == refusedPayroll && !refusedOnce {
				refusedOnce = true
				ack = fmt.Sprintf(`{"id":%q,"ok":false,"error":"payroll: 422 employee %s has no contract for department %s"}`, sh.ID, sh.PayrollNo, sh.Department)
				fmt.Fprintf(out, "conn   | payroll refuses %s\n", sh.ID)
			}
			c.Publish(ackTopic(m.Topic()), 1, false, ack)
			select {
			case shifts <- sh:
			default:
			}
		case strings.HasSuffix(m.Topic(), "/events"):
			var ev punch.Event
			json.Unmarshal(m.Payload(), &ev)
			fmt.Fprintf(out, "event  | %-6s %-5s %-8s %-3s %s\n", ev.Reader, ev.EmployeeID, ev.Decision, ev.Direction, ev.Reason)
			c.Publish(ackTopic(m.Topic()), 1, false, fmt.Sprintf(`{"id":%q,"ok":true}`, ev.ID))
		case strings.HasSuffix(m.Topic(), "/status"):
			fmt.Fprintf(out, "status | %s\n", m.Payload())
		}
	})
	if !t.WaitTimeout(5*time.Second) || t.Error() != nil {
		return nil, nil, fmt.Errorf("demo: subscribe: %v", t.Error())
	}
	return c, shifts, nil
}

// ackTopic is the acks topic of the device that published on topic.
func ackTopic(topic string) string {
	return topic[:strings.LastIndex(topic, "/")] + "/acks"
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
