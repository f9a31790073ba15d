package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/punchclock/punchclock/agent"
	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/sim"
	"github.com/punchclock/punchclock/sim/samples"
)

// benchRepeatWindow is the readers' repeat window in these runs: a
// presentation is over once the twin's command has returned and this has
// passed (readerGap).
const (
	benchRepeatWindow = "20ms"
	readerGap         = 30 * time.Millisecond
)

// readerPresentations is how many presentations each driver's latency is
// measured over.
func (r *run) readerPresentations() int {
	if r.opts.QuickMode {
		return 10
	}
	return 100
}

// readerSite writes a terminal with one sample reader and its roster
// under dir, and returns the config.
func readerSite(dir string, s samples.Sample) (*config.Config, error) {
	if err := os.MkdirAll(filepath.Join(dir, "dev"), 0o750); err != nil {
		return nil, err
	}
	roster := `{"version": 1, "employees": [{"id": "E1", "payroll_no": "1", "biometric_consent": true, "credentials": [` + s.Credential + `]}]}`
	if err := os.WriteFile(filepath.Join(dir, "roster.json"), []byte(roster), 0o640); err != nil {
		return nil, err
	}
	// As on a Pi whose clock NTP has set.
	text := fmt.Sprintf("device_id = %q\ndata_dir = %q\ntimezone = %q\nroster_file = %q\n[clock]\nsource = \"trusted\"\n",
		deviceID, filepath.Join(dir, "data"), timezone, filepath.Join(dir, "roster.json")) +
		samples.SampleConfig(dir, []samples.Sample{s}, benchRepeatWindow)
	path := filepath.Join(dir, "punchclock.toml")
	if err := os.WriteFile(path, []byte(text), 0o640); err != nil {
		return nil, err
	}
	return config.Load(path)
}

// tap passes a reader's reads on and remembers the stamp of the latest:
// by the reader contract, when its driver took the last byte (or edge) of
// the credential off the wire. A key's read is stamped when the key was
// pressed, so for a PIN it is the '#' that ended it.
type tap struct {
	reader.Reader
	mu   sync.Mutex
	last time.Time
}

func (t *tap) Run(ctx context.Context, out chan<- reader.Read) error {
	in := make(chan reader.Read)
	done := make(chan error, 1)
	go func() { done <- t.Reader.Run(ctx, in) }()
	for {
		select {
		case rd := <-in:
			t.mu.Lock()
			t.last = rd.At
			t.mu.Unlock()
			select {
			case out <- rd:
			case <-ctx.Done():
			}
		case err := <-done:
			return err
		}
	}
}

func (t *tap) lastAt() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// readerLatency measures, per driver, the time from the last byte of a
// presentation on the wire (as its driver stamps the read) to the durable
// decision, through the driver's twin and the real driver, in process.
func (r *run) readerLatency(ctx context.Context) error {
	for _, s := range samples.Samples {
		if err := r.oneReaderLatency(ctx, s); err != nil {
			return fmt.Errorf("driver %s: %w", s.Driver, err)
		}
	}
	return nil
}

func (r *run) oneReaderLatency(ctx context.Context, s samples.Sample) error {
	dir := filepath.Join(r.dir, "reader-"+s.Driver)
	cfg, err := readerSite(dir, s)
	if err != nil {
		return err
	}
	twins, err := samples.Twins(cfg)
	if err != nil {
		return err
	}
	defer samples.Close(twins)
	readers, err := cfg.NewReaders(nil)
	if err != nil {
		return err
	}
	tp := &tap{Reader: readers[0]}
	readers[0] = tp
	decided := make(chan time.Time, 16)
	a, err := agent.New(agent.Options{Config: cfg, Readers: readers, Version: "bench",
		OnDecision: func(ev punch.Event, _ *punch.Shift) {
			if ev.Decision == punch.Accepted {
				select {
				case decided <- time.Now():
				default: // nobody waits any more: never hold up the writer
				}
			}
		}})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	defer func() {
		cancel()
		<-done
		a.Close()
	}()
	script := &sim.Script{Twins: twins}
	present := strings.Join(s.Present, "\n")
	var lat []time.Duration
	n := r.readerPresentations()
	// The first presentation also waits for the reader to come up.
	for i := -1; i < n; i++ {
		// Apart by more than the repeat window: a new presentation.
		time.Sleep(readerGap)
		for len(decided) > 0 {
			<-decided // a late repeat of the last one: not this presentation's
		}
		if err := script.Run(ctx, strings.NewReader(present)); err != nil {
			return err
		}
		select {
		case at := <-decided:
			if i >= 0 {
				lat = append(lat, at.Sub(tp.lastAt()))
			}
		case <-time.After(r.opts.DecisionTimeout + 10*time.Second):
			return fmt.Errorf("no decision on presentation %d within %v", i, r.opts.DecisionTimeout+10*time.Second)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	d := newDist(lat)
	r.rep.add(Row{
		Figure:   fmt.Sprintf("%s: last wire byte → durable decision p50 / p99 (%d presentations)", s.Driver, len(lat)),
		Measured: fmt.Sprintf("%s / %s", ms(d.pct(50)), ms(d.pct(99))),
		Limit:    fmt.Sprintf("the presentation's own time on the wire: %s", ms(s.Wire)),
		Ratio:    fmt.Sprintf("p99 = %.2f× wire time", float64(d.pct(99))/float64(s.Wire)),
		Goal:     "p99 ≤ 100 ms (feedback within 100 ms)",
		Pass:     d.pct(99) <= 100*time.Millisecond,
	})
	r.logf("%s: p50 %s p99 %s", s.Driver, ms(d.pct(50)), ms(d.pct(99)))
	return nil
}

// readerIdleCPU measures the CPU that the agent spends on an idle polled
// reader: the agent runs as its own process against the twin in this
// one, and its user and system time over a quiet window is read from
// /proc.
func (r *run) readerIdleCPU(ctx context.Context) error {
	window := 10 * time.Second
	if r.opts.QuickMode {
		window = 3 * time.Second
	}
	for _, s := range samples.Samples {
		if !s.Polled {
			continue
		}
		dir := filepath.Join(r.dir, "idle-"+s.Driver)
		cfg, err := readerSite(dir, s)
		if err != nil {
			return err
		}
		twins, err := samples.Twins(cfg)
		if err != nil {
			return err
		}
		p, _, err := startProc(ctx, r.opts.Agent, cfg.Path)
		if err != nil {
			samples.Close(twins)
			return err
		}
		time.Sleep(2 * time.Second) // past start-up and the reader's init
		t0, c0, err0 := procCPU(p.pid())
		time.Sleep(window)
		t1, c1, err1 := procCPU(p.pid())
		state := readerState(cfg)
		perr := p.stop()
		samples.Close(twins)
		if err0 != nil || err1 != nil {
			return fmt.Errorf("driver %s: cpu: %v %v", s.Driver, err0, err1)
		}
		if perr != nil {
			return perr
		}
		pct := 100 * c1.Sub(c0).Seconds() / t1.Sub(t0).Seconds()
		r.rep.add(Row{
			Figure:   fmt.Sprintf("%s: CPU of the agent with an idle polled reader (%v, reader %s)", s.Driver, window, state),
			Measured: fmt.Sprintf("%.2f %% of one core", pct),
			Limit:    "one core: 100 %",
			Ratio:    fmt.Sprintf("%.4f×", pct/100),
			Goal:     "< 1 % of one core",
			Pass:     pct < 1,
		})
		r.logf("%s idle: %.2f %%", s.Driver, pct)
	}
	return nil
}

// readerState asks the running agent for its reader's state.
func readerState(cfg *config.Config) string {
	st, err := agent.QueryStatus(cfg)
	if err != nil || len(st.Readers) == 0 {
		return "unknown"
	}
	return st.Readers[0].State
}

// procCPU returns now and the user+system CPU time of process pid.
func procCPU(pid string) (time.Time, cpuTime, error) {
	now := time.Now()
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return now, 0, err
	}
	// The command name may hold spaces: fields count from its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return now, 0, fmt.Errorf("short /proc/%s/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return now, 0, fmt.Errorf("bad /proc/%s/stat", pid)
	}
	return now, cpuTime(ut + st), nil
}

// cpuTime is CPU time in clock ticks (USER_HZ, 100 on Linux).
type cpuTime int64

func (c cpuTime) Sub(o cpuTime) time.Duration { return time.Duration(c-o) * 10 * time.Millisecond }
