package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/punchclock/punchclock/agent"
)

func cmdPresent(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("present", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, code := loadConfig("present", fs, args, stderr)
	if cfg == nil {
		return code
	}
	p, err := agent.QueryPresent(cfg, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "punchclock present: %v\n", err)
		return exitFail
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(p); err != nil {
			return exitFail
		}
		return exitOK
	}
	printPresent(stdout, p)
	return exitOK
}

func printPresent(w io.Writer, p agent.Present) {
	fmt.Fprintf(w, "%d clocked in at %s\n", p.Total, p.At.Format(time.RFC3339))
	for _, d := range p.Departments {
		name := d.Name
		if name == "" {
			name = "(no department)"
		}
		fmt.Fprintf(w, "\n%s (%d)\n", name, len(d.People))
		for _, pp := range d.People {
			who := pp.Name
			if who == "" {
				who = "(not in the roster)"
			}
			fmt.Fprintf(w, "  %s  %-24s %-10s in at %s\n", pp.Since.Format("15:04"), who, pp.EmployeeID, pp.Reader)
		}
	}
}
