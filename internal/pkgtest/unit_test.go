package pkgtest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// verify runs systemd-analyze verify on unit inside root, to which it
// first copies this host's targets and slices (what the unit's
// dependencies resolve to), and returns what it printed.
func verify(t *testing.T, root, unit string) (string, error) {
	t.Helper()
	for _, pat := range []string{"*.target", "*.slice"} {
		m, _ := filepath.Glob("/lib/systemd/system/" + pat)
		if len(m) == 0 {
			t.Fatalf("no /lib/systemd/system/%s on this host", pat)
		}
		run(t, "cp", append(append([]string{"-a"}, m...), filepath.Join(root, "lib/systemd/system"))...)
	}
	out, err := exec.Command("systemd-analyze", "verify", "--root="+root, unit).CombinedOutput()
	return string(out), err
}

func TestUnitVerifies(t *testing.T) {
	root := fakeRoot(t)
	dpkg(t, root, "-i", release.debs["amd64"])
	out, err := verify(t, root, "/lib/systemd/system/punchclock.service")
	if err != nil || out != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	unit, err := os.ReadFile(filepath.Join(root, "lib/systemd/system/punchclock.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"Type=notify", "WatchdogSec=60", "Restart=always", "User=punchclock",
		"ExecStart=/usr/bin/punchclock run -config /etc/punchclock/punchclock.toml",
		"WantedBy=multi-user.target",
	} {
		if !bytes.Contains(unit, []byte("\n"+line+"\n")) {
			t.Errorf("unit lacks %q", line)
		}
	}

	// The check can fail: a misspelt key and a missing binary are
	// reported.
	bad := bytes.Replace(unit, []byte("WatchdogSec=60"), []byte("WatchdogSecs=60"), 1)
	if err := os.WriteFile(filepath.Join(root, "lib/systemd/system/bad.service"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := verify(t, root, "/lib/systemd/system/bad.service"); !strings.Contains(out, "WatchdogSecs") {
		t.Errorf("a misspelt key passed systemd-analyze verify: %q", out)
	}
	if err := os.Remove(filepath.Join(root, "usr/bin/punchclock")); err != nil {
		t.Fatal(err)
	}
	if out, err := verify(t, root, "/lib/systemd/system/punchclock.service"); err == nil || !strings.Contains(out, "/usr/bin/punchclock") {
		t.Errorf("a missing binary passed systemd-analyze verify: %v %q", err, out)
	}
}

// TestAgentNotifiesSystemd runs the release binary as systemd would run
// the unit (NOTIFY_SOCKET, WATCHDOG_USEC) and listens as systemd: READY=1
// once started, WATCHDOG=1 from the writer loop (every 10 s), STOPPING=1
// on SIGTERM. It takes one keep-alive period of real time: the writer's
// tick is not injectable from outside the process.
func TestAgentNotifiesSystemd(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cfg := filepath.Join(dir, "punchclock.toml")
	if err := os.WriteFile(cfg, []byte("device_id = \"door-9\"\ndata_dir = \""+filepath.Join(dir, "data")+"\"\ntimezone = \"UTC\"\n[mqtt]\nbroker = \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(release.dir, "punchclock-linux-amd64"), "run", "-config", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=60000000")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			<-done
		}
	}()
	next := func(within time.Duration) string {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(within))
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("waiting for a notification: %v\nagent: %s", err, stderr.String())
		}
		return string(buf[:n])
	}
	if got := next(10 * time.Second); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	start := time.Now()
	if got := next(15 * time.Second); got != "WATCHDOG=1" {
		t.Fatalf("second notification %q, want WATCHDOG=1", got)
	}
	t.Logf("first keep-alive %v after READY", time.Since(start).Round(time.Millisecond))
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := next(10 * time.Second); got != "STOPPING=1" {
		t.Fatalf("after SIGTERM %q, want STOPPING=1", got)
	}
	select {
	case err := <-done:
		exited = true
		if err != nil {
			t.Fatalf("agent exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop within 30 s of SIGTERM")
	}
}
