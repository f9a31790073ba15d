package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/punchclock/punchclock/sim/demo"
)

// cmdDemo plays a simulated terminal's day (see sim/demo).
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	agentBin := fs.String("agent", "bin/punchclock", "the punchclock agent `binary` to run")
	pace := fs.Duration("pace", 0, "pause between badges (default 800ms)")
	broker := fs.String("broker", "", "mosquitto, embedded (mochi-mqtt in this process), or empty: mosquitto when installed")
	keep := fs.String("dir", "", "keep the demo's config, database and logs in this `directory`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := demo.Run(ctx, demo.Options{Agent: *agentBin, Out: stdout, Pace: *pace, Dir: *keep, Broker: *broker}); err != nil {
		fmt.Fprintf(stderr, "punchsim demo: %v\n", err)
		return 1
	}
	return 0
}
