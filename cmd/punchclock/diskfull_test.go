package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/testdisk"
	"github.com/punchclock/punchclock/reader/rdm6300"
)

// manyRoster is a roster of n employees, card i being 0C000000<i>.
func manyRoster(n int) (string, []string) {
	var emps, cards []string
	for i := range n {
		c := fmt.Sprintf("0C%08X", i)
		cards = append(cards, c)
		emps = append(emps, fmt.Sprintf(`{"id":"M%03d","payroll_no":"%d","credentials":[{"type":"card","value":%q}]}`, i, 5000+i, c))
	}
	return `{"version":1,"employees":[` + strings.Join(emps, ",") + `]}`, cards
}

// punchLines returns the decision lines the agent logged: id -> reason
// ("" when accepted).
func acceptedIDs(log string) map[string]bool {
	ids := map[string]bool{}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "msg=punch ") && strings.Contains(line, "decision=accepted") {
			for _, f := range strings.Fields(line) {
				if id, ok := strings.CutPrefix(f, "id="); ok {
					ids[id] = true
				}
			}
		}
	}
	return ids
}

// A real full disk under the data directory: the agent keeps running,
// denies what it cannot keep with storage_full, loses nothing it accepted,
// starts again on the full disk, and recovers by itself when space frees.
func TestE2EDiskFull(t *testing.T) {
	mnt := testdisk.Mount(t, 8)
	ros, cards := manyRoster(60)
	tm := newTerminalWith(t, "", termOptions{dataDir: filepath.Join(mnt, "data"), roster: ros})
	tm.start()
	frames := make([][]byte, len(cards))
	for i, c := range cards {
		frames[i], _ = rdm6300.Encode(c)
	}
	decided := func() int {
		return strings.Count(tm.logText(), "msg=punch ") + strings.Count(tm.logText(), "msg=\"punch not stored\"")
	}
	badge := func(i int) {
		t.Helper()
		want := decided() + 1
		if _, err := tm.port.Write(frames[i%len(frames)]); err != nil {
			t.Fatal(err)
		}
		tm.waitLog("a decision", func(string) bool { return decided() >= want })
	}
	for i := range 20 {
		badge(i)
	}
	filler := filepath.Join(mnt, "filler")
	testdisk.Fill(t, filler)
	// Badge until the terminal refuses: its journal and database have
	// no room left.
	n := 20
	for ; !strings.Contains(tm.logText(), "reason=storage_full"); n++ {
		if n > 20+20000 {
			t.Fatalf("no storage_full denial after %d punches on a full disk", n)
		}
		badge(n)
	}
	for range 5 {
		badge(n)
		n++
	}
	if st := tm.status(); st["running"] != true {
		t.Fatalf("status on a full disk = %v", st)
	}
	accepted := acceptedIDs(tm.logText())
	t.Logf("%d punches decided, %d accepted before and while the disk filled", n, len(accepted))

	// A restart on the full disk starts. The stop reports that bbolt
	// could not take the journaled punches (they stay in the journal).
	tm.cmd.Process.Signal(syscall.SIGTERM)
	if err := tm.cmd.Wait(); err != nil && !strings.Contains(tail(tm.logText(), 3), "no space left on device") {
		t.Fatalf("agent exit on a full disk: %v\n%s", err, tail(tm.logText(), 20))
	}
	tm.cmd = nil
	tm.start()
	badge(n)
	n++

	// Space frees: the terminal recovers by itself.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		before := len(acceptedIDs(tm.logText()))
		badge(n)
		n++
		if len(acceptedIDs(tm.logText())) > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no punch accepted 30 s after space freed:\n%s", tail(tm.logText(), 30))
		}
		time.Sleep(500 * time.Millisecond)
	}
	tm.waitLog("the applier catching up", func(string) bool {
		st := tm.status()
		return st["apply_error"] == nil && st["storage_warning"] == nil
	})
	accepted = acceptedIDs(tm.logText())
	tm.stop()

	out, err := exec.Command(binary, "log", "-config", tm.config, "-json").CombinedOutput()
	if err != nil {
		t.Fatalf("log: %v\n%s", err, out)
	}
	logged := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var e struct{ Event *struct{ ID string } }
		if json.Unmarshal([]byte(line), &e) == nil && e.Event != nil {
			logged[e.Event.ID] = true
		}
	}
	lost := 0
	for id := range accepted {
		if !logged[id] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d accepted punches lost", lost, len(accepted))
	}
	t.Logf("%d accepted punches, all in the log after the disk filled, a restart on it and recovery", len(accepted))
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
