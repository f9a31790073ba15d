package main

// End to end for every reader kind: the built agent, each driver's twin
// built exactly as `punchsim serve` builds it (real ptys, the simulated
// GPIO chip, FIFOs), and a real mosquitto. Adding a driver adds a row to
// readerKinds.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
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
	"github.com/punchclock/punchclock/sim"
)

// A readerKind is one reader of the mixed terminal: its config table
// (%s is the test's directory), a scenario line that presents a known
// credential on its twin, and the employee it must find.
type readerKind struct {
	name     string
	table    string
	present  string
	employee string
}

// mixedRoster holds a credential of every kind. E200's PIN is 73519046;
// the test checks that no byte of the terminal's state, log or output
// ever holds it.
const mixedRoster = `{"version": 7, "employees": [
 {"id": "E200", "name": "Ines", "payroll_no": "2000", "credentials": [{"type": "pin", "value": "73519046"}]},
 {"id": "E201", "name": "Jan", "payroll_no": "2001", "credentials": [{"type": "card", "value": "0A00BEEF01"}]},
 {"id": "E202", "name": "Kim", "payroll_no": "2002", "credentials": [{"type": "card", "value": "04A1B2C3D4E5F6"}]},
 {"id": "E203", "name": "Lea", "payroll_no": "2003", "biometric_consent": true, "credentials": [{"type": "fingerprint", "value": "17"}]},
 {"id": "E204", "name": "Max", "payroll_no": "2004", "credentials": [{"type": "card", "value": "123:45678"}]},
 {"id": "E205", "name": "Noa", "payroll_no": "2005", "credentials": [{"type": "card", "value": "0B00654321"}]},
 {"id": "E206", "name": "Olaf", "payroll_no": "2006", "credentials": [{"type": "card", "value": "1193046"}]},
 {"id": "E207", "name": "Pia", "payroll_no": "2007", "credentials": [{"type": "card", "value": "0C00112233"}]}]}`

const secretPIN = "73519046"

var readerKinds = []readerKind{
	{"rdm", `driver = "rdm6300"
port = "%s/dev/tty-rdm"`, "card rdm 0A00BEEF01", "E201"},
}

// mixedTerminal writes the config of a terminal with every reader kind,
// and builds their twins.
func mixedTerminal(t *testing.T, broker string, kinds []readerKind, extra string) (dir, cfgPath string, twins map[string]reader.Twin) {
	t.Helper()
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "roster.json"), []byte(mixedRoster), 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "device_id = \"door-1\"\ndata_dir = %q\ntimezone = \"Europe/Amsterdam\"\nroster_file = %q\n\n[mqtt]\nbroker = %q\n%s\n",
		filepath.Join(dir, "data"), filepath.Join(dir, "roster.json"), broker, extra)
	for _, k := range kinds {
		fmt.Fprintf(&b, "\n[[readers]]\nname = %q\nrepeat_window = \"150ms\"\n%s\n", k.name, strings.ReplaceAll(k.table, "%s", dir))
	}
	cfgPath = filepath.Join(dir, "punchclock.toml")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	twins = map[string]reader.Twin{}
	for _, rc := range cfg.Readers {
		tw, err := rc.Settings.Twin(reader.TwinEnv{
			Name:   rc.Name,
			Logger: slog.New(slog.DiscardHandler),
			Serial: func(link string) (reader.SerialEnd, error) { return sim.NewSerial(link) },
		})
		if err != nil {
			t.Fatalf("twin of %s: %v", rc.Name, err)
		}
		t.Cleanup(func() { tw.Close() })
		twins[rc.Name] = tw
	}
	return dir, cfgPath, twins
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
	dir, cfgPath, twins := mixedTerminal(t, b.URL(), readerKinds, "")
	tm := &terminal{t: t, dir: dir, config: cfgPath}
	tm.start()

	for i, k := range readerKinds {
		play(t, twins, k.present)
		want := i + 1
		msgs := sub.WaitUntil(t, 20*time.Second, fmt.Sprintf("the event of %s", k.name), func(ms []testbroker.Message) bool {
			_, evs := split(t, ms)
			return len(evs) >= want
		})
		_, evs := split(t, msgs)
		ev := evs[i]
		if ev.Reader != k.name || ev.EmployeeID != k.employee || ev.Decision != punch.Accepted {
			t.Errorf("reader %s: event %+v, want %s accepted", k.name, ev, k.employee)
		}
	}
	st := tm.status()
	rs, _ := st["readers"].([]any)
	if len(rs) != len(readerKinds) {
		t.Fatalf("status readers %v", st["readers"])
	}
	for _, r := range rs {
		m := r.(map[string]any)
		if m["state"] != "online" || m["reads"].(float64) < 1 {
			t.Errorf("reader status %v", m)
		}
	}
	tm.stop()
	checkNoSecret(t, dir, tm.logText(), sub.Messages())
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
