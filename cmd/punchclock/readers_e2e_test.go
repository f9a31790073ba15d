package main

// End to end for every reader kind: the built agent, each driver's twin
// built exactly as `punchsim serve` builds it (real ptys, the simulated
// GPIO chip, FIFOs), and a real mosquitto. Adding a driver adds a row to
// readerKinds.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/internal/testbroker"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/osdp"
	"github.com/punchclock/punchclock/sim"
	"github.com/punchclock/punchclock/sim/samples"
)

const secretPIN = samples.PIN

// mixedRoster gives each sample reader's credential to one employee
// (E1, E2, ... in the order of samples.Samples); the keypad's is a PIN,
// which the test checks no byte of the terminal's state, log or output
// ever holds.
func mixedRoster() string {
	var emps []string
	for i, s := range samples.Samples {
		emps = append(emps, fmt.Sprintf(`{"id": "E%d", "payroll_no": "20%02d", "biometric_consent": true, "credentials": [%s]}`, i+1, i+1, s.Credential))
	}
	// E99 has not consented to biometrics.
	emps = append(emps, `{"id": "E99", "payroll_no": "2099", "credentials": []}`)
	return `{"version": 7, "employees": [` + strings.Join(emps, ",\n") + `]}`
}

// mixedTerminal writes the config of a terminal with one reader of every
// driver, and builds their twins.
func mixedTerminal(t *testing.T, broker, extra string) (dir, cfgPath string, twins map[string]reader.Twin) {
	t.Helper()
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "roster.json"), []byte(mixedRoster()), 0o644); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf("device_id = \"door-1\"\ndata_dir = %q\ntimezone = \"Europe/Amsterdam\"\nroster_file = %q\n\n[mqtt]\nbroker = %q\n%s\n",
		filepath.Join(dir, "data"), filepath.Join(dir, "roster.json"), broker, extra) + samples.SampleConfig(dir, samples.Samples, "150ms")
	cfgPath = filepath.Join(dir, "punchclock.toml")
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	twins, err = samples.Twins(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { samples.Close(twins) })
	return dir, cfgPath, twins
}

// startMixed starts the built agent on a mixed terminal; a failing test
// shows its log.
func startMixed(t *testing.T, broker string) (*terminal, map[string]reader.Twin) {
	t.Helper()
	dir, cfgPath, twins := mixedTerminal(t, broker, "")
	tm := &terminal{t: t, dir: dir, config: cfgPath}
	tm.start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", tm.logText())
		}
	})
	return tm, twins
}

// play runs scenario lines against the twins.
func play(t *testing.T, twins map[string]reader.Twin, lines ...string) {
	t.Helper()
	s := &sim.Script{Twins: twins}
	if err := s.Run(t.Context(), strings.NewReader(strings.Join(lines, "\n"))); err != nil {
		t.Fatal(err)
	}
}

func TestE2EEveryReaderKind(t *testing.T) {
	b := testbroker.Start(t)
	sub := b.Subscribe(t, "punchclock/door-1/#")
	tm, twins := startMixed(t, b.URL())

	for i, k := range samples.Samples {
		play(t, twins, k.Present...)
		want := i + 1
		msgs := sub.WaitUntil(t, 20*time.Second, fmt.Sprintf("the event of %s", k.Name), func(ms []testbroker.Message) bool {
			_, evs := split(t, ms)
			return len(evs) >= want
		})
		_, evs := split(t, msgs)
		ev := evs[i]
		if emp := fmt.Sprintf("E%d", i+1); ev.Reader != k.Name || ev.EmployeeID != emp || ev.Decision != punch.Accepted {
			t.Errorf("driver %s: event %+v, want %s accepted", k.Driver, ev, emp)
		}
		if fp := ev.CredentialType == "fingerprint"; fp != (ev.Score != nil) || fp && *ev.Score <= 0 {
			t.Errorf("driver %s: score %v on a %s event", k.Driver, ev.Score, ev.CredentialType)
		}
	}
	// The OSDP reader's own LED turned green and its buzzer sounded for
	// the accepted card, over the secure channel.
	if tw, ok := twins["door"].(*osdp.Twin); !ok {
		t.Error("no osdp twin")
	} else {
		deadline := time.Now().Add(5 * time.Second)
		for len(tw.LEDs()) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if leds, buzz := tw.LEDs(), tw.Buzzes(); len(leds) == 0 || leds[0].TempOnColor != osdp.ColorGreen || leds[0].TempOn == 0 || len(buzz) == 0 || buzz[0].On == 0 || !tw.Secure() {
			t.Errorf("osdp reader: LEDs %+v, buzzer %+v, secure %v", leds, buzz, tw.Secure())
		}
	}

	// Five wrong PINs at the keypad lock it: the fifth is still
	// unknown_credential, then the right PIN is locked_out.
	n := len(samples.Samples)
	var lines []string
	for i := range 5 {
		lines = append(lines, fmt.Sprintf("keys pad %d%d%d%d#", i, i, i, i))
	}
	play(t, twins, append(lines, "keys pad "+secretPIN+"#")...)
	msgs := sub.WaitUntil(t, 30*time.Second, "six PIN events", func(ms []testbroker.Message) bool {
		_, evs := split(t, ms)
		return len(evs) >= n+6
	})
	_, evs := split(t, msgs)
	for i, ev := range evs[n : n+6] {
		want := punch.ReasonUnknownCredential
		if i == 5 {
			want = punch.ReasonLockedOut
		}
		if ev.Reader != "pad" || ev.CredentialType != "pin" || ev.Reason != want || ev.EmployeeID != "" || ev.CredentialValue != "" {
			t.Errorf("PIN %d: %+v, want %s", i, ev, want)
		}
	}

	st := tm.status()
	rs, _ := st["readers"].([]any)
	if len(rs) != len(samples.Samples) {
		t.Fatalf("status readers %v", st["readers"])
	}
	for _, r := range rs {
		m := r.(map[string]any)
		if m["state"] != "online" || m["reads"].(float64) < 1 {
			t.Errorf("reader status %v", m)
		}
	}
	tm.stop()
	checkNoSecret(t, tm.dir, tm.logText(), sub.Messages())
}

// checkNoSecret fails if the PIN appears in any file of the terminal
// (database, journal, key file), its log, or anything it published.
func checkNoSecret(t *testing.T, dir, log string, msgs []testbroker.Message) {
	t.Helper()
	filepath.Walk(filepath.Join(dir, "data"), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Error(err)
			return nil
		}
		if bytes.Contains(b, []byte(secretPIN)) {
			t.Errorf("%s holds the PIN", p)
		}
		return nil
	})
	if strings.Contains(log, secretPIN) {
		t.Error("the agent's log holds the PIN")
	}
	for _, m := range msgs {
		if bytes.Contains(m.Payload, []byte(secretPIN)) {
			t.Errorf("%s published the PIN: %s", m.Topic, m.Payload)
		}
	}
	out, _ := exec.Command(binary, "log", "-config", filepath.Join(dir, "punchclock.toml"), "-json").CombinedOutput()
	if bytes.Contains(out, []byte(secretPIN)) {
		t.Error("punchclock log prints the PIN")
	}
	var st map[string]any
	out, _ = exec.Command(binary, "status", "-config", filepath.Join(dir, "punchclock.toml"), "-json").CombinedOutput()
	if json.Unmarshal(out, &st) != nil || bytes.Contains(out, []byte(secretPIN)) {
		t.Errorf("status: %s", out)
	}
}

// punchclock enroll through the running agent: refused without consent
// (exit non-zero, saying so); with consent the sensor stores a template
// at its lowest free page, the command prints it and exits 0, and the
// enrolment is published for the HR side.
func TestE2EEnrolFingerprint(t *testing.T) {
	b := testbroker.Start(t)
	sub := b.Subscribe(t, "punchclock/door-1/enrolments")
	tm, twins := startMixed(t, b.URL())
	cfgPath := tm.config
	play(t, twins, "store finger 0 1 2 4") // pages taken by enrolments made before

	out, err := exec.Command(binary, "enroll", "-config", cfgPath, "-reader", "finger", "-employee", "E99").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "biometric_consent") || !strings.Contains(string(out), "refused") {
		t.Fatalf("enroll without consent: %v\n%s", err, out)
	}
	out, err = exec.Command(binary, "enroll", "-config", cfgPath, "-reader", "door", "-employee", "E1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "does not enrol fingerprints") {
		t.Fatalf("enroll at a card reader: %v\n%s", err, out)
	}

	// The person puts a finger on the sensor twice while the command
	// waits.
	cmd := exec.Command(binary, "enroll", "-config", cfgPath, "-reader", "finger", "-employee", "E1")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tm.waitLog("the enrolment under way", func(s string) bool { return strings.Contains(s, "fingerprint enrolment started") })
	play(t, twins, "enrollfinger finger")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("enroll: %v\n%s\nagent log:\n%s", err, buf.String(), tm.logText())
	}
	if !strings.Contains(buf.String(), "page 3") {
		t.Errorf("enroll output %q: want the lowest free page, 3", buf.String())
	}
	msgs := sub.WaitFor(t, 1, 10*time.Second)
	var en struct {
		EmployeeID string `json:"employee_id"`
		Reader     string
		Credential struct{ Type, Value string }
	}
	if err := json.Unmarshal(msgs[0].Payload, &en); err != nil || en.EmployeeID != "E1" || en.Reader != "finger" ||
		en.Credential.Type != "fingerprint" || en.Credential.Value != "3" {
		t.Errorf("enrolment published: %s (%v)", msgs[0].Payload, err)
	}
	tm.stop()
}

// Every reader is unplugged (its pty closed, its socket or FIFO removed)
// and plugged back while the agent runs: the agent shows it offline,
// reopens it and reads it again, without a restart.
func TestE2EReadersReplugged(t *testing.T) {
	b := testbroker.Start(t)
	sub := b.Subscribe(t, "punchclock/door-1/events")
	tm, twins := startMixed(t, b.URL())
	for _, s := range samples.Samples {
		play(t, twins, "unplug "+s.Name)
	}
	// Each driver notices: its port fails, or a polled reader stops
	// answering (offline after 5 s).
	tm.waitStatusOf("every reader offline", func(st map[string]any) bool {
		rs, _ := st["readers"].([]any)
		for _, r := range rs {
			if r.(map[string]any)["state"] != "offline" {
				return false
			}
		}
		return len(rs) == len(samples.Samples)
	})
	for _, s := range samples.Samples {
		play(t, twins, "replug "+s.Name)
	}
	// Each comes back within its backoff (up to 5 s): present only then,
	// or a card shown briefly (the PN532's) could come and go unseen.
	tm.waitStatusOf("every reader online again", func(st map[string]any) bool {
		rs, _ := st["readers"].([]any)
		for _, r := range rs {
			if r.(map[string]any)["state"] != "online" {
				return false
			}
		}
		return len(rs) == len(samples.Samples)
	})
	for i, s := range samples.Samples {
		play(t, twins, s.Present...)
		want := i + 1
		msgs := sub.WaitUntil(t, 30*time.Second, "a read after the replug of "+s.Name, func(ms []testbroker.Message) bool {
			_, evs := split(t, ms)
			return len(evs) >= want
		})
		_, evs := split(t, msgs)
		if ev := evs[i]; ev.Reader != s.Name || ev.EmployeeID != fmt.Sprintf("E%d", i+1) {
			t.Errorf("after the replug of %s: %+v", s.Name, ev)
		}
	}
	st := tm.status()
	for _, r := range st["readers"].([]any) {
		if m := r.(map[string]any); m["state"] != "online" {
			t.Errorf("after the replug: %v", m)
		}
	}
	tm.stop()
}

// waitStatusOf polls `punchclock status -json` until cond holds.
func (tm *terminal) waitStatusOf(what string, cond func(map[string]any) bool) map[string]any {
	tm.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := tm.status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("timed out waiting for %s: %v", what, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
