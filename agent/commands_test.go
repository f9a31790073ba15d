package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/internal/testbroker"
)

// countingDoor records the doors opened.
type countingDoor struct {
	mu     sync.Mutex
	opened []string
}

func (d *countingDoor) Open(reader string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.opened = append(d.opened, reader)
	return nil
}

func (d *countingDoor) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.opened...)
}

func decodeReply(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("reply %s: %v", b, err)
	}
	return m
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	door := &countingDoor{}
	lv := new(slog.LevelVar)
	h := startAgent(t, testConfig(t, dir), func(o *Options) {
		o.Now, o.Door, o.LogLevel = clock, door, lv
	})
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	run := func(payload string) map[string]any {
		t.Helper()
		b, _ := h.a.onCommand([]byte(payload))
		return decodeReply(t, b)
	}
	refused := func(payload, want string) {
		t.Helper()
		r := run(payload)
		if r["ok"] != false || !strings.Contains(fmt.Sprint(r["error"]), want) {
			t.Errorf("%s -> %v, want refused with %q", payload, r, want)
		}
	}
	r := run(`not json`)
	if r["id"] != "" || r["ok"] != false || r["error"] == nil {
		t.Errorf("not JSON -> %v", r)
	}
	refused(`{"cmd":"status"}`, "id must be")
	refused(`{"id":"u1","cmd":"reboot"}`, `unknown cmd "reboot"`)
	refused(`{"id":"u2"}`, `no "cmd"`)
	refused(`{"id":"s1","cmd":"open","reader":"in","at":"`+at(-6*time.Minute)+`"}`, "stale")
	refused(`{"id":"s2","cmd":"status","at":"yesterday"}`, "not an RFC 3339 time")
	refused(`{"id":"o1","cmd":"open","reader":"in"}`, `open needs "at"`)
	refused(`{"id":"o2","cmd":"open","reader":"nowhere","at":"`+at(0)+`"}`, `no reader "nowhere"`)
	refused(`{"id":"l1","cmd":"set_log_level","level":"loud"}`, `level "loud"`)
	refused(`{"id":"r1","cmd":"replay"}`, `replay needs "record"`)
	refused(`{"id":"r2","cmd":"replay","record":"t1-nope"}`, "t1-nope")
	refused(`{"id":"y1","cmd":"sync"}`, "no broker configured")

	// Executed once: the same id again gets the same reply, the door
	// does not open twice.
	open := `{"id":"o3","cmd":"open","reader":"in","at":"` + at(-4*time.Minute) + `"}`
	first, _ := h.a.onCommand([]byte(open))
	again, _ := h.a.onCommand([]byte(open))
	if string(first) != string(again) || decodeReply(t, first)["ok"] != true {
		t.Errorf("open %s then %s", first, again)
	}
	if got := door.list(); len(got) != 1 || got[0] != "in" {
		t.Errorf("doors opened %v, want [in] once", got)
	}
	// Still the original reply a minute later, however stale the
	// command is now.
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	if b, _ := h.a.onCommand([]byte(open)); string(b) != string(first) {
		t.Errorf("repeat an hour later = %s, want %s", b, first)
	}

	if r := run(`{"id":"l2","cmd":"set_log_level","level":"debug"}`); r["ok"] != true || r["level"] != "debug" || lv.Level() != slog.LevelDebug {
		t.Errorf("set_log_level -> %v, level %v", r, lv.Level())
	}
	if r := run(`{"id":"e1","cmd":"suspend_reader","reader":"in"}`); r["ok"] != true || r["enabled"] != false {
		t.Errorf("suspend_reader -> %v", r)
	}
	st, err := h.a.Status()
	if err != nil || st.Readers[0].State != StateSuspended {
		t.Errorf("status after suspend_reader: %+v %v", st.Readers, err)
	}
	states, _ := h.a.db.ReaderStates()
	if s := states["in"]; s.Enabled || s.By != "command" {
		t.Errorf("stored state of in = %+v, want suspended by command", s)
	}
	run(`{"id":"e2","cmd":"enable_reader","reader":"in"}`)
	if r := run(`{"id":"r3","cmd":"replay","record":"all"}`); r["ok"] != true || fmt.Sprint(r["replayed"]) != "[]" {
		t.Errorf("replay all with none -> %v", r)
	}

	h.badge("in", "0A00000001")
	h.badge("in", "0A00000002")
	h.d.wait(t, 2)
	r = run(`{"id":"p1","cmd":"present"}`)
	p, _ := json.Marshal(r["present"])
	if r["ok"] != true || !strings.Contains(string(p), `"total":2`) || !strings.Contains(string(p), `"employee_id":"E1"`) || !strings.Contains(string(p), `"name":"D"`) {
		t.Errorf("present -> %s", p)
	}
	r = run(`{"id":"st1","cmd":"status"}`)
	if s, ok := r["status"].(map[string]any); r["ok"] != true || !ok || s["device_id"] != "t1" || s["open_entries"] != float64(2) {
		t.Errorf("status -> %v", r)
	}
}

func TestCommandNoDoorNoLevel(t *testing.T) {
	h := startAgent(t, testConfig(t, t.TempDir()))
	b, _ := h.a.onCommand([]byte(`{"id":"o1","cmd":"open","reader":"in","at":"` + time.Now().Format(time.RFC3339) + `"}`))
	r := decodeReply(t, b)
	if r["ok"] != false || r["error"] != "no door relay at reader in" {
		t.Errorf("open without a door -> %v", r)
	}
	b, _ = h.a.onCommand([]byte(`{"id":"l1","cmd":"set_log_level","level":"debug"}`))
	r = decodeReply(t, b)
	if r["ok"] != false {
		t.Errorf("set_log_level without a LevelVar -> %v", r)
	}
}

// restart: the reply says ok and Run returns ErrRestart.
func TestCommandRestart(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	a, err := New(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	b, after := a.onCommand([]byte(`{"id":"x1","cmd":"restart"}`))
	if r := decodeReply(t, b); r["ok"] != true || r["restarting"] != true || after == nil {
		t.Fatalf("restart -> %v", r)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before the reply was out", err)
	case <-time.After(100 * time.Millisecond):
	}
	after()
	select {
	case err := <-done:
		if !errors.Is(err, ErrRestart) {
			t.Fatalf("Run = %v, want ErrRestart", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after restart")
	}
}

func TestPresentOf(t *testing.T) {
	// Covered through the store in TestCommands; here the grouping of
	// people the roster no longer knows.
	ams, _ := time.LoadLocation("Europe/Amsterdam")
	p := presentOf(nil, nil, time.Now(), ams)
	if p.Total != 0 || p.Departments == nil {
		t.Errorf("empty roll call = %+v (departments must encode as [])", p)
	}
}

// The daily roster request goes out at roster.refresh, local time: the
// agent's clock is set two seconds before 04:30 in Amsterdam.
func TestDailyRosterRequest(t *testing.T) {
	b := testbroker.Start(t)
	reqs := b.Subscribe(t, "punchclock/t1/roster/request")
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.MQTT.Broker = b.URL()
	target := time.Date(2026, 12, 4, 4, 29, 56, 0, cfg.Location)
	offset := time.Until(target)
	h := startAgent(t, cfg, func(o *Options) {
		o.Now = func() time.Time { return time.Now().Add(offset) }
	})
	ms := reqs.WaitUntil(t, 15*time.Second, "the daily request", func(ms []testbroker.Message) bool { return len(ms) > 0 })
	var rq map[string]any
	if err := json.Unmarshal(ms[0].Payload, &rq); err != nil || rq["reason"] != "daily" || rq["device_id"] != "t1" || rq["roster_version"] != float64(1) {
		t.Fatalf("request = %s", ms[0].Payload)
	}
	// Recorded just after the publish.
	deadline := time.Now().Add(5 * time.Second)
	st, err := h.a.db.Status()
	for err == nil && st.LastRosterRequest == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		st, err = h.a.db.Status()
	}
	if err != nil || st.LastRosterRequest == nil || st.LastRosterRequest.Reason != "daily" ||
		st.LastRosterRequest.At.In(cfg.Location).Format("15:04") != "04:30" {
		t.Fatalf("last_roster_request = %+v (%v)", st.LastRosterRequest, err)
	}
}

// Whatever arrives on the commands topic, the agent answers with a JSON
// object carrying a string id and a boolean ok, and never panics.
func FuzzOnCommand(f *testing.F) {
	for _, s := range []string{`not json`, `null`, `[]`, `{"id":5}`, `{"id":"a","cmd":"status"}`,
		`{"id":"b","cmd":"open","reader":"in","at":"2026-12-04T09:00:00Z"}`, `{"id":"c","cmd":"replay","record":"all"}`,
		`{"id":"d","cmd":"set_log_level","level":"debug"}`, `{"id":"e","cmd":"suspend_reader","reader":"x"}`,
		`{"id":"f","cmd":"restart"}`, `{"id":"g","cmd":"present","at":"2026-12-04T09:00:00+01:00"}`} {
		f.Add([]byte(s))
	}
	cfg, err := config.Parse("fuzz.toml", []byte(`device_id = "t1"
data_dir = "`+f.TempDir()+`"
[[readers]]
name = "in"
driver = "rdm6300"
port = "/dev/null0"
`))
	if err != nil {
		f.Fatal(err)
	}
	a, err := New(Options{Config: cfg, LogLevel: new(slog.LevelVar)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { a.Close() })
	f.Fuzz(func(t *testing.T, payload []byte) {
		var r map[string]any
		b, _ := a.onCommand(payload)
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("reply to %q is not JSON: %v", payload, err)
		}
		if _, ok := r["id"].(string); !ok {
			t.Fatalf("reply to %q has no string id: %v", payload, r)
		}
		if _, ok := r["ok"].(bool); !ok {
			t.Fatalf("reply to %q has no boolean ok: %v", payload, r)
		}
	})
}
