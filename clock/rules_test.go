package clock

import (
	"testing"
	"time"
)

func TestCorrect(t *testing.T) {
	ref := Stamp{Wall: time.Date(2026, 12, 4, 8, 30, 0, 0, ams), Mono: 90 * time.Minute, Boot: "a", Synced: true}
	tests := []struct {
		name   string
		s, ref Stamp
		want   time.Time
		ok     bool
	}{
		{"unsynced, same boot", Stamp{Wall: epoch.Add(time.Hour), Mono: time.Hour, Boot: "a"}, ref, time.Date(2026, 12, 4, 8, 0, 0, 0, ams), true},
		{"fake-hwclock wall, same boot", Stamp{Wall: time.Date(2026, 11, 30, 17, 0, 0, 0, time.UTC), Mono: 80 * time.Minute, Boot: "a"}, ref, time.Date(2026, 12, 4, 8, 20, 0, 0, ams), true},
		{"at the reference", Stamp{Wall: epoch, Mono: 90 * time.Minute, Boot: "a"}, ref, ref.Wall, true},
		{"already synced", Stamp{Wall: ref.Wall.Add(-time.Hour), Mono: 30 * time.Minute, Boot: "a", Synced: true}, ref, time.Time{}, false},
		{"reference unsynced", Stamp{Wall: epoch, Mono: time.Hour, Boot: "a"}, Stamp{Wall: ref.Wall, Mono: ref.Mono, Boot: "a"}, time.Time{}, false},
		{"another boot: never re-dated", Stamp{Wall: epoch.Add(time.Hour), Mono: time.Hour, Boot: "b"}, ref, time.Time{}, false},
		{"reference before the stamp", Stamp{Wall: epoch, Mono: 2 * time.Hour, Boot: "a"}, ref, time.Time{}, false},
		{"no boot id on either", Stamp{Wall: epoch, Mono: time.Hour}, Stamp{Wall: ref.Wall, Mono: ref.Mono, Synced: true}, time.Time{}, false},
		{"no monotonic reading", Stamp{Wall: epoch, Boot: "a"}, ref, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Correct(tt.s, tt.ref)
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Fatalf("Correct = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestElapsed(t *testing.T) {
	at := func(y int, mo time.Month, d, h, m int, loc *time.Location) time.Time {
		return time.Date(y, mo, d, h, m, 0, 0, loc)
	}
	tests := []struct {
		name    string
		in, out Stamp
		want    time.Duration
		ok      bool
	}{
		{"same boot, 1970 then synced: the real duration",
			Stamp{Wall: epoch.Add(time.Hour), Mono: time.Hour, Boot: "a"},
			Stamp{Wall: at(2026, 12, 4, 16, 0, ams), Mono: 9 * time.Hour, Boot: "a", Synced: true},
			8 * time.Hour, true},
		{"same boot, the wall clock jumped back 2 h: mono, not negative",
			Stamp{Wall: at(2026, 12, 4, 10, 0, ams), Mono: time.Hour, Boot: "a", Synced: true},
			Stamp{Wall: at(2026, 12, 4, 8, 30, ams), Mono: 90 * time.Minute, Boot: "a", Synced: true},
			30 * time.Minute, true},
		{"same boot, both unsynced",
			Stamp{Wall: epoch, Mono: time.Minute, Boot: "a"},
			Stamp{Wall: epoch.Add(time.Hour), Mono: time.Hour + time.Minute, Boot: "a"},
			time.Hour, true},
		{"same boot, out stamped before in",
			Stamp{Wall: epoch, Mono: 2 * time.Hour, Boot: "a"},
			Stamp{Wall: epoch, Mono: time.Hour, Boot: "a"},
			0, false},
		{"another boot, both synced: the wall clocks",
			Stamp{Wall: at(2026, 12, 4, 22, 0, ams), Mono: 5 * time.Hour, Boot: "a", Synced: true},
			Stamp{Wall: at(2026, 12, 5, 6, 0, ams), Mono: time.Minute, Boot: "b", Synced: true},
			8 * time.Hour, true},
		{"another boot, both synced, across the autumn DST night",
			Stamp{Wall: at(2026, 10, 24, 22, 0, ams), Mono: 5 * time.Hour, Boot: "a", Synced: true},
			Stamp{Wall: at(2026, 10, 25, 6, 0, ams), Mono: time.Minute, Boot: "b", Synced: true},
			9 * time.Hour, true},
		{"another boot, both synced, across the spring DST night",
			Stamp{Wall: at(2026, 3, 28, 22, 0, ams), Mono: 5 * time.Hour, Boot: "a", Synced: true},
			Stamp{Wall: at(2026, 3, 29, 6, 0, ams), Mono: time.Minute, Boot: "b", Synced: true},
			7 * time.Hour, true},
		{"another boot, out before in on the wall: no duration",
			Stamp{Wall: at(2026, 12, 4, 10, 0, ams), Mono: 5 * time.Hour, Boot: "a", Synced: true},
			Stamp{Wall: at(2026, 12, 4, 9, 0, ams), Mono: time.Minute, Boot: "b", Synced: true},
			0, false},
		{"another boot, in unsynced: no duration",
			Stamp{Wall: epoch.Add(time.Hour), Mono: time.Hour, Boot: "a"},
			Stamp{Wall: at(2026, 12, 4, 16, 0, ams), Mono: time.Minute, Boot: "b", Synced: true},
			0, false},
		{"another boot, out unsynced (fake-hwclock): no duration",
			Stamp{Wall: at(2026, 12, 4, 8, 0, ams), Mono: time.Hour, Boot: "a", Synced: true},
			Stamp{Wall: at(2026, 12, 4, 8, 5, ams), Mono: time.Minute, Boot: "b"},
			0, false},
		{"no boot ids, both synced: the wall clocks",
			Stamp{Wall: at(2026, 12, 4, 8, 0, ams), Synced: true},
			Stamp{Wall: at(2026, 12, 4, 9, 0, ams), Synced: true},
			time.Hour, true},
		{"no boot ids, unsynced: no duration",
			Stamp{Wall: epoch, Mono: time.Hour},
			Stamp{Wall: epoch.Add(time.Hour), Mono: 2 * time.Hour},
			0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Elapsed(tt.in, tt.out)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("Elapsed = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// Same-boot durations ignore the wall clock entirely: a DST change or a
// step does not show.
func TestElapsedSameBootAcrossDST(t *testing.T) {
	in := Stamp{Wall: time.Date(2026, 10, 25, 1, 30, 0, 0, ams), Mono: time.Hour, Boot: "a", Synced: true}
	out := Stamp{Wall: time.Date(2026, 10, 25, 2, 30, 0, 0, ams), Mono: 3 * time.Hour, Boot: "a", Synced: true}
	if d, ok := Elapsed(in, out); !ok || d != 2*time.Hour {
		t.Fatalf("Elapsed = %v, %v; want 2h", d, ok)
	}
}
