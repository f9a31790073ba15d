// Package testbroker runs a real mosquitto broker for tests, with helpers
// around it: a persistent-session Subscriber that records what it receives,
// a one-shot Publish, and a TCP Proxy that can cut or stall a client's
// connection.
//
// It is for tests only. A missing mosquitto fails the test (run `make test`,
// which installs it); it never skips.
package testbroker

import (
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/punchclock/punchclock/internal/mosquitto"
)

// Options tune the broker. The zero value is what most tests want.
type Options struct {
	// Binary is the mosquitto executable; empty means look in PATH, then
	// /usr/sbin/mosquitto.
	Binary string
	// Debug turns on mosquitto's packet-level log (large; for debugging).
	Debug bool
	// ExtraConfig is appended verbatim to the generated mosquitto.conf.
	ExtraConfig string
}

// A Broker is one mosquitto process listening on a fixed loopback port. It
// can be stopped and started again on the same port; its persistence file
// (sessions, queued QoS 1 messages, retained messages) lives in the test's
// temporary directory and survives a restart.
type Broker struct {
	tb  testing.TB
	cfg mosquitto.Config

	mu   sync.Mutex
	proc *mosquitto.Process // nil while stopped
}

// Start runs mosquitto with default Options. The broker is stopped by
// t.Cleanup.
func Start(t testing.TB) *Broker {
	t.Helper()
	return StartWithOptions(t, Options{})
}

// StartWithOptions runs mosquitto with opts. The broker is stopped by
// t.Cleanup, and its log is printed if the test failed.
func StartWithOptions(t testing.TB, opts Options) *Broker {
	t.Helper()
	bin, err := mosquitto.Find(opts.Binary)
	if err != nil {
		t.Fatalf("testbroker: %v; run `make test`, which installs mosquitto (apt-get install mosquitto)", err)
	}
	b := &Broker{tb: t, cfg: mosquitto.Config{
		Binary: bin, Dir: t.TempDir(), Persistence: true, Debug: opts.Debug, Extra: opts.ExtraConfig,
	}}
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			b.dumpLog()
		}
	})
	// A free port can be taken by someone else between our probe and
	// mosquitto's bind; try a few.
	for attempt := 0; ; attempt++ {
		if b.cfg.Port, err = mosquitto.FreePort(); err != nil {
			t.Fatalf("testbroker: %v", err)
		}
		err := b.start()
		if err == nil {
			return b
		}
		if attempt == 2 {
			t.Fatalf("testbroker: %v", err)
		}
	}
}

// start launches mosquitto and waits until it accepts TCP connections.
func (b *Broker) start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc != nil {
		return nil
	}
	p, err := mosquitto.Run(b.cfg)
	if err != nil {
		return err
	}
	b.proc = p
	return nil
}

// Start runs the broker again on the same port after Stop. It is a no-op
// while the broker runs.
func (b *Broker) Start() {
	b.tb.Helper()
	if err := b.start(); err != nil {
		b.tb.Fatalf("testbroker: restart: %v", err)
	}
}

// Stop terminates mosquitto with SIGTERM and waits for it to exit (it
// writes its persistence database on the way out). Clients see their
// connections closed. Stop is a no-op when the broker is not running.
func (b *Broker) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc == nil {
		return
	}
	if err := b.proc.Stop(); err != nil {
		b.tb.Errorf("testbroker: %v", err)
	}
	b.proc = nil
}

// Running reports whether mosquitto is running.
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.proc != nil
}

// URL is the broker's address for MQTT clients: tcp://127.0.0.1:PORT.
func (b *Broker) URL() string { return "tcp://" + b.addr() }

// Addr is the broker's host:port.
func (b *Broker) Addr() string { return b.addr() }

func (b *Broker) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.cfg.Port)) }

// Log returns mosquitto's log so far.
func (b *Broker) Log() string { return b.readLog() }

func (b *Broker) readLog() string { return b.cfg.ReadLog() }

func (b *Broker) dumpLog() {
	b.tb.Logf("testbroker: mosquitto log (%s):\n%s", b.cfg.LogPath(), b.readLog())
}
