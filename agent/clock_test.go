package agent

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/punchclock/punchclock/clock"
	"github.com/punchclock/punchclock/punch"
)

// fakeTime is a Pi's clock: wall time, CLOCK_BOOTTIME and the kernel's
// sync state, moved by the test.
type fakeTime struct {
	mu     sync.Mutex
	wall   time.Time
	mono   time.Duration
	synced bool
}

func (f *fakeTime) Wall() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wall
}

func (f *fakeTime) Mono() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mono
}

func (f *fakeTime) Synced() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.synced, nil
}

// advance moves both clocks by d; set steps the wall clock to w (NTP's
// first step) and marks the clock synced.
func (f *fakeTime) advance(d time.Duration) {
	f.mu.Lock()
	f.wall, f.mono = f.wall.Add(d), f.mono+d
	f.mu.Unlock()
}

func (f *fakeTime) set(w time.Time) {
	f.mu.Lock()
	f.wall, f.synced = w, true
	f.mu.Unlock()
}

// A Pi boots in 1970 without network: punches are accepted (an offline
// boot must not lock the site out), flagged clock_unsynced and stamped.
// When NTP sets the clock, the open entry is re-dated from the monotonic
// clock (clock_corrected), and the shift has the real times and duration.
func TestAgentClockSyncsMidShift(t *testing.T) {
	dir := t.TempDir()
	ft := &fakeTime{wall: time.Date(1970, 1, 1, 0, 0, 40, 0, time.UTC), mono: 40 * time.Second}
	clk, err := clock.New(clock.Options{Source: clock.SourceKernel, Floor: clock.DefaultFloor, Wall: ft.Wall, Mono: ft.Mono,
		Adjtimex: ft.Synced, FileExists: func(string) bool { return false }, BootID: "boot-1"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := rulesConfig(t, dir, "", rdr("front", 0, ""))
	h := startAgent(t, cfg, func(o *Options) { o.Clock, o.Now = clk, ft.Wall })
	// A1 has no contract dates; A5's access group has a window: on a
	// clock known wrong neither is judged.
	h.badgeAt("front", "0A00000001", ft.Wall())
	h.d.wait(t, 1)
	ev := h.last(t)
	if ev.Decision != punch.Accepted || !slices.Contains(ev.Flags, punch.FlagClockUnsynced) || ev.Clock == nil || ev.Clock.Boot != "boot-1" || ev.Clock.Mono != 40*time.Second {
		t.Fatalf("punch on the 1970 clock: %+v (clock %+v)", ev, ev.Clock)
	}
	// Eight minutes later NTP sets the clock to 08:08 (site time 09:08).
	ft.advance(8 * time.Minute)
	ft.set(time.Date(2026, 3, 2, 8, 8, 40, 0, time.UTC))
	h.badgeAt("front", "0A00000004", ft.Wall())
	h.d.wait(t, 1)
	open, err := h.a.DB().OpenEntries()
	if err != nil {
		t.Fatal(err)
	}
	a1 := open["A1"]
	if a1 == nil || !a1.At.Equal(time.Date(2026, 3, 2, 8, 0, 40, 0, time.UTC)) || !slices.Contains(a1.Flags, punch.FlagClockCorrected) || slices.Contains(a1.Flags, punch.FlagClockUnsynced) {
		t.Fatalf("A1's entry after the sync: %+v", a1)
	}
	if ev := h.last(t); slices.Contains(ev.Flags, punch.FlagClockUnsynced) || ev.Clock != nil {
		t.Fatalf("a punch after the sync: %+v", ev)
	}
	// The 1970 punch is due to be published again under its id, re-dated.
	rows, err := h.a.DB().Peek(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var redated *punch.Event
	for _, r := range rows {
		var e punch.Event
		if json.Unmarshal(r.Payload, &e) == nil && e.ID == ev.ID {
			redated = &e
		}
	}
	if redated == nil || !redated.At.Equal(time.Date(2026, 3, 2, 8, 0, 40, 0, time.UTC)) || redated.Clock != nil ||
		!slices.Contains(redated.Flags, punch.FlagClockCorrected) || slices.Contains(redated.Flags, punch.FlagClockUnsynced) {
		t.Fatalf("the 1970 punch in the outbox: %+v", redated)
	}
	// Eight hours later A1 leaves: a real shift, not one of 56 years.
	ft.advance(8 * time.Hour)
	h.badgeAt("front", "0A00000001", ft.Wall())
	h.d.wait(t, 1)
	h.d.mu.Lock()
	shifts := slices.Clone(h.d.shifts)
	h.d.mu.Unlock()
	if len(shifts) != 1 {
		t.Fatalf("shifts %+v", shifts)
	}
	sh := shifts[0]
	if !sh.In.Equal(time.Date(2026, 3, 2, 8, 0, 40, 0, time.UTC)) || sh.DurationS != 8*3600+8*60 || sh.Clock != nil ||
		!slices.Contains(sh.Flags, punch.FlagClockCorrected) || slices.Contains(sh.Flags, punch.FlagClockUnsynced) {
		t.Fatalf("shift %+v", sh)
	}
	if ref, ok, err := h.a.DB().ClockRef(); err != nil || !ok || !ref.Synced || ref.Boot != "boot-1" {
		t.Fatalf("stored reference %+v %v %v", ref, ok, err)
	}
}
