package agent

import (
	"net"
	"testing"
	"time"
)

// A technician's client that is connected but silent (or a
// `punchclock log ... | less` that stopped reading, with its 5-minute
// deadline) must block neither other clients nor the agent's shutdown.

// SIGTERM must not wait for a control client.
func TestShutdownNotBlockedByControlClient(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	h := startAgent(t, cfg)
	c := dialControl(t, SocketPath(cfg))
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // accepted; handleControl waits for a line
	start := time.Now()
	h.stop()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Run took %v to return after cancel while a control client was connected", d)
	}
}

// `punchclock status` must answer while another client is connected.
func TestStatusNotBlockedByOtherClient(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	startAgent(t, cfg)
	c := dialControl(t, SocketPath(cfg))
	defer c.Close()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	_, err := QueryStatus(cfg)
	if d := time.Since(start); err != nil || d > time.Second {
		t.Fatalf("QueryStatus = %v after %v while another control client was connected", err, d)
	}
}

// dialControl connects once Run has started listening.
func dialControl(t *testing.T, path string) net.Conn {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
