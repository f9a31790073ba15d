package sdnotify

import (
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// listen stands in for systemd: a datagram socket that receives states.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func receive(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotifySendsEachStateAsOneDatagram(t *testing.T) {
	for _, name := range []string{
		filepath.Join(t.TempDir(), "notify"),
		"@punchclock-sdnotify-test-" + t.Name(), // abstract, as systemd uses
	} {
		t.Run(name, func(t *testing.T) {
			srv := listen(t, name)
			n, err := New(env(map[string]string{"NOTIFY_SOCKET": name}), 1)
			if err != nil {
				t.Fatal(err)
			}
			if !n.Enabled() {
				t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
			}
			for _, s := range []string{Ready, Watchdog, Stopping} {
				if err := n.Notify(s); err != nil {
					t.Fatal(err)
				}
				if got := receive(t, srv); got != s {
					t.Fatalf("systemd got %q, want %q", got, s)
				}
			}
		})
	}
}

func TestNotifyWithoutSocketIsSilent(t *testing.T) {
	n, err := New(env(nil), 1)
	if err != nil {
		t.Fatal(err)
	}
	if n.Enabled() || n.WatchdogInterval() != 0 {
		t.Fatalf("Enabled %v, WatchdogInterval %v without systemd", n.Enabled(), n.WatchdogInterval())
	}
	if err := n.Notify(Ready); err != nil {
		t.Fatal(err)
	}
}

func TestNotifyToMissingSocketFails(t *testing.T) {
	name := filepath.Join(t.TempDir(), "gone")
	n, err := New(env(map[string]string{"NOTIFY_SOCKET": name}), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(Watchdog); err == nil {
		t.Fatal("Notify to a socket nobody listens on: no error")
	}
}

func TestWatchdogInterval(t *testing.T) {
	for _, c := range []struct {
		usec, pid string
		want      time.Duration
		err       error
	}{
		{"60000000", "", 60 * time.Second, nil},
		{"60000000", "42", 60 * time.Second, nil}, // ours
		{"60000000", "43", 0, nil},                // another process's
		{"", "", 0, nil},
		{"0", "", 0, ErrWatchdogUsec},
		{"-5", "", 0, ErrWatchdogUsec},
		{"60s", "", 0, ErrWatchdogUsec},
	} {
		n, err := New(env(map[string]string{"WATCHDOG_USEC": c.usec, "WATCHDOG_PID": c.pid}), 42)
		if !errors.Is(err, c.err) {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: err %v, want %v", c.usec, c.pid, err, c.err)
			continue
		}
		if err == nil && n.WatchdogInterval() != c.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: interval %v, want %v", c.usec, c.pid, n.WatchdogInterval(), c.want)
		}
	}
}
