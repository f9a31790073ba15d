package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/punchclock/punchclock/sim/bench"
)

const benchUsage = `usage: punchsim bench [-quick] [-agent bin/punchclock] [-binaries LIST] [-o FILE] [-only STEP] [-trace FILE]

Measures the agent against this machine's own limits, each measured in
the same run, and prints one table (docs/performance.md explains it).
Progress goes to stderr, the table to stdout.
`

// cmdBench runs the benchmark harness (`make bench`).
func cmdBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	agentBin := fs.String("agent", "bin/punchclock", "the punchclock `binary` run for start-up, memory, disk and log figures")
	binaries := fs.String("binaries", "bin/punchclock-linux-armv6,bin/punchclock-linux-arm64",
		"comma-separated cross-built `binaries` to size (scripts/cross-build.sh)")
	quick := fs.Bool("quick", false, "small counts: a smoke test of every piece in seconds")
	dir := fs.String("dir", "", "work `directory` on the file system to measure (default: a new temporary directory, removed after)")
	mosquitto := fs.String("mosquitto", "", "mosquitto `binary` (default: PATH, then /usr/sbin/mosquitto)")
	out := fs.String("o", "", "also write the report to `file`")
	strict := fs.Bool("strict", false, "exit 1 when a goal is missed")
	timeout := fs.Duration("timeout", 15*time.Minute, "give up after this long")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run (the in-process agent, drivers and store) to `file`")
	only := fs.String("only", "", "run the baselines and only the steps whose names contain `step` (e.g. \"agent latency\")")
	traceFile := fs.String("trace", "", "write an execution trace of the decision latency loop to `file` (go tool trace)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "punchsim bench: -cpuprofile: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "punchsim bench: -cpuprofile: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	opts := bench.Full()
	if *quick {
		opts = bench.Quick()
	}
	opts.Agent = *agentBin
	opts.Dir = *dir
	opts.Mosquitto = *mosquitto
	opts.Only = *only
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err != nil {
			fmt.Fprintf(stderr, "punchsim bench: -trace: %v\n", err)
			return 1
		}
		defer f.Close()
		opts.Trace = f
	}
	opts.Progress = stderr
	for _, b := range strings.Split(*binaries, ",") {
		if b = strings.TrimSpace(b); b != "" {
			opts.Binaries = append(opts.Binaries, b)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rep, err := bench.Run(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "punchsim bench: %v\n", err)
		return 1
	}
	if err := rep.WriteTable(stdout); err != nil {
		fmt.Fprintf(stderr, "punchsim bench: %v\n", err)
		return 1
	}
	if *out != "" {
		f, err := os.Create(*out)
		if err == nil {
			err = rep.WriteTable(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "punchsim bench: -o: %v\n", err)
			return 1
		}
	}
	if *strict && len(rep.Missed()) > 0 {
		return 1
	}
	return 0
}
