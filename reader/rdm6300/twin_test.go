package rdm6300_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/rdm6300"
	"github.com/punchclock/punchclock/sim"
)

// The driver as the agent builds it (its settings from a config table)
// against its twin as punchsim serve builds it, through a real pty:
// cards, garbage between them, and the twin unplugged and replugged
// without restarting the driver.
func TestDriverAgainstTwin(t *testing.T) {
	link := filepath.Join(t.TempDir(), "dev", "ttyRDM")
	cfg := rdm6300.Driver.NewConfig().(*rdm6300.Settings)
	cfg.Port = link
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tw, err := cfg.Twin(reader.TwinEnv{Name: "front", Serial: func(l string) (reader.SerialEnd, error) { return sim.NewSerial(l) }})
	if err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	rd, err := cfg.New(reader.Env{Name: "front", RepeatWindow: 200 * time.Millisecond, Logger: slog.New(slog.DiscardHandler), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan reader.Read, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- rd.Run(ctx, out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	expect := func(value string) {
		t.Helper()
		select {
		case r := <-out:
			if r.Value != value || r.Type != reader.TypeCard || r.Format != reader.FormatEM4100 {
				t.Fatalf("read %+v, want card %s", r, value)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no read of %s; stats %+v", value, rd.(reader.StatsReader).Stats())
		}
	}
	do := func(cmd string, args ...string) {
		t.Helper()
		if _, err := tw.Do(t.Context(), cmd, args); err != nil {
			t.Fatalf("%s %v: %v", cmd, args, err)
		}
	}
	do("card", "0A00123456", "x3")
	expect("0A00123456")
	do("garbage", "200")
	do("card", "0B00000001", "x2")
	expect("0B00000001")
	do("id12", "0D00000003", "x2") // ID-12/ID-20 framing: CR LF before ETX
	expect("0D00000003")

	if err := tw.Unplug(); err != nil {
		t.Fatal(err)
	}
	st := rd.(reader.Stater)
	waitState(t, st, reader.StateOffline)
	if _, err := tw.Do(t.Context(), "card", []string{"0A00123456"}); err == nil {
		t.Error("a card on an unplugged twin did not fail")
	}
	if err := tw.Replug(); err != nil {
		t.Fatal(err)
	}
	waitState(t, st, reader.StateOnline)
	do("card", "0C00000002")
	expect("0C00000002")
	if s := rd.(reader.StatsReader).Stats(); s.Reopens < 1 || s.Reads != 4 || s.Garbage < 200 {
		t.Errorf("stats %+v: want 4 reads, a reopen, the garbage counted", s)
	}
}

func waitState(t *testing.T, s reader.Stater, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.State() != want {
		if time.Now().After(deadline) {
			t.Fatalf("state %s, want %s", s.State(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
