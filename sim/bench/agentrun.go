package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/trace"
	"strings"
	"sync"
	"time"

	"github.com/punchclock/punchclock/agent"
	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/rdm6300"
	"github.com/punchclock/punchclock/roster"
	"github.com/punchclock/punchclock/sim"
	"github.com/punchclock/punchclock/store"
)

// repeatWindow of the harness's readers: each presentation is one frame,
// and a card comes back only after dozens of other punches.
const repeatWindow = "1ms"

// decision is what OnDecision reported for one punch.
type decision struct {
	at       time.Time
	shift    bool
	accepted bool
}

// site is an in-process agent with real rdm6300 drivers on real ptys.
type site struct {
	dir     string
	agent   *agent.Agent
	ports   []*sim.Serial
	decided map[string]chan decision // by reader name
	cancel  context.CancelFunc
	done    chan error

	stopOnce sync.Once
	stopErr  error
}

// writeConfig writes the agent's TOML configuration with nReaders
// rdm6300 readers on ptys under dir/dev, and returns its path.
func writeConfig(dir, brokerURL string, nReaders int, rw string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "device_id = %q\ndata_dir = %q\ntimezone = %q\n\n[mqtt]\nbroker = %q\ntopic_prefix = %q\n",
		deviceID, filepath.Join(dir, "data"), timezone, brokerURL, topicPrefix)
	for i := range nReaders {
		fmt.Fprintf(&b, "\n[[readers]]\nname = %q\ndriver = \"rdm6300\"\nport = %q\nbaud = 9600\ndirection = \"toggle\"\nrepeat_window = %q\n",
			readerName(i), filepath.Join(dir, "dev", readerName(i)), rw)
	}
	path := filepath.Join(dir, "punchclock.toml")
	if err := os.MkdirAll(filepath.Join(dir, "dev"), 0o750); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, []byte(b.String()), 0o640)
}

func readerName(i int) string { return fmt.Sprintf("r%d", i) }

// startSite links the ptys, builds the agent from the config in dir (its
// store already prefilled) and runs it. log may be nil (silent).
func startSite(dir, brokerURL string, nReaders int, log *slog.Logger) (*site, error) {
	cfgPath, err := writeConfig(dir, brokerURL, nReaders, repeatWindow)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	s := &site{dir: dir, decided: map[string]chan decision{}, done: make(chan error, 1)}
	var readers []reader.Reader
	for _, rc := range cfg.Readers {
		p, err := sim.NewSerial(rc.Settings.(*rdm6300.Settings).Port)
		if err != nil {
			s.closePorts()
			return nil, err
		}
		s.ports = append(s.ports, p)
		s.decided[rc.Name] = make(chan decision, 4096)
		rd, err := rc.New(nil)
		if err != nil {
			s.closePorts()
			return nil, err
		}
		readers = append(readers, rd)
	}
	a, err := agent.New(agent.Options{
		Config:  cfg,
		Readers: readers,
		Version: "bench",
		Logger:  log,
		OnDecision: func(ev punch.Event, sh *punch.Shift) {
			d := decision{at: time.Now(), shift: sh != nil, accepted: ev.Decision == punch.Accepted}
			if c := s.decided[ev.Reader]; c != nil {
				select {
				case c <- d:
				default: // nobody waits on this reader
				}
			}
		},
	})
	if err != nil {
		s.closePorts()
		return nil, err
	}
	s.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- a.Run(ctx) }()
	return s, nil
}

func (s *site) closePorts() {
	for _, p := range s.ports {
		p.Close()
	}
}

// stop stops the agent, closes it and the ptys. It is safe to call twice.
func (s *site) stop() error {
	s.stopOnce.Do(func() {
		s.cancel()
		var err error
		select {
		case err = <-s.done:
		case <-time.After(30 * time.Second):
			err = errors.New("agent did not stop within 30s")
		}
		if cerr := s.agent.Close(); cerr != nil && err == nil {
			err = cerr
		}
		s.closePorts()
		s.stopErr = err
	})
	return s.stopErr
}

// badge writes one card frame on reader i's pty and waits for the
// decision. It returns when the frame was written and the decision.
func (s *site) badge(ctx context.Context, i int, cardValue string, timeout time.Duration) (time.Time, decision, error) {
	frame, err := rdm6300.Encode(cardValue)
	if err != nil {
		return time.Time{}, decision{}, err
	}
	t0 := time.Now()
	if _, err := s.ports[i].Write(frame); err != nil {
		return t0, decision{}, err
	}
	select {
	case d := <-s.decided[readerName(i)]:
		return t0, d, nil
	case <-time.After(timeout):
		return t0, decision{}, fmt.Errorf("reader %s: no decision on %s within %v", readerName(i), cardValue, timeout)
	case <-ctx.Done():
		return t0, decision{}, ctx.Err()
	}
}

// waitIdle waits until the outbox is empty, looking every poll.
func (s *site) waitIdle(ctx context.Context, poll, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := s.agent.DB().Status()
		if err != nil {
			return err
		}
		if st.Pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("outbox still holds %d rows after %v", st.Pending, timeout)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(poll)
	}
}

// waitReady waits until every reader is up: a throwaway punch on each
// is decided.
func (s *site) waitReady(ctx context.Context, timeout time.Duration, warmCard func(i int) string) error {
	for i := range s.ports {
		var err error
		for range int(timeout / (200 * time.Millisecond)) {
			_, _, err = s.badge(ctx, i, warmCard(i), 200*time.Millisecond)
			if err == nil {
				break
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// agentSite prefills a store with the roster, starts the site and waits
// until it decides punches (warm-up cards are the last employees', never
// used by the figures). log may be nil (silent).
func (r *run) agentSite(ctx context.Context, name string, log *slog.Logger) (*site, error) {
	dir := filepath.Join(r.dir, name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	ros, err := makeRoster(r.opts.Roster)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(filepath.Join(dir, "data"), store.Options{DeviceID: deviceID})
	if err != nil {
		return nil, err
	}
	if err := db.ReplaceRoster(ros); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.Close(); err != nil {
		return nil, err
	}
	s, err := startSite(dir, r.broker.URL(), r.opts.Readers, log)
	if err != nil {
		return nil, err
	}
	warm := func(i int) string { return card(r.opts.Roster - 1 - i) }
	if err := s.waitReady(ctx, 10*time.Second, warm); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// agentLatency badges Punches cards one at a time at one reader of an
// online agent (roster loaded, uplink connected, 8 readers configured):
// each punch waits until its decision is durable and the outbox is empty
// again, as on a real terminal where people badge seconds apart. Half
// the punches are exits, whose shift a subscriber times.
func (r *run) agentLatency(ctx context.Context) error {
	sub, err := newSubscriber(r.broker.URL(), "bench-shift-sub", topicPrefix+"/"+deviceID+"/shifts", r.opts.Punches)
	if err != nil {
		return err
	}
	defer sub.close()
	own, err := r.punchCommits()
	if err != nil {
		return err
	}
	s, err := r.agentSite(ctx, "latency", nil)
	if err != nil {
		return err
	}
	defer s.stop()
	if err := s.waitIdle(ctx, time.Millisecond, 10*time.Second); err != nil {
		return err
	}
	drainArrivals(sub.arrived)

	// Blocks of 16 cards: in for each, then out for each, so that one
	// card's presentations are far apart and every other punch is an exit.
	const block = 16
	pool := r.opts.Roster - 2*r.opts.Readers - 1
	if r.opts.Trace != nil {
		if err := trace.Start(r.opts.Trace); err != nil {
			return err
		}
		defer trace.Stop()
	}
	var lat, shift, gaps []time.Duration
	var last time.Time // the previous decision
	for i := range r.opts.Punches {
		b, pos := i/(2*block), i%(2*block)
		c := card((b*block + pos%block) % pool)
		t0, d, err := s.badge(ctx, 0, c, r.opts.DecisionTimeout)
		if err != nil {
			return err
		}
		lat = append(lat, d.at.Sub(t0))
		if !last.IsZero() {
			gaps = append(gaps, t0.Sub(last))
		}
		last = d.at
		if d.shift {
			select {
			case at := <-sub.arrived:
				shift = append(shift, at.Sub(t0))
			case <-time.After(r.opts.DecisionTimeout):
				return fmt.Errorf("shift of exit %d not received within %v", i, r.opts.DecisionTimeout)
			}
		}
		if err := s.waitIdle(ctx, 500*time.Microsecond, r.opts.DecisionTimeout); err != nil {
			return err
		}
	}
	if r.opts.Trace != nil {
		trace.Stop()
	}
	if err := s.stop(); err != nil {
		return err
	}
	// The floor's writes come back to back; the decisions' journal writes
	// come one at a time, a publish round trip apart, and on some disks
	// (a virtual one above all) a write after a pause costs more than one
	// right after another. The same floor, spaced as the decisions were.
	gap := newDist(gaps).pct(50)
	spaced, err := r.timePwrites(ctx, "floor-spaced", false, gap)
	if err != nil {
		return err
	}
	dl, ds := newDist(lat), newDist(shift)
	// The floor of a durable decision is one lone write and fdatasync,
	// as a decision's journal append is: the floor spaced as the
	// decisions were. The back-to-back floor (writes one right after
	// another, cheaper on this kind of disk) is shown beside it.
	floor := spaced.pct(99)
	ratio := float64(dl.pct(99)) / float64(floor)
	r.rep.add(Row{
		Figure:   fmt.Sprintf("decision latency p50 / p99 (%d punches, pty → durable)", len(lat)),
		Measured: fmt.Sprintf("%s / %s", ms(dl.pct(50)), ms(dl.pct(99))),
		Limit: fmt.Sprintf("4 KiB pwrite + fdatasync %s apart p99 %s (p50 %s); back to back p99 %s",
			ms(gap), ms(floor), ms(spaced.pct(50)), ms(r.floor.pct(99))),
		Ratio: fmt.Sprintf("p99 = %.1f× p99", ratio),
		Goal:  "p99 ≤ 3× floor p99",
		Pass:  ratio <= 3,
		Bound: fmt.Sprintf("the journal append, one write and fdatasync, spaced as the decisions were (%s apart): p50 %s, p99 %s here, "+
			"against p50 %s, p99 %s back to back (decision p99 = %.1f× that); the pty, driver and writer add %s at p50; "+
			"the p99 follows the machine's load (max %s)",
			ms(gap), ms(spaced.pct(50)), ms(spaced.pct(99)), ms(r.floor.pct(50)), ms(r.floor.pct(99)),
			float64(dl.pct(99))/float64(r.floor.pct(99)), ms(max(0, dl.pct(50)-spaced.pct(50))), ms(dl.pct(100))),
	})
	// The agent calls OnDecision right after it handed the decision to
	// the feedback (LEDs, buzzer, relay, the reader's own indicator):
	// the same times bound when feedback begins. Nothing on that path
	// waits for the network (the uplink is only poked).
	r.rep.add(Row{
		Figure:   "feedback begins after the credential's last byte, p99",
		Measured: ms(dl.pct(99)),
		Limit:    "the decision latency above (feedback starts before OnDecision)",
		Ratio:    fmt.Sprintf("%.1f%% of the goal", 100*float64(dl.pct(99))/float64(100*time.Millisecond)),
		Goal:     "≤ 100 ms",
		Pass:     dl.pct(99) <= 100*time.Millisecond,
	})
	r.rep.note("decision latency against a raw one-record bbolt commit of the same run: p99 %.1f× its p50 %s, %.1f× its p99 %s",
		float64(dl.pct(99))/float64(r.commit.pct(50)), ms(r.commit.pct(50)),
		float64(dl.pct(99))/float64(r.commit.pct(99)), ms(r.commit.pct(99)))
	r.rep.note("one punch through store.Append alone (roster of %d, no pty, no agent): p50 %s, p99 %s over %d punches",
		r.opts.Roster, ms(own.pct(50)), ms(own.pct(99)), len(own))
	rt := r.roundTrip
	lim := floor + rt.pct(99)
	r.rep.add(Row{
		Figure:   fmt.Sprintf("exit punch → shift at subscriber p50 / p99 (%d exits)", len(shift)),
		Measured: fmt.Sprintf("%s / %s", ms(ds.pct(50)), ms(ds.pct(99))),
		Limit:    fmt.Sprintf("fdatasync floor + paho round trip p99 %s", ms(lim)),
		Ratio:    fmt.Sprintf("%.1f×", float64(ds.pct(99))/float64(lim)),
		Goal:     "p99 ≤ 50 ms",
		Pass:     ds.pct(99) <= 50*time.Millisecond,
		Bound:    "the uplink's publish path; see docs/performance.md",
	})
	r.logf("decision p50 %s p99 %s max %s; exit → shift p50 %s p99 %s; floor spaced %s apart p50 %s p99 %s",
		ms(dl.pct(50)), ms(dl.pct(99)), ms(dl.pct(100)), ms(ds.pct(50)), ms(ds.pct(99)), ms(gap), ms(spaced.pct(50)), ms(spaced.pct(99)))
	return nil
}

// punchCommits times the agent's transaction without the agent: one
// punch decided from memory and recorded per store.Append, on a store holding the
// roster, as the agent's writer does it.
func (r *run) punchCommits() (dist, error) {
	dir := filepath.Join(r.dir, "punch-commit")
	ros, err := makeRoster(r.opts.Roster)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(dir, store.Options{DeviceID: deviceID})
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	defer db.Close()
	if err := db.ReplaceRoster(ros); err != nil {
		return nil, err
	}
	// The agent decides from memory: a card index and the open entries.
	byCard := make(map[string]*roster.Employee, len(ros.Employees))
	for i := range ros.Employees {
		byCard[card(i)] = &ros.Employees[i]
	}
	open := map[string]*punch.Open{}
	const block = 16
	lat := make([]time.Duration, r.opts.RawCommits)
	for i := range lat {
		c := card(((i/(2*block))*block + i%block) % len(ros.Employees))
		t0 := time.Now()
		emp := byCard[c]
		if emp == nil {
			return nil, fmt.Errorf("card %s: no employee", c)
		}
		out := punch.Decide(punch.Input{Reader: readerName(0), Mode: punch.ModeToggle, CredType: reader.TypeCard,
			CredVal: c, At: time.Now(), ClockSynced: true, Employee: emp, Open: open[emp.ID]})
		err := db.Append([]*punch.Outcome{&out})
		if out.CloseOpen {
			delete(open, emp.ID)
		}
		if out.NewOpen != nil {
			open[emp.ID] = out.NewOpen
		}
		if err != nil {
			return nil, err
		}
		lat[i] = time.Since(t0)
	}
	return newDist(lat), nil
}

func drainArrivals(c chan time.Time) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// agentThroughput has Readers readers badge at once, each presenting its
// next card as soon as the previous decision is durable, against an
// online agent.
func (r *run) agentThroughput(ctx context.Context) error {
	s, err := r.agentSite(ctx, "throughput", nil)
	if err != nil {
		return err
	}
	defer s.stop()
	const perReader = 64 // distinct cards per reader, far apart in time
	var wg sync.WaitGroup
	errs := make(chan error, r.opts.Readers)
	began := time.Now()
	for i := range r.opts.Readers {
		wg.Go(func() {
			for j := range r.opts.ThroughputPunches {
				c := card(i*perReader + j%perReader)
				if _, _, err := s.badge(ctx, i, c, r.opts.DecisionTimeout); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(began)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if err := s.stop(); err != nil {
		return err
	}
	n := r.opts.Readers * r.opts.ThroughputPunches
	rate := float64(n) / took.Seconds()
	ratio := rate / r.batchRate
	r.rep.add(Row{
		Figure:   fmt.Sprintf("sustained punches/s, %d readers at once, fsync before each decision", r.opts.Readers),
		Measured: perSec(rate),
		Limit:    fmt.Sprintf("bbolt Batch, %d goroutines %s", r.opts.Readers, perSec(r.batchRate)),
		Ratio:    fmt.Sprintf("%.2f×", ratio),
		Goal:     "≥ 0.8× Batch",
		Pass:     ratio >= 0.8,
		Bound:    "one reader's punch waits for its group commit; see docs/performance.md",
	})
	r.logf("%d punches in %v: %s", n, took.Round(time.Millisecond), perSec(rate))
	return nil
}
