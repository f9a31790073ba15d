package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/punchclock/punchclock/clock"
	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/store"
)

// chanReader is a reader whose reads a test pushes.
type chanReader struct {
	name  string
	reads chan reader.Read
}

func (r *chanReader) Name() string { return r.name }

func (r *chanReader) Run(ctx context.Context, out chan<- reader.Read) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case rd := <-r.reads:
			select {
			case out <- rd:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

var _ reader.Reader = (*chanReader)(nil)

type decisions struct {
	mu     sync.Mutex
	events []punch.Event
	shifts []*punch.Shift
	ch     chan struct{}
}

func (d *decisions) record(ev punch.Event, sh *punch.Shift) {
	d.mu.Lock()
	d.events = append(d.events, ev)
	if sh != nil {
		d.shifts = append(d.shifts, sh)
	}
	d.mu.Unlock()
	d.ch <- struct{}{}
}

func (d *decisions) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-d.ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting for %d decisions", n)
		}
	}
}

const testRoster = `{"version": 1, "employees": [
 {"id": "E1", "payroll_no": "1", "department": "D", "credentials": [{"type": "card", "value": "0A00000001"}]},
 {"id": "E2", "payroll_no": "2", "department": "D", "credentials": [{"type": "card", "value": "0A00000002"}]},
 {"id": "E3", "payroll_no": "3", "department": "D", "valid_until": "2020-01-01", "credentials": [{"type": "card", "value": "0A00000003"}]}]}`

func testConfig(t *testing.T, dir string) *config.Config {
	t.Helper()
	os.WriteFile(filepath.Join(dir, "roster.json"), []byte(testRoster), 0o644)
	cfg, err := config.Parse("test.toml", []byte(`device_id = "t1"
data_dir = "`+filepath.Join(dir, "data")+`"
timezone = "Europe/Amsterdam"
roster_file = "`+filepath.Join(dir, "roster.json")+`"
[[readers]]
name = "in"
driver = "rdm6300"
port = "/dev/null0"
direction = "in"
[[readers]]
name = "out"
driver = "rdm6300"
port = "/dev/null1"
direction = "out"
[[readers]]
name = "tog"
driver = "rdm6300"
port = "/dev/null2"
`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type harness struct {
	a       *Agent
	readers map[string]*chanReader
	d       *decisions
	stop    func()
}

func startAgent(t *testing.T, cfg *config.Config, tweaks ...func(*Options)) *harness {
	t.Helper()
	h := &harness{readers: map[string]*chanReader{}, d: &decisions{ch: make(chan struct{}, 1024)}}
	var rs []reader.Reader
	for _, rc := range cfg.Readers {
		r := &chanReader{name: rc.Name, reads: make(chan reader.Read)}
		h.readers[rc.Name] = r
		rs = append(rs, r)
	}
	opts := Options{Config: cfg, Readers: rs, OnDecision: h.d.record}
	for _, tw := range tweaks {
		tw(&opts)
	}
	if opts.Clock == nil && cfg.Clock.Source == config.ClockKernel {
		// This machine's kernel may not say its clock is synchronised
		// (a VM): tests trust it, on the test's wall time, unless they
		// give a clock of their own. The floor still applies.
		c, err := clock.New(clock.Options{Source: clock.SourceTrusted, Wall: opts.Now, Floor: opts.ClockFloor})
		if err != nil {
			t.Fatal(err)
		}
		opts.Clock = c
	}
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.a = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
			if err := a.Close(); err != nil {
				t.Error(err)
			}
			if err := a.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
	t.Cleanup(h.stop)
	return h
}

func (h *harness) badge(rd, card string) {
	h.readers[rd].reads <- reader.Read{Reader: rd, Type: reader.TypeCard, Value: card, At: time.Now()}
}

func TestAgentRules(t *testing.T) {
	dir := t.TempDir()
	h := startAgent(t, testConfig(t, dir))
	steps := []struct{ reader, card, decision, reason, dir string }{
		{"in", "0A00000001", punch.Accepted, "", punch.In},
		{"in", "0A00000001", punch.Denied, punch.ReasonDoubleIn, punch.In},
		{"out", "0A00000001", punch.Accepted, "", punch.Out},
		{"out", "0A00000001", punch.Denied, punch.ReasonDoubleOut, punch.Out},
		{"tog", "0A00000002", punch.Accepted, "", punch.In},
		{"tog", "0A00000002", punch.Accepted, "", punch.Out},
		{"tog", "0A00000003", punch.Denied, punch.ReasonOutsideContract, ""},
		{"tog", "0AFFFFFFFF", punch.Denied, punch.ReasonUnknownCredential, ""},
	}
	for i, s := range steps {
		h.badge(s.reader, s.card)
		h.d.wait(t, 1)
		ev := h.d.events[i]
		if ev.Decision != s.decision || ev.Reason != s.reason || ev.Direction != s.dir {
			t.Fatalf("step %d (%s at %s): got %s/%s/%s, want %s/%s/%s", i, s.card, s.reader,
				ev.Decision, ev.Reason, ev.Direction, s.decision, s.reason, s.dir)
		}
	}
	if len(h.d.shifts) != 2 {
		t.Fatalf("%d shifts, want 2", len(h.d.shifts))
	}
	st, err := h.a.Status()
	if err != nil {
		t.Fatal(err)
	}
	// 8 events + 2 shifts wait in the outbox: no broker is configured.
	if st.Pending != 10 || st.OpenEntries != 0 || st.RosterVersion != 1 || st.Uplink != "offline" {
		t.Fatalf("status = %+v", st)
	}
}

// Many reads at once are committed together and none is lost or paired
// wrongly.
func TestAgentConcurrentReaders(t *testing.T) {
	dir := t.TempDir()
	h := startAgent(t, testConfig(t, dir))
	var wg sync.WaitGroup
	const rounds = 50
	// Two employees toggle at one reader while unknown cards are shown
	// at another: the reads interleave in the writer's batches.
	for _, card := range []string{"0A00000001", "0A00000002"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				h.badge("tog", card)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range rounds {
			h.badge("in", "0B00000000")
		}
	}()
	// The unknown card's repeats are folded into its first event
	// (TestAgentFoldsUnknownFlood): one decision is stored for them.
	h.d.wait(t, 2*rounds+1)
	wg.Wait()
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	for _, ev := range h.d.events {
		want := punch.Accepted
		if ev.Reader == "in" {
			want = punch.Denied
		}
		if ev.Decision != want {
			t.Fatalf("event %+v", ev)
		}
	}
	if len(h.d.shifts) != rounds {
		t.Fatalf("%d shifts, want %d", len(h.d.shifts), rounds)
	}
}

// Status over the control socket while running, and from the database
// when stopped.
func TestControlStatus(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	h := startAgent(t, cfg)
	h.badge("tog", "0A00000001")
	h.d.wait(t, 1)
	st, err := QueryStatus(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Running || st.OpenEntries != 1 || st.Pending != 1 || len(st.Readers) != 3 {
		t.Fatalf("running status = %+v", st)
	}
	countLog := func(from, to time.Time) (events, shifts int) {
		t.Helper()
		err := QueryLog(cfg, from, to, func(e store.LogEntry) error {
			if e.Event != nil {
				events++
			}
			if e.Shift != nil {
				shifts++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return events, shifts
	}
	if e, s := countLog(time.Time{}, time.Time{}); e != 1 || s != 0 {
		t.Fatalf("log from the running agent: %d events, %d shifts", e, s)
	}
	if e, _ := countLog(time.Now().Add(time.Hour), time.Time{}); e != 0 {
		t.Fatalf("log filtered to the future: %d events", e)
	}
	h.stop()
	if e, _ := countLog(time.Now().Add(-time.Hour), time.Now().Add(time.Hour)); e != 1 {
		t.Fatalf("log from the stopped database: %d events", e)
	}
	st, err = QueryStatus(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Running || st.OpenEntries != 1 || st.Pending != 1 || st.RosterSize != 3 {
		t.Fatalf("stopped status = %+v", st)
	}
}

// Punches taken before the clock is known to be set are kept, and
// flagged, on the event and on the shift they complete.
func TestAgentClockUnsynced(t *testing.T) {
	h := startAgent(t, testConfig(t, t.TempDir()), func(o *Options) {
		o.ClockFloor = time.Now().Add(time.Hour) // as if NTP had not set the clock yet
	})
	h.badge("tog", "0A00000001")
	h.badge("tog", "0A00000001")
	h.d.wait(t, 2)
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	for _, ev := range h.d.events {
		if ev.Decision != punch.Accepted || !slices.Contains(ev.Flags, punch.FlagClockUnsynced) {
			t.Fatalf("event %+v: want accepted and flagged %s", ev, punch.FlagClockUnsynced)
		}
	}
	if len(h.d.shifts) != 1 || !slices.Contains(h.d.shifts[0].Flags, punch.FlagClockUnsynced) {
		t.Fatalf("shifts %+v", h.d.shifts)
	}
}

// Unknown cards are kept and sent, but a card left on the reader and an
// emulator cycling ids are folded: every read is counted exactly once in
// the stored events, and far fewer events are stored than reads.
func TestAgentFoldsUnknownFlood(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	h := startAgent(t, cfg)
	reads := 0
	for range 50 { // one unknown card, held
		h.badge("tog", "0BFFFFFFFF")
		reads++
	}
	for i := range 300 { // an emulator
		h.badge("tog", fmt.Sprintf("0C%08X", i))
		reads++
	}
	h.badge("tog", "0A00000001") // a known card still works
	h.d.wait(t, 1)
	h.stop()

	db, err := store.Open(cfg.DataDir, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	events, counted, rateLimited := 0, 0, 0
	db.Log(time.Time{}, time.Time{}, func(e store.LogEntry) error {
		if ev := e.Event; ev != nil && ev.Reason == punch.ReasonUnknownCredential {
			events++
			counted += max(ev.Count, 1)
			if slices.Contains(ev.Flags, punch.FlagRateLimited) {
				rateLimited++
				if ev.CredentialValue != "" {
					t.Errorf("a rate-limited summary names a card: %+v", ev)
				}
			}
		}
		return nil
	})
	if counted != reads {
		t.Fatalf("stored events count %d reads, want %d", counted, reads)
	}
	if events > 40 || rateLimited == 0 {
		t.Fatalf("%d events stored for %d unknown reads (%d rate-limited summaries)", events, reads, rateLimited)
	}
}
