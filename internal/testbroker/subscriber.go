package testbroker

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// A Message is one PUBLISH a Subscriber received.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
	Dup      bool
}

func (m Message) String() string {
	r := ""
	if m.Retained {
		r = " (retained)"
	}
	p := string(m.Payload)
	if len(p) > 120 {
		p = p[:120] + "…"
	}
	return fmt.Sprintf("%s%s: %s", m.Topic, r, p)
}

// A Subscriber is a paho client with a persistent session (CleanSession
// false, fixed client id) subscribed at QoS 1 to one topic filter. It
// reconnects on its own (for instance across Broker.Stop and Start) and
// subscribes again on every connect, so QoS 1 messages the broker queued
// for it while it was away arrive too. It records every message in arrival
// order.
type Subscriber struct {
	client mqtt.Client
	filter string

	mu     sync.Mutex
	msgs   []Message
	signal chan struct{} // closed and replaced on each new message
}

// subscribeTimeout bounds the initial connect and SUBACK.
const subscribeTimeout = 10 * time.Second

// NewSubscriber connects to brokerURL as clientID, subscribes to filter at
// QoS 1 and returns once the broker has acknowledged the subscription. It is
// disconnected by t.Cleanup.
func NewSubscriber(t testing.TB, brokerURL, clientID, filter string) *Subscriber {
	t.Helper()
	s := &Subscriber{filter: filter, signal: make(chan struct{})}
	opts := mqtt.NewClientOptions().
		AddBroker(brokerURL).
		SetClientID(clientID).
		SetCleanSession(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(500 * time.Millisecond).
		SetConnectTimeout(5 * time.Second).
		SetDefaultPublishHandler(s.record).
		SetOnConnectHandler(func(c mqtt.Client) {
			// Runs in its own goroutine; the token is not waited on so a
			// connection lost meanwhile cannot wedge it.
			c.Subscribe(filter, 1, s.record)
		})
	s.client = mqtt.NewClient(opts)
	t.Cleanup(s.Close)

	tok := s.client.Connect()
	if !tok.WaitTimeout(subscribeTimeout) || tok.Error() != nil {
		t.Fatalf("testbroker: subscriber %s: connect to %s: %v", clientID, brokerURL, tokErr(tok))
	}
	// Subscribe again and wait, so the subscription is known to be active
	// when we return (the OnConnect one is not waited on).
	st := s.client.Subscribe(filter, 1, s.record)
	if !st.WaitTimeout(subscribeTimeout) || st.Error() != nil {
		t.Fatalf("testbroker: subscriber %s: subscribe %s: %v", clientID, filter, tokErr(st))
	}
	return s
}

// Subscribe is NewSubscriber on b with a client id made from the test name
// and filter.
func (b *Broker) Subscribe(t testing.TB, filter string) *Subscriber {
	t.Helper()
	id := "sub-" + strings.NewReplacer("/", "_", "#", "H", "+", "P", " ", "_").Replace(t.Name()+"-"+filter)
	if len(id) > 64 {
		id = id[len(id)-64:]
	}
	return NewSubscriber(t, b.URL(), id, filter)
}

func tokErr(tok mqtt.Token) error {
	if err := tok.Error(); err != nil {
		return err
	}
	return fmt.Errorf("timed out after %v", subscribeTimeout)
}

func (s *Subscriber) record(_ mqtt.Client, m mqtt.Message) {
	msg := Message{
		Topic:    m.Topic(),
		Payload:  append([]byte(nil), m.Payload()...),
		Retained: m.Retained(),
		Dup:      m.Duplicate(),
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, msg)
	close(s.signal)
	s.signal = make(chan struct{})
	s.mu.Unlock()
}

// Messages returns a copy of what was received so far, in arrival order.
func (s *Subscriber) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Len is the number of messages received so far.
func (s *Subscriber) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// WaitFor waits until at least n messages have arrived and returns all of
// them. On timeout it fails the test, listing what did arrive.
func (s *Subscriber) WaitFor(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	return s.WaitUntil(t, timeout, fmt.Sprintf("%d messages", n), func(ms []Message) bool { return len(ms) >= n })
}

// WaitUntil waits until cond holds for the messages received so far and
// returns them. On timeout it fails the test with what (a description of the
// condition) and the messages that did arrive.
func (s *Subscriber) WaitUntil(t testing.TB, timeout time.Duration, what string, cond func([]Message) bool) []Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		msgs := append([]Message(nil), s.msgs...)
		signal := s.signal
		s.mu.Unlock()
		if cond(msgs) {
			return msgs
		}
		select {
		case <-signal:
		case <-deadline.C:
			t.Fatalf("testbroker: subscriber on %s: waited %v for %s; got %d:\n%s", s.filter, timeout, what, len(msgs), list(msgs))
			return nil
		}
	}
}

func list(msgs []Message) string {
	const max = 50
	var b strings.Builder
	for i, m := range msgs {
		if i == max {
			fmt.Fprintf(&b, "  … and %d more\n", len(msgs)-max)
			break
		}
		fmt.Fprintf(&b, "  %d %s\n", i, m)
	}
	return b.String()
}

// Close disconnects the subscriber. Its session stays at the broker. Close
// is safe to call more than once.
func (s *Subscriber) Close() {
	s.client.Disconnect(250)
}

// Publish sends one QoS 1 message to the broker with a throwaway clean
// session client and waits for the broker's PUBACK.
func (b *Broker) Publish(t testing.TB, topic string, payload []byte, retained bool) {
	t.Helper()
	Publish(t, b.URL(), topic, payload, retained)
}

// Publish sends one QoS 1 message to brokerURL with a throwaway clean
// session client and waits for the broker's PUBACK.
func Publish(t testing.TB, brokerURL, topic string, payload []byte, retained bool) {
	t.Helper()
	opts := mqtt.NewClientOptions().
		AddBroker(brokerURL).
		SetClientID(fmt.Sprintf("pub-%d", time.Now().UnixNano())).
		SetCleanSession(true).
		SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(subscribeTimeout) || tok.Error() != nil {
		t.Fatalf("testbroker: publish: connect to %s: %v", brokerURL, tokErr(tok))
	}
	defer c.Disconnect(250)
	pt := c.Publish(topic, 1, retained, payload)
	if !pt.WaitTimeout(subscribeTimeout) || pt.Error() != nil {
		t.Fatalf("testbroker: publish to %s: %v", topic, tokErr(pt))
	}
}
