package lazyfs

// The power-cut test of the agent: the real binary, its data directory
// on a lazy mount, a virtual reader on a real pseudo-terminal. Each cycle
// badges a burst, kills the agent at a random moment and cuts the power
// at once, then checks that every punch the agent reported as decided
// survived.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/punchclock/punchclock/internal/agentbin"
	"github.com/punchclock/punchclock/internal/syncbuf"
	"github.com/punchclock/punchclock/reader/rdm6300"
	"github.com/punchclock/punchclock/sim"
	"github.com/punchclock/punchclock/store"
)

var (
	agentOnce sync.Once
	agentPath string
	agentErr  error
)

// agent builds the agent binary once for the package's tests.
func agent(t *testing.T) string {
	t.Helper()
	agentOnce.Do(func() {
		var remove func()
		agentPath, remove, agentErr = agentbin.Build(false)
		if agentErr == nil {
			removeAgent = remove
		}
	})
	if agentErr != nil {
		t.Fatal(agentErr)
	}
	return agentPath
}

const powercutRoster = `{"version": 1, "employees": [
 {"id": "E100", "name": "Anna", "payroll_no": "1001", "credentials": [{"type": "card", "value": "0A00123456"}]},
 {"id": "E101", "name": "Bram", "payroll_no": "1002", "credentials": [{"type": "card", "value": "0A00123457"}]},
 {"id": "E102", "name": "Chris", "payroll_no": "1003", "credentials": [{"type": "card", "value": "1F00ABCDEF"}]}]}`

// The cards badged: the three employees' and an unknown one.
var powercutCards = []string{"0A00123456", "0A00123457", "1F00ABCDEF", "0B0BADCAFE"}

// punchLine is the agent's report of a durable decision.
var punchLine = regexp.MustCompile(`msg=punch .*?decision=(\S+) id=(\S+)`)

type powercut struct {
	t      *testing.T
	bin    string
	m      *mounted
	config string
	port   *sim.Serial
	rng    *rand.Rand
}

func newPowercut(t *testing.T) *powercut {
	t.Helper()
	// Syncs take a few milliseconds, as on an SD card, so that kills
	// fall between a write and its sync.
	pc := &powercut{t: t, bin: agent(t), m: mount(t, Options{SyncDelay: 10 * time.Millisecond})}
	etc := t.TempDir()
	roster := filepath.Join(etc, "roster.json")
	if err := os.WriteFile(roster, []byte(powercutRoster), 0o644); err != nil {
		t.Fatal(err)
	}
	tty := filepath.Join(etc, "dev", "ttyFront")
	pc.config = filepath.Join(etc, "punchclock.toml")
	cfg := fmt.Sprintf(`device_id = "door-1"
data_dir = %q
timezone = "Europe/Amsterdam"
roster_file = %q

[[readers]]
name = "front"
driver = "rdm6300"
port = %q
baud = 9600
direction = "toggle"
repeat_window = "100ms"
`, pc.m.path("data"), roster, tty)
	if err := os.WriteFile(pc.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port, err := sim.NewSerial(tty)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { port.Close() })
	pc.port = port
	return pc
}

// start runs the agent and waits until it is ready.
func (pc *powercut) start() (*exec.Cmd, *syncbuf.Buffer) {
	pc.t.Helper()
	cmd, out := pc.launch()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "msg=ready") {
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			cmd.Process.Kill()
			cmd.Wait()
			pc.t.Fatalf("agent not ready:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cmd, out
}

// launch starts the agent.
func (pc *powercut) launch() (*exec.Cmd, *syncbuf.Buffer) {
	pc.t.Helper()
	out := &syncbuf.Buffer{}
	cmd := exec.Command(pc.bin, "run", "-config", pc.config)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		pc.t.Fatal(err)
	}
	return cmd, out
}

// burst presents n cards, each a different one from the one before, with
// short random pauses, as a queue at the door does.
func (pc *powercut) burst(n int) {
	last := -1
	for range n {
		c := pc.rng.IntN(len(powercutCards))
		if c == last {
			c = (c + 1) % len(powercutCards)
		}
		last = c
		frame, err := rdm6300.Encode(powercutCards[c])
		if err != nil {
			pc.t.Fatal(err)
		}
		if _, err := pc.port.Write(bytes.Repeat(frame, 2)); err != nil {
			pc.t.Fatal(err)
		}
		time.Sleep(time.Duration(pc.rng.IntN(40)) * time.Millisecond)
	}
}

// logged returns the ids of the events in the agent's log.
func (pc *powercut) logged() map[string]bool {
	pc.t.Helper()
	out, err := exec.Command(pc.bin, "log", "-json", "-config", pc.config).Output()
	if err != nil {
		pc.t.Fatalf("punchclock log: %v\n%s", err, out)
	}
	ids := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var e store.LogEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			pc.t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if e.Event != nil {
			ids[e.Event.ID] = true
		}
	}
	return ids
}

// checkBackingBolt runs bbolt's check on the database as the disk holds
// it (the mount is down).
func (pc *powercut) checkBackingBolt() {
	pc.t.Helper()
	path := filepath.Join(pc.m.backing, "data", store.FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		pc.t.Fatalf("bbolt open after the cut: %v", err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			pc.t.Errorf("bbolt check after the cut: %v", err)
		}
		return nil
	})
	if err != nil {
		pc.t.Fatal(err)
	}
}

func TestPowerCut(t *testing.T) {
	cycles := 5
	if os.Getenv("PUNCHCLOCK_CHAOS") == "long" {
		cycles = 50
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	pc := newPowercut(t)
	pc.rng = rand.New(rand.NewPCG(seed, 0))
	cutRng := rand.New(rand.NewPCG(seed, 1)) // the burst goroutine has pc.rng
	partial, cutsWithData := 0, 0

	// The terminal is installed: the agent made its data directory and
	// files, and the box was shut down cleanly (unmount syncs all).
	cmd, _ := pc.start()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent exit: %v", err)
	}
	if err := pc.m.fs.Unmount(); err != nil {
		t.Fatal(err)
	}
	pc.m.mount()

	shown := map[string]string{} // id -> the cycle's note
	lost := map[string]string{}  // id -> when it was missed
	var held, syncs int64
	for cycle := 1; cycle <= cycles; cycle++ {
		n := 3 + pc.rng.IntN(8)
		// When to kill: in one cycle out of four while the agent starts
		// (and applies to bbolt what the last one journaled); in three out
		// of eight at a random moment during the burst or soon after; in
		// three out of eight at the first moment after a short delay when
		// the layer holds unsynced writes. In the long form, every tenth
		// cycle while the applier moves journaled punches to bbolt.
		var killAfter time.Duration
		waitHeld, starting := false, false
		switch mode := pc.rng.IntN(8); {
		case cycles >= 50 && cycle%10 == 0:
			waitHeld = true
			killAfter = store.DefaultApplyDelay - time.Duration(pc.rng.IntN(100))*time.Millisecond
		case mode < 2:
			starting = true
			killAfter = time.Duration(pc.rng.IntN(300)) * time.Millisecond
		case mode < 5:
			killAfter = time.Duration(pc.rng.IntN(n*25+150)) * time.Millisecond
		default:
			waitHeld = true
			killAfter = time.Duration(pc.rng.IntN(n*15)) * time.Millisecond
		}
		var cmd *exec.Cmd
		var out *syncbuf.Buffer
		if starting {
			cmd, out = pc.launch()
		} else {
			cmd, out = pc.start()
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			pc.burst(n)
		}()
		time.Sleep(killAfter)
		if waitHeld {
			for limit := time.Now().Add(300 * time.Millisecond); pc.m.fs.Stats().HeldBytes == 0 && time.Now().Before(limit); {
				time.Sleep(200 * time.Microsecond)
			}
		}
		// The cut follows the kill at once, without waiting for the
		// process to go: a sync the agent is in (FUSE lets a killed
		// process go only once its request is answered) then loses to
		// the cut, as it would to a power cut.
		cmd.Process.Signal(syscall.SIGKILL)
		st := pc.m.fs.Stats()
		// Every other cut finds part of the unsynced pages written back.
		cut := pc.m.fs.Cut
		if cutRng.IntN(2) == 0 {
			cut = func() error { return pc.m.fs.CutPartial(cutRng) }
			partial++
		}
		if err := cut(); err != nil {
			t.Fatalf("cycle %d: cut: %v", cycle, err)
		}
		cmd.Wait()
		held += st.HeldBytes
		if st.HeldBytes > 0 {
			cutsWithData++
		}
		syncs += st.Syncs
		<-done
		for _, mm := range punchLine.FindAllStringSubmatch(out.String(), -1) {
			shown[mm[2]] = fmt.Sprintf("cycle %d (%s)", cycle, mm[1])
		}
		if err := pc.m.fs.Unmount(); err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		pc.checkBackingBolt()
		pc.m.mount()
		// The technician's command reads the store (bbolt and the
		// journal) as the agent will find it.
		ids := pc.logged()
		for id, note := range shown {
			if !ids[id] && lost[id] == "" {
				lost[id] = fmt.Sprintf("%s shown in %s, missing after the cut of cycle %d", id, note, cycle)
			}
		}
		t.Logf("cycle %d: %d cards, killed after %v, %d punches shown so far, %d bytes unsynced at the cut",
			cycle, n, killAfter, len(shown), st.HeldBytes)
	}
	// A last start replays the journal into bbolt; everything is still there.
	cmd, _ = pc.start()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent exit: %v", err)
	}
	ids := pc.logged()
	for id, note := range shown {
		if !ids[id] && lost[id] == "" {
			lost[id] = fmt.Sprintf("%s shown in %s, missing after a clean restart", id, note)
		}
	}
	fmt.Printf("powercut: %d cycles (%d partial cuts), %d punches shown, %d survived, %d lost; %d cuts dropped %d unsynced bytes; %d syncs seen\n",
		cycles, partial, len(shown), len(shown)-len(lost), len(lost), cutsWithData, held, syncs)
	if len(lost) > 0 {
		var lines []string
		for _, l := range lost {
			lines = append(lines, l)
		}
		t.Fatalf("punches shown before the cut and lost (seed %d):\n%s", seed, strings.Join(lines, "\n"))
	}
	if len(shown) == 0 {
		t.Fatal("no punch was shown: the test proved nothing")
	}
}

// TestPowerCutFirstBoot cuts the power right after the first punch of a
// terminal that was never shut down cleanly: its data directory, bbolt
// file and journals were all created by this run of the agent.
//
// It mounts under the strict POSIX rule (a new file's entry is durable only
// once its directory was fsynced; ext4 and xfs are kinder): the store must
// sync the data directory, and the one above it when it created it.
// Before it did, everything was lost here (docs/powercut.md).
func TestPowerCutFirstBoot(t *testing.T) {
	pc := newPowercut(t)
	cmd, out := pc.start()
	frame, err := rdm6300.Encode(powercutCards[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.port.Write(frame); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !punchLine.MatchString(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no decision:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if err := pc.m.fs.Cut(); err != nil {
		t.Fatal(err)
	}
	id := punchLine.FindStringSubmatch(out.String())[2]
	if err := pc.m.fs.Unmount(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pc.m.backing, "data", store.FileName)); err != nil {
		t.Fatalf("the database after the cut: %v", err)
	}
	pc.checkBackingBolt()
	pc.m.mount()
	if ids := pc.logged(); !ids[id] {
		t.Fatalf("punch %s shown before the cut is not in the log (%d events)", id, len(ids))
	}
}
