package main

import (
	"time"

	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/punchclock/punchclock/reader"
	"io"
	"os"
	"strings"

	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/sim"
	"github.com/punchclock/punchclock/sim/samples"
)

const serveUsage = `usage: punchsim serve -config FILE [-script FILE] [-hold]

Builds the twin of every reader in the agent's configuration, each
speaking its driver's wire protocol at the configured port (a raw
pseudo-terminal), simulated GPIO chip or input device, prints
"punchsim: ready NAME=PATH ..." once all exist, then runs the script
(or stdin) one line at a time:

  card <reader> <value> [...]     present a card (rdm6300: 10 hex digits [xN];
                                  pn532: a UID; osdp: FAC:CARD)
  finger <reader> <page>|nomatch  a finger on a fingerprint sensor
  wiegand <reader> 26 FAC CARD    a Wiegand read
  keys <reader> 4821#             key presses on a keypad
  hid <reader> 0001193046         a keyboard-wedge reader types a value
  garbage <reader> <n>            n random bytes
  raw <reader> <hex bytes>        bytes as given
  unplug <reader>, replug <reader>
  sleep <duration>                e.g. 250ms
  # comment

Each driver's README (reader/<driver>/README.md) lists its twin's
commands.

A bad line is reported on stderr and the script goes on; the exit code
is then 1. At the end of the script the links are removed, unless -hold
keeps them until SIGINT or SIGTERM.

`

// twinPath is where the agent finds a twin: its pty's device when it
// has one, else its Path.
func twinPath(t reader.Twin) string {
	if p, ok := t.(interface{ DevicePath() string }); ok {
		return p.DevicePath()
	}
	return t.Path()
}

// serve runs the serve subcommand until the script ends (and, with
// -hold, until ctx is done).
func serve(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, serveUsage)
		fs.PrintDefaults()
	}
	cfgPath := fs.String("config", "", "agent configuration `file` naming the readers and their ports")
	scriptPath := fs.String("script", "", "read commands from `file` instead of stdin")
	hold := fs.Bool("hold", false, "keep the links after the script ends, until interrupted")
	repeats := fs.Int("repeats", sim.DefaultRepeats, "frames sent per card command without xN")
	interval := fs.Duration("repeat-interval", sim.DefaultRepeatInterval, "time between a card's frames")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "punchsim serve: "+format+"\n", a...)
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return usageErr("unexpected argument %q", fs.Arg(0))
	case *cfgPath == "":
		return usageErr("-config is required")
	case *repeats < 1:
		return usageErr("-repeats %d must be at least 1", *repeats)
	case *interval < 0:
		return usageErr("-repeat-interval %v must not be negative", *interval)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return usageErr("%v", err)
	}
	in := stdin
	if *scriptPath != "" {
		f, err := os.Open(*scriptPath)
		if err != nil {
			return usageErr("-script: %v", err)
		}
		defer f.Close()
		in = f
	}

	twins, err := samples.Twins(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "punchsim serve: %v\n", err)
		if errors.Is(err, sim.ErrPathInUse) {
			return 2
		}
		return 1
	}
	defer samples.Close(twins)
	var ready []string
	for _, r := range cfg.Readers {
		t := twins[r.Name]
		if rt, ok := t.(interface {
			SetRepeats(n int, interval time.Duration)
		}); ok {
			rt.SetRepeats(*repeats, *interval)
		}
		ready = append(ready, r.Name+"="+twinPath(t))
	}
	if len(twins) == 0 {
		return usageErr("%s has no readers to simulate", *cfgPath)
	}
	fmt.Fprintf(stdout, "punchsim: ready %s\n", strings.Join(ready, " "))

	script := &sim.Script{
		Twins: twins,
		Out:   stdout,
		Errs:  stderr,
	}
	done := make(chan error, 1)
	go func() { done <- script.Run(ctx, in) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		if *scriptPath != "" {
			<-done // a file read does not block; Run stops at once
		}
		// Otherwise Run may be blocked reading stdin, which nothing can
		// interrupt: return without it, the process is about to exit.
		return 0
	}
	code := 0
	switch {
	case err == nil:
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return 0 // interrupted
	case errors.Is(err, sim.ErrScript):
		code = 1 // the bad lines are on stderr already
	default:
		fmt.Fprintf(stderr, "punchsim serve: %v\n", err)
		code = 1
	}
	if *hold && ctx.Err() == nil {
		fmt.Fprintln(stdout, "punchsim: script done; holding the links until interrupted")
		<-ctx.Done()
	}
	return code
}
