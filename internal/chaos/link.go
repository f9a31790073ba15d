// Package chaos is the fault suite: the built agent binary on real
// pseudo-terminals, against real brokers (mosquitto, nats-server's MQTT
// interface, mochi-mqtt embedded), with Shopify's toxiproxy embedded in the
// test process between agent and broker. Its tests kill the agent with
// SIGKILL during punch bursts, cut, stall and slow the network, and restart
// brokers, then check that every decision the agent reported is in its log
// and reached a consumer once after dedupe by id. `make chaos` runs the long
// form (PUNCHCLOCK_CHAOS=long); `make test` runs a short one.
//
// The helpers here (Link, Terminal, the brokers, Verify) are for these
// tests only; they fail the test on error, never skip.
package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// A Link is one toxiproxy proxy, run inside the test process, forwarding a
// loopback port to a broker. Cut closes it (connections refused and the
// open ones closed), Restore opens it again on the same port, and toxics
// (latency, bandwidth, timeout) shape what flows through it.
type Link struct {
	tb    testing.TB
	proxy *toxiproxy.Proxy

	mu  sync.Mutex
	cut bool
}

// NewLink starts a proxy on a free loopback port to upstream (host:port).
// It is stopped by t.Cleanup.
func NewLink(t testing.TB, upstream string) *Link {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "broker", "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("chaos: toxiproxy start: %v", err)
	}
	l := &Link{tb: t, proxy: p}
	t.Cleanup(p.Stop)
	return l
}

// URL is the link's address for MQTT clients.
func (l *Link) URL() string { return "tcp://" + l.Addr() }

// Addr is the link's host:port (fixed for the link's life).
func (l *Link) Addr() string {
	l.proxy.Lock()
	defer l.proxy.Unlock()
	return l.proxy.Listen
}

// Cut stops the link: new connections are refused and open ones closed.
// It is a no-op while cut.
func (l *Link) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return
	}
	l.proxy.Stop()
	l.cut = true
}

// Restore listens again on the same port after Cut.
func (l *Link) Restore() {
	l.tb.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.cut {
		return
	}
	if err := l.proxy.Start(); err != nil {
		l.tb.Fatalf("chaos: toxiproxy restore on %s: %v", l.proxy.Listen, err)
	}
	l.cut = false
}

// Toxic adds a toxic named name of kind typ ("latency", "bandwidth",
// "timeout", …) on stream ("upstream": agent to broker, "downstream":
// broker to agent) with toxiproxy's attributes.
func (l *Link) Toxic(name, typ, stream string, attrs map[string]any) {
	l.tb.Helper()
	body, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "toxicity": 1.0, "attributes": attrs})
	if err != nil {
		l.tb.Fatalf("chaos: toxic %s: %v", name, err)
	}
	if _, err := l.proxy.Toxics.AddToxicJson(strings.NewReader(string(body))); err != nil {
		l.tb.Fatalf("chaos: add toxic %s: %v", name, err)
	}
}

// Heal removes the named toxics.
func (l *Link) Heal(names ...string) {
	l.tb.Helper()
	for _, n := range names {
		if err := l.proxy.Toxics.RemoveToxic(context.Background(), n); err != nil {
			l.tb.Fatalf("chaos: remove toxic %s: %v", n, err)
		}
	}
}

// String names the link for logs.
func (l *Link) String() string { return fmt.Sprintf("toxiproxy %s", l.Addr()) }
