package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/punchclock/punchclock/reader/rdm6300"
	"github.com/punchclock/punchclock/sim"
	"github.com/punchclock/punchclock/store"
)

// proc is a `punchclock run` process whose log is watched for the ready
// line and for punches.
type proc struct {
	cmd     *exec.Cmd
	ready   chan struct{}
	punched chan struct{} // one value per "msg=punch" line
	exited  chan struct{}

	mu  sync.Mutex
	log strings.Builder
}

// startProc execs the agent and waits for its ready line; it returns the
// time from exec to that line.
func startProc(ctx context.Context, bin, cfgPath string) (*proc, time.Duration, error) {
	p := &proc{ready: make(chan struct{}), punched: make(chan struct{}, 1<<16), exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "run", "-config", cfgPath)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, 0, err
	}
	p.cmd.Stdout = io.Discard
	t0 := time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, 0, err
	}
	go p.watch(stderr)
	select {
	case <-p.ready:
		return p, time.Since(t0), nil
	case <-p.exited:
		p.cmd.Wait()
		return nil, 0, fmt.Errorf("agent exited before ready:\n%s", p.logText())
	case <-time.After(30 * time.Second):
		p.kill()
		return nil, 0, fmt.Errorf("agent not ready within 30s:\n%s", p.logText())
	case <-ctx.Done():
		p.kill()
		return nil, 0, ctx.Err()
	}
}

func (p *proc) watch(r io.Reader) {
	defer close(p.exited)
	sc := bufio.NewScanner(r)
	var once sync.Once
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		if p.log.Len() < 1<<20 {
			p.log.WriteString(line + "\n")
		}
		p.mu.Unlock()
		switch {
		case strings.Contains(line, "msg=ready"):
			once.Do(func() { close(p.ready) })
		case strings.Contains(line, "msg=punch "):
			p.punched <- struct{}{}
		}
	}
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *proc) pid() string { return strconv.Itoa(p.cmd.Process.Pid) }

// stop ends the agent with SIGTERM and checks that it exits cleanly.
func (p *proc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.kill()
		return fmt.Errorf("agent ignored SIGTERM for 10s:\n%s", p.logText())
	}
	if err := p.cmd.Wait(); err != nil {
		return fmt.Errorf("agent exit: %w\n%s", err, p.logText())
	}
	return nil
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
	_ = p.cmd.Wait()
}

// timeStarts starts the agent n times and returns the median time to
// ready, leaving the last process running.
func (r *run) timeStarts(ctx context.Context, cfgPath string, n int) (*proc, time.Duration, error) {
	var times []time.Duration
	for i := range n {
		p, took, err := startProc(ctx, r.opts.Agent, cfgPath)
		if err != nil {
			return nil, 0, err
		}
		times = append(times, took)
		if i == n-1 {
			return p, newDist(times).pct(50), nil
		}
		if err := p.stop(); err != nil {
			return nil, 0, err
		}
	}
	panic("unreachable")
}

// execFloor is the median wall time of `punchclock version`: exec, Go
// runtime start and exit, the floor under any start-up.
func (r *run) execFloor(n int) (time.Duration, error) {
	var times []time.Duration
	for range max(n, 3) {
		t0 := time.Now()
		if err := exec.Command(r.opts.Agent, "version").Run(); err != nil {
			return 0, fmt.Errorf("%s version: %w", r.opts.Agent, err)
		}
		times = append(times, time.Since(t0))
	}
	return newDist(times).pct(50), nil
}

// bufferedStore prefills a store with the roster and BufferedPunches
// punches, then runs the punchclock binary on it (offline, so nothing
// drains): start-up to ready, RSS when idle, bytes written per punch, and
// the file's size per buffered punch.
func (r *run) bufferedStore(ctx context.Context) error {
	dir := filepath.Join(r.dir, "buffered")
	data := filepath.Join(dir, "data")
	ros, err := makeRoster(r.opts.Roster)
	if err != nil {
		return err
	}
	pre, err := prefill(data, ros, r.opts.BufferedPunches, r.opts.PrefillChunk, false)
	if err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	syncStart := time.Now()
	syscall.Sync() // the prefill's pages reach the disk before anything is timed
	r.logf("prefilled %d punches + %d shifts in %v (+ %v to sync)", pre.Punches, pre.Shifts, pre.Took.Round(time.Millisecond), time.Since(syncStart).Round(time.Millisecond))
	r.rep.note("buffered-store prefill: roster of %d, %d punches + %d shifts through store.Append in calls of %d without fsync or journal, then a normal reopen: %v (%.0f punches/s), sync %v",
		len(ros.Employees), pre.Punches, pre.Shifts, r.opts.PrefillChunk, pre.Took.Round(time.Millisecond),
		float64(pre.Punches)/pre.Took.Seconds(), time.Since(syncStart).Round(time.Millisecond))

	fi, err := os.Stat(filepath.Join(data, store.FileName))
	if err != nil {
		return err
	}
	perPunch := float64(fi.Size()) / float64(pre.Punches)
	r.rep.add(Row{
		Figure:   fmt.Sprintf("disk: bytes stored per buffered punch (+ its half shift), %d punches", pre.Punches),
		Measured: fmt.Sprintf("%.0f B (file %s)", perPunch, mib(fi.Size())),
		Limit:    fmt.Sprintf("JSON payload %.0f B", pre.PayloadPerPunch),
		Ratio:    fmt.Sprintf("%.2f×", perPunch/pre.PayloadPerPunch),
		Goal:     "≤ 300 B",
		Pass:     perPunch <= 300,
		Bound:    "the deflated records, plus bbolt's keys, outbox rows, page headers, branch pages and free pages; see docs/performance.md",
	})

	// The agent as a process, offline, one reader on a pty.
	cfgPath, err := writeConfig(dir, "", 1, repeatWindow)
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
	p, startup, err := r.timeStarts(ctx, cfgPath, r.opts.Starts)
	if err != nil {
		return err
	}
	defer func() {
		if p != nil {
			p.kill()
		}
	}()
	r.rep.add(Row{
		Figure:   fmt.Sprintf("start-up: exec → ready, %d buffered punches (median of %d)", pre.Punches, r.opts.Starts),
		Measured: ms(startup),
		Limit:    "exec of `punchclock version` " + ms(floor),
		Ratio:    fmt.Sprintf("%.1f×", float64(startup)/float64(floor)),
		Goal:     "≤ 300 ms",
		Pass:     startup <= 300*time.Millisecond,
		Bound:    "store.Open and the first transactions; see docs/performance.md",
	})
	time.Sleep(r.opts.Idle)
	rss, err := procRSS(p.pid())
	if err != nil {
		return err
	}
	anon, err := procRssAnon(p.pid())
	if err != nil {
		return err
	}

	// Bytes written per punch over a burst: single punches, each decided
	// before the next, blocks of 16 cards in then out.
	w0, err := procIO(p.pid())
	if err != nil {
		return err
	}
	// badge presents a card and waits for the agent's decision.
	badge := func(c string) error {
		frame, err := rdm6300.Encode(c)
		if err != nil {
			return err
		}
		if _, err := port.Write(frame); err != nil {
			return err
		}
		select {
		case <-p.punched:
			return nil
		case <-time.After(r.opts.DecisionTimeout):
			return fmt.Errorf("agent logged no punch within %v:\n%s", r.opts.DecisionTimeout, tail(p.logText(), 2000))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// Punches reach the bbolt file up to store.DefaultApplyDelay after
	// their journal write: the figures count that commit too.
	waitApply := func() error {
		select {
		case <-time.After(store.DefaultApplyDelay + time.Second):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	const block = 16
	for i := range r.opts.WritePunches {
		b, pos := i/(2*block), i%(2*block)
		if err := badge(card((b*block + pos%block) % len(ros.Employees))); err != nil {
			return err
		}
	}
	if err := waitApply(); err != nil {
		return err
	}
	w1, err := procIO(p.pid())
	if err != nil {
		return err
	}
	// One punch alone on an idle terminal pays a whole bbolt commit.
	if err := badge(card(len(ros.Employees) - 1)); err != nil {
		return err
	}
	if err := waitApply(); err != nil {
		return err
	}
	w2, err := procIO(p.pid())
	if err != nil {
		return err
	}
	r.rep.note("one punch alone on an idle terminal, with the bbolt commit that applies it %v later: %s written", store.DefaultApplyDelay, kib(float64(w2-w1)))
	if err := p.stop(); err != nil {
		return err
	}
	p = nil
	written := float64(w1-w0) / float64(r.opts.WritePunches)
	r.rep.add(Row{
		Figure:   fmt.Sprintf("disk: bytes written per punch (SD wear), burst of %d single punches", r.opts.WritePunches),
		Measured: kib(written),
		Limit:    fmt.Sprintf("4 KiB pwrite + fdatasync %s (bbolt commit %s)", kib(r.floorBytes), kib(r.commitBytes)),
		Ratio:    fmt.Sprintf("%.1f×", written/r.floorBytes),
		Goal:     "≤ 8 KiB",
		Pass:     written <= 8<<10,
		Bound:    "one journal page per decision, plus the bbolt commit that applies the punches journaled in the same ApplyDelay window (copy-on-write pages: leaf and branch pages of each bucket touched, freelist, meta); see docs/performance.md",
	})

	// RSS floor: the same binary and config on an empty store.
	empty := filepath.Join(r.dir, "empty")
	emptyCfg, err := writeConfig(empty, "", 1, repeatWindow)
	if err != nil {
		return err
	}
	port2, err := sim.NewSerial(filepath.Join(empty, "dev", readerName(0)))
	if err != nil {
		return err
	}
	defer port2.Close()
	p2, _, err := startProc(ctx, r.opts.Agent, emptyCfg)
	if err != nil {
		return err
	}
	time.Sleep(r.opts.Idle)
	rss0, err := procRSS(p2.pid())
	var anon0 int64
	if err == nil {
		anon0, err = procRssAnon(p2.pid())
	}
	if err2 := p2.stop(); err == nil {
		err = err2
	}
	if err != nil {
		return err
	}
	r.rep.add(Row{
		Figure:   fmt.Sprintf("memory: RSS (RssAnon) idle, roster %d, %d buffered punches", len(ros.Employees), pre.Punches),
		Measured: fmt.Sprintf("%s (%s)", mib(rss), mib(anon)),
		Limit:    fmt.Sprintf("same agent, empty store %s (%s)", mib(rss0), mib(anon0)),
		Ratio:    fmt.Sprintf("%.2f× (%.2f×)", float64(rss)/float64(rss0), float64(anon)/float64(anon0)),
		Goal:     "RSS ≤ 20 MiB",
		Pass:     rss <= 20<<20,
		Bound: "RssAnon is the agent's own memory (the roster index, open entries); RSS − RssAnon is file pages: the binary's text (the empty store's share) " +
			"and the pages of the bbolt mmap the start leaves mapped, with their fault-around neighbours (the roster's are released once read); see docs/performance.md",
	})
	r.logf("start-up %s (exec floor %s), RSS %s RssAnon %s (empty store %s, %s), %s written per punch, %.0f B stored per punch",
		ms(startup), ms(floor), mib(rss), mib(anon), mib(rss0), mib(anon0), kib(written), perPunch)
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// binarySize reports the size of each cross-built agent binary.
func (r *run) binarySize(context.Context) error {
	if len(r.opts.Binaries) == 0 {
		return errors.New("no binaries to size (run scripts/cross-build.sh, or pass -binaries)")
	}
	for _, b := range slices.Sorted(slices.Values(r.opts.Binaries)) {
		fi, err := os.Stat(b)
		if err != nil {
			return err
		}
		r.rep.add(Row{
			Figure:   "binary size, stripped: " + filepath.Base(b),
			Measured: mib(fi.Size()),
			Goal:     "≤ 15 MiB",
			Pass:     fi.Size() <= 15<<20,
			Bound:    "the linked packages; `go tool nm -size -sort size` on an unstripped build shows the largest",
		})
	}
	return nil
}
