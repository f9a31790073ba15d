package main

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/mosquitto"
	"github.com/punchclock/punchclock/internal/testbroker"
)

// check-config -connect through the built binary: exit 0 when the broker
// takes the terminal, 1 naming the stage that failed, within 10 s.
func TestCheckConfigConnect(t *testing.T) {
	b := testbroker.Start(t)
	closed, err := mosquitto.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, broker string
		code         int
		want         string
	}{
		{"works", b.URL(), 0, "broker: everything works"},
		{"nobody listening", fmt.Sprintf("tcp://127.0.0.1:%d", closed), 1, "failed at stage tcp"},
		{"no such host", "tcp://no-such-host.invalid:1883", 1, "failed at stage dns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm := newTerminalWith(t, tc.broker, termOptions{})
			start := time.Now()
			out, err := exec.Command(binary, "check-config", "-config", tm.config, "-connect").CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(string(out), tc.want) {
				t.Fatalf("exit %d, output:\n%s\nwant exit %d and %q", code, out, tc.code, tc.want)
			}
			if d := time.Since(start); d > 11*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
