package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/punchclock/punchclock/agent"
	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/device"
	"github.com/punchclock/punchclock/internal/sdnotify"
	"github.com/punchclock/punchclock/store"
	"github.com/punchclock/punchclock/uplink"
)

// version and commit are set at build time with -ldflags
// "-X main.version=... -X main.commit=..." (scripts/build-release.sh).
var (
	version = "dev"
	commit  = "unknown"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
	// exitRestart follows a remote restart command (EX_TEMPFAIL): the
	// agent stopped cleanly and asks its supervisor (systemd,
	// Restart=always) to start it again.
	exitRestart = 75
)

const usage = `usage: punchclock <command> [flags]

commands:
  run -config FILE           run the agent
  status -config FILE [-json] roster, outbox, open entries, last uplink
  present -config FILE [-json]
                             who is clocked in now, per department, with
                             the time of entry (works offline: a roll call)
  log -config FILE [-since DATE] [-to DATE] [-level LEVEL] [-json]
                             every decision and shift, and the agent's own
                             actions, warnings and errors, by date
  log -config FILE -clear [-yes]
                             empty the agent's own log (punches are kept)
  sync -config FILE          ask the connector for a fresh roster now (the
                             running agent publishes the roster request)
  diag -config FILE [-test] [-for DURATION]
                             the agent stopped: each raw read and the decision
                             it would get (nothing stored); -test plays the
                             LED, buzzer, relay and display outputs
  errors -config FILE [-since DATE] [-json]
                             dead letters: records a connector rejected or
                             the broker would not take, with the reason
  replay -config FILE ID... | -all
                             send dead letters again, unchanged
  enroll -config FILE -reader NAME -employee ID
                             store a new fingerprint of an employee who
                             consented on the reader's sensor (through the
                             running agent) and publish the enrolment
  check-config -config FILE [-connect]
                             validate a configuration file; -connect also tries the broker
  sample-config              print the commented sample configuration
  version                    print the version
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "status":
		return cmdStatus(args[1:], stdout, stderr)
	case "present":
		return cmdPresent(args[1:], stdout, stderr)
	case "log":
		return cmdLog(args[1:], stdout, stderr)
	case "errors":
		return cmdErrors(args[1:], stdout, stderr)
	case "replay":
		return cmdReplay(args[1:], stdout, stderr)
	case "check-config":
		return cmdCheckConfig(args[1:], stdout, stderr)
	case "diag":
		return cmdDiag(args[1:], stdout, stderr)
	case "sync":
		return cmdSync(args[1:], stdout, stderr)
	case "enroll":
		return cmdEnroll(args[1:], stdout, stderr)
	case "sample-config":
		stdout.Write(config.Sample)
		return exitOK
	case "version":
		fmt.Fprintln(stdout, "punchclock", version, commit)
		return exitOK
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "punchclock: unknown command %q\n%s", args[0], usage)
		return exitUsage
	}
}

// loadConfig parses the -config flag (and extra flags set up by the
// caller) and loads the file. It prints the error and returns a non-zero
// exit code on failure.
func loadConfig(name string, fs *flag.FlagSet, args []string, stderr io.Writer) (*config.Config, int) {
	path := fs.String("config", "", "configuration `file` (TOML)")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return nil, exitUsage
	}
	if *path == "" {
		fmt.Fprintf(stderr, "punchclock %s: -config FILE is required\n", name)
		return nil, exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock %s: %v\n", name, err)
		return nil, exitUsage
	}
	return cfg, exitOK
}

func cmdEnroll(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	rd := fs.String("reader", "", "the fingerprint reader's `name`")
	emp := fs.String("employee", "", "the employee's roster `id`")
	cfg, code := loadConfig("enroll", fs, args, stderr)
	if cfg == nil {
		return code
	}
	if *rd == "" || *emp == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "punchclock enroll: -reader NAME and -employee ID are required")
		return exitUsage
	}
	fmt.Fprintf(stdout, "place the finger of %s on %s, lift it, and place it again\n", *emp, *rd)
	en, err := agent.QueryEnroll(cfg, *rd, *emp)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock enroll: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "enrolled %s at %s: page %s (published as %s)\n", en.EmployeeID, en.Reader, en.Credential.Value, en.ID)
	return exitOK
}

func cmdSync(args []string, stdout, stderr io.Writer) int {
	cfg, code := loadConfig("sync", flag.NewFlagSet("sync", flag.ContinueOnError), args, stderr)
	if cfg == nil {
		return code
	}
	ans, err := agent.Sync(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock sync: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "roster requested (%s); the connector answers with the retained roster\n", ans.Request)
	return exitOK
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	connect := fs.Bool("connect", false, "also try the broker: DNS, TCP, TLS, credentials, ACL (10 s at most)")
	cfg, code := loadConfig("check-config", fs, args, stderr)
	if cfg == nil {
		return code
	}
	fmt.Fprintf(stdout, "%s: ok (device %s, %d readers)\n", cfg.Path, cfg.DeviceID, len(cfg.Readers))
	if !*connect {
		return exitOK
	}
	if cfg.MQTT.Broker == "" {
		fmt.Fprintln(stderr, "punchclock check-config: -connect: no mqtt.broker configured (the terminal runs offline)")
		return exitFail
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	results, ok := uplink.Probe(ctx, agent.UplinkConfig(cfg))
	for _, r := range results {
		mark := "ok  "
		if !r.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(stdout, "%s %-6s %s (%s)\n", mark, r.Stage, r.Detail, r.Took.Round(time.Millisecond))
	}
	if !ok {
		failed := results[len(results)-1].Stage
		fmt.Fprintf(stderr, "punchclock check-config: the broker check failed at stage %s\n", failed)
		return exitFail
	}
	fmt.Fprintln(stdout, "broker: everything works")
	return exitOK
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	cfg, code := loadConfig("run", fs, args, stderr)
	if cfg == nil {
		return code
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "punchclock run: -log-level: %v\n", err)
		return exitUsage
	}
	// A LevelVar, so that the remote set_log_level command can change it.
	lv := new(slog.LevelVar)
	lv.Set(level)
	log, closeBook := withLogbook(cfg, slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}), lv, stderr)
	defer closeBook()
	stopProfiles, err := startProfiles(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock run: %v\n", err)
		return exitFail
	}
	defer func() {
		if err := stopProfiles(); err != nil {
			log.Error("profiles not written", "err", err)
		}
	}()
	readers, err := cfg.NewReaders(log)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock run: %v\n", err)
		return exitUsage
	}
	fb, panels, err := buildFeedback(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock run: %v\n", err)
		return exitUsage
	}
	closePanels := func() error {
		var errs []error
		for _, p := range panels {
			errs = append(errs, p.Close())
		}
		return errors.Join(errs...)
	}
	defer closePanels()
	var feedback agent.Feedback // stays nil (no feedback) without a panel
	if fb != nil {
		feedback = fb
	}
	disp, closeDisplay, err := buildDisplay(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock run: %v\n", err)
		return exitUsage
	}
	defer closeDisplay()
	sd, err := sdnotify.New(os.Getenv, os.Getpid())
	if err != nil {
		fmt.Fprintf(stderr, "punchclock run: %v\n", err)
		return exitFail
	}
	notify := func(state string) {
		if err := sd.Notify(state); err != nil {
			log.Warn("systemd notify", "err", err)
		}
	}
	opts := agent.Options{Config: cfg, Readers: readers, Feedback: feedback, Logger: log, LogLevel: lv, Version: version,
		Watchdog: func() { notify(sdnotify.Watchdog) }}
	if disp != nil {
		opts.Display = disp
	}
	if fb != nil {
		opts.Door = fb // the remote open command
	}
	a, err := agent.New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock run: %v\n", err)
		return exitFail
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The store is open and the configuration valid: systemd may count
	// the service as started. The keep-alives come from the agent's
	// writer loop every 10 s; a WatchdogSec below twice that would
	// restart a healthy agent.
	if w := sd.WatchdogInterval(); w > 0 && w < 20*time.Second {
		log.Warn("systemd WatchdogSec is below 20s, the agent's keep-alives come every 10s", "watchdog", w)
	}
	notify(sdnotify.Ready)
	context.AfterFunc(ctx, func() { notify(sdnotify.Stopping) })
	// After the first signal the agent shuts down cleanly; a second one
	// ends the process at once (the journal keeps every decision made).
	context.AfterFunc(ctx, stop)
	runErr := a.Run(ctx)
	if err := a.Close(); err != nil && runErr == nil {
		runErr = err
	}
	// Run has returned: no decision is shown any more. Switch the
	// outputs off before reporting, so no door is left unlocked.
	if err := closePanels(); err != nil && runErr == nil {
		runErr = err
	}
	if errors.Is(runErr, agent.ErrRestart) {
		fmt.Fprintf(stderr, "punchclock run: %v: exiting %d for the supervisor to start it again\n", runErr, exitRestart)
		return exitRestart
	}
	if runErr != nil {
		fmt.Fprintf(stderr, "punchclock run: %v\n", runErr)
		return exitFail
	}
	return exitOK
}

// buildFeedback opens the panels of the configured feedback: the shared
// [feedback] and each reader's own [readers.feedback], and returns the
// Feedback showing decisions on them with the panels to close. A reader
// whose own table wires no pin uses the shared panel. Doors are the
// readers of role access or both. Without any pin wired it returns nil
// and no panel.
// buildDisplay opens the configured display, if any. closeIt turns it
// off; it is safe to call twice.
func buildDisplay(cfg *config.Config, log *slog.Logger) (d *device.Display, closeIt func(), err error) {
	dc := cfg.Display
	if dc.Driver == "" {
		return nil, func() {}, nil
	}
	scr, err := device.OpenScreen("display", device.ScreenConfig{Driver: dc.Driver, Bus: dc.Bus, Address: uint16(dc.Address),
		Width: dc.Width, Height: dc.Height, Cols: dc.Cols, Rows: dc.Rows})
	if err != nil {
		return nil, nil, err
	}
	d, err = device.NewDisplay(device.DisplayOptions{Screen: scr, Size: scr.Size(), Hold: dc.Hold.Duration,
		Location: cfg.Location, Logger: log.With("component", "display")})
	if err != nil {
		scr.Close()
		return nil, nil, err
	}
	var once sync.Once
	return d, func() {
		once.Do(func() {
			d.Close() // the drawing goroutine first, then the screen
			scr.Close()
		})
	}, nil
}

func buildFeedback(cfg *config.Config, log *slog.Logger) (*device.Feedback, []*device.Panel, error) {
	var panels []*device.Panel
	fail := func(err error) (*device.Feedback, []*device.Panel, error) {
		for _, p := range panels {
			p.Close()
		}
		return nil, nil, err
	}
	o := device.FeedbackOptions{
		Readers: map[string]device.Signaler{},
		Doors:   map[string]bool{},
		Logger:  log.With("component", "feedback"),
	}
	if cfg.Feedback.Wired() {
		p, err := buildPanel(cfg.Feedback, "feedback", o.Logger)
		if err != nil {
			return fail(err)
		}
		panels = append(panels, p)
		o.Shared = p
	}
	for i, r := range cfg.Readers {
		o.Doors[r.Name] = r.Role == config.RoleAccess || r.Role == config.RoleBoth
		if r.Feedback == nil || !r.Feedback.Wired() {
			continue
		}
		p, err := buildPanel(*r.Feedback, fmt.Sprintf("readers[%d].feedback", i), o.Logger.With("reader", r.Name))
		if err != nil {
			return fail(err)
		}
		panels = append(panels, p)
		o.Readers[r.Name] = p
	}
	if len(panels) == 0 {
		return nil, nil, nil
	}
	return device.NewFeedback(o), panels, nil
}

// buildPanel opens the pins of fc, which must wire at least one, on this
// host and returns a panel driving them. key is fc's configuration key,
// e.g. "feedback" or "readers[2].feedback", for errors.
func buildPanel(fc config.Feedback, key string, log *slog.Logger) (*device.Panel, error) {
	var pins device.Pins
	outs := []*gpio.PinOut{&pins.Green, &pins.Red, &pins.Buzzer, &pins.Relay}
	for i, p := range fc.Pins() { // green, red, buzzer, relay
		if p.Name == "" {
			continue
		}
		out, err := device.OpenPin(strings.Replace(p.Key, "feedback", key, 1), p.Name)
		if err != nil {
			return nil, err
		}
		*outs[i] = out
	}
	return device.New(device.Options{
		Pins:      pins,
		Timing:    device.Timing{RelayPulse: fc.RelayPulse.Duration},
		ActiveLow: fc.ActiveLow,
		Logger:    log,
	})
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, code := loadConfig("status", fs, args, stderr)
	if cfg == nil {
		return code
	}
	st, err := agent.QueryStatus(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock status: %v\n", err)
		return exitFail
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return exitFail
		}
		return exitOK
	}
	printStatus(stdout, st)
	return exitOK
}

func printStatus(w io.Writer, st agent.Status) {
	state := "stopped (read from the database)"
	if st.Running {
		state = "running " + st.Version
	}
	last := "never"
	if !st.LastUplink.IsZero() {
		last = st.LastUplink.Local().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "device:          %s\n", st.Device)
	fmt.Fprintf(w, "agent:           %s\n", state)
	fmt.Fprintf(w, "roster:          version %d, %d employees\n", st.RosterVersion, st.RosterSize)
	if st.RosterError != "" {
		fmt.Fprintf(w, "roster error:    %s\n", st.RosterError)
	}
	if r := st.LastRosterRequest; r != nil {
		fmt.Fprintf(w, "roster request:  %s (%s) %s\n", r.At.Local().Format(time.RFC3339), r.Reason, r.ID)
	}
	if u := st.LastRosterUpdate; u != nil {
		outcome := "loaded"
		if u.Error != "" {
			outcome = "rejected: " + u.Error
		}
		fmt.Fprintf(w, "roster update:   %s version %d %s\n", u.At.Local().Format(time.RFC3339), u.Version, outcome)
	}
	fmt.Fprintf(w, "outbox pending:  %d\n", st.Pending)
	if st.Unconfirmed > 0 {
		fmt.Fprintf(w, "unconfirmed:     %d, oldest %s\n", st.Unconfirmed, st.OldestUnconfirmed.Local().Format(time.RFC3339))
	}
	if st.DeadLetters > 0 {
		fmt.Fprintf(w, "dead letters:    %d (punchclock errors; punchclock replay)\n", st.DeadLetters)
	}
	fmt.Fprintf(w, "data:            %d MB", st.DataBytes>>20)
	if st.DataLimit > 0 {
		fmt.Fprintf(w, " of %d MB", st.DataLimit>>20)
	}
	fmt.Fprintln(w)
	if st.StorageWarning != "" {
		fmt.Fprintf(w, "storage:         %s\n", st.StorageWarning)
	}
	if st.Alarm != "" {
		fmt.Fprintf(w, "ALARM:           %s\n", st.Alarm)
	}
	if st.ApplyError != "" {
		fmt.Fprintf(w, "store error:     %s (punches are kept in the journal)\n", st.ApplyError)
	}
	fmt.Fprintf(w, "open entries:    %d\n", st.OpenEntries)
	fmt.Fprintf(w, "last uplink:     %s\n", last)
	if st.Uplink != "" {
		fmt.Fprintf(w, "uplink:          %s\n", st.Uplink)
	}
	for _, r := range st.Readers {
		fmt.Fprintf(w, "reader %-8s  %s %s: reads %d, frames %d, bad frames %d, garbage %d, reopens %d, timeouts %d\n",
			r.Name+":", r.Driver, r.State, r.Reads, r.Frames, r.BadFrames, r.Garbage, r.Reopens, r.Timeouts)
	}
}

func cmdErrors(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("errors", flag.ContinueOnError)
	sinceS := fs.String("since", "", "first day (YYYY-MM-DD, in the site's zone) or RFC 3339 time")
	asJSON := fs.Bool("json", false, "print JSON lines")
	cfg, code := loadConfig("errors", fs, args, stderr)
	if cfg == nil {
		return code
	}
	since, err := parseBound(*sinceS, cfg.Location, false)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock errors: -since: %v\n", err)
		return exitUsage
	}
	enc := json.NewEncoder(stdout)
	n := 0
	err = agent.QueryDeadLetters(cfg, since, func(d store.DeadLetter) error {
		n++
		if *asJSON {
			return enc.Encode(d)
		}
		_, err := fmt.Fprintf(stdout, "%s  %-5s  %s  %s: %s\n", d.At.In(cfg.Location).Format(time.RFC3339), d.Kind, d.ID, d.Source, d.Error)
		return err
	})
	if err != nil {
		fmt.Fprintf(stderr, "punchclock errors: %v\n", err)
		return exitFail
	}
	if n == 0 && !*asJSON {
		fmt.Fprintln(stdout, "no dead letters")
	}
	return exitOK
}

func cmdReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	all := fs.Bool("all", false, "replay every dead letter")
	cfg, code := loadConfig("replay", fs, args, stderr)
	if cfg == nil {
		return code
	}
	ids := fs.Args()
	if *all == (len(ids) > 0) {
		fmt.Fprintln(stderr, "punchclock replay: give record ids or -all (not both)")
		return exitUsage
	}
	done, err := agent.Replay(cfg, ids, *all)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock replay: %v\n", err)
		return exitFail
	}
	for _, id := range done {
		fmt.Fprintf(stdout, "replayed %s\n", id)
	}
	fmt.Fprintf(stdout, "%d dead letters replayed: unconfirmed again, sent with their original ids and times\n", len(done))
	return exitOK
}

// parseBound reads a day (the whole day, in loc: its start, or with end
// the start of the next day) or an RFC 3339 time. Empty is open.
func parseBound(s string, loc *time.Location, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		if end {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("%q is neither a day YYYY-MM-DD nor an RFC 3339 time", s)
	}
	return t, nil
}

func formatLog(e store.LogEntry, loc *time.Location) string {
	if ev := e.Event; ev != nil {
		who := ev.EmployeeID
		if who == "" {
			who = "?" + ev.CredentialType
			if ev.CredentialValue != "" {
				who += " " + ev.CredentialValue
			}
		}
		line := fmt.Sprintf("%s  event  %-8s %-12s %-3s %s", ev.At.In(loc).Format(time.RFC3339), ev.Reader, who, ev.Direction, ev.Decision)
		if ev.Reason != "" {
			line += " (" + ev.Reason + ")"
		}
		return line + "  " + ev.ID
	}
	sh := e.Shift
	return fmt.Sprintf("%s  shift  %-8s %-12s payroll %s, %s, in %s, %s  %s", sh.Out.In(loc).Format(time.RFC3339), sh.OutReader,
		sh.EmployeeID, sh.PayrollNo, sh.Department, sh.In.In(loc).Format(time.RFC3339),
		(time.Duration(sh.DurationS) * time.Second).String(), sh.ID)
}
