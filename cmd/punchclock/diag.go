package main

import (
	"context"
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

	"github.com/punchclock/punchclock/agent"
	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/device"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/store"
)

// cmdDiag is the technician's live view: it reads the readers itself and
// shows each raw read with the decision it would get, storing nothing;
// or, with -test, plays every feedback pattern, pulses every relay and
// shows a text on the display. The agent must be stopped: the readers'
// ports and the GPIO lines are its while it runs.
func cmdDiag(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("diag", flag.ContinueOnError)
	test := fs.Bool("test", false, "test the outputs: LED and buzzer patterns, door relays, the display")
	forD := fs.Duration("for", 0, "stop after this long (default: until interrupted)")
	cfg, code := loadConfig("diag", fs, args, stderr)
	if cfg == nil {
		return code
	}
	if st, err := agent.QueryStatus(cfg); err == nil && st.Running {
		fmt.Fprintln(stderr, "punchclock diag: the agent is running and holds the readers and outputs: stop it first (systemctl stop punchclock)")
		return exitFail
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *forD > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *forD)
		defer cancel()
	}
	if *test {
		return diagOutputs(ctx, cfg, stdout, stderr)
	}
	db, err := store.Open(cfg.DataDir, store.Options{ReadOnly: true, DeviceID: cfg.DeviceID, Timeout: 2 * time.Second})
	if err != nil {
		fmt.Fprintf(stderr, "punchclock diag: %v\n", err)
		return exitFail
	}
	defer db.Close()
	j, err := agent.NewJudge(cfg, db)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock diag: %v\n", err)
		return exitFail
	}
	readers, err := cfg.NewReaders(nil)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock diag: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "diag: %d readers; each read and the decision it would get (nothing is stored). Ctrl-C ends.\n", len(readers))
	reads := make(chan reader.Read, 64)
	var wg sync.WaitGroup
	for _, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(ctx, reads); err != nil {
				fmt.Fprintf(stderr, "punchclock diag: reader %s: %v\n", r.Name(), err)
			}
		}()
	}
	go func() { wg.Wait(); close(reads) }()
	for rd := range reads {
		fmt.Fprintln(stdout, rawRead(rd, cfg.Location))
		for _, out := range j.Decide(rd) {
			fmt.Fprintln(stdout, "    → "+wouldGet(out, j))
		}
	}
	return exitOK
}

// rawRead prints a read as the reader gave it; the digits of a key press
// are never shown (they may be a PIN).
func rawRead(rd reader.Read, loc *time.Location) string {
	at := rd.At.In(loc).Format("15:04:05.000")
	switch rd.Type {
	case reader.TypeKey:
		v := rd.Value
		if len(v) == 1 && v[0] >= '0' && v[0] <= '9' {
			v = "•"
		}
		return fmt.Sprintf("%s  %-8s key %s", at, rd.Reader, v)
	case reader.TypeFingerprint:
		return fmt.Sprintf("%s  %-8s fingerprint page %q score %d", at, rd.Reader, rd.Value, rd.Score)
	}
	return fmt.Sprintf("%s  %-8s %s %s %s", at, rd.Reader, rd.Type, rd.Format, rd.Value)
}

// wouldGet says what a decision would be.
func wouldGet(out punch.Outcome, j *agent.Judge) string {
	if out.NoEvent && out.Shift != nil {
		return fmt.Sprintf("%s's entry past max_shift would be closed (auto_closed)", out.Shift.EmployeeID)
	}
	ev := out.Event
	who := ev.EmployeeID
	if e := j.Employee(who); e != nil && e.Name != "" {
		who += " " + e.Name
	}
	if who == "" {
		who = "nobody"
	}
	s := fmt.Sprintf("%s: %s", who, ev.Decision)
	if ev.Direction != "" {
		s += " " + ev.Direction
	}
	if ev.Reason != "" {
		s += " (" + ev.Reason + ")"
	}
	if ev.Access != "" {
		s += ", access " + ev.Access
	}
	if len(ev.Flags) > 0 {
		s += " [" + strings.Join(ev.Flags, " ") + "]"
	}
	if out.Shift != nil {
		s += fmt.Sprintf("; would close a shift of %s", time.Duration(out.Shift.DurationS)*time.Second)
	}
	return s
}

// diagOutputs plays every pattern on every panel, pulses each panel's
// relay and shows a text on the display, saying each step, a second
// apart, so a technician sees and hears which output is which.
func diagOutputs(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	type named struct {
		name  string
		panel *device.Panel
	}
	var panels []named
	if cfg.Feedback.Wired() {
		p, err := buildPanel(cfg.Feedback, "feedback", log)
		if err != nil {
			fmt.Fprintf(stderr, "punchclock diag: %v\n", err)
			return exitFail
		}
		panels = append(panels, named{"the shared panel ([feedback])", p})
	}
	for i, r := range cfg.Readers {
		if r.Feedback == nil || !r.Feedback.Wired() {
			continue
		}
		p, err := buildPanel(*r.Feedback, fmt.Sprintf("readers[%d].feedback", i), log)
		if err != nil {
			fmt.Fprintf(stderr, "punchclock diag: %v\n", err)
			return exitFail
		}
		panels = append(panels, named{"reader " + r.Name, p})
	}
	defer func() {
		for _, p := range panels {
			p.panel.Close()
		}
	}()
	disp, closeDisplay, err := buildDisplay(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "punchclock diag: %v\n", err)
		return exitFail
	}
	defer closeDisplay()
	if len(panels) == 0 && disp == nil {
		fmt.Fprintln(stdout, "diag: no feedback pins and no display configured: nothing to test")
		return exitOK
	}
	pause := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(1500 * time.Millisecond):
			return true
		}
	}
	failed := false
	step := func(what string, err error) bool {
		if err != nil {
			failed = true
			fmt.Fprintf(stdout, "FAIL %s: %v\n", what, err)
		} else {
			fmt.Fprintf(stdout, "ok   %s\n", what)
		}
		return pause()
	}
	for _, p := range panels {
		for _, pt := range []struct {
			name string
			p    device.Pattern
		}{
			{"accepted in: green, one beep", device.PatternIn},
			{"accepted out: green, two beeps", device.PatternOut},
			{"denied: red, three beeps", device.PatternDeny},
			{"store error: red and green, a long tone", device.PatternFault},
			{"storage full: red and green, three long beeps", device.PatternFull},
		} {
			if !step(p.name+": "+pt.name, p.panel.Signal(pt.p)) {
				return exitFail
			}
		}
		if !step(p.name+": door relay pulse", p.panel.Unlock()) {
			return exitFail
		}
	}
	if disp != nil {
		disp.ShowPunch(device.Punch{Event: punch.Event{Decision: punch.Accepted, Direction: punch.In, At: time.Now().In(cfg.Location)}, Name: "Display test"})
		if !step("display: \"Display test\" greeted", nil) {
			return exitFail
		}
	}
	if failed {
		return exitFail
	}
	return exitOK
}
