package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/punchclock/punchclock/internal/testbroker"
)

// `punchclock log` shows the agent's own lines (actions, warnings,
// errors) among the punches, filtered by level; -clear asks first, and
// empties the agent's lines, never the punches.
func TestE2ELogbook(t *testing.T) {
	b := testbroker.Start(t)
	tm := newTerminalWith(t, b.URL(), termOptions{})
	tm.start()
	tm.badge("0A00123456")
	tm.stop()
	logOut := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(binary, append([]string{"log", "-config", tm.config}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	all := logOut("")
	for _, want := range []string{"info   roster loaded", "info   ready", "event  front", "E100"} {
		if !strings.Contains(all, want) {
			t.Errorf("log lacks %q:\n%s", want, all)
		}
	}
	if i, j := strings.Index(all, "roster loaded"), strings.Index(all, "event  front"); i < 0 || j < 0 || i > j {
		t.Errorf("the agent's lines are not in time order with the punches:\n%s", all)
	}
	if warn := logOut("", "-level", "warn"); strings.Contains(warn, "roster loaded") || !strings.Contains(warn, "event  front") {
		t.Errorf("-level warn:\n%s", warn)
	}
	if out := logOut("n\n", "-clear"); !strings.Contains(out, "not cleared") || !strings.Contains(logOut(""), "roster loaded") {
		t.Errorf("-clear answered no:\n%s", out)
	}
	if out := logOut("", "-clear", "-yes"); !strings.Contains(out, "cleared") {
		t.Errorf("-clear -yes:\n%s", out)
	}
	after := logOut("")
	if strings.Contains(after, "roster loaded") || !strings.Contains(after, "event  front") {
		t.Errorf("after -clear the agent's lines must be gone and the punches kept:\n%s", after)
	}
}
