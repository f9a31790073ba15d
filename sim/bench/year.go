package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/punchclock/punchclock/agent"
	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/roster"
	"github.com/punchclock/punchclock/sim"
	"github.com/punchclock/punchclock/store"
)

// yearResult is what prefillYear stored.
type yearResult struct {
	Punches, Shifts int
	Delivered       int // records marked delivered (all but the last day's)
	Took            time.Duration
}

// prefillYear stores the roster and punches punches spread evenly over
// the days days ending at now, as the agent would decide them
// (punch.Decide, store.Append; fsync and the journal off). Day d is the
// 24 hours starting (days-d) × 24 h before now; on it a different set of
// employees each badges in, one every 20 s from the day's start, and out
// 8 h 30 later, so the records are in time order. Every record but the
// last day's is then marked delivered (store.Sent), as on a terminal whose
// uplink works; the database is closed and opened again normally.
func prefillYear(dir string, ros *roster.Roster, punches, days int, now time.Time) (yearResult, error) {
	began := time.Now()
	var res yearResult
	db, loc, err := openPrefill(dir, ros)
	if err != nil {
		return res, err
	}
	defer func() {
		if db != nil {
			db.Close()
		}
	}()
	emps := ros.Employees
	pairs := punches / 2
	next := 0 // the next employee to work
	for d := range days {
		if d == days-1 {
			n, err := markDelivered(db, now)
			if err != nil {
				return res, err
			}
			res.Delivered = n
		}
		k := pairs*(d+1)/days - pairs*d/days // employees working on day d
		if k > len(emps) {
			return res, fmt.Errorf("%d employees would work on one day; the roster has %d", k, len(emps))
		}
		spacing := min(20*time.Second, 14*time.Hour/time.Duration(max(k, 1)))
		start := now.Add(-time.Duration(days-d) * 24 * time.Hour).In(loc)
		outs := make([]punch.Outcome, 0, 2*k)
		open := make(map[int]*punch.Open, k)
		for pass := range 2 {
			for j := range k {
				e := (next + j) % len(emps)
				at := start.Add(time.Duration(j) * spacing)
				if pass == 1 {
					at = at.Add(8*time.Hour + 30*time.Minute)
				}
				outs = append(outs, punch.Decide(punch.Input{
					Reader: "front", Mode: punch.ModeToggle, CredType: roster.Card, CredVal: card(e),
					At: at, ClockSynced: true, Employee: &emps[e], Open: open[e],
				}))
				out := &outs[len(outs)-1]
				if out.NewOpen != nil {
					open[e] = out.NewOpen
				}
				if out.Shift != nil {
					res.Shifts++
				}
			}
		}
		next = (next + k) % len(emps)
		ptrs := make([]*punch.Outcome, len(outs))
		for i := range outs {
			ptrs[i] = &outs[i]
		}
		if err := db.Append(ptrs); err != nil {
			return res, err
		}
		res.Punches += len(outs)
	}
	err = reopen(db, dir)
	db = nil
	if err != nil {
		return res, err
	}
	res.Took = time.Since(began)
	return res, nil
}

// markDelivered marks every record in the outbox delivered at at.
func markDelivered(db *store.DB, at time.Time) (int, error) {
	n := 0
	var after uint64
	for {
		rows, err := db.Peek(after, 20000)
		if err != nil {
			return n, err
		}
		if len(rows) == 0 {
			return n, nil
		}
		seqs := make([]uint64, len(rows))
		for i, r := range rows {
			seqs[i] = r.Seq
		}
		if err := db.Sent(seqs, at); err != nil {
			return n, err
		}
		n += len(seqs)
		after = rows[len(rows)-1].Seq
	}
}

// storeFiles is the size of the database and journal files in dir.
func storeFiles(dir string) (int64, error) {
	var total int64
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		if n := e.Name(); n == store.FileName || strings.HasPrefix(n, "punchclock.wal.") {
			fi, err := e.Info()
			if err != nil {
				return 0, err
			}
			total += fi.Size()
		}
	}
	return total, nil
}

// yearStore is a terminal with a year of punches: YearPunches punches over
// YearDays days, all delivered but the last day's. The punchclock binary
// starts on it with the default [storage] (retention 30 d, max_data_mb
// 512) and prunes at start; the figures are the data it keeps against
// max_data_mb, its start-up time, and `punchclock log` over one day.
func (r *run) yearStore(ctx context.Context) error {
	dir := filepath.Join(r.dir, "year")
	data := filepath.Join(dir, "data")
	ros, err := makeRoster(r.opts.Roster)
	if err != nil {
		return err
	}
	now := time.Now()
	pre, err := prefillYear(data, ros, r.opts.YearPunches, r.opts.YearDays, now)
	if err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	syscall.Sync()
	filled, err := storeFiles(data)
	if err != nil {
		return err
	}
	r.logf("prefilled %d punches + %d shifts over %d days in %v (%d delivered), files %s",
		pre.Punches, pre.Shifts, r.opts.YearDays, pre.Took.Round(time.Millisecond), pre.Delivered, mib(filled))
	r.rep.note("year prefill: %d punches + %d shifts over %d days (store.Append without fsync or journal, one call per day), %d records marked delivered (store.Sent), the last day's %d not: %v; files %s before the agent's start",
		pre.Punches, pre.Shifts, r.opts.YearDays, pre.Delivered, pre.Punches+pre.Shifts-pre.Delivered, pre.Took.Round(time.Millisecond), mib(filled))

	cfgPath, err := writeConfig(dir, "", 1, repeatWindow)
	if err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	port, err := sim.NewSerial(filepath.Join(dir, "dev", readerName(0)))
	if err != nil {
		return err
	}
	defer port.Close()
	floor, err := r.execFloor(r.opts.Starts)
	if err != nil {
		return err
	}

	// First start: it prunes what is past retention.
	p, first, err := startProc(ctx, r.opts.Agent, cfgPath)
	if err != nil {
		return err
	}
	defer func() {
		if p != nil {
			p.kill()
		}
	}()
	readyAt := time.Now()
	const pruned = "msg=\"pruned delivered records past retention\""
	for !strings.Contains(p.logText(), pruned) {
		if time.Since(readyAt) > 5*time.Minute {
			return fmt.Errorf("agent did not log its pruning within 5 minutes:\n%s", tail(p.logText(), 2000))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
	pruneTook := time.Since(readyAt)
	prunedN := prunedRecords(p.logText(), pruned)
	st, err := agent.QueryStatus(cfg)
	if err != nil {
		return err
	}
	files, err := storeFiles(data)
	if err != nil {
		return err
	}

	// punchclock log over one day within retention, with the agent running.
	day := now.In(cfg.Location).AddDate(0, 0, -10).Format(time.DateOnly)
	logRun, lines, err := r.timeLog(cfgPath, day, r.opts.Starts)
	if err != nil {
		return err
	}
	if lines == 0 {
		return fmt.Errorf("punchclock log over %s printed nothing", day)
	}
	if err := p.stop(); err != nil {
		return err
	}
	p = nil
	logStopped, _, err := r.timeLog(cfgPath, day, r.opts.Starts)
	if err != nil {
		return err
	}
	// Later starts: the median, as for the other start-up figure.
	p, again, err := r.timeStarts(ctx, cfgPath, r.opts.Starts)
	if err != nil {
		return err
	}
	if err := p.stop(); err != nil {
		return err
	}
	p = nil

	limit := int64(config.DefaultMaxDataMB) << 20
	if st.DataLimit != limit {
		return fmt.Errorf("status says data_limit %d, want the default max_data_mb %d", st.DataLimit, limit)
	}
	r.rep.add(Row{
		Figure:   fmt.Sprintf("disk: a year of punches (%d over %d days) after start-up pruning, retention 30 d", pre.Punches, r.opts.YearDays),
		Measured: fmt.Sprintf("files %s (data %s)", mib(files), mib(st.DataBytes)),
		Limit:    "max_data_mb " + mib(limit),
		Ratio:    fmt.Sprintf("%.2f×", float64(files)/float64(limit)),
		Goal:     "within max_data_mb",
		Pass:     files <= limit && st.DataBytes <= limit,
		Bound:    "bbolt does not give pages back to the file system: the file keeps its high-water mark, the data (free pages not counted) is what retention keeps",
	})
	r.rep.add(Row{
		Figure:   fmt.Sprintf("start-up: exec → ready on a year of punches (first start, then median of %d)", r.opts.Starts),
		Measured: fmt.Sprintf("%s, then %s", ms(first), ms(again)),
		Limit:    "exec of `punchclock version` " + ms(floor),
		Ratio:    fmt.Sprintf("%.1f×", float64(max(first, again))/float64(floor)),
		Goal:     "< 1 s",
		Pass:     first < time.Second && again < time.Second,
		Bound:    "store.Open of the file and its journal; the pruning runs after ready",
	})
	r.rep.add(Row{
		Figure:   fmt.Sprintf("`punchclock log -from %s -to %s -json` on a year of punches, agent running (%d lines, median of %d)", day, day, lines, max(r.opts.Starts, 3)),
		Measured: ms(logRun),
		Limit:    "exec of `punchclock version` " + ms(floor),
		Ratio:    fmt.Sprintf("%.1f×", float64(logRun)/float64(floor)),
		Goal:     "< 100 ms",
		Pass:     logRun < 100*time.Millisecond,
		Bound:    "the day index's range of records, read and inflated in pages, streamed over the control socket",
	})
	r.rep.note("a year of punches: the first start pruned for %v after ready (%s); files %s before, %s after, data %s of max_data_mb %s; `punchclock log` over one day with the agent stopped (the database opened read-only): %s",
		pruneTook.Round(time.Millisecond), prunedN, mib(filled), mib(files), mib(st.DataBytes), mib(limit), ms(logStopped))
	r.logf("year: files %s (data %s), start-up %s then %s, log over %s %s (%d lines; agent stopped %s)",
		mib(files), mib(st.DataBytes), ms(first), ms(again), day, ms(logRun), lines, ms(logStopped))
	return nil
}

// prunedRecords is the records= value of the log line holding msg.
func prunedRecords(log, msg string) string {
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, msg) {
			continue
		}
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "records="); ok {
				return v + " records"
			}
		}
	}
	return "? records"
}

// timeLog runs `punchclock log` over one day n times (at least 3) and
// returns the median wall time and the lines it printed.
func (r *run) timeLog(cfgPath, day string, n int) (time.Duration, int, error) {
	var times []time.Duration
	lines := 0
	for range max(n, 3) {
		var out, errb bytes.Buffer
		cmd := exec.Command(r.opts.Agent, "log", "-config", cfgPath, "-from", day, "-to", day, "-json")
		cmd.Stdout, cmd.Stderr = &out, &errb
		t0 := time.Now()
		if err := cmd.Run(); err != nil {
			return 0, 0, fmt.Errorf("punchclock log: %w: %s", err, errb.String())
		}
		times = append(times, time.Since(t0))
		lines = 0
		sc := bufio.NewScanner(&out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines++
		}
	}
	return newDist(times).pct(50), lines, nil
}
