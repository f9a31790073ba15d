// Command punchsim simulates the terminal's card readers so the agent can
// run unchanged on a development machine or in CI:
//
//	punchsim serve -config FILE [-script FILE] [-hold]
//	    link a virtual reader (a raw pseudo-terminal) at the port of each
//	    rdm6300 reader in the agent's configuration, then present cards
//	    as told by the script (or stdin); see package sim for the commands
//	punchsim bench [...]
//	    measure the agent against this machine's limits (make bench)
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage:
  punchsim serve -config FILE [-script FILE] [-hold]
  punchsim demo [-agent bin/punchclock] [-pace 800ms] [-dir DIR] [-broker mosquitto|embedded]
  punchsim bench [-quick] [-agent bin/punchclock] [...]
`

// run is main without the process: it returns the exit code (0 ok, 1
// failure, 2 usage or configuration error).
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return serve(ctx, args[1:], stdin, stdout, stderr)
	case "bench":
		return cmdBench(args[1:], stdout, stderr)
	case "demo":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "punchsim: unknown command %q\n%s", args[0], usage)
	return 2
}
