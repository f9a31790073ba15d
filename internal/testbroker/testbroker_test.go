package testbroker

import (
	"fmt"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/punchclock/punchclock/internal/mosquitto"
)

func connect(t *testing.T, opts *mqtt.ClientOptions) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// A QoS 1 message published while a persistent subscriber is away, and a
// retained message, both survive a broker restart.
func TestRestartKeepsSessionsAndRetained(t *testing.T) {
	b := Start(t)
	url := b.URL()
	if !strings.HasPrefix(url, "tcp://127.0.0.1:") {
		t.Fatalf("URL() = %q", url)
	}
	sub := b.Subscribe(t, "t/#")
	b.Publish(t, "t/retained", []byte("r"), true)
	sub.WaitFor(t, 1, 5*time.Second)
	sub.Close()

	b.Publish(t, "t/queued", []byte("q"), false)
	b.Stop()
	if b.Running() {
		t.Fatal("Running after Stop")
	}
	b.Stop() // no-op
	b.Start()
	if b.URL() != url {
		t.Fatalf("URL changed across restart: %s -> %s", url, b.URL())
	}

	// Same client id: the session, with the queued message, is back.
	sub2 := NewSubscriber(t, b.URL(), "sub-"+t.Name()+"-t_H", "t/#")
	msgs := sub2.WaitUntil(t, 5*time.Second, "queued message", func(ms []Message) bool {
		for _, m := range ms {
			if m.Topic == "t/queued" && string(m.Payload) == "q" {
				return true
			}
		}
		return false
	})
	_ = msgs
	if log := b.Log(); !strings.Contains(log, "mosquitto version") {
		t.Fatalf("broker log lacks the start banner:\n%s", log)
	}

	// A fresh subscriber gets the retained message from the database.
	fresh := NewSubscriber(t, b.URL(), "fresh", "t/retained")
	got := fresh.WaitFor(t, 1, 5*time.Second)
	if !got[0].Retained || string(got[0].Payload) != "r" {
		t.Fatalf("retained after restart: %v", got[0])
	}
}

// A slow subscriber gets every one of many QoS 1 messages (no queue limit).
func TestNoQueueLimit(t *testing.T) {
	b := Start(t)
	sub := b.Subscribe(t, "bulk")
	sub.Close()
	const n = 1500 // above mosquitto's default max_queued_messages of 1000
	pub := connect(t, mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("publisher"))
	for i := range n {
		tok := pub.Publish("bulk", 1, false, fmt.Sprint(i))
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	back := NewSubscriber(t, b.URL(), "sub-"+t.Name()+"-bulk", "bulk")
	back.WaitFor(t, n, 20*time.Second)
}

// The subscriber reconnects and resubscribes across a broker restart.
func TestSubscriberReconnects(t *testing.T) {
	b := Start(t)
	sub := b.Subscribe(t, "x")
	b.Stop()
	b.Start()
	// Give the subscriber its chance to reconnect; the message is queued in
	// its session either way.
	b.Publish(t, "x", []byte("after"), false)
	got := sub.WaitFor(t, 1, 10*time.Second)
	if string(got[0].Payload) != "after" {
		t.Fatalf("got %v", got)
	}
}

func TestProxyDropFiresWill(t *testing.T) {
	b := Start(t)
	p := NewProxy(t, b.Addr())
	sub := b.Subscribe(t, "will")
	connect(t, mqtt.NewClientOptions().AddBroker(p.URL()).SetClientID("victim").
		SetAutoReconnect(false).SetWill("will", "gone", 1, false))
	p.Drop()
	got := sub.WaitFor(t, 1, 5*time.Second)
	if string(got[0].Payload) != "gone" {
		t.Fatalf("got %v", got)
	}
}

func TestProxyHoldAndDown(t *testing.T) {
	b := Start(t)
	p := NewProxy(t, b.Addr())
	sub := NewSubscriber(t, p.URL(), "via-proxy", "h")
	p.Hold()
	b.Publish(t, "h", []byte("1"), false)
	time.Sleep(200 * time.Millisecond)
	if n := sub.Len(); n != 0 {
		t.Fatalf("received %d while held", n)
	}
	p.Release()
	sub.WaitFor(t, 1, 5*time.Second)

	p.SetDown(true)
	b.Publish(t, "h", []byte("2"), false)
	time.Sleep(300 * time.Millisecond)
	if n := sub.Len(); n != 1 {
		t.Fatalf("received %d while down", n)
	}
	p.SetDown(false)
	sub.WaitFor(t, 2, 10*time.Second)
}

func TestFindBinaryMissing(t *testing.T) {
	if _, err := mosquitto.Find("/nonexistent/mosquitto"); err == nil {
		t.Fatal("want an error for a missing binary")
	}
}
