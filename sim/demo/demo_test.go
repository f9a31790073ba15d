package demo_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/sim/demo"

	"github.com/punchclock/punchclock/internal/agentbin"
	"github.com/punchclock/punchclock/internal/syncbuf"
)

// TestRun plays the whole demo against the real agent binary: a broker
// (mosquitto when installed, the embedded one otherwise), virtual readers
// on pseudo-terminals and the subscriber.
func TestRun(t *testing.T) {
	for _, broker := range []string{"mosquitto", "embedded"} {
		t.Run(broker, func(t *testing.T) { testRun(t, broker) })
	}
}

func testRun(t *testing.T, broker string) {
	agent, remove, err := agentbin.Build(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out syncbuf.Buffer
	// 600ms stays above the readers' 500ms repeat window: Bram's two
	// exits at the back reader must be two presentations.
	err = demo.Run(ctx, demo.Options{Agent: agent, Out: &out, Pace: 600 * time.Millisecond, Dir: t.TempDir(), Broker: broker})
	// The agent's log reader may still be writing a last line.
	text := out.String()
	if err != nil {
		t.Fatalf("demo.Run: %v\noutput:\n%s", err, text)
	}
	lines := strings.Split(text, "\n")
	count := func(prefix string, subs ...string) int {
		n := 0
	next:
		for _, l := range lines {
			if !strings.HasPrefix(l, prefix) {
				continue
			}
			for _, s := range subs {
				if !strings.Contains(l, s) {
					continue next
				}
			}
			n++
		}
		return n
	}
	// Chris's shift arrives twice: refused by the payroll system, then
	// replayed unchanged.
	if n := count("SHIFT  |"); n != 7 {
		t.Errorf("%d SHIFT lines, want 7", n)
	}
	// E104 by PIN on the keypad, E105 by a Wiegand card at the gate, E106
	// by finger.
	for who, want := range map[string]int{"E100": 1, "E101": 1, "E102": 2, "E104": 1, "E105": 1, "E106": 1} {
		if n := count("SHIFT  |", who); n != want {
			t.Errorf("%d shifts of %s, want %d", n, who, want)
		}
	}
	if n := count("conn   | payroll refuses"); n != 1 {
		t.Errorf("%d refusals, want 1", n)
	}
	if !strings.Contains(text, "shift") || !strings.Contains(text, "connector: payroll: 422 employee 1003 has no contract") {
		t.Errorf("punchclock errors did not show the payroll system's words")
	}
	if !strings.Contains(text, "1 dead letters replayed") {
		t.Errorf("no replay line")
	}
	for _, c := range []struct{ reader, reason string }{
		{"front", "unknown_credential"},  // the visitor's card
		{"front", "outside_contract"},    // Dana, whose contract ended
		{"back", "double_out"},           // Bram badging out twice
		{"pad", "unknown_credential"},    // a wrong PIN
		{"finger", "unknown_credential"}, // a finger the sensor does not know
	} {
		if n := count("event  |", c.reader, "denied", c.reason); n != 1 {
			t.Errorf("%d events denied %s at %s, want 1", n, c.reason, c.reader)
		}
	}
	if n := count("event  |", "denied"); n != 5 {
		t.Errorf("%d denied events, want 5", n)
	}
	if want := map[string]string{"mosquitto": "Debian's mosquitto", "embedded": "embedded mochi-mqtt"}[broker]; !strings.Contains(firstLine(text, "demo   | broker:"), want) {
		t.Errorf("broker line %q does not name %s", firstLine(text, "demo   | broker:"), want)
	}
	if !strings.Contains(text, "demo   | done: 6 shifts arrived") {
		t.Errorf("no done line")
	}
	if t.Failed() {
		t.Logf("output:\n%s", text)
	} else {
		t.Logf("broker: %s", firstLine(text, "demo   | broker:"))
	}
}

func firstLine(text, prefix string) string {
	for l := range strings.Lines(text) {
		if strings.HasPrefix(l, prefix) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
