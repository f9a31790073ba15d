package main

import (
	"bufio"
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/testbroker"
	"github.com/punchclock/punchclock/reader/rdm6300"
)

// diag through the built binary: refused while the agent runs; with the
// agent stopped, a card shown at the reader prints the raw read and the
// decision it would get, and nothing is stored.
func TestE2EDiag(t *testing.T) {
	b := testbroker.Start(t)
	tm := newTerminalWith(t, b.URL(), termOptions{})
	tm.start()
	tm.badge("0A00123456") // Anna in
	out, err := exec.Command(binary, "diag", "-config", tm.config, "-for", "2s").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "stop it first") {
		t.Fatalf("diag while the agent runs: %v\n%s", err, out)
	}
	tm.stop()
	before := tm.status()

	cmd := exec.Command(binary, "diag", "-config", tm.config, "-for", "20s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(what string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("diag ended before %s; stderr:\n%s", what, stderr.String())
			}
			return l
		case <-time.After(15 * time.Second):
			t.Fatalf("no %s from diag; stderr:\n%s", what, stderr.String())
		}
		return ""
	}
	if l := next("banner"); !strings.Contains(l, "nothing is stored") {
		t.Fatalf("banner %q", l)
	}
	frame, err := rdm6300.Encode("0A00123456")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tm.port.Write(frame); err != nil {
		t.Fatal(err)
	}
	raw, would := next("the raw read"), next("the decision")
	if !strings.Contains(raw, "front") || !strings.Contains(raw, "0A00123456") {
		t.Errorf("raw read %q", raw)
	}
	// Anna is in: a toggle reader would let her out, closing a shift.
	if !strings.Contains(would, "E100 Anna de Vries: accepted out") || !strings.Contains(would, "would close a shift") {
		t.Errorf("decision %q", would)
	}
	cmd.Process.Kill()
	cmd.Wait()
	after := tm.status()
	if after["pending"] != before["pending"] || after["open_entries"] != before["open_entries"] {
		t.Fatalf("diag stored something: %v → %v", before, after)
	}
	// No outputs configured: -test says so.
	out, err = exec.Command(binary, "diag", "-config", tm.config, "-test").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "nothing to test") {
		t.Fatalf("diag -test: %v\n%s", err, out)
	}
}
