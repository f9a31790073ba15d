// Package bench is the benchmark harness behind `punchsim bench` (and
// `make bench`): it measures the agent against the limits of the machine
// it runs on, each limit measured in the same run, and reports one table
// of figure, limit, ratio and goal. docs/performance.md explains the
// figures and holds the latest table.
//
// The harness runs the real code: the agent in-process with real rdm6300
// drivers on real pseudo-terminals (sim.Serial, reader/serialport) and a
// real bbolt file, a real mosquitto on a loopback port, and the built
// punchclock binary as its own process for the start-up, memory, disk
// wear and year-of-punches figures.
package bench

import (
	"context"
	"errors"
	"fmt"
	"github.com/punchclock/punchclock/internal/mosquitto"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Options size and locate a run. Full and Quick return filled-in sets.
type Options struct {
	// Agent is the punchclock binary run as a process for start-up,
	// memory and bytes-written figures. Required.
	Agent string
	// Binaries are the cross-built agent binaries whose size is reported.
	Binaries []string
	// Dir holds the databases, ptys and broker files; empty means a new
	// temporary directory, removed at the end. It must be on the file
	// system being measured.
	Dir string
	// Mosquitto is the broker binary; empty means PATH, then
	// /usr/sbin/mosquitto.
	Mosquitto string

	RawCommits        int           // fdatasync floor writes and one-record bbolt commits timed
	BatchFor          time.Duration // how long 8 goroutines call bbolt Batch
	Punches           int           // decision latency punches, half of them exits
	Readers           int           // readers badging at once for throughput
	ThroughputPunches int           // punches per reader
	Backlog           int           // buffered shifts drained after an outage
	Roster            int           // employees in the roster
	BufferedPunches   int           // punches buffered in the store for memory, start-up, disk
	Starts            int           // agent start-ups timed (the median is reported)
	Idle              time.Duration // how long the agent idles before its RSS is read
	WritePunches      int           // single punches over which bytes written are counted
	RoundTrips        int           // bare paho publish→receive round trips
	PrefillChunk      int           // punches per prefill transaction
	RosterReplace     int           // employees of the roster published while punches are badged
	YearPunches       int           // punches of the terminal with a year of punches
	YearDays          int           // days those punches are spread over, ending now
	DecisionTimeout   time.Duration // how long one punch may take before the run fails
	QuickMode         bool          // printed in the report header
	// Only, when set, runs the baselines every figure is compared with
	// (the fdatasync floor, bbolt commit and Batch, the paho round trip)
	// and then only the steps whose names contain it, e.g. "agent latency"
	// to study the decision latency without the minutes of the rest.
	Only string
	// Trace, when set, receives a runtime/trace execution trace of the
	// decision latency loop (the in-process agent, drivers and store):
	// go tool trace shows which goroutine waited where.
	Trace    io.Writer
	Progress io.Writer // progress lines; nil: silent
}

// Full is the run `make bench` does: the counts the issue asks for.
func Full() Options {
	return Options{
		RawCommits:        1000,
		BatchFor:          3 * time.Second,
		Punches:           2000,
		Readers:           8,
		ThroughputPunches: 500,
		Backlog:           100_000,
		Roster:            10_000,
		BufferedPunches:   1_000_000,
		Starts:            5,
		Idle:              2 * time.Second,
		WritePunches:      200,
		RoundTrips:        500,
		PrefillChunk:      25_000,
		RosterReplace:     100_000,
		YearPunches:       500_000,
		YearDays:          365,
		DecisionTimeout:   10 * time.Second,
	}
}

// Quick is a smoke run of every piece with small counts (seconds, not
// minutes). Its figures are not meant to be compared with the goals.
func Quick() Options {
	return Options{
		RawCommits:        50,
		BatchFor:          300 * time.Millisecond,
		Punches:           64,
		Readers:           8,
		ThroughputPunches: 16,
		Backlog:           2000,
		Roster:            1000,
		BufferedPunches:   10_000,
		Starts:            2,
		Idle:              200 * time.Millisecond,
		WritePunches:      10,
		RoundTrips:        20,
		PrefillChunk:      5000,
		RosterReplace:     5000,
		YearPunches:       4000,
		YearDays:          40,
		DecisionTimeout:   20 * time.Second,
		QuickMode:         true,
	}
}

func (o *Options) validate() error {
	switch {
	case o.Agent == "":
		return errors.New("bench: Options.Agent (the punchclock binary) is required")
	case o.RawCommits < 1 || o.Punches < 2 || o.Readers < 1 || o.ThroughputPunches < 1 ||
		o.Backlog < 1 || o.Roster < 64 || o.BufferedPunches < 2 || o.Starts < 1 ||
		o.WritePunches < 1 || o.RoundTrips < 1 || o.PrefillChunk < 2 || o.BatchFor <= 0 ||
		o.RosterReplace < o.Roster || o.YearDays < 32 || o.YearPunches < 4*o.YearDays:
		return fmt.Errorf("bench: counts must be positive (roster at least 64, the replacing roster at least as large, "+
			"a year at least 32 days of 4 punches): %+v", *o)
	}
	if o.DecisionTimeout <= 0 {
		o.DecisionTimeout = 10 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if _, err := os.Stat(o.Agent); err != nil {
		return fmt.Errorf("bench: agent binary: %w (run `make build`)", err)
	}
	return nil
}

// run is the state of one benchmark run.
type run struct {
	opts   Options
	dir    string
	broker *mosquitto.Broker
	rep    *Report
	start  time.Time

	// Baselines measured in this run.
	floor       dist    // raw 4 KiB pwrite + fdatasync: the floor of a durable decision
	floorBytes  float64 // write_bytes per floor write
	floorDirect bool    // the floor's writes went through O_DIRECT
	commit      dist    // raw one-record bbolt Update
	commitBytes float64 // write_bytes per raw commit
	batchRate   float64 // raw bbolt Batch calls/s, 8 goroutines
	bareRate    float64 // bare paho windowed QoS 1 msgs/s
	roundTrip   dist    // bare paho publish → subscriber, idle broker
}

// Run measures every figure and returns the report. It fails only when
// a figure cannot be measured at all; a missed goal is a row of the
// report, not an error.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	r := &run{opts: opts, start: time.Now(), rep: &Report{Quick: opts.QuickMode, Started: time.Now()}}
	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "punchbench")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(d)
		r.dir = d
	} else {
		if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		r.dir = opts.Dir
	}
	abs, err := filepath.Abs(r.dir)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	r.dir = abs
	r.rep.Machine = describeMachine(r.dir, opts.Mosquitto)

	brokerDir := filepath.Join(r.dir, "broker")
	if err := os.MkdirAll(brokerDir, 0o750); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	r.broker, err = mosquitto.Start(opts.Mosquitto, brokerDir)
	if err != nil {
		return nil, err
	}
	defer r.broker.Stop()

	load0 := loadAvg()
	steps := []struct {
		name     string
		fn       func(context.Context) error
		baseline bool
	}{
		{"fdatasync floor", r.fsyncFloor, true},
		{"raw bbolt commit", r.rawCommit, true},
		{"raw bbolt Batch", r.rawBatch, true},
		{"paho round trip", r.pahoRoundTrip, true},
		{"agent latency", r.agentLatency, false},
		{"reader latency per driver", r.readerLatency, false},
		{"idle polled readers", r.readerIdleCPU, false},
		{"roster replacement", r.rosterSwap, false},
		{"agent throughput", r.agentThroughput, false},
		{"backlog drain and bare paho", r.drain, false},
		{"buffered store", r.bufferedStore, false},
		{"a year of punches", r.yearStore, false},
		{"binary size", r.binarySize, false},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if opts.Only != "" && !s.baseline && !strings.Contains(s.name, opts.Only) {
			continue
		}
		fmt.Fprintf(r.opts.Progress, "bench: %s…\n", s.name)
		began := time.Now()
		if err := s.fn(ctx); err != nil {
			return nil, fmt.Errorf("bench: %s: %w", s.name, err)
		}
		r.rep.Steps = append(r.rep.Steps, Step{Name: s.name, Took: time.Since(began)})
	}
	r.rep.Took = time.Since(r.start)
	r.rep.note("load average (1 min) at the start %s, at the end %s, on %d CPUs: the machine is shared, and the tails follow its load", load0, loadAvg(), r.rep.Machine.CPUs)
	return r.rep, nil
}

// loadAvg is the 1-minute load average from /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}

// logf prints a progress line.
func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.opts.Progress, "bench:   "+format+"\n", args...)
}
