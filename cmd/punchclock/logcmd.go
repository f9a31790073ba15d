package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/punchclock/punchclock/agent"
	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/logbook"
	"github.com/punchclock/punchclock/store"
)

// withLogbook tees the agent's log into the bounded log book in its data
// directory (for `punchclock log`). A book that cannot be opened is
// reported and the agent runs without it: the door matters more.
func withLogbook(cfg *config.Config, console slog.Handler, level slog.Leveler, stderr io.Writer) (*slog.Logger, func()) {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		fmt.Fprintf(stderr, "punchclock run: log book: %v\n", err)
		return slog.New(console), func() {}
	}
	book, err := logbook.Open(cfg.DataDir, logbook.DefaultMaxBytes)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock run: %v\n", err)
		return slog.New(console), func() {}
	}
	return slog.New(book.Handler(console, level)), func() { book.Close() }
}

// stdin is where `log -clear` reads its confirmation (a test replaces it).
var stdin io.Reader = os.Stdin

func cmdLog(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("log", flag.ContinueOnError)
	fromS := fs.String("from", "", "first day (YYYY-MM-DD, in the site's zone) or RFC 3339 time")
	sinceS := fs.String("since", "", "the same as -from")
	toS := fs.String("to", "", "last day, inclusive (YYYY-MM-DD) or RFC 3339 time, exclusive")
	levelS := fs.String("level", "info", "the agent's own lines shown: debug, info, warn or error (punches are always shown; with -json, the agent's lines, as {\"log\": ...}, only when -level is given)")
	asJSON := fs.Bool("json", false, "print JSON lines")
	clearLog := fs.Bool("clear", false, "empty the agent's own log (punches are kept), after confirmation")
	yes := fs.Bool("yes", false, "with -clear: do not ask")
	cfg, code := loadConfig("log", fs, args, stderr)
	if cfg == nil {
		return code
	}
	if *clearLog {
		return clearLogbook(cfg, *yes, stdout, stderr)
	}
	if *sinceS != "" {
		if *fromS != "" {
			fmt.Fprintln(stderr, "punchclock log: -since and -from are the same: give one")
			return exitUsage
		}
		*fromS = *sinceS
	}
	from, err := parseBound(*fromS, cfg.Location, false)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock log: -from: %v\n", err)
		return exitUsage
	}
	to, err := parseBound(*toS, cfg.Location, true)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock log: -to: %v\n", err)
		return exitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*levelS)); err != nil {
		fmt.Fprintf(stderr, "punchclock log: -level: %v\n", err)
		return exitUsage
	}
	levelGiven := false
	fs.Visit(func(f *flag.Flag) { levelGiven = levelGiven || f.Name == "level" })
	var lines []logbook.Entry
	if *asJSON && !levelGiven {
		// JSON lines stay punch records alone unless the agent's own
		// lines are asked for (-level): a consumer reads them as such.
	} else if err := logbook.Read(cfg.DataDir, from, to, level, func(e logbook.Entry) error {
		lines = append(lines, e)
		return nil
	}); err != nil {
		fmt.Fprintf(stderr, "punchclock log: %v\n", err)
		return exitFail
	}
	enc := json.NewEncoder(stdout)
	// The agent's lines are interleaved with the punches by time.
	printLines := func(before time.Time) error {
		for len(lines) > 0 && (before.IsZero() || lines[0].Time.Before(before)) {
			var err error
			if *asJSON {
				err = enc.Encode(map[string]any{"log": lines[0]})
			} else {
				_, err = fmt.Fprintln(stdout, formatLine(lines[0], cfg.Location))
			}
			if err != nil {
				return err
			}
			lines = lines[1:]
		}
		return nil
	}
	err = agent.QueryLog(cfg, from, to, func(e store.LogEntry) error {
		at := time.Time{}
		if e.Event != nil {
			at = e.Event.At
		} else if e.Shift != nil {
			at = e.Shift.Out
		}
		if err := printLines(at); err != nil {
			return err
		}
		if *asJSON {
			return enc.Encode(e)
		}
		_, err := fmt.Fprintln(stdout, formatLog(e, cfg.Location))
		return err
	})
	if err == nil {
		err = printLines(time.Time{})
	}
	if err != nil {
		fmt.Fprintf(stderr, "punchclock log: %v\n", err)
		return exitFail
	}
	return exitOK
}

// formatLine prints one line of the agent's own log.
func formatLine(e logbook.Entry, loc *time.Location) string {
	keys := make([]string, 0, len(e.Attrs))
	for k := range e.Attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-5s  %s", e.Time.In(loc).Format(time.RFC3339), strings.ToLower(e.Level), e.Msg)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, e.Attrs[k])
	}
	return b.String()
}

func clearLogbook(cfg *config.Config, yes bool, stdout, stderr io.Writer) int {
	if !yes {
		fmt.Fprintf(stdout, "Empty the agent's own log in %s? Punches, shifts and dead letters are kept. [y/N] ", cfg.DataDir)
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			fmt.Fprintln(stdout, "not cleared")
			return exitFail
		}
	}
	n, err := logbook.Clear(cfg.DataDir)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock log: -clear: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "cleared %d lines\n", n)
	return exitOK
}
