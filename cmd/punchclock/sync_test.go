package main

import (
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/testbroker"
)

// punchclock sync: the running agent publishes a roster request with
// reason "sync"; with the agent stopped it says it needs the agent.
func TestE2ESync(t *testing.T) {
	b := testbroker.Start(t)
	sub := b.Subscribe(t, "punchclock/door-1/roster/request")
	tm := newTerminalWith(t, b.URL(), termOptions{})
	tm.start()
	out, err := exec.Command(binary, "sync", "-config", tm.config).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "roster requested") {
		t.Fatalf("sync: %v\n%s", err, out)
	}
	msgs := sub.WaitUntil(t, 10*time.Second, "a roster request with reason sync", func(ms []testbroker.Message) bool {
		for _, m := range ms {
			var r struct{ Reason string }
			if json.Unmarshal(m.Payload, &r) == nil && r.Reason == "sync" {
				return true
			}
		}
		return false
	})
	var req struct {
		DeviceID      string `json:"device_id"`
		RosterVersion int64  `json:"roster_version"`
	}
	json.Unmarshal(msgs[len(msgs)-1].Payload, &req)
	if req.DeviceID != "door-1" || req.RosterVersion != 3 {
		t.Errorf("request %s", msgs[len(msgs)-1].Payload)
	}
	if st := tm.status(); st["last_roster_request"] == nil {
		t.Errorf("status lacks last_roster_request: %v", st)
	}
	tm.stop()
	out, err = exec.Command(binary, "sync", "-config", tm.config).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "not running") {
		t.Fatalf("sync with the agent stopped: %v\n%s", err, out)
	}
}
