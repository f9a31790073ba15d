package uplink

import (
	"bytes"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/testbroker"
)

// Commands reach OnCommand in order and its replies come back on the
// replies topic, not retained; an oversized command is answered without
// reaching OnCommand; OnConnect may publish at once.
func TestCommandsAndReplies(t *testing.T) {
	b := testbroker.Start(t)
	sub := b.Subscribe(t, base+"#")
	var calls atomic.Int32
	var connects atomic.Int32
	var afters atomic.Int32
	u := start(t, b.URL(), newMemOutbox(), func(c *Config) {
		c.OnCommand = func(p []byte) ([]byte, func()) {
			calls.Add(1)
			if bytes.Equal(p, []byte("silent")) {
				return nil, nil
			}
			return append([]byte("re:"), p...), func() { afters.Add(1) }
		}
		c.OnConnect = func() { connects.Add(1) }
	})
	eventually(t, 5*time.Second, "connected", u.Connected)
	if err := u.PublishAsync(TopicRosterRequest, []byte(`{"id":"r1"}`)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"one", "silent", "two", strings.Repeat("x", MaxCommandPayload+1)} {
		b.Publish(t, base+TopicCommands, []byte(p), false)
	}
	msgs := sub.WaitUntil(t, 5*time.Second, "3 replies", func(ms []testbroker.Message) bool {
		n := 0
		for _, m := range ms {
			if m.Topic == base+TopicReplies {
				n++
			}
		}
		return n == 3
	})
	var replies []string
	var request bool
	for _, m := range msgs {
		switch m.Topic {
		case base + TopicReplies:
			if m.Retained {
				t.Errorf("reply %s retained", m.Payload)
			}
			replies = append(replies, string(m.Payload))
		case base + TopicRosterRequest:
			request = string(m.Payload) == `{"id":"r1"}`
		}
	}
	if len(replies) != 3 || replies[0] != "re:one" || replies[1] != "re:two" ||
		!strings.Contains(replies[2], `"ok":false`) || !strings.Contains(replies[2], "exceeds") {
		t.Fatalf("replies = %.200q", replies)
	}
	if !request {
		t.Errorf("roster request not published")
	}
	if calls.Load() != 3 || connects.Load() != 1 || afters.Load() != 2 {
		t.Errorf("OnCommand called %d times (want 3), after %d (want 2), OnConnect %d (want 1)", calls.Load(), afters.Load(), connects.Load())
	}
}

func TestPublishAsyncOffline(t *testing.T) {
	u, err := New(Config{Broker: "tcp://127.0.0.1:1", TopicPrefix: prefix, DeviceID: device, Outbox: newMemOutbox()})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.PublishAsync(TopicRosterRequest, nil); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("PublishAsync without a session = %v, want ErrNotConnected", err)
	}
}
