package clock

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSys is a machine's clocks: a monotonic clock the test advances and
// a wall clock that runs with it from base until the test sets it.
type fakeSys struct {
	mu        sync.Mutex
	mono      time.Duration
	base      time.Time // wall time at mono 0
	kernel    bool
	kernelErr error
	file      bool
	asked     int // adjtimex calls
}

func newFakeSys(wall time.Time, mono time.Duration) *fakeSys {
	return &fakeSys{mono: mono, base: wall.Add(-mono)}
}

func (f *fakeSys) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mono += d
}

// setWall steps the wall clock, as NTP or fake-hwclock does.
func (f *fakeSys) setWall(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.base = t.Add(-f.mono)
}

func (f *fakeSys) setKernel(synced bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kernel = synced
}

func (f *fakeSys) options(source Source, floor time.Time) Options {
	return Options{
		Source: source,
		Floor:  floor,
		Wall: func() time.Time {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.base.Add(f.mono)
		},
		Mono: func() time.Duration {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.mono
		},
		Adjtimex: func() (bool, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.asked++
			return f.kernel, f.kernelErr
		},
		FileExists: func(path string) bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.file && path == TimesyncFile
		},
		BootID: "boot-a",
	}
}

func newClock(t *testing.T, opts Options) *Clock {
	t.Helper()
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var (
	epoch     = time.Unix(0, 0).UTC()
	floor2026 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ams       = mustZone("Europe/Amsterdam")
)

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// A Pi without fake-hwclock boots in 1970, a shift starts, NTP sets the
// clock during the shift. The entry is re-dated from the monotonic clock
// and the shift lasts what it lasted, not 56 years.
func TestSyncMidShift(t *testing.T) {
	sys := newFakeSys(epoch.Add(20*time.Second), 20*time.Second)
	c := newClock(t, sys.options(SourceKernel, floor2026))

	sys.advance(time.Hour - 20*time.Second)
	in := c.Now()
	if in.Synced || !in.Wall.Equal(epoch.Add(time.Hour)) || in.Mono != time.Hour || in.Boot != "boot-a" {
		t.Fatalf("entry stamp = %+v, want unsynced at 1970-01-01T01:00Z, mono 1h, boot-a", in)
	}
	if _, ok := c.Reference(); ok {
		t.Fatal("a reference before the clock synced")
	}

	// NTP steps the clock at mono 1h30m; the kernel says synced.
	sys.advance(30 * time.Minute)
	sys.setWall(time.Date(2026, 12, 4, 8, 30, 0, 0, ams))
	sys.setKernel(true)
	sys.advance(2 * time.Second)
	ref := c.Now()
	if !ref.Synced {
		t.Fatalf("stamp after sync = %+v, want synced", ref)
	}
	if got, ok := c.Reference(); !ok || got != ref {
		t.Fatalf("Reference = %+v, %v; want %+v", got, ok, ref)
	}

	sys.advance(8 * time.Hour)
	out := c.Now()
	corrected, ok := Correct(in, ref)
	if want := time.Date(2026, 12, 4, 8, 0, 0, 0, ams); !ok || !corrected.Equal(want) {
		t.Fatalf("Correct(entry) = %v, %v; want %v", corrected, ok, want)
	}
	d, ok := Elapsed(in, out)
	if !ok || d != 8*time.Hour+30*time.Minute+2*time.Second {
		t.Fatalf("Elapsed = %v, %v; want 8h30m2s", d, ok)
	}
	if naive := out.Wall.Sub(in.Wall); naive < 50*365*24*time.Hour {
		t.Fatalf("control: the wall clocks differ by %v, not decades", naive)
	}
	if got := out.Wall.Sub(corrected); got != d {
		t.Fatalf("exit - corrected entry = %v, Elapsed %v: the two must agree", got, d)
	}
}

func TestSynced(t *testing.T) {
	errPerm := errors.New("operation not permitted")
	fakeHwclock := time.Date(2026, 11, 30, 17, 5, 0, 0, time.UTC) // last saved before the power cut
	tests := []struct {
		name      string
		source    Source
		floor     time.Time
		wall      time.Time
		kernel    bool
		kernelErr error
		file      bool
		want      bool
		wantAsked int // adjtimex calls for one Now
		wantErr   bool
	}{
		{name: "fake-hwclock: wall past the floor, kernel unsynced", source: SourceKernel, floor: floor2026, wall: fakeHwclock, want: false, wantAsked: 1},
		{name: "default source is kernel", source: "", floor: floor2026, wall: fakeHwclock, want: false, wantAsked: 1},
		{name: "kernel synced", source: SourceKernel, floor: floor2026, wall: fakeHwclock, kernel: true, want: true, wantAsked: 1},
		{name: "timesyncd's file", source: SourceKernel, floor: floor2026, wall: fakeHwclock, file: true, want: true, wantAsked: 1},
		{name: "adjtimex fails, timesyncd's file", source: SourceKernel, wall: fakeHwclock, kernelErr: errPerm, file: true, want: true, wantAsked: 1, wantErr: true},
		{name: "adjtimex fails, no file", source: SourceKernel, wall: fakeHwclock, kernelErr: errPerm, want: false, wantAsked: 1, wantErr: true},
		{name: "kernel synced but wall before the floor", source: SourceKernel, floor: floor2026, wall: epoch, kernel: true, want: false, wantAsked: 1},
		{name: "kernel synced, no floor", source: SourceKernel, wall: epoch, kernel: true, want: true, wantAsked: 1},
		{name: "trusted, no floor, 1970", source: SourceTrusted, wall: epoch, want: true},
		{name: "trusted, before the floor", source: SourceTrusted, floor: floor2026, wall: floor2026.Add(-time.Second), want: false},
		{name: "trusted, at the floor", source: SourceTrusted, floor: floor2026, wall: floor2026, want: true},
		{name: "floor passes fake-hwclock (why it is not the default)", source: SourceFloor, floor: floor2026, wall: fakeHwclock, want: true},
		{name: "floor, zero means DefaultFloor, before", source: SourceFloor, wall: DefaultFloor.Add(-time.Hour), kernel: true, want: false},
		{name: "floor, zero means DefaultFloor, after", source: SourceFloor, wall: DefaultFloor.Add(time.Hour), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sys := newFakeSys(tt.wall, time.Minute)
			sys.kernel, sys.kernelErr, sys.file = tt.kernel, tt.kernelErr, tt.file
			c := newClock(t, sys.options(tt.source, tt.floor))
			s := c.Now()
			if s.Synced != tt.want {
				t.Errorf("Synced = %v, want %v", s.Synced, tt.want)
			}
			if _, ok := c.Reference(); ok != tt.want {
				t.Errorf("Reference ok = %v, want %v", ok, tt.want)
			}
			if sys.asked != tt.wantAsked {
				t.Errorf("adjtimex asked %d times, want %d", sys.asked, tt.wantAsked)
			}
			if err := c.Err(); (err != nil) != tt.wantErr || (tt.wantErr && !errors.Is(err, errPerm)) {
				t.Errorf("Err = %v, want an error: %v", err, tt.wantErr)
			}
			if !s.Wall.Equal(tt.wall) || s.Mono != time.Minute || s.Boot != "boot-a" {
				t.Errorf("stamp = %+v, want wall %v, mono 1m, boot-a", s, tt.wall)
			}
		})
	}
}

// The kernel is asked at most once a second, and not at all once it
// has said yes; a stamp up to a second late in seeing the sync is still
// unsynced (and Correct dates it).
func TestSyncCache(t *testing.T) {
	sys := newFakeSys(epoch, 10*time.Second)
	c := newClock(t, sys.options(SourceKernel, time.Time{}))
	steps := []struct {
		advance   time.Duration
		kernel    bool
		wantAsked int
		want      bool
	}{
		{0, false, 1, false},
		{500 * time.Millisecond, false, 1, false},
		{0, true, 1, false}, // synced now, not yet seen
		{499 * time.Millisecond, true, 1, false},
		{time.Millisecond, true, 2, true}, // a second after the last question
		{time.Millisecond, true, 2, true},
		{9 * time.Hour, false, 2, true}, // offline for 9 h: the kernel sets STA_UNSYNC again; the answer is kept
		{time.Hour, false, 2, true},
	}
	for i, st := range steps {
		sys.advance(st.advance)
		sys.setKernel(st.kernel)
		s := c.Now()
		if sys.asked != st.wantAsked || s.Synced != st.want {
			t.Fatalf("step %d (mono %v): asked %d, synced %v; want %d, %v", i, s.Mono, sys.asked, s.Synced, st.wantAsked, st.want)
		}
	}
}

// The first synced stamp stays the reference.
func TestReferenceIsTheFirstSyncedStamp(t *testing.T) {
	sys := newFakeSys(floor2026.Add(time.Hour), time.Minute)
	c := newClock(t, sys.options(SourceTrusted, floor2026))
	first := c.Now()
	sys.advance(time.Minute)
	sys.setWall(floor2026.Add(5 * time.Hour))
	second := c.Now()
	if first == second {
		t.Fatal("control: the two stamps are equal")
	}
	if ref, ok := c.Reference(); !ok || ref != first {
		t.Fatalf("Reference = %+v, %v; want the first stamp %+v", ref, ok, first)
	}
}

// Before the floor the source's yes does not count; the reference waits
// for a stamp at or past it.
func TestReferenceWaitsForTheFloor(t *testing.T) {
	sys := newFakeSys(epoch, time.Minute)
	c := newClock(t, sys.options(SourceTrusted, floor2026))
	if s := c.Now(); s.Synced {
		t.Fatalf("stamp in 1970 = %+v, want unsynced", s)
	}
	sys.advance(time.Minute)
	sys.setWall(floor2026)
	s := c.Now()
	if ref, ok := c.Reference(); !s.Synced || !ok || ref != s {
		t.Fatalf("after the floor: stamp %+v, Reference %+v, %v", s, ref, ok)
	}
}

func TestNoMonotonicReadingMeansNoBoot(t *testing.T) {
	sys := newFakeSys(floor2026, 0)
	c := newClock(t, sys.options(SourceTrusted, time.Time{}))
	if s := c.Now(); s.Boot != "" || s.Mono != 0 {
		t.Fatalf("stamp without a monotonic reading = %+v, want no boot", s)
	}
}

func TestNewRejectsAnUnknownSource(t *testing.T) {
	sys := newFakeSys(floor2026, time.Minute)
	_, err := New(sys.options("ntp", time.Time{}))
	if !errors.Is(err, ErrSource) || !strings.Contains(err.Error(), `"ntp"`) {
		t.Fatalf("New(source ntp) = %v, want ErrSource naming \"ntp\"", err)
	}
}

func TestStampJSON(t *testing.T) {
	s := Stamp{Wall: time.Date(2026, 12, 4, 8, 0, 0, 123456789, ams), Mono: 90 * time.Minute, Boot: "boot-a", Synced: true}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"wall":"2026-12-04T08:00:00.123456789+01:00","mono":5400000000000,"boot":"boot-a","synced":true}`
	if string(b) != want {
		t.Fatalf("JSON = %s\nwant   %s", b, want)
	}
	var back Stamp
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Wall.Equal(s.Wall) || back.Mono != s.Mono || back.Boot != s.Boot || back.Synced != s.Synced {
		t.Fatalf("round trip = %+v, want %+v", back, s)
	}
	// A record from before stamps: unsynced, of no boot, never corrected.
	var old Stamp
	if err := json.Unmarshal([]byte(`{"wall":"1970-01-01T01:00:00Z"}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.Synced || old.Boot != "" {
		t.Fatalf("old record = %+v, want unsynced and of no boot", old)
	}
	if _, ok := Correct(old, s); ok {
		t.Fatal("an old record was corrected")
	}
}

// Now and Reference from several goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	sys := newFakeSys(epoch, time.Second)
	c := newClock(t, sys.options(SourceKernel, time.Time{}))
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				sys.advance(10 * time.Millisecond)
				if i == 100 {
					sys.setKernel(true)
				}
				c.Now()
				c.Reference()
			}
		}()
	}
	wg.Wait()
	if ref, ok := c.Reference(); !ok || !ref.Synced {
		t.Fatalf("after the kernel synced: Reference = %+v, %v", ref, ok)
	}
}

// A restart after the sync: the reference stored by the earlier run
// keeps the clock synced although the kernel no longer says so (9 h
// offline); one of another boot counts for nothing.
func TestStoredReference(t *testing.T) {
	stored := Stamp{Wall: time.Date(2026, 12, 4, 7, 0, 0, 0, ams), Mono: time.Hour, Boot: "boot-a", Synced: true}
	tests := []struct {
		name    string
		ref     Stamp
		want    bool
		wantRef bool
	}{
		{"same boot", stored, true, true},
		{"another boot", Stamp{Wall: stored.Wall, Mono: stored.Mono, Boot: "boot-z", Synced: true}, false, false},
		{"unsynced", Stamp{Wall: stored.Wall, Mono: stored.Mono, Boot: "boot-a"}, false, false},
		{"none", Stamp{}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sys := newFakeSys(time.Date(2026, 12, 4, 17, 0, 0, 0, ams), 11*time.Hour)
			opts := sys.options(SourceKernel, floor2026)
			opts.Reference = tt.ref
			c := newClock(t, opts)
			if s := c.Now(); s.Synced != tt.want {
				t.Errorf("Synced = %v, want %v", s.Synced, tt.want)
			}
			ref, ok := c.Reference()
			if ok != tt.wantRef || (ok && ref != stored) {
				t.Errorf("Reference = %+v, %v; want the stored one: %v", ref, ok, tt.wantRef)
			}
		})
	}
}
