package agent

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/punchclock/punchclock/clock"
	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/flood"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/store"
)

// propDefaultChecks is the number of cases when -rapid.checks is not given.
const propDefaultChecks = 40

// propEmployees are the employees the roster may hold; their cards are
// 0A0000000<n>.
var propEmployees = []string{"P1", "P2", "P3", "P4"}

// propReaders are the readers of every case: a toggle, an in and an out
// reader, a door (access) and a clock at a door (both, toggle).
var propReaders = []struct{ name, keys string }{
	{"tog", ""},
	{"in", "direction = \"in\"\n"},
	{"out", "direction = \"out\"\n"},
	{"door", "role = \"access\"\n"},
	{"both", "role = \"both\"\n"},
}

type propKind int

const (
	actBadge propKind = iota
	actAdvance
	actJump
	actRoster
	actRestart
)

// propAction is one step of a case.
type propAction struct {
	Kind   propKind
	Emp    int           // actBadge, actRoster: index in propEmployees
	Reader string        // actBadge
	D      time.Duration // actAdvance, actJump (negative: backwards)
	// actRoster: what changes about Emp.
	Op      string // "remove", "add", "payroll"
	Payroll string // "add", "payroll": the new payroll number ("" none)
}

func (a propAction) String() string {
	switch a.Kind {
	case actBadge:
		return fmt.Sprintf("badge %s at %s", propEmployees[a.Emp], a.Reader)
	case actAdvance:
		return fmt.Sprintf("advance %v", a.D)
	case actJump:
		return fmt.Sprintf("jump %v", a.D)
	case actRoster:
		return fmt.Sprintf("roster %s %s %q", a.Op, propEmployees[a.Emp], a.Payroll)
	default:
		return "restart"
	}
}

// propCase is one generated case: a site policy, a clock and the steps.
type propCase struct {
	Start      time.Time
	ClockFloor time.Time
	DoubleIn   string
	DoubleOut  string
	MaxShift   time.Duration
	MinShift   time.Duration
	Actions    []propAction
}

// propRoster is the model of the roster: who is on it, with which payroll
// number.
type propRoster struct {
	version int64
	on      []bool
	payroll []string
}

func newPropRoster() *propRoster {
	r := &propRoster{version: 1, on: make([]bool, len(propEmployees)), payroll: make([]string, len(propEmployees))}
	for i := range propEmployees {
		r.on[i], r.payroll[i] = true, fmt.Sprint(100+i)
	}
	return r
}

func (r *propRoster) json() []byte {
	type cred struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	}
	type emp struct {
		ID          string `json:"id"`
		PayrollNo   string `json:"payroll_no"`
		Department  string `json:"department"`
		Credentials []cred `json:"credentials"`
	}
	doc := struct {
		Version   int64 `json:"version"`
		Empty     bool  `json:"empty,omitempty"`
		Employees []emp `json:"employees"`
	}{Version: r.version, Employees: []emp{}}
	for i, id := range propEmployees {
		if r.on[i] {
			doc.Employees = append(doc.Employees, emp{id, r.payroll[i], "D", []cred{{"card", propCard(i)}}})
		}
	}
	doc.Empty = len(doc.Employees) == 0
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err) // plain structs: cannot fail
	}
	return b
}

func propCard(i int) string { return fmt.Sprintf("0A%08d", i+1) }

// genPropCase draws a case. The roster model is advanced while drawing,
// so that every roster change is valid.
func genPropCase(t *rapid.T) propCase {
	c := propCase{
		// Near the spring DST night in Europe/Amsterdam (29 March
		// 2026, 01:00 UTC), so some cases cross it.
		Start:     time.Date(2026, 3, 28, 6, 0, 0, 0, time.UTC).Add(time.Duration(rapid.IntRange(0, 48*60).Draw(t, "start_min")) * time.Minute),
		DoubleIn:  rapid.SampledFrom([]string{config.PolicyDeny, config.PolicyCloseAndReopen}).Draw(t, "double_in"),
		DoubleOut: rapid.SampledFrom([]string{config.PolicyDeny, config.PolicyCloseAndReopen}).Draw(t, "double_out"),
		MaxShift:  time.Duration(rapid.IntRange(1, 16).Draw(t, "max_shift_h")) * time.Hour,
		MinShift:  time.Duration(rapid.SampledFrom([]int{0, 0, 1, 5}).Draw(t, "min_shift_min")) * time.Minute,
	}
	// The clock is trusted from ClockFloor on: some cases put it a few
	// hours before the start, so that a jump backwards crosses it and
	// punches are taken on an unsynced clock.
	if back := rapid.IntRange(0, 6).Draw(t, "floor_back_h"); back > 0 {
		c.ClockFloor = c.Start.Add(-time.Duration(back) * time.Hour)
	}
	ros := newPropRoster()
	n := rapid.IntRange(1, 40).Draw(t, "steps")
	for i := range n {
		var a propAction
		switch k := rapid.IntRange(0, 99).Draw(t, fmt.Sprintf("kind%d", i)); {
		case k < 50:
			a = propAction{Kind: actBadge,
				Emp:    rapid.IntRange(0, len(propEmployees)-1).Draw(t, fmt.Sprintf("emp%d", i)),
				Reader: rapid.SampledFrom([]string{"tog", "in", "out", "door", "both"}).Draw(t, fmt.Sprintf("reader%d", i))}
		case k < 72:
			var d time.Duration
			switch rapid.IntRange(0, 2).Draw(t, fmt.Sprintf("unit%d", i)) {
			case 0:
				d = time.Duration(rapid.IntRange(1, 59).Draw(t, fmt.Sprintf("s%d", i))) * time.Second
			case 1:
				d = time.Duration(rapid.IntRange(1, 120).Draw(t, fmt.Sprintf("m%d", i))) * time.Minute
			default:
				d = time.Duration(rapid.IntRange(1, 20).Draw(t, fmt.Sprintf("h%d", i))) * time.Hour
			}
			a = propAction{Kind: actAdvance, D: d}
		case k < 80:
			d := time.Duration(rapid.IntRange(1, 6*60).Draw(t, fmt.Sprintf("jump_min%d", i))) * time.Minute
			if rapid.Bool().Draw(t, fmt.Sprintf("back%d", i)) {
				d = -d
			}
			a = propAction{Kind: actJump, D: d}
		case k < 90:
			e := rapid.IntRange(0, len(propEmployees)-1).Draw(t, fmt.Sprintf("remp%d", i))
			a = propAction{Kind: actRoster, Emp: e}
			switch {
			case !ros.on[e]:
				a.Op, ros.on[e] = "add", true
			case rapid.Bool().Draw(t, fmt.Sprintf("remove%d", i)):
				a.Op, ros.on[e] = "remove", false
			default:
				a.Op = "payroll"
			}
			if ros.on[e] {
				// Sometimes none: the shifts are then flagged
				// no_payroll_no.
				a.Payroll = rapid.SampledFrom([]string{"", fmt.Sprint(200 + i)}).Draw(t, fmt.Sprintf("payroll%d", i))
				ros.payroll[e] = a.Payroll
			}
		default:
			a = propAction{Kind: actRestart}
		}
		c.Actions = append(c.Actions, a)
	}
	return c
}

// propClock is the injected clock: wall time and CLOCK_BOOTTIME. Time
// passing moves both; a jump moves the wall clock alone. Restarts are
// restarts of the agent within one boot: the monotonic clock goes on.
type propClock struct {
	mu   sync.Mutex
	now  time.Time
	mono time.Duration
	// ref is the clock's reference once it synced, given to the clock
	// of the next start as the agent gives the stored one.
	ref clock.Stamp
}

func (c *propClock) Mono() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mono
}

// pass lets d of real time pass.
func (c *propClock) pass(d time.Duration) {
	c.mu.Lock()
	c.now, c.mono = c.now.Add(d), c.mono+d
	c.mu.Unlock()
}

func (c *propClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *propClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// propAgent is one running agent of a case.
type propAgent struct {
	a       *Agent
	readers map[string]*chanReader
	evs     chan punch.Event
	shown   chan struct{} // a discarded PIN entry was shown
	cancel  context.CancelFunc
	done    chan error
}

func startPropAgent(cfg *config.Config, pc *propClock, floor time.Time) (*propAgent, error) {
	p := &propAgent{readers: map[string]*chanReader{}, evs: make(chan punch.Event, 16), done: make(chan error, 1),
		shown: make(chan struct{}, 4)}
	var rs []reader.Reader
	for _, rc := range cfg.Readers {
		r := &chanReader{name: rc.Name, reads: make(chan reader.Read)}
		p.readers[rc.Name] = r
		rs = append(rs, r)
	}
	if floor.IsZero() {
		floor = cfg.Clock.FloorTime
	}
	// The host's clock is trusted from the floor on (a wall clock
	// stepped back before it is not synced), as the agent builds it,
	// with the reference of the earlier start.
	clk, err := clock.New(clock.Options{Source: clock.SourceTrusted, Floor: floor, Wall: pc.Now, Mono: pc.Mono,
		BootID: "prop-boot", Reference: pc.ref})
	if err != nil {
		return nil, err
	}
	a, err := New(Options{Config: cfg, Readers: rs, Now: pc.Now, ClockFloor: floor, Clock: clk, Feedback: p,
		OnDecision: func(ev punch.Event, _ *punch.Shift) {
			if ev.ID != "" { // an auto-closed shift has no event
				p.evs <- ev
			}
		}})
	if err != nil {
		return nil, err
	}
	p.a = a
	if ref, ok := clk.Reference(); ok {
		pc.ref = ref // what the agent stored, for the next start
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- a.Run(ctx) }()
	// The writer closes the entries past max_shift when it starts, at
	// the time it reads then: wait until it has, before the case moves
	// the clock. A '#' alone at a keypad is a PIN entry too short: the
	// writer shows it, and stores nothing.
	p.readers["tog"].reads <- reader.Read{Reader: "tog", Type: reader.TypeKey, Value: "#", At: pc.Now()}
	select {
	case <-p.shown:
	case <-time.After(10 * time.Second):
		p.stop()
		return nil, fmt.Errorf("the writer did not start within 10 s")
	}
	return p, nil
}

// Show implements Feedback: it signals a PIN entry discarded.
func (p *propAgent) Show(_ string, ev punch.Event) {
	if ev.ID == "" && ev.Reason == punch.ReasonUnknownCredential {
		select {
		case p.shown <- struct{}{}:
		default:
		}
	}
}

func (p *propAgent) stop() error {
	p.cancel()
	err := <-p.done
	if cerr := p.a.Close(); err == nil {
		err = cerr
	}
	return err
}

// badge shows a card and waits for its decision to be durable.
func (p *propAgent) badge(readerName, card string, at time.Time) (punch.Event, error) {
	p.readers[readerName].reads <- reader.Read{Reader: readerName, Type: reader.TypeCard, Value: card, At: at}
	select {
	case ev := <-p.evs:
		if ev.Reader != readerName {
			return ev, fmt.Errorf("decision at %s, want one at %s", ev.Reader, readerName)
		}
		return ev, nil
	case <-time.After(10 * time.Second):
		return punch.Event{}, fmt.Errorf("no decision for %s at %s within 10 s", card, readerName)
	}
}

// propShown is what the test knew of one badge.
type propShown struct {
	emp, reader, payroll string // emp "": a card the roster does not know
	at                   time.Time
	version              int64
	card                 string // the card the roster does not know
}

// propResult is what a run of a case left in its store, and what the
// test knew at each punch.
type propResult struct {
	log    []store.LogEntry // in record order
	events []*punch.Event   // in record order
	shifts []*punch.Shift   // in record order
	open   map[string]*punch.Open
	// epoch is, for each event id, the number of backward clock jumps
	// before that punch.
	epoch map[string]int
	// mono is, for each event id, the monotonic time of the punch.
	mono map[string]time.Duration
	// shown is, for each event id, the badge and the roster in use.
	shown map[string]propShown
	// done holds the steps that were carried out (an unknown badge that
	// would be folded is not).
	done  map[int]bool
	seqOf func(id string) string
}

func propConfig(t *rapid.T, dir string, c propCase) *config.Config {
	ros := newPropRoster()
	if err := os.WriteFile(filepath.Join(dir, "roster.json"), ros.json(), 0o644); err != nil {
		t.Fatal(err)
	}
	var readers strings.Builder
	for i, r := range propReaders {
		readers.WriteString(rdr(r.name, i, r.keys))
	}
	cfg, err := config.Parse("prop.toml", []byte(fmt.Sprintf(`device_id = "p1"
data_dir = %q
timezone = "Europe/Amsterdam"
roster_file = %q
[pairing]
double_in = %q
double_out = %q
max_shift = %q
min_shift = %q
%s`, filepath.Join(dir, "data"), filepath.Join(dir, "roster.json"), c.DoubleIn, c.DoubleOut, c.MaxShift, c.MinShift, readers.String())))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runPropCase runs c against a fresh agent in dir; with restarts false
// the case's restarts are left out.
func runPropCase(t *rapid.T, dir string, c propCase, restarts bool) *propResult {
	cfg := propConfig(t, dir, c)
	clock := &propClock{now: c.Start, mono: time.Hour}
	ros := newPropRoster()
	res := &propResult{epoch: map[string]int{}, mono: map[string]time.Duration{}, shown: map[string]propShown{}, done: map[int]bool{}}
	// The card of someone the roster does not know is an unknown
	// credential: the flood limiter folds its repeats at a reader within
	// a window into a summary it stores at its tick (on real time) or at
	// stop, so that where the summary lands in the record sequence
	// depends on the restarts by design. Such a badge is shown only when
	// it is recorded at once: when a limiter of our own, fed the unknown
	// badges shown, says so. The agent's limiter (new at each start) has
	// seen no more of them, and records it too.
	lim := flood.New(flood.Options{})
	epoch := 0
	p, err := startPropAgent(cfg, clock, c.ClockFloor)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	// The writer's tick runs on real time: an agent that ran longer
	// than floodFlush may have closed entries at a point the other run
	// did not. Say so next to a failure.
	began := time.Now()
	lived := func() {
		if d := time.Since(began); d >= floodFlush {
			t.Logf("an agent of this run ran %v, past the writer's %v tick: a difference between the runs may come from it", d, floodFlush)
		}
	}
	defer func() {
		if p != nil {
			p.stop()
		}
		lived()
	}()
	for i, a := range c.Actions {
		switch a.Kind {
		case actBadge:
			at := clock.Now()
			if !ros.on[a.Emp] && !lim.Admit(a.Reader, reader.TypeCard, propCard(a.Emp), at).Record {
				continue
			}
			ev, err := p.badge(a.Reader, propCard(a.Emp), at)
			if err != nil {
				t.Fatalf("step %d (%v): %v", i, a, err)
			}
			res.epoch[ev.ID] = epoch
			res.mono[ev.ID] = clock.Mono()
			res.done[i] = true
			b := propShown{"", a.Reader, "", at, ros.version, propCard(a.Emp)}
			if ros.on[a.Emp] {
				b.emp, b.payroll, b.card = propEmployees[a.Emp], ros.payroll[a.Emp], ""
			}
			res.shown[ev.ID] = b
		case actAdvance:
			clock.pass(a.D)
		case actJump:
			clock.add(a.D)
			if a.D < 0 {
				epoch++
			}
		case actRoster:
			ros.version++
			ros.on[a.Emp] = a.Op != "remove"
			ros.payroll[a.Emp] = a.Payroll
			// On the caller: as the roster goroutine applies one.
			p.a.applyRoster(ros.json(), "test")
			if v := p.a.idx.Load().Version(); v != ros.version {
				t.Fatalf("step %d (%v): roster version %d in use, want %d", i, a, v, ros.version)
			}
		case actRestart:
			if !restarts {
				// Besides stopping and starting, a restart closes
				// the entries past max_shift, as the running
				// writer does on its tick (every floodFlush of
				// real time, whatever the injected clock says:
				// a case never waits for it). The run without
				// restarts ticks here instead, so that the two
				// runs close the same entries at the same point.
				// The writer is idle: the decision of the last
				// badge was received after it changed the open
				// entries, and the next read reaches it after
				// this.
				p.a.closeExpired(clock.Now())
				continue
			}
			err := p.stop()
			p = nil
			if err != nil {
				t.Fatalf("step %d: stop: %v", i, err)
			}
			lived()
			if p, err = startPropAgent(cfg, clock, c.ClockFloor); err != nil {
				t.Fatalf("step %d: start: %v", i, err)
			}
			began = time.Now()
		}
	}
	err = p.stop()
	p = nil
	if err != nil {
		t.Fatalf("stop: %v", err)
	}
	db, err := store.Open(cfg.DataDir, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open the store: %v", err)
	}
	defer db.Close()
	err = db.Log(time.Time{}, time.Time{}, func(e store.LogEntry) error {
		res.log = append(res.log, e)
		if e.Event != nil {
			res.events = append(res.events, e.Event)
		}
		if e.Shift != nil {
			res.shifts = append(res.shifts, e.Shift)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read the log: %v", err)
	}
	if res.open, err = db.OpenEntries(); err != nil {
		t.Fatalf("read the open entries: %v", err)
	}
	prefix := cfg.DeviceID + "-" + db.ID() + "-"
	res.seqOf = func(id string) string {
		if id == "" {
			return ""
		}
		s, ok := strings.CutPrefix(id, prefix)
		if !ok {
			t.Fatalf("record id %q is not of this database (%s)", id, prefix)
		}
		return s
	}
	return res
}

// TestProperty is the property test of issue 13: random sequences of
// badges (at toggle, in, out, access and "both" readers), time passing,
// wall-clock jumps, roster changes and restarts, under a pairing policy
// drawn per case, run against the real agent (real store in a temporary
// directory, chanReaders, an injected clock). Each case runs twice on
// fresh data directories, without and with its restarts; each run is
// checked against what its store kept (checkPropRun) and against a model
// of the pairing rules (checkPropModel), and the two runs must have kept
// the same records with the same ids (compareRuns).
//
// It runs propDefaultChecks cases unless -rapid.checks says otherwise, to
// stay fast under -race in `make test`. Run it longer with
//
//	go test -run TestProperty ./agent -rapid.checks=2000
//
// and replay a failure with the -rapid.seed or -rapid.failfile it prints.
func TestProperty(t *testing.T) {
	setDefaultChecks(propDefaultChecks)
	root := t.TempDir()
	n := 0
	rapid.Check(t, func(t *rapid.T) {
		c := genPropCase(t)
		n++
		dir := filepath.Join(root, fmt.Sprint(n))
		for _, d := range []string{"straight", "restarts"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		defer os.RemoveAll(dir)
		t.Logf("case: double_in=%s double_out=%s max_shift=%v min_shift=%v start=%v floor=%v",
			c.DoubleIn, c.DoubleOut, c.MaxShift, c.MinShift, c.Start, c.ClockFloor)
		for i, a := range c.Actions {
			t.Logf("  %2d %v", i, a)
		}
		straight := runPropCase(t, filepath.Join(dir, "straight"), c, false)
		checkPropRun(t, "straight", c, straight)
		checkPropModel(t, "straight", c, straight)
		withRestarts := runPropCase(t, filepath.Join(dir, "restarts"), c, true)
		checkPropRun(t, "restarts", c, withRestarts)
		checkPropModel(t, "restarts", c, withRestarts)
		compareRuns(t, straight, withRestarts)
	})
}

// setDefaultChecks sets -rapid.checks to n unless the command line set it.
func setDefaultChecks(n int) {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
	if !set {
		if err := flag.Set("rapid.checks", fmt.Sprint(n)); err != nil {
			panic(err) // rapid registers the flag
		}
	}
}

// checkPropRun checks the invariants of one run, per employee, over what
// the store kept.
func checkPropRun(t *rapid.T, run string, c propCase, r *propResult) {
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(run+": "+format, args...)
	}
	events := map[string]*punch.Event{}
	for _, ev := range r.events {
		events[ev.ID] = ev
	}
	// 1. Durations are >= 0, no shift's out is before its in, and the
	// duration is the real time between them: a shift closed by an exit
	// lasts what the monotonic clock counted between its punches,
	// whatever the wall clock did meanwhile (a jump either way), and its
	// out is its in plus that.
	for _, sh := range r.shifts {
		if out := events[sh.OutEvent]; out != nil {
			mIn, ok1 := r.mono[sh.InEvent]
			mOut, ok2 := r.mono[sh.OutEvent]
			if !ok1 || !ok2 {
				fail("shift %s: its events were not shown", sh.ID)
			} else if d := mOut - mIn; sh.Out.Sub(sh.In) != d || sh.DurationS != int64(d/time.Second) {
				fail("shift %s of %s: in %v, out %v, duration_s %d; the monotonic clock counted %v", sh.ID, sh.EmployeeID, sh.In, sh.Out, sh.DurationS, d)
			}
		}
		if sh.DurationS < 0 || sh.Out.Before(sh.In) {
			fail("shift %s of %s: in %v, out %v, duration_s %d", sh.ID, sh.EmployeeID, sh.In, sh.Out, sh.DurationS)
		}
		if want := int64(sh.Out.Sub(sh.In) / time.Second); sh.DurationS != want {
			fail("shift %s of %s: duration_s %d, want %d (in %v, out %v)", sh.ID, sh.EmployeeID, sh.DurationS, want, sh.In, sh.Out)
		}
		if slices.Contains(sh.Flags, punch.FlagAutoClosed) && sh.Out.Sub(sh.In) != c.MaxShift {
			fail("auto-closed shift %s of %s lasts %v, want max_shift %v", sh.ID, sh.EmployeeID, sh.Out.Sub(sh.In), c.MaxShift)
		}
	}
	// Every punch is the badge shown, decided by the roster in use then:
	// the roster has no access groups, contracts or PINs and no reader
	// is suspended, so every door opens, and a door's punch is accepted
	// with no direction.
	if len(r.events) != len(r.shown) {
		fail("%d events stored for %d badges", len(r.events), len(r.shown))
	}
	for _, ev := range r.events {
		b, ok := r.shown[ev.ID]
		if ok && b.emp == "" {
			if ev.EmployeeID != "" || ev.Decision != punch.Denied || ev.Reason != punch.ReasonUnknownCredential ||
				ev.Access != "" || ev.CredentialValue != b.card || ev.Count != 0 || ev.RosterVersion != b.version {
				fail("punch %+v of a card the roster does not know, badge %+v", *ev, b)
			}
			continue
		}
		if !ok || ev.EmployeeID != b.emp || ev.Reader != b.reader || !ev.At.Equal(b.at.Truncate(time.Millisecond)) ||
			ev.RosterVersion != b.version || ev.Access != punch.AccessGranted {
			fail("punch %+v, badge %+v", *ev, b)
		}
		if ev.Reader == "door" && (ev.Decision != punch.Accepted || ev.Direction != "") {
			fail("punch at the door: %+v", *ev)
		}
		if noPayroll := slices.Contains(ev.Flags, punch.FlagNoPayrollNo); noPayroll != (b.payroll == "") {
			fail("punch %s of %s, whose payroll number is %q: flags %v", ev.ID, ev.EmployeeID, b.payroll, ev.Flags)
		}
	}
	// A shift carries the roster version and payroll number in use at
	// its exit, and is flagged no_payroll_no when it has none.
	for _, sh := range r.shifts {
		if b, ok := r.shown[sh.OutEvent]; ok && (sh.RosterVersion != b.version || sh.PayrollNo != b.payroll) {
			fail("shift %s: roster version %d, payroll number %q; at its exit %d, %q", sh.ID, sh.RosterVersion, sh.PayrollNo, b.version, b.payroll)
		}
		noPayroll := slices.Contains(sh.Flags, punch.FlagNoPayrollNo)
		// (This found a shift that kept its entry's no_payroll_no
		// after the roster gave the person a number.)
		if noPayroll != (sh.PayrollNo == "") {
			fail("shift %s with payroll number %q: flags %v", sh.ID, sh.PayrollNo, sh.Flags)
		}
	}
	// Every time carries the site's offset in force at that moment
	// (cases cross the spring DST night in Europe/Amsterdam).
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	offsetOK := func(at time.Time) bool {
		_, got := at.Zone()
		_, want := at.In(ams).Zone()
		return got == want
	}
	for _, ev := range r.events {
		if !offsetOK(ev.At) {
			fail("punch %s at %s: not the offset of Europe/Amsterdam then", ev.ID, ev.At.Format(time.RFC3339))
		}
	}
	for _, sh := range r.shifts {
		if !offsetOK(sh.In) || !offsetOK(sh.Out) {
			fail("shift %s from %s to %s: not the offsets of Europe/Amsterdam then", sh.ID, sh.In.Format(time.RFC3339), sh.Out.Format(time.RFC3339))
		}
	}
	// A punch taken before ClockFloor, and only such a punch, is flagged
	// clock_unsynced; so is every shift that pairs one, unless its exit,
	// on a synced clock of the same boot, re-dated the entry
	// (clock_corrected).
	floor := c.ClockFloor
	if floor.IsZero() {
		floor = clock.DefaultFloor
	}
	for _, ev := range r.events {
		if unsynced := ev.At.Before(floor); unsynced != slices.Contains(ev.Flags, punch.FlagClockUnsynced) {
			fail("punch %s at %v (clock floor %v): flags %v", ev.ID, ev.At, floor, ev.Flags)
		}
	}
	for _, sh := range r.shifts {
		for _, id := range []string{sh.InEvent, sh.OutEvent} {
			if ev := events[id]; ev != nil && slices.Contains(ev.Flags, punch.FlagClockUnsynced) &&
				!slices.Contains(sh.Flags, punch.FlagClockUnsynced) && !(id == sh.InEvent && slices.Contains(sh.Flags, punch.FlagClockCorrected)) {
				fail("shift %s pairs punch %s taken on an unsynced clock but is not flagged: %v", sh.ID, id, sh.Flags)
			}
		}
	}
	// 2. Per employee, a shift ends before the next one (in record
	// order) begins, unless the wall clock stepped backwards between
	// their entries. The agent knows only the wall clock: after a step
	// back it cannot tell that a new entry lies inside a shift it has
	// already closed, so such shifts may overlap, flagged or not (a
	// shift is flagged clock_unsynced only when its own exit came
	// before its entry, or when a punch of it came before ClockFloor).
	// Without a step back between the two entries every time in
	// between was read from a clock that only went forwards: the first
	// shift's exit (or its auto-close at in + max_shift, which happened
	// at a time the clock had reached) precedes the second entry.
	last := map[string]*punch.Shift{}
	for _, sh := range r.shifts {
		prev := last[sh.EmployeeID]
		last[sh.EmployeeID] = sh
		if prev == nil {
			continue
		}
		e1, ok1 := r.epoch[prev.InEvent]
		e2, ok2 := r.epoch[sh.InEvent]
		if !ok1 || !ok2 {
			fail("shifts %s and %s of %s: an entry event is not one of the punches shown", prev.ID, sh.ID, sh.EmployeeID)
		}
		if e1 == e2 && sh.In.Before(prev.Out) {
			fail("shifts of %s overlap with no step back of the clock: %s (%v to %v) and %s (%v to %v)",
				sh.EmployeeID, prev.ID, prev.In, prev.Out, sh.ID, sh.In, sh.Out)
		}
	}
	// 3. Every accepted attendance punch belongs to exactly one shift or
	// to the one open entry:
	//   - an accepted entry (direction in) is the in_event of exactly one
	//     shift, or else the event of its employee's open entry;
	//   - an accepted exit (direction out) is the out_event of exactly
	//     one shift, unless it is flagged missing_in (an exit with no
	//     entry open, double_out = close_and_reopen): then of none;
	//   - a shift has no out_event exactly when it is flagged
	//     auto_closed or missing_out;
	//   - denied punches and punches at the access reader belong to
	//     none.
	// And each shift pairs its own employee's punches, at their times
	// and readers.
	inOf, outOf := map[string]int{}, map[string]int{}
	for _, sh := range r.shifts {
		inOf[sh.InEvent]++
		in := events[sh.InEvent]
		if in == nil || in.EmployeeID != sh.EmployeeID || in.Direction != punch.In || in.Decision != punch.Accepted ||
			// (an entry on an unsynced clock is re-dated by a synced
			// exit of the same boot: clock_corrected)
			!(in.At.Equal(sh.In) || slices.Contains(sh.Flags, punch.FlagClockCorrected)) || in.Reader != sh.InReader {
			fail("shift %s of %s: in_event %q is %+v", sh.ID, sh.EmployeeID, sh.InEvent, in)
		}
		noOut := slices.Contains(sh.Flags, punch.FlagAutoClosed) || slices.Contains(sh.Flags, punch.FlagMissingOut)
		if noOut {
			if sh.OutEvent != "" || sh.OutReader != "" {
				fail("shift %s of %s flagged %v has an exit: %q at %q", sh.ID, sh.EmployeeID, sh.Flags, sh.OutEvent, sh.OutReader)
			}
			continue
		}
		outOf[sh.OutEvent]++
		out := events[sh.OutEvent]
		if out == nil || out.EmployeeID != sh.EmployeeID || out.Direction != punch.Out || out.Decision != punch.Accepted ||
			// The exit's time is the shift's out, unless the wall
			// clock jumped during the shift or was not synced at
			// one end: then the monotonic clock gave the out
			// (checked above), and the shift is flagged so.
			!(out.At.Equal(sh.Out) || slices.Contains(sh.Flags, punch.FlagClockCorrected) || slices.Contains(sh.Flags, punch.FlagClockUnsynced)) ||
			out.Reader != sh.OutReader {
			fail("shift %s of %s: out_event %q is %+v", sh.ID, sh.EmployeeID, sh.OutEvent, out)
		}
	}
	openOf := map[string]int{}
	for emp, o := range r.open {
		openOf[o.EventID]++
		in := events[o.EventID]
		if in == nil || in.EmployeeID != emp || in.Direction != punch.In || in.Decision != punch.Accepted {
			fail("open entry of %s: event %q is %+v", emp, o.EventID, in)
		}
	}
	for _, ev := range r.events {
		attendance := ev.Decision == punch.Accepted && ev.Reader != "door"
		var want [3]int // shifts' in, shifts' out, open entries
		switch {
		case !attendance:
		case ev.Direction == punch.In:
			want = [3]int{inOf[ev.ID] + openOf[ev.ID], 0, 0}
			if want[0] != 1 {
				fail("accepted entry %s of %s at %s (%v) is the entry of %d shifts and %d open entries",
					ev.ID, ev.EmployeeID, ev.Reader, ev.At, inOf[ev.ID], openOf[ev.ID])
			}
			continue
		case ev.Direction == punch.Out && slices.Contains(ev.Flags, punch.FlagMissingIn):
		case ev.Direction == punch.Out:
			want[1] = 1
		default:
			fail("accepted punch %s of %s at attendance reader %s has direction %q", ev.ID, ev.EmployeeID, ev.Reader, ev.Direction)
		}
		if got := [3]int{inOf[ev.ID], outOf[ev.ID], openOf[ev.ID]}; got != want {
			fail("punch %+v: in of %d shifts, out of %d, entry of %d open entries; want %v", *ev, got[0], got[1], got[2], want)
		}
	}
}

// compareRuns checks that the run with restarts kept the same records as
// the run without: every event and shift, field by field, with the same
// ids, and the same open entries. Ids embed the database's random id
// (<device>-<dbid>-<kind><seq>): they are compared by their kind and
// sequence number.
func compareRuns(t *rapid.T, a, b *propResult) {
	x, y := normRun(a), normRun(b)
	for i := range max(len(x), len(y)) {
		var l, r string
		if i < len(x) {
			l = x[i]
		}
		if i < len(y) {
			r = y[i]
		}
		if l != r {
			t.Logf("without restarts:\n  %s", strings.Join(x, "\n  "))
			t.Logf("with restarts:\n  %s", strings.Join(y, "\n  "))
			t.Fatalf("record %d differs after restarts:\n without: %s\n    with: %s", i, l, r)
		}
	}
}

// normRun is a run's records and open entries as comparable lines.
func normRun(r *propResult) []string {
	log := r.log
	var out []string
	for _, e := range log {
		if ev := e.Event; ev != nil {
			c := *ev
			c.ID = r.seqOf(c.ID)
			out = append(out, "event "+mustJSON(c))
		}
		if sh := e.Shift; sh != nil {
			c := *sh
			c.ID, c.InEvent, c.OutEvent = r.seqOf(c.ID), r.seqOf(c.InEvent), r.seqOf(c.OutEvent)
			out = append(out, "shift "+mustJSON(c))
		}
	}
	emps := make([]string, 0, len(r.open))
	for emp := range r.open {
		emps = append(emps, emp)
	}
	slices.Sort(emps)
	for _, emp := range emps {
		c := *r.open[emp]
		c.EventID = r.seqOf(c.EventID)
		out = append(out, "open "+emp+" "+mustJSON(c))
	}
	return out
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // records marshal: the store stored them so
	}
	return string(b)
}

// propModelShift is a shift as the model of pairing makes it.
type propModelShift struct {
	in, out time.Time
	flag    string // "", punch.FlagMissingOut or punch.FlagAutoClosed
	// version and payroll are the roster's at the close (the entry's
	// payroll number when the roster dropped the person by then).
	version int64
	payroll string
}

// propModelOpen is an open entry in the model.
type propModelOpen struct {
	at      time.Time
	payroll string // at the entry
	mono    time.Duration
}

// checkPropModel checks each decision, the shifts of each employee and
// the open entries against a model of the pairing rules of issue 13,
// written from the issue rather than from punch.Decide: a reader's
// direction (toggle, in, out; a door pairs nothing), double_in and
// double_out by policy, min_shift, and max_shift closing an entry at in +
// max_shift before its person's next punch (at any reader) and at every
// restart.
func checkPropModel(t *rapid.T, run string, c propCase, r *propResult) {
	now, mono := c.Start, time.Hour
	floor := c.ClockFloor
	if floor.IsZero() {
		floor = clock.DefaultFloor
	}
	ros := newPropRoster()
	open := map[string]propModelOpen{}
	shifts := map[string][]propModelShift{}
	closeAs := func(e int, in propModelOpen, out time.Time, flag string) {
		emp, payroll := propEmployees[e], in.payroll
		if ros.on[e] {
			payroll = ros.payroll[e]
		}
		shifts[emp] = append(shifts[emp], propModelShift{in.at, out, flag, ros.version, payroll})
		delete(open, emp)
	}
	expire := func(e int, at time.Time) {
		if in, ok := open[propEmployees[e]]; ok && !at.Before(in.at.Add(c.MaxShift)) {
			closeAs(e, in, in.at.Add(c.MaxShift), punch.FlagAutoClosed)
		}
	}
	badge := 0
	for i, a := range c.Actions {
		switch a.Kind {
		case actAdvance:
			now, mono = now.Add(a.D), mono+a.D
		case actJump:
			now = now.Add(a.D)
		case actRoster:
			ros.version++
			ros.on[a.Emp], ros.payroll[a.Emp] = a.Op != "remove", a.Payroll
		case actRestart:
			for e := range propEmployees {
				expire(e, now)
			}
		case actBadge:
			if !r.done[i] {
				continue
			}
			if badge >= len(r.events) {
				t.Fatalf("%s: step %d (%v): no event stored", run, i, a)
			}
			ev := r.events[badge]
			badge++
			emp := propEmployees[a.Emp]
			if !ros.on[a.Emp] {
				// Denied unknown_credential (checked in
				// checkPropRun): the entry of a person the roster
				// dropped is closed only by max_shift.
				continue
			}
			expire(a.Emp, now)
			in, isOpen := open[emp]
			entry := propModelOpen{now, ros.payroll[a.Emp], mono}
			var dir, decision, reason string
			missingIn := false
			switch a.Reader {
			case "door":
				decision = punch.Accepted
			case "in":
				dir = punch.In
			case "out":
				dir = punch.Out
			default: // tog, both: toggle
				dir = punch.In
				if isOpen {
					dir = punch.Out
				}
			}
			switch {
			case dir == "":
			case dir == punch.In && isOpen && c.DoubleIn == config.PolicyDeny:
				decision, reason = punch.Denied, punch.ReasonDoubleIn
			case dir == punch.In && isOpen:
				decision = punch.Accepted
				closeAs(a.Emp, in, in.at, punch.FlagMissingOut)
				open[emp] = entry
			case dir == punch.In:
				decision = punch.Accepted
				open[emp] = entry
			case !isOpen && c.DoubleOut == config.PolicyDeny:
				decision, reason = punch.Denied, punch.ReasonDoubleOut
			case !isOpen:
				decision, missingIn = punch.Accepted, true
			case now.Sub(in.at) >= 0 && now.Sub(in.at) < c.MinShift:
				decision, reason = punch.Denied, punch.ReasonTooSoon
			default:
				decision = punch.Accepted
				// The monotonic clock gives the duration; an
				// entry on an unsynced clock (stepped back before
				// the floor) and an exit on a synced one re-date
				// the entry from it.
				d := mono - in.mono
				if in.at.Before(floor) && !now.Before(floor) {
					in.at = now.Add(-d)
				}
				closeAs(a.Emp, in, in.at.Add(d), "")
			}
			if ev.Decision != decision || ev.Reason != reason || ev.Direction != dir || slices.Contains(ev.Flags, punch.FlagMissingIn) != missingIn {
				t.Fatalf("%s: step %d (%v) at %v: stored %s %s %q flags %v; the model says %s %s %q missing_in %v",
					run, i, a, now, ev.Decision, ev.Direction, ev.Reason, ev.Flags, decision, dir, reason, missingIn)
			}
		}
	}
	got := map[string][]propModelShift{}
	for _, sh := range r.shifts {
		flag := ""
		for _, f := range []string{punch.FlagMissingOut, punch.FlagAutoClosed} {
			if slices.Contains(sh.Flags, f) {
				flag = f
			}
		}
		got[sh.EmployeeID] = append(got[sh.EmployeeID], propModelShift{sh.In, sh.Out, flag, sh.RosterVersion, sh.PayrollNo})
	}
	for _, emp := range propEmployees {
		g, w := got[emp], shifts[emp]
		same := func(x, y propModelShift) bool {
			return x.in.Equal(y.in) && x.out.Equal(y.out) && x.flag == y.flag && x.version == y.version && x.payroll == y.payroll
		}
		if !slices.EqualFunc(g, w, same) {
			t.Fatalf("%s: shifts of %s:\n stored %v\n  model %v", run, emp, g, w)
		}
		o, ok := r.open[emp]
		if in, want := open[emp]; ok != want || ok && (!o.At.Equal(in.at) || o.PayrollNo != in.payroll) {
			t.Fatalf("%s: open entry of %s: stored %+v; the model says %v (%v)", run, emp, o, in, want)
		}
	}
}
