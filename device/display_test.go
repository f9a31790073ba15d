package device_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/punchclock/punchclock/device"
	"github.com/punchclock/punchclock/device/devicetest"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/roster"
)

var ams = func() *time.Location {
	l, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		panic(err)
	}
	return l
}()

func clockAt(hhmm string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", "2026-12-04 "+hhmm, ams)
	if err != nil {
		panic(err)
	}
	return t
}

// Screen sizes: the SSD1306 128x64 in 8x8 glyphs at a 16-pixel row pitch,
// and the two common LCDs.
var (
	oled = device.Size{Cols: 16, Rows: 4}
	lcd2 = device.Size{Cols: 16, Rows: 2}
	lcd4 = device.Size{Cols: 20, Rows: 4}
)

func in(hhmm string) punch.Event {
	return punch.Event{At: clockAt(hhmm), Decision: punch.Accepted, Direction: punch.In, CredentialType: roster.Card}
}

func out(hhmm string) punch.Event {
	ev := in(hhmm)
	ev.Direction = punch.Out
	return ev
}

func denied(hhmm, reason string) punch.Event {
	return punch.Event{At: clockAt(hhmm), Decision: punch.Denied, Reason: reason, CredentialType: roster.Card}
}

func unsynced(ev punch.Event) punch.Event {
	ev.Flags = []string{punch.FlagClockUnsynced}
	return ev
}

func shift(d time.Duration, flags ...string) *punch.Shift {
	return &punch.Shift{DurationS: int64(d / time.Second), Flags: flags}
}

func TestPunchLines(t *testing.T) {
	pin := denied("08:02", punch.ReasonUnknownCredential)
	pin.CredentialType = roster.PIN
	door := in("10:00")
	door.Direction, door.Access = "", punch.AccessGranted
	for _, tc := range []struct {
		name string
		p    device.Punch
		size device.Size
		want []string
	}{
		{"in, morning, oled", device.Punch{Event: in("08:02"), Name: "Anna"}, oled, []string{"Good morning", "Anna", "IN 08:02", ""}},
		{"in, morning, 20x4", device.Punch{Event: in("08:02"), Name: "Anna"}, lcd4, []string{"Good morning", "Anna", "IN 08:02", ""}},
		{"in, morning, 16x2: greeting and name do not fit one row", device.Punch{Event: in("08:02"), Name: "Anna"}, lcd2, []string{"Good morning", "Anna IN 08:02"}},
		{"in, afternoon", device.Punch{Event: in("12:00"), Name: "Bo"}, lcd2, []string{"Good afternoon", "Bo IN 12:00"}},
		{"in, evening", device.Punch{Event: in("18:00"), Name: "Bo"}, lcd2, []string{"Good evening Bo", "IN 18:00"}},
		{"in, night", device.Punch{Event: in("04:59"), Name: "Bo"}, lcd2, []string{"Hello Bo", "IN 04:59"}},
		{"in, 05:00 is morning", device.Punch{Event: in("05:00"), Name: "Bo"}, lcd2, []string{"Good morning Bo", "IN 05:00"}},
		{"out with the shift's length", device.Punch{Event: out("16:31"), Name: "Anna", Shift: shift(8*time.Hour + 29*time.Minute + 59*time.Second)}, oled,
			[]string{"Goodbye", "Anna", "OUT 16:31 (8h29)", ""}},
		{"out, 16x2", device.Punch{Event: out("16:31"), Name: "Anna", Shift: shift(8*time.Hour + 29*time.Minute)}, lcd2, []string{"Goodbye Anna", "OUT 16:31 (8h29)"}},
		{"out, ten hours and more drop the brackets on 16 columns", device.Punch{Event: out("16:31"), Name: "Anna", Shift: shift(10*time.Hour + 5*time.Minute)}, oled,
			[]string{"Goodbye", "Anna", "OUT 16:31 10h05", ""}},
		{"out, ten hours on 20 columns", device.Punch{Event: out("16:31"), Name: "Anna", Shift: shift(10*time.Hour + 5*time.Minute)}, lcd4,
			[]string{"Goodbye", "Anna", "OUT 16:31 (10h05)", ""}},
		{"out, duration unknown: none shown", device.Punch{Event: out("16:31"), Name: "Anna", Shift: shift(0, punch.FlagDurationUnknown)}, lcd2, []string{"Goodbye Anna", "OUT 16:31"}},
		{"out, no shift (missing_in)", device.Punch{Event: out("16:31"), Name: "Anna"}, lcd2, []string{"Goodbye Anna", "OUT 16:31"}},
		{"in on an unset clock: no time", device.Punch{Event: unsynced(in("01:00")), Name: "Anna"}, lcd2, []string{"Hello Anna", "IN"}},
		{"out on an unset clock: the duration still", device.Punch{Event: unsynced(out("01:00")), Name: "Anna", Shift: shift(8*time.Hour + 29*time.Minute)},
			lcd2, []string{"Goodbye Anna", "OUT (8h29)"}},
		{"door without attendance", device.Punch{Event: door, Name: "Anna"}, oled, []string{"Welcome", "Anna", "Door open", ""}},
		{"name folded to ASCII", device.Punch{Event: in("08:02"), Name: " Zoë Çelik-Øster "}, oled, []string{"Good morning", "Zoe Celik-Oster", "IN 08:02", ""}},
		{"long name cut", device.Punch{Event: in("08:02"), Name: "Maximiliane Oppenheimer"}, oled, []string{"Good morning", "Maximiliane Oppe", "IN 08:02", ""}},
		{"double_in with the open entry", device.Punch{Event: denied("09:10", punch.ReasonDoubleIn), Name: "Anna", OpenSince: clockAt("08:02")}, oled,
			[]string{"Anna", "Already in since", "08:02", ""}},
		{"double_in, 16x2", device.Punch{Event: denied("09:10", punch.ReasonDoubleIn), Name: "Anna", OpenSince: clockAt("08:02")}, lcd2, []string{"Already in since", "08:02"}},
		{"double_in, open entry shown in the event's zone", device.Punch{Event: denied("09:10", punch.ReasonDoubleIn), Name: "Anna", OpenSince: clockAt("08:02").UTC()}, lcd2,
			[]string{"Already in since", "08:02"}},
		{"double_in without the entry", device.Punch{Event: denied("09:10", punch.ReasonDoubleIn), Name: "Anna"}, lcd2, []string{"Already clocked", "in"}},
		{"double_out", device.Punch{Event: denied("17:00", punch.ReasonDoubleOut), Name: "Anna"}, lcd2, []string{"Anna", "Not clocked in"}},
		{"contract ended", device.Punch{Event: denied("08:02", punch.ReasonOutsideContract), Name: "Anna"}, oled, []string{"Anna", "Contract ended", "", ""}},
		{"unknown card", device.Punch{Event: denied("08:02", punch.ReasonUnknownCredential)}, lcd2, []string{"Unknown card", ""}},
		{"unknown PIN", device.Punch{Event: pin}, lcd2, []string{"Unknown PIN", ""}},
		{"not allowed here", device.Punch{Event: denied("08:02", punch.ReasonReaderNotAllowed), Name: "Anna"}, lcd2, []string{"Anna", "Not allowed here"}},
		{"outside your hours", device.Punch{Event: denied("08:02", punch.ReasonOutsideWindow), Name: "Anna"}, lcd2, []string{"Outside your", "hours"}},
		{"outside your hours, 20x4", device.Punch{Event: denied("08:02", punch.ReasonOutsideWindow), Name: "Anna"}, lcd4, []string{"Anna", "Outside your hours", "", ""}},
		{"wrong PIN", device.Punch{Event: denied("08:02", punch.ReasonWrongPIN), Name: "Anna"}, lcd2, []string{"Anna", "Wrong PIN"}},
		{"reader suspended", device.Punch{Event: denied("08:02", punch.ReasonReaderSuspended), Name: "Anna"}, lcd2, []string{"Anna", "Reader suspended"}},
		{"too soon", device.Punch{Event: denied("08:03", punch.ReasonTooSoon), Name: "Anna"}, lcd4, []string{"Anna", "Too soon to clock", "out", ""}},
		{"too soon, 16x2", device.Punch{Event: denied("08:03", punch.ReasonTooSoon), Name: "Anna"}, lcd2, []string{"Too soon to", "clock out"}},
		{"storage full", device.Punch{Event: denied("08:02", punch.ReasonStorageFull), Name: "Anna"}, oled, []string{"Anna", "Storage full", "Tell staff", ""}},
		{"storage full, 16x2", device.Punch{Event: denied("08:02", punch.ReasonStorageFull), Name: "Anna"}, lcd2, []string{"Storage full", "Tell staff"}},
		{"store error", device.Punch{Event: denied("08:02", punch.ReasonStoreError), Name: "Anna"}, lcd2, []string{"Not saved", "Tell staff"}},
		{"locked out", device.Punch{Event: denied("08:02", punch.ReasonLockedOut)}, lcd2, []string{"PIN locked", "Try later"}},
		{"unknown reason", device.Punch{Event: denied("08:02", "something_new"), Name: "Anna"}, lcd2, []string{"Anna", "Not accepted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := device.PunchLines(tc.p, tc.size); !slices.Equal(got, tc.want) {
				t.Errorf("PunchLines on %dx%d\n got %q\nwant %q", tc.size.Cols, tc.size.Rows, got, tc.want)
			}
		})
	}
}

// TestPunchLinesAlwaysFit: every reason and outcome, on every size from
// 8x1 to 40x4, gives exactly Rows lines of at most Cols printable ASCII.
func TestPunchLinesAlwaysFit(t *testing.T) {
	reasons := []string{punch.ReasonUnknownCredential, punch.ReasonAmbiguousCredential, punch.ReasonLockedOut,
		punch.ReasonOutsideContract, punch.ReasonReaderSuspended, punch.ReasonReaderNotAllowed, punch.ReasonOutsideWindow,
		punch.ReasonWrongPIN, punch.ReasonUnknownJobCode, punch.ReasonDoubleIn, punch.ReasonDoubleOut, punch.ReasonTooSoon,
		punch.ReasonStorageFull, punch.ReasonStoreError, "future_reason"}
	var ps []device.Punch
	for _, name := range []string{"", "Anna", "Zoë Çelik 😀 Wolfeschlegelsteinhausenbergerdorff"} {
		for _, r := range reasons {
			ps = append(ps, device.Punch{Event: denied("08:02", r), Name: name, OpenSince: clockAt("07:00")})
		}
		ps = append(ps, device.Punch{Event: in("08:02"), Name: name}, device.Punch{Event: out("23:59"), Name: name, Shift: shift(99*time.Hour + 59*time.Minute)})
	}
	for cols := 8; cols <= 40; cols++ {
		for rows := 1; rows <= 4; rows++ {
			s := device.Size{Cols: cols, Rows: rows}
			for _, p := range ps {
				lines := device.PunchLines(p, s)
				if len(lines) != rows {
					t.Fatalf("%dx%d %q %s: %d lines", cols, rows, p.Name, p.Event.Reason, len(lines))
				}
				for _, l := range lines {
					if len(l) > cols || strings.ContainsFunc(l, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
						t.Fatalf("%dx%d %q %s: line %q", cols, rows, p.Name, p.Event.Reason, l)
					}
				}
				if lines[0] == "" {
					t.Fatalf("%dx%d %q %s: first line blank: %q", cols, rows, p.Name, p.Event.Reason, lines)
				}
			}
		}
	}
}

func TestIdleLines(t *testing.T) {
	now := clockAt("08:02").Add(59 * time.Second)
	for _, tc := range []struct {
		st   device.Status
		size device.Size
		want []string
	}{
		{device.Status{Online: true, ClockSet: true}, oled, []string{"Fri 4 Dec", "08:02", "Online", ""}},
		{device.Status{Online: false, ClockSet: true}, lcd2, []string{"08:02 Fri 4 Dec", "Offline"}},
		{device.Status{Online: true}, oled, []string{"Clock not set", "--:--", "Online", ""}},
		{device.Status{Online: true}, lcd2, []string{"--:--", "Online"}},
		{device.Status{Online: true, ClockSet: true}, device.Size{Cols: 16, Rows: 1}, []string{"08:02 Online"}},
	} {
		if got := device.IdleLines(now, tc.st, tc.size); !slices.Equal(got, tc.want) {
			t.Errorf("IdleLines(%+v, %v)\n got %q\nwant %q", tc.st, tc.size, got, tc.want)
		}
	}
}

// fakeScreen records what it is asked to show, and sends each draw on
// drawn. While gate is not nil, Show signals entered and waits on gate.
type fakeScreen struct {
	drawn   chan []string
	gate    chan struct{}
	entered chan struct{}
	mu      sync.Mutex
	err     error
}

func newFakeScreen() *fakeScreen { return &fakeScreen{drawn: make(chan []string, 100)} }

func (s *fakeScreen) Show(lines []string) error {
	if s.gate != nil {
		s.entered <- struct{}{}
		<-s.gate
	}
	s.drawn <- slices.Clone(lines)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// next is the next draw; the timeout only bounds a failing test.
func (s *fakeScreen) next(t *testing.T) []string {
	t.Helper()
	select {
	case l := <-s.drawn:
		return l
	case <-time.After(5 * time.Second):
		t.Fatal("no draw")
		return nil
	}
}

// testDisplay starts a Display on a manual clock whose wall time starts at
// start.
func testDisplay(t *testing.T, s device.Screen, start time.Time, o device.DisplayOptions) (*device.Display, *devicetest.Clock) {
	t.Helper()
	clk := devicetest.NewClock()
	o.Screen, o.Size, o.Clock, o.Location = s, oled, clk, ams
	o.Now = func() time.Time { return start.Add(clk.Elapsed()) }
	d, err := device.NewDisplay(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, clk
}

func TestDisplayIdlePunchAndBack(t *testing.T) {
	s := newFakeScreen()
	d, clk := testDisplay(t, s, clockAt("08:01").Add(30*time.Second), device.DisplayOptions{Hold: 4 * time.Second})
	want := func(what string, lines ...string) {
		t.Helper()
		if got := s.next(t); !slices.Equal(got, lines) {
			t.Fatalf("%s: drew %q, want %q", what, got, lines)
		}
	}
	want("start", "Clock not set", "--:--", "Offline", "")
	d.SetStatus(device.Status{Online: true, ClockSet: true})
	want("status", "Fri 4 Dec", "08:01", "Online", "")

	d.ShowPunch(device.Punch{Event: in("08:01"), Name: "Anna"})
	want("punch", "Good morning", "Anna", "IN 08:01", "")
	d.SetStatus(device.Status{Online: false, ClockSet: true}) // not drawn over the punch
	clk.Advance(4*time.Second - time.Nanosecond)
	d.ShowPunch(device.Punch{Event: denied("08:01", punch.ReasonDoubleIn), Name: "Anna", OpenSince: clockAt("08:01")})
	want("second punch, 1ns before the first's hold ends", "Anna", "Already in since", "08:01", "")
	clk.Advance(time.Second) // the first punch's hold ended: it does not cut the second
	clk.Advance(3 * time.Second)
	want("idle after the second's hold", "Fri 4 Dec", "08:01", "Offline", "")

	clk.Advance(30*time.Second - clk.Elapsed() - time.Nanosecond) // 1ns before 08:02:00
	if len(s.drawn) != 0 {
		t.Fatalf("drew %q before the minute", <-s.drawn)
	}
	clk.Advance(time.Nanosecond)
	want("minute tick", "Fri 4 Dec", "08:02", "Offline", "")
	for m := 3; m <= 62; m++ { // across the hour
		clk.Advance(time.Minute)
		want("minute tick", "Fri 4 Dec", fmt.Sprintf("%02d:%02d", 8+m/60, m%60), "Offline", "")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n := clk.Pending(); n != 0 {
		t.Errorf("%d timers left after Close", n)
	}
	d.ShowPunch(device.Punch{Event: in("09:05"), Name: "Anna"})
	d.SetStatus(device.Status{Online: true})
	select {
	case l := <-s.drawn:
		t.Errorf("drew %q after Close", l)
	default:
	}
}

// TestShowPunchNeverBlocks: with the screen stuck in a draw, ShowPunch
// returns, and once the screen is free only the latest punch is drawn.
func TestShowPunchNeverBlocks(t *testing.T) {
	s := newFakeScreen()
	s.gate, s.entered = make(chan struct{}), make(chan struct{}, 1)
	d, _ := testDisplay(t, s, clockAt("08:00"), device.DisplayOptions{})
	<-s.entered // drawing the idle screen
	done := make(chan struct{})
	go func() {
		for i := range 100 {
			d.ShowPunch(device.Punch{Event: in(fmt.Sprintf("08:%02d", i%60)), Name: fmt.Sprint("P", i)})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ShowPunch blocked on a busy screen")
	}
	close(s.gate)
	if got := s.next(t); got[1] != "--:--" {
		t.Fatalf("first draw %q, want the idle screen", got)
	}
	if got, want := s.next(t), []string{"Good morning", "P99", "IN 08:39", ""}; !slices.Equal(got, want) {
		t.Fatalf("drew %q, want only the latest punch %q", got, want)
	}
	d.Close()
	if len(s.drawn) != 0 {
		t.Errorf("%d more draws: the punches between were not coalesced", len(s.drawn))
	}
}

// TestDisplayLogsScreenErrors: a failing screen is logged once, and its
// recovery once.
func TestDisplayLogsScreenErrors(t *testing.T) {
	var buf syncBuffer
	s := newFakeScreen()
	s.err = errors.New("i2c: remote I/O error")
	d, clk := testDisplay(t, s, clockAt("08:00"), device.DisplayOptions{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	s.next(t)
	for range 3 {
		clk.Advance(time.Minute)
		s.next(t)
	}
	s.mu.Lock()
	s.err = nil
	s.mu.Unlock()
	clk.Advance(time.Minute)
	s.next(t)
	d.Close()
	log := buf.String()
	if strings.Count(log, "remote I/O error") != 1 || strings.Count(log, "display works again") != 1 {
		t.Errorf("log:\n%s", log)
	}
}

func TestNewDisplayRejects(t *testing.T) {
	for _, o := range []device.DisplayOptions{
		{Size: oled},
		{Screen: newFakeScreen(), Size: device.Size{Cols: 7, Rows: 2}},
		{Screen: newFakeScreen(), Size: device.Size{Cols: 16}},
		{Screen: newFakeScreen(), Size: oled, Hold: -time.Second},
	} {
		if d, err := device.NewDisplay(o); err == nil {
			d.Close()
			t.Errorf("NewDisplay(%+v) accepted", o)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestOpenScreenRejects(t *testing.T) {
	if _, err := device.OpenScreen("display", device.ScreenConfig{Driver: "st7735"}); err == nil || !strings.Contains(err.Error(), "display.driver") {
		t.Errorf("unknown driver: %v", err)
	}
	_, err := device.OpenScreen("display", device.ScreenConfig{Driver: "ssd1306", Bus: "/dev/i2c-99"})
	if !errors.Is(err, device.ErrBusNotFound) || !strings.Contains(err.Error(), `display.bus "/dev/i2c-99"`) {
		t.Errorf("no such bus: %v", err)
	}
}

// BenchmarkShowPunch is the cost a decision pays for the display: the
// texts and the hand-over to the drawing goroutine, never the drawing.
func BenchmarkShowPunch(b *testing.B) {
	s := &slowScreen{}
	d, err := device.NewDisplay(device.DisplayOptions{Screen: s, Size: oled, Clock: devicetest.NewClock()})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	p := device.Punch{Event: out("16:31"), Name: "Anna de Vries", Shift: shift(8*time.Hour + 29*time.Minute)}
	b.ReportAllocs()
	for b.Loop() {
		d.ShowPunch(p)
	}
}

// slowScreen takes a long time to draw, like an LCD on a slow bus.
type slowScreen struct{}

func (slowScreen) Show([]string) error { time.Sleep(50 * time.Millisecond); return nil }

// FuzzPunchLines: whatever the name, reason, direction and size, the
// lines fit the screen and are printable ASCII.
func FuzzPunchLines(f *testing.F) {
	f.Add("Anna", punch.Accepted, punch.In, "", int64(0), 16, 2)
	f.Add("Zoë Çelik", punch.Denied, "", punch.ReasonDoubleIn, int64(0), 20, 4)
	f.Add("\xff\x00", punch.Accepted, punch.Out, "", int64(36000), 8, 1)
	f.Fuzz(func(t *testing.T, name, decision, direction, reason string, dur int64, cols, rows int) {
		s := device.Size{Cols: 8 + abs(cols)%33, Rows: 1 + abs(rows)%4}
		p := device.Punch{Event: punch.Event{At: clockAt("08:02"), Decision: decision, Direction: direction, Reason: reason},
			Name: name, Shift: &punch.Shift{DurationS: dur}, OpenSince: clockAt("07:00")}
		lines := device.PunchLines(p, s)
		if len(lines) != s.Rows {
			t.Fatalf("%d lines on %v", len(lines), s)
		}
		for _, l := range lines {
			if len(l) > s.Cols || strings.ContainsFunc(l, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
				t.Fatalf("line %q on %v", l, s)
			}
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -(n + 1)
	}
	return n
}
