package main

// The status page in a real browser: the built agent serves it, Debian's
// chromium (installed by scripts/setup.sh) renders it headless, runs its
// script against /api/status, and the test reads the page it built.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/testbroker"
)

// chromium renders url headless and returns the DOM after its script
// ran (and writes a screenshot when shot is set).
func chromium(t *testing.T, url, shot string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium: %v (scripts/setup.sh installs Debian's chromium)", err)
	}
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=3000", "--window-size=1000,900"}
	if shot != "" {
		args = append(args, "--screenshot="+shot)
	} else {
		args = append(args, "--dump-dom")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append(args, url)...).Output()
	if err != nil {
		t.Fatalf("chromium %s: %v", url, err)
	}
	return string(out)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestE2EStatusPageInBrowser(t *testing.T) {
	b := testbroker.Start(t)
	port := freePort(t)
	tm := newTerminalWith(t, b.URL(), termOptions{extra: fmt.Sprintf("\n[http]\nlisten = \"127.0.0.1:%d\"\n", port)})
	tm.start()
	tm.badge("0A00123456") // Anna in
	tm.badge(unknownCard)
	// The roll call from the running agent, through its control socket.
	if out, err := exec.Command(binary, "present", "-config", tm.config, "-json").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), `"employee_id": "E100"`) || !strings.Contains(string(out), "Brugsestraat") {
		t.Errorf("present while the agent runs: %v\n%s", err, out)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	dom := chromium(t, url, "")
	for _, want := range []string{
		"punchclock door-1",    // the heading, set by the script from the JSON
		"Anna de Vries",        // who is in
		"Brugsestraat",         // her department
		">front<", ">rdm6300<", // the reader's row
		">online<", ">connected<", // its state, the uplink
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q:\n%s", want, dom)
		}
	}
	if !strings.Contains(dom, `<div id="updated" class="muted">updated `) {
		t.Errorf("the page's script did not read /api/status:\n%s", dom)
	}
	shot := filepath.Join(tm.dir, "statuspage.png")
	if dir := os.Getenv("PUNCHCLOCK_SCREENSHOTS"); dir != "" {
		shot = filepath.Join(dir, "statuspage.png")
	}
	chromium(t, url, shot)
	t.Logf("screenshot: %s", shot)
	tm.stop()
}
