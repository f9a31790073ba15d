package bench

import (
	"bytes"
	"context"
	"fmt"
	"github.com/punchclock/punchclock/sim/samples"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/agentbin"
)

var agentBin string

func TestMain(m *testing.M) {
	path, remove, err := agentbin.Build(false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = path
	code := m.Run()
	remove()
	os.Exit(code)
}

// The quick mode runs every piece of the harness: each figure is
// measured and lands in the table.
func TestQuickRun(t *testing.T) {
	opts := Quick()
	opts.Agent = agentBin
	opts.Binaries = []string{agentBin}
	opts.Dir = t.TempDir()
	var progress bytes.Buffer
	opts.Progress = &progress
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := Run(ctx, opts)
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	want := []string{
		"decision latency p50 / p99 (", "feedback begins after the credential's last byte", "exit punch → shift", "while a roster of", "roster replacement",
		"sustained punches/s", "backlog drain", "bytes stored per buffered punch", "start-up: exec → ready, ",
		"bytes written per punch", "memory: RSS (RssAnon)", "a year of punches (", "start-up: exec → ready on a year",
		"`punchclock log -from", "binary size",
	}
	for _, s := range samples.Samples {
		want = append(want, s.Driver+": last wire byte → durable decision")
		if s.Polled {
			want = append(want, s.Driver+": CPU of the agent with an idle polled reader")
		}
	}
	if len(rep.Rows) != len(want) {
		t.Errorf("%d rows, want %d", len(rep.Rows), len(want))
	}
	for _, w := range want {
		found := false
		for _, r := range rep.Rows {
			if strings.Contains(r.Figure, w) {
				found = true
				if r.Measured == "" || r.Goal == "" {
					t.Errorf("row %q: measured %q, goal %q", r.Figure, r.Measured, r.Goal)
				}
				if !strings.Contains(w, "binary") && (r.Limit == "" || r.Ratio == "") {
					t.Errorf("row %q has no machine limit or ratio", r.Figure)
				}
			}
		}
		if !found {
			t.Errorf("no row for %q", w)
		}
	}
	var out bytes.Buffer
	if err := rep.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"QUICK run", "| figure", "machine: ", "Steps:"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, out.String())
		}
	}
	t.Logf("\n%s", out.String())
}

// Only runs the baselines and the steps it names: the decision latency
// alone gives its two rows and no other.
func TestOnlyRunsTheNamedStep(t *testing.T) {
	opts := Quick()
	opts.Agent = agentBin
	opts.Dir = t.TempDir()
	opts.Only = "agent latency"
	var tr bytes.Buffer
	opts.Trace = &tr
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var steps []string
	for _, s := range rep.Steps {
		steps = append(steps, s.Name)
	}
	want := []string{"fdatasync floor", "raw bbolt commit", "raw bbolt Batch", "paho round trip", "agent latency"}
	if !slices.Equal(steps, want) {
		t.Errorf("steps %q, want %q", steps, want)
	}
	if len(rep.Rows) != 3 || !strings.HasPrefix(rep.Rows[0].Figure, "decision latency") ||
		!strings.HasPrefix(rep.Rows[1].Figure, "feedback begins") || !strings.HasPrefix(rep.Rows[2].Figure, "exit punch → shift") {
		t.Errorf("rows %+v, want the decision latency, the feedback and exit → shift only", rep.Rows)
	}
	if !bytes.HasPrefix(tr.Bytes(), []byte("go 1.")) || tr.Len() < 1024 {
		t.Errorf("trace of the decision loop: %d bytes starting %q, want an execution trace", tr.Len(), tr.Bytes()[:min(tr.Len(), 16)])
	}
}

func TestRunNeedsAgent(t *testing.T) {
	opts := Quick()
	if _, err := Run(context.Background(), opts); err == nil {
		t.Fatal("Run without an agent binary succeeded")
	}
	opts.Agent = filepath.Join(t.TempDir(), "missing")
	if _, err := Run(context.Background(), opts); err == nil {
		t.Fatal("Run with a missing agent binary succeeded")
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(101-i)*time.Millisecond)
	}
	s := newDist(d)
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {1, time.Millisecond}} {
		if got := s.pct(c.p); got != c.want {
			t.Errorf("pct(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := newDist(nil).pct(99); got != 0 {
		t.Errorf("empty pct = %v", got)
	}
}

func TestProcFields(t *testing.T) {
	rss, err := procRSS("self")
	if err != nil || rss <= 0 {
		t.Fatalf("procRSS(self) = %d, %v", rss, err)
	}
	anon, err := procRssAnon("self")
	if err != nil || anon <= 0 || anon > rss {
		t.Fatalf("procRssAnon(self) = %d, %v (RSS %d)", anon, err, rss)
	}
	if _, err := procIO("self"); err != nil {
		t.Fatalf("procIO(self): %v", err)
	}
	if _, err := procField("/proc/self/status", "NoSuchKey:"); err == nil {
		t.Fatal("missing key gave no error")
	}
}
