package main

// End to end for the attendance and access rules (issue 13): the built
// agent, the readers' twins as `punchsim serve` builds them, and a real
// mosquitto.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/internal/testbroker"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/sim/samples"
)

// rulesReaders are the sample readers of the rules terminal, each with
// the common keys of its part.
var rulesReaders = map[string]string{
	// A time clock: forced in, a keypad beside it for the PIN of
	// pin_with_card and job codes.
	"rdm": "direction = \"in\"\nkeypad = \"pad\"\njob_code = true\n",
	"pad": "",
	// A door.
	"door": "role = \"access\"\n",
	// A gate suspended in the config.
	"gate": "enabled = false\n",
}

func rulesTerminal(t *testing.T, broker string) *terminal {
	t.Helper()
	dir := t.TempDir()
	// A window that does not hold now: from two hours ahead, one hour
	// long, every day, in the site's zone.
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Now().In(ams).Add(2 * time.Hour)
	to := from.Add(time.Hour)
	roster := fmt.Sprintf(`{"schema": 2, "version": 3,
 "access_groups": [{"name": "later", "readers": ["door"], "windows": [{"days": "mon-sun", "from": %q, "to": %q}]}],
 "employees": [
 {"id": "E1", "payroll_no": "1", "pin_with_card": true, "job_codes": ["1001", "2002"],
  "credentials": [{"type": "card", "value": "0A00BEEF01"}, {"type": "pin", "value": %q}]},
 {"id": "E2", "payroll_no": "2", "access_group": "later", "credentials": [{"type": "card", "value": "77:31337"}]},
 {"id": "E3", "payroll_no": "3", "credentials": [{"type": "card", "value": "123:45678"}]},
 {"id": "E4", "payroll_no": "4", "credentials": [{"type": "card", "value": "0A00BEEF02"}]}]}`,
		from.Format("15:04"), to.Format("15:04"), samples.PIN)
	if err := os.WriteFile(filepath.Join(dir, "roster.json"), []byte(roster), 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "device_id = \"door-1\"\ndata_dir = %q\ntimezone = \"Europe/Amsterdam\"\nroster_file = %q\n\n[pairing]\nmax_shift = \"20s\"\n\n[mqtt]\nbroker = %q\n",
		filepath.Join(dir, "data"), filepath.Join(dir, "roster.json"), broker)
	for _, s := range samples.Samples {
		extra, ok := rulesReaders[s.Name]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "\n[[readers]]\nname = %q\nrepeat_window = \"150ms\"\n%s", s.Name, extra)
		fmt.Fprintf(&b, s.Table, dir)
	}
	cfgPath := filepath.Join(dir, "punchclock.toml")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return &terminal{t: t, dir: dir, config: cfgPath}
}

func TestE2EAttendanceAndAccessRules(t *testing.T) {
	b := testbroker.Start(t)
	sub := b.Subscribe(t, "punchclock/door-1/#")
	tm := rulesTerminal(t, b.URL())
	cfg, err := config.Load(tm.config)
	if err != nil {
		t.Fatal(err)
	}
	twins, err := samples.Twins(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { samples.Close(twins) })
	tm.start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", tm.logText())
		}
	})
	events := func(n int, what string) []punch.Event {
		t.Helper()
		msgs := sub.WaitUntil(t, 30*time.Second, what, func(ms []testbroker.Message) bool {
			_, evs := split(t, ms)
			return len(evs) >= n
		})
		_, evs := split(t, msgs)
		return evs
	}
	start := time.Now()
	// A double arrival at an in reader.
	play(t, twins, "card rdm 0A00BEEF02 x1")
	events(1, "E4 in")
	// (Past the repeat window: a new presentation.)
	play(t, twins, "sleep 300ms", "card rdm 0A00BEEF02 x1")
	evs := events(2, "E4 in again")
	if ev := evs[1]; ev.EmployeeID != "E4" || ev.Decision != punch.Denied || ev.Reason != punch.ReasonDoubleIn || ev.Access != punch.AccessGranted {
		t.Fatalf("double arrival: %+v", ev)
	}
	// Card, PIN and a job code on the keypad beside the reader; a wrong
	// job code first, refused on the spot and not stored.
	play(t, twins, "card rdm 0A00BEEF01 x1", "keys pad "+samples.PIN+"#", "keys pad 9#", "keys pad 2002#")
	evs = events(3, "E1's card, PIN and job code")
	if ev := evs[2]; ev.EmployeeID != "E1" || ev.Decision != punch.Accepted || ev.JobCode != "2002" || ev.CredentialType != "card" || ev.RosterVersion != 3 {
		t.Fatalf("card + PIN + job code: %+v", ev)
	}
	// A door outside the group's window; a suspended gate.
	play(t, twins, "card door 77:31337")
	evs = events(4, "E2 at the door")
	if ev := evs[3]; ev.EmployeeID != "E2" || ev.Reason != punch.ReasonOutsideWindow || ev.Direction != "" {
		t.Fatalf("outside the window: %+v", ev)
	}
	play(t, twins, "wiegand gate 26 123 45678")
	evs = events(5, "E3 at the suspended gate")
	if ev := evs[4]; ev.EmployeeID != "E3" || ev.Reason != punch.ReasonReaderSuspended {
		t.Fatalf("suspended gate: %+v", ev)
	}
	st := tm.status()
	for _, r := range st["readers"].([]any) {
		m := r.(map[string]any)
		if want := map[bool]string{true: "suspended", false: "online"}[m["name"] == "gate"]; m["state"] != want {
			t.Errorf("reader %v state %v, want %s", m["name"], m["state"], want)
		}
	}
	tm.stop()
	if shifts, _ := split(t, sub.Messages()); len(shifts) != 0 {
		t.Fatalf("shifts before max_shift passed: %+v", shifts)
	}
	// Both entries outlive max_shift while the agent is down: at start
	// they become auto_closed shifts.
	time.Sleep(time.Until(start.Add(21 * time.Second)))
	tm.start()
	msgs := sub.WaitUntil(t, 30*time.Second, "two auto-closed shifts", func(ms []testbroker.Message) bool {
		shifts, _ := split(t, ms)
		return len(shifts) >= 2
	})
	shifts, _ := split(t, msgs)
	for _, sh := range shifts {
		if !slices.Contains(sh.Flags, punch.FlagAutoClosed) || sh.DurationS != 20 || sh.OutEvent != "" || sh.OutReader != "" || sh.RosterVersion != 3 {
			t.Errorf("auto-closed shift %+v", sh)
		}
		if sh.EmployeeID == "E1" && sh.JobCode != "2002" {
			t.Errorf("E1's shift lost its job code: %+v", sh)
		}
	}
	tm.stop()
	checkNoSecret(t, tm.dir, tm.logText(), sub.Messages())
}
