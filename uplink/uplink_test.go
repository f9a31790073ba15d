package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/testbroker"
)

const (
	prefix = "pc"
	device = "door-1"
	base   = prefix + "/" + device + "/"
)

// start builds and starts an Uplink on brokerURL draining ob; mutate may
// adjust the config. Close is registered with t.Cleanup.
func start(t *testing.T, brokerURL string, ob Outbox, mutate func(*Config)) *Uplink {
	t.Helper()
	cfg := Config{
		Broker:               brokerURL,
		TopicPrefix:          prefix,
		DeviceID:             device,
		Outbox:               ob,
		PollInterval:         50 * time.Millisecond,
		MaxReconnectInterval: 300 * time.Millisecond,
		Logger:               testLogger(t),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

// testLogger writes the uplink's log into the test's log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// captureLogger is testLogger that also keeps every line for the test to
// inspect.
func captureLogger(t *testing.T) (*slog.Logger, *logLines) {
	l := &logLines{}
	return slog.New(slog.NewTextHandler(tWriter{t: t, keep: l}, &slog.HandlerOptions{Level: slog.LevelDebug})), l
}

type logLines struct {
	mu    sync.Mutex
	lines []string
}

// all returns the lines logged so far.
func (l *logLines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// matching returns the lines logged so far that contain every one of subs.
func (l *logLines) matching(subs ...string) []string {
	var out []string
	for _, line := range l.all() {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

type tWriter struct {
	t    *testing.T
	keep *logLines
}

func (w tWriter) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	w.t.Log(line)
	if w.keep != nil {
		w.keep.mu.Lock()
		w.keep.lines = append(w.keep.lines, line)
		w.keep.mu.Unlock()
	}
	return len(p), nil
}

// eventually polls cond until it holds or fails the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEmpty waits until the outbox is empty.
func waitEmpty(t *testing.T, ob *memOutbox, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		changed, n := ob.wait()
		if n == 0 {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("outbox still holds %d rows after %v", n, timeout)
		}
	}
}

// seqs decodes the "seq" of each outbox message received, in arrival order.
func seqs(t *testing.T, msgs []testbroker.Message) []uint64 {
	t.Helper()
	var out []uint64
	for _, m := range msgs {
		if !strings.HasSuffix(m.Topic, "/"+KindEvents) && !strings.HasSuffix(m.Topic, "/"+KindShifts) {
			continue
		}
		var p struct {
			Seq  uint64 `json:"seq"`
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatalf("payload %q: %v", m.Payload, err)
		}
		if m.Topic != base+p.Kind {
			t.Fatalf("row %d of kind %s published on %s", p.Seq, p.Kind, m.Topic)
		}
		if m.Retained {
			t.Fatalf("row %d published retained", p.Seq)
		}
		out = append(out, p.Seq)
	}
	return out
}

// distinct counts the distinct values in s.
func distinct(s []uint64) map[uint64]bool {
	m := make(map[uint64]bool, len(s))
	for _, v := range s {
		m[v] = true
	}
	return m
}

func TestNewValidates(t *testing.T) {
	good := func() Config {
		return Config{Broker: "tcp://127.0.0.1:1883", TopicPrefix: "pc", DeviceID: "d1", Outbox: newMemOutbox()}
	}
	for name, mutate := range map[string]func(*Config){
		"no broker":        func(c *Config) { c.Broker = "" },
		"ws broker":        func(c *Config) { c.Broker = "ws://host:80" },
		"no host":          func(c *Config) { c.Broker = "tcp://:1883" },
		"creds in url":     func(c *Config) { c.Broker = "tcp://u:secret@host" },
		"no prefix":        func(c *Config) { c.TopicPrefix = "" },
		"wildcard prefix":  func(c *Config) { c.TopicPrefix = "a/#" },
		"trailing slash":   func(c *Config) { c.TopicPrefix = "a/" },
		"no device":        func(c *Config) { c.DeviceID = "" },
		"slash in device":  func(c *Config) { c.DeviceID = "a/b" },
		"no outbox":        func(c *Config) { c.Outbox = nil },
		"window too large": func(c *Config) { c.Window = 70000 },
	} {
		t.Run(name, func(t *testing.T) {
			c := good()
			mutate(&c)
			_, err := New(c)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("New: %v, want ErrConfig", err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
	c := good()
	c.Password = "secret"
	if s := fmt.Sprint(c); strings.Contains(s, "secret") {
		t.Fatalf("Config prints its password: %s", s)
	}
	u, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	if u.cfg.ClientID != "punchclock-d1" || u.cfg.Window != DefaultWindow {
		t.Fatalf("defaults: client id %q window %d", u.cfg.ClientID, u.cfg.Window)
	}
}

// Rows go out in outbox order on their kind's topic, and none is reported
// Sent while the broker's PUBACKs are held back.
func TestPublishesInOrderSentOnlyAfterAck(t *testing.T) {
	b := testbroker.Start(t)
	p := testbroker.NewProxy(t, b.Addr())
	sub := b.Subscribe(t, base+"+")
	ob := newMemOutbox()
	var acked sync.Map
	u := start(t, p.URL(), ob, func(c *Config) {
		c.Window = 16
		c.OnAcked = func(n int, at time.Time) { acked.Store(at, n) }
	})
	eventually(t, 5*time.Second, "connected", u.Connected)
	sub.WaitFor(t, 1, 5*time.Second) // retained status: the session is fully up

	p.Hold() // nothing reaches the broker, no PUBACK comes back
	const n = 300
	ob.addN(n)
	u.Notify()
	time.Sleep(300 * time.Millisecond)
	if got := ob.len(); got != n {
		t.Fatalf("%d rows reported Sent without a PUBACK", n-got)
	}
	p.Release()
	waitEmpty(t, ob, 10*time.Second)

	msgs := sub.WaitUntil(t, 10*time.Second, "all rows", func(ms []testbroker.Message) bool {
		return len(seqs(t, ms)) >= n
	})
	got := seqs(t, msgs)
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("arrival %d is seq %d; want outbox order (got %v…)", i, s, got[:min(len(got), i+5)])
		}
	}
	if r := ob.removedSeqs(); len(r) != n || len(distinct(r)) != n {
		t.Fatalf("Sent %d rows (%d distinct), want %d", len(r), len(distinct(r)), n)
	}
	ob.mu.Lock()
	calls := ob.calls
	ob.mu.Unlock()
	if calls > n/4 {
		t.Errorf("%d Sent calls for %d rows: they are not batched", calls, n)
	}
	total := 0
	acked.Range(func(_, v any) bool { total += v.(int); return true })
	if total != n {
		t.Errorf("OnAcked reported %d rows, want %d", total, n)
	}
}

// The retained status says online with what Status returns; an abrupt loss
// of the connection makes the broker publish the offline Last Will; the
// uplink comes back online; Close leaves the status offline.
func TestStatusOnlineWillOffline(t *testing.T) {
	b := testbroker.Start(t)
	p := testbroker.NewProxy(t, b.Addr())
	sub := b.Subscribe(t, base+"status")
	ob := newMemOutbox()
	var pending sync.Mutex
	rosterErr := ""
	u := start(t, p.URL(), ob, func(c *Config) {
		c.Status = func() Status {
			pending.Lock()
			defer pending.Unlock()
			return Status{State: "ignored", Version: "1.2.3", RosterVersion: 7, Pending: 3, RosterError: rosterErr}
		}
	})
	states := func(ms []testbroker.Message) []string {
		var out []string
		for _, m := range ms {
			var st Status
			if err := json.Unmarshal(m.Payload, &st); err != nil {
				t.Fatalf("status %q: %v", m.Payload, err)
			}
			out = append(out, st.State)
		}
		return out
	}
	msgs := sub.WaitFor(t, 1, 5*time.Second)
	want := `{"state":"online","version":"1.2.3","roster_version":7,"pending":3,"unconfirmed":0,"dead_letters":0}`
	if string(msgs[0].Payload) != want || msgs[0].Topic != base+"status" {
		t.Fatalf("status = %s on %s, want %s", msgs[0].Payload, msgs[0].Topic, want)
	}
	// A fresh subscriber sees it retained.
	fresh := testbroker.NewSubscriber(t, b.URL(), "fresh", base+"status")
	if m := fresh.WaitFor(t, 1, 5*time.Second)[0]; !m.Retained {
		t.Fatalf("status not retained: %v", m)
	}
	fresh.Close()

	pending.Lock()
	rosterErr = "bad roster"
	pending.Unlock()
	u.PublishStatus()
	sub.WaitUntil(t, 5*time.Second, "status with roster_error", func(ms []testbroker.Message) bool {
		return strings.Contains(string(ms[len(ms)-1].Payload), `"roster_error":"bad roster"`)
	})

	p.Drop()
	msgs = sub.WaitUntil(t, 5*time.Second, "offline then online", func(ms []testbroker.Message) bool {
		s := strings.Join(states(ms), ",")
		return strings.Contains(s, "online,offline,online")
	})
	for _, m := range msgs {
		if strings.Contains(string(m.Payload), "offline") && string(m.Payload) != offlineJSON {
			t.Fatalf("will payload %s, want %s", m.Payload, offlineJSON)
		}
	}
	eventually(t, 5*time.Second, "reconnected", u.Connected)

	n := sub.Len()
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if u.Connected() {
		t.Fatal("Connected after Close")
	}
	msgs = sub.WaitFor(t, n+1, 5*time.Second)
	if last := msgs[len(msgs)-1]; string(last.Payload) != offlineJSON {
		t.Fatalf("status after Close = %s, want %s", last.Payload, offlineJSON)
	}
}

// Rows added while the broker is down are all delivered once it is back,
// and the outbox ends empty.
func TestBrokerDownAndBack(t *testing.T) {
	b := testbroker.Start(t)
	sub := b.Subscribe(t, base+"+")
	ob := newMemOutbox()
	u := start(t, b.URL(), ob, nil)
	ob.addN(50)
	u.Notify()
	waitEmpty(t, ob, 10*time.Second)

	b.Stop()
	eventually(t, 5*time.Second, "disconnected", func() bool { return !u.Connected() })
	ob.addN(150)
	u.Notify()
	time.Sleep(200 * time.Millisecond)
	if got := ob.len(); got != 150 {
		t.Fatalf("outbox holds %d rows while the broker is down, want 150", got)
	}
	b.Start()
	waitEmpty(t, ob, 15*time.Second)
	sub.WaitUntil(t, 15*time.Second, "200 distinct rows", func(ms []testbroker.Message) bool {
		return len(distinct(seqs(t, ms))) == 200
	})
}

// Connections cut again and again in the middle of a drain (paho has
// publishes in flight each time) lose nothing.
func TestConnectionCutsMidDrain(t *testing.T) {
	b := testbroker.Start(t)
	p := testbroker.NewProxy(t, b.Addr())
	sub := b.Subscribe(t, base+"+")
	ob := newMemOutbox()
	u := start(t, p.URL(), ob, func(c *Config) { c.Window = 8 })
	const n = 3000
	ob.addN(n)
	u.Notify()
	for i := 0; i < 5 && ob.len() > 0; i++ {
		eventually(t, 10*time.Second, "connected", u.Connected)
		time.Sleep(20 * time.Millisecond)
		p.Drop()
	}
	waitEmpty(t, ob, 20*time.Second)
	sub.WaitUntil(t, 20*time.Second, fmt.Sprintf("%d distinct rows", n), func(ms []testbroker.Message) bool {
		return len(distinct(seqs(t, ms))) == n
	})
}

// A retained roster published before the uplink connects reaches OnRoster,
// and so does a later one.
func TestRoster(t *testing.T) {
	b := testbroker.Start(t)
	b.Publish(t, base+"roster", []byte(`{"version":1}`), true)
	b.Publish(t, prefix+"/other/roster", []byte(`{"version":99}`), true)
	got := make(chan string, 10)
	start(t, b.URL(), newMemOutbox(), func(c *Config) {
		c.OnRoster = func(p []byte) { got <- string(p) }
	})
	want := func(s string) {
		t.Helper()
		select {
		case g := <-got:
			if g != s {
				t.Fatalf("OnRoster(%s), want %s", g, s)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("OnRoster not called with %s", s)
		}
	}
	want(`{"version":1}`)
	b.Publish(t, base+"roster", []byte(`{"version":2}`), true)
	want(`{"version":2}`)
	b.Publish(t, base+"roster", nil, true) // clears the retained roster: not passed on
	b.Publish(t, base+"roster", []byte(`{"version":3}`), false)
	want(`{"version":3}`)
}

// A row of a kind the uplink does not know becomes a dead letter and does
// not hold up the others.
func TestUnknownKindRejected(t *testing.T) {
	b := testbroker.Start(t)
	sub := b.Subscribe(t, base+"+")
	ob := newMemOutbox()
	ob.add(KindEvents, []byte(`{"seq":1,"kind":"events"}`))
	bad := ob.add("bogus", []byte(`{}`))
	ob.add(KindShifts, []byte(`{"seq":3,"kind":"shifts"}`))
	start(t, b.URL(), ob, nil)
	waitEmpty(t, ob, 5*time.Second)
	rej, _ := ob.rejections()
	if len(rej) != 1 || rej[bad] != `unknown kind "bogus"` {
		t.Fatalf("dead letters %v, want seq %d: unknown kind \"bogus\"", rej, bad)
	}
	sub.WaitUntil(t, 5*time.Second, "rows 1 and 3", func(ms []testbroker.Message) bool {
		return fmt.Sprint(seqs(t, ms)) == "[1 3]"
	})
}

// While Reject fails the row stays in the outbox, is not published, the
// failure is logged at ERROR, and Reject is tried again until it works.
func TestRejectFailureKeepsRowAndRetries(t *testing.T) {
	b := testbroker.Start(t)
	sub := b.Subscribe(t, base+"+")
	ob := newMemOutbox()
	ob.setRejectErr(errors.New("dead letters not wired"))
	ob.add(KindEvents, []byte(`{"seq":1,"kind":"events"}`))
	bad := ob.add("bogus", []byte(`{"seq":2,"kind":"bogus"}`))
	ob.add(KindShifts, []byte(`{"seq":3,"kind":"shifts"}`))
	log, lines := captureLogger(t)
	start(t, b.URL(), ob, func(c *Config) { c.Logger = log })

	eventually(t, 5*time.Second, "good rows sent", func() bool { return len(ob.removedSeqs()) == 2 })
	// One ERROR line per try; the line comes after the try.
	eventually(t, 5*time.Second, "three ERROR lines about the failed Reject", func() bool {
		return len(lines.matching("level=ERROR", "dead letter", "seq=2", "dead letters not wired")) >= 3
	})
	if _, tries := ob.rejections(); tries < 3 {
		t.Fatalf("%d Reject calls for 3 ERROR lines", tries)
	}
	if rows, _ := ob.Peek(0, 10); len(rows) != 1 || rows[0].Seq != bad {
		t.Fatalf("outbox holds %v, want only seq %d", rows, bad)
	}
	ob.setRejectErr(nil)
	waitEmpty(t, ob, 5*time.Second)
	if rej, _ := ob.rejections(); rej[bad] == "" {
		t.Fatalf("dead letters %v, want seq %d", rej, bad)
	}
	for _, s := range seqs(t, sub.Messages()) {
		if s == bad {
			t.Fatalf("row %d published though it was to be set aside", bad)
		}
	}
}

// Once drained, the uplink reads the outbox again from the start on its
// poll ticks: a row the outbox makes due again below the cursor is
// published again.
func TestRowDueAgainIsRepublished(t *testing.T) {
	b := testbroker.Start(t)
	sub := b.Subscribe(t, base+"+")
	ob := newMemOutbox()
	ob.addN(10)
	start(t, b.URL(), ob, nil)
	waitEmpty(t, ob, 5*time.Second)
	sub.WaitUntil(t, 5*time.Second, "10 rows", func(ms []testbroker.Message) bool { return len(seqs(t, ms)) == 10 })

	ob.redue(Message{Seq: 3, Kind: KindEvents, Payload: []byte(`{"seq":3,"kind":"events"}`)})
	waitEmpty(t, ob, 5*time.Second)
	got := seqs(t, sub.WaitUntil(t, 5*time.Second, "seq 3 again", func(ms []testbroker.Message) bool {
		return len(seqs(t, ms)) == 11
	}))
	if got[10] != 3 {
		t.Fatalf("arrivals %v, want seq 3 last", got)
	}
}

func TestStartClose(t *testing.T) {
	b := testbroker.Start(t)
	before := uplinkGoroutines()
	ob := newMemOutbox()
	cfg := Config{Broker: b.URL(), TopicPrefix: prefix, DeviceID: device, Outbox: ob, Logger: testLogger(t)}

	// Close before Start, then Start is refused.
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if err := u.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}

	u, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := u.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start: %v, want ErrStarted", err)
	}
	ob.addN(100)
	u.Notify()
	waitEmpty(t, ob, 10*time.Second)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); u.Close() }()
	}
	wg.Wait()
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	checkGoroutines(t, before)
}

// Cancelling Start's context stops the uplink, even while it cannot reach
// a broker.
func TestContextCancelWhileOffline(t *testing.T) {
	before := uplinkGoroutines()
	ob := newMemOutbox()
	u, err := New(Config{Broker: "tcp://127.0.0.1:1", TopicPrefix: prefix, DeviceID: device, Outbox: ob})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ob.addN(3)
	u.Notify()
	u.PublishStatus()
	time.Sleep(100 * time.Millisecond)
	cancel()
	done := make(chan struct{})
	go func() { u.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close hangs while offline")
	}
	if ob.len() != 3 {
		t.Fatal("rows removed without a broker")
	}
	checkGoroutines(t, before)
}

// uplinkGoroutines returns the stacks of goroutines running uplink or paho
// code, other than the calling test's.
func uplinkGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "testing.tRunner") {
			continue
		}
		if strings.Contains(g, "uplink.(*Uplink)") || strings.Contains(g, "paho.mqtt.golang") {
			out = append(out, g)
		}
	}
	return out
}

// checkGoroutines fails the test if uplink or paho goroutines beyond those
// in before are still running after a grace period.
func checkGoroutines(t *testing.T, before []string) {
	t.Helper()
	var now []string
	for range 200 {
		now = uplinkGoroutines()
		if len(now) <= len(before) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d goroutines left behind (had %d before):\n%s", len(now), len(before), strings.Join(now, "\n\n"))
}

// Acks published on the acks topic reach OnAcks, batches included; a
// malformed message is logged at WARN and does not stop later ones; acks
// published while the uplink is offline arrive once it is back (persistent
// session, QoS 1).
func TestAcks(t *testing.T) {
	b := testbroker.Start(t)
	p := testbroker.NewProxy(t, b.Addr())
	got := make(chan []Ack, 10)
	log, lines := captureLogger(t)
	u := start(t, p.URL(), newMemOutbox(), func(c *Config) {
		c.Logger = log
		c.OnAcks = func(a []Ack) { got <- a }
	})
	// want waits for OnAcks(w), skipping repeats of earlier calls (QoS 1
	// may deliver a message again after a reconnect).
	seen := map[string]bool{}
	want := func(w ...Ack) {
		t.Helper()
		for {
			select {
			case g := <-got:
				if fmt.Sprint(g) == fmt.Sprint(w) {
					seen[fmt.Sprint(g)] = true
					return
				}
				if !seen[fmt.Sprint(g)] {
					t.Fatalf("OnAcks(%v), want %v", g, w)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("OnAcks not called with %v", w)
			}
		}
	}
	eventually(t, 5*time.Second, "connected", u.Connected)
	// Connected comes before the SUBACK: publish until the first ack arrives.
	first := Ack{ID: "door-1-ab-e1", OK: true}
	for deadline := time.Now().Add(5 * time.Second); len(got) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no ack delivered")
		}
		b.Publish(t, base+"acks", []byte(`{"id":"door-1-ab-e1","ok":true}`), false)
	}
	want(first)

	b.Publish(t, base+"acks", []byte(`{"id":`), false)
	batch := `{"acks":[{"id":"door-1-ab-e2","ok":true},{"ok":false},{"id":"door-1-ab-s1","ok":false,"error":"no payroll number"}]}`
	b.Publish(t, base+"acks", []byte(batch), false)
	want(Ack{ID: "door-1-ab-e2", OK: true}, Ack{ID: "door-1-ab-s1", Error: "no payroll number"})
	if l := lines.matching("level=WARN", "malformed acks", "topic="+base+"acks", "bytes=6"); len(l) != 1 {
		t.Fatalf("%d WARN lines for the bad JSON, want 1 with topic and byte count", len(l))
	}
	if l := lines.matching("level=WARN", "malformed acks", fmt.Sprintf("bytes=%d", len(batch)), "kept=2"); len(l) != 1 {
		t.Fatalf("%d WARN lines for the batch with a bad entry, want 1", len(l))
	}

	p.SetDown(true)
	eventually(t, 5*time.Second, "offline", func() bool { return !u.Connected() })
	b.Publish(t, base+"acks", []byte(`{"id":"door-1-ab-e3","ok":false,"error":"late"}`), false)
	p.SetDown(false)
	want(Ack{ID: "door-1-ab-e3", Error: "late"})
}
