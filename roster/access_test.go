package roster

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func amsterdam(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// mask builds a day mask from day names.
func mask(days ...time.Weekday) uint8 {
	var m uint8
	for _, d := range days {
		m |= 1 << d
	}
	return m
}

func TestParseDays(t *testing.T) {
	const (
		sun = time.Sunday
		mon = time.Monday
		tue = time.Tuesday
		wed = time.Wednesday
		thu = time.Thursday
		fri = time.Friday
		sat = time.Saturday
	)
	for _, tc := range []struct {
		in   string
		want uint8
	}{
		{"mon", mask(mon)},
		{"sun", mask(sun)},
		{"MON", mask(mon)},
		{"Sat", mask(sat)},
		{"mon-fri", mask(mon, tue, wed, thu, fri)},
		{"fri-mon", mask(fri, sat, sun, mon)}, // wraps over the weekend
		{"sat-sun", mask(sat, sun)},
		{"sun-sat", 0x7F},
		{"mon-sun", 0x7F},
		{"tue-mon", 0x7F},
		{"sat,sun", mask(sat, sun)},
		{"mon-wed,fri", mask(mon, tue, wed, fri)},
		{" sat , sun ", mask(sat, sun)},
		{"mon - wed", mask(mon, tue, wed)},
		{"mon-fri,wed", mask(mon, tue, wed, thu, fri)}, // overlaps are harmless
		{"thu,thu", mask(thu)},
	} {
		got, err := ParseDays(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseDays(%q) = %07b, %v; want %07b", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"", "days is empty"},
		{"  ", "days is empty"},
		{"mon,,tue", `"mon,,tue" has an empty item between commas`},
		{"mon,", `"mon," has an empty item`},
		{",mon", `",mon" has an empty item`},
		{"funday", `"funday": "funday" is not a day (mon, tue, wed, thu, fri, sat, sun)`},
		{"monday", `"monday" is not a day`},
		{"mon-", `"mon-": "" is not a day`},
		{"-fri", `"-fri": "" is not a day`},
		{"mon-xyz", `"mon-xyz": "xyz" is not a day`},
		{"mon-wed-fri", `"wed-fri" is not a day`},
		{"mon-mon", `the range "mon-mon" starts and ends on one day`},
		{"1-5", `"1" is not a day`},
	} {
		_, err := ParseDays(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseDays(%q) error = %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
}

// groupDoc is a roster with one employee in a group of the given
// windows (JSON objects).
func groupDoc(windows ...string) string {
	return `{"version":1,"access_groups":[{"name":"g","windows":[` + strings.Join(windows, ",") +
		`]}],"employees":[{"id":"a","access_group":"g"}]}`
}

func win(days, from, to string) string {
	return fmt.Sprintf(`{"days":%q,"from":%q,"to":%q}`, days, from, to)
}

func TestAccessGroupsRejected(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"no name", `{"version":1,"access_groups":[{"readers":["front"]}],"employees":[{"id":"a"}]}`,
			"access_groups[0].name is required"},
		{"duplicate name", `{"version":1,"access_groups":[{"name":"g"},{"name":"g"}],"employees":[{"id":"a"}]}`,
			`access_groups[1]: the name "g" is also another group's`},
		{"empty reader", `{"version":1,"access_groups":[{"name":"g","readers":["front",""]}],"employees":[{"id":"a"}]}`,
			`access_groups[0] (name "g").readers[1] is empty`},
		{"unknown group", `{"version":1,"access_groups":[{"name":"staff"}],"employees":[{"id":"a"},{"id":"E7","access_group":"night"}]}`,
			`employees[1] (id "E7").access_group: "night" is not the name of one of access_groups`},
		{"group without groups", `{"version":1,"employees":[{"id":"E7","access_group":"staff"}]}`,
			`employees[0] (id "E7").access_group: "staff" is not the name`},
		{"group names are exact", `{"version":1,"access_groups":[{"name":"staff"}],"employees":[{"id":"E7","access_group":"Staff"}]}`,
			`"Staff" is not the name`},
		{"days empty", groupDoc(win("", "06:00", "22:00")), `access_groups[0] (name "g").windows[0].days: days is empty`},
		{"days missing", groupDoc(`{"from":"06:00","to":"22:00"}`), `windows[0].days: days is empty`},
		{"bad day", groupDoc(win("mon-fri", "06:00", "22:00"), win("weekend", "08:00", "12:00")),
			`access_groups[0] (name "g").windows[1].days: "weekend": "weekend" is not a day`},
		{"hour without zero", groupDoc(win("mon", "6:00", "22:00")), `windows[0].from: "6:00" is not a time HH:MM from 00:00 to 23:59`},
		{"from 24:00", groupDoc(win("mon", "24:00", "06:00")), `windows[0].from: "24:00" is not a time HH:MM from 00:00 to 23:59`},
		{"to 24:01", groupDoc(win("mon", "06:00", "24:01")), `windows[0].to: "24:01" is not a time HH:MM from 00:00 to 24:00`},
		{"to 25:00", groupDoc(win("mon", "06:00", "25:00")), `windows[0].to: "25:00" is not a time`},
		{"minute 60", groupDoc(win("mon", "06:60", "22:00")), `windows[0].from: "06:60" is not a time`},
		{"seconds", groupDoc(win("mon", "06:00:00", "22:00")), `windows[0].from: "06:00:00" is not a time`},
		{"am/pm", groupDoc(win("mon", "06:00", "10pm")), `windows[0].to: "10pm" is not a time`},
		{"to missing", groupDoc(`{"days":"mon","from":"06:00"}`), `windows[0].to: "" is not a time`},
		{"from equals to", groupDoc(win("mon", "06:00", "06:00")), `windows[0]: from and to are both 06:00: an empty window`},
		{"midnight to midnight", groupDoc(win("mon", "00:00", "00:00")), `from and to are both 00:00`},
		{"unknown window field", groupDoc(`{"days":"mon","from":"06:00","to":"07:00","zone":"UTC"}`), `unknown field "zone"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}

// group parses a roster with one group of the given windows and returns
// that group, compiled.
func group(t *testing.T, windows ...string) *AccessGroup {
	t.Helper()
	r, err := Parse([]byte(groupDoc(windows...)))
	if err != nil {
		t.Fatal(err)
	}
	return &r.AccessGroups[0]
}

func TestInWindow(t *testing.T) {
	ams := amsterdam(t)
	// 2026-03-02 is a Monday; the week runs to Sunday 2026-03-08.
	at := func(day, h, m int) time.Time { return time.Date(2026, 3, day, h, m, 0, 0, ams) }
	const (
		mon, tue, wed, thu, fri, sat, sun = 2, 3, 4, 5, 6, 7, 8
		prevSun                           = 1
	)
	office := []string{win("mon-fri", "06:00", "22:00"), win("sat", "08:00", "12:30")}
	night := []string{win("fri", "22:00", "06:00")}
	weekendNights := []string{win("fri-mon", "22:00", "06:00")}
	for _, tc := range []struct {
		name    string
		windows []string
		at      time.Time
		want    bool
	}{
		{"office: from is inclusive", office, at(mon, 6, 0), true},
		{"office: a minute before", office, at(mon, 5, 59), false},
		{"office: the last minute", office, time.Date(2026, 3, 2, 21, 59, 59, 999, ams), true},
		{"office: to is exclusive", office, at(mon, 22, 0), false},
		{"office: friday", office, at(fri, 12, 0), true},
		{"office: saturday's own window", office, at(sat, 12, 29), true},
		{"office: saturday's end", office, at(sat, 12, 30), false},
		{"office: saturday morning", office, at(sat, 7, 0), false},
		{"office: sunday", office, at(sun, 12, 0), false},
		// fri 22:00-06:00 belongs to Friday: Fri 22:00 to Sat 06:00.
		{"night: friday evening", night, at(fri, 22, 0), true},
		{"night: friday before", night, at(fri, 21, 59), false},
		{"night: saturday morning", night, at(sat, 5, 59), true},
		{"night: saturday end", night, at(sat, 6, 0), false},
		{"night: friday morning is thursday's night", night, at(fri, 3, 0), false},
		{"night: saturday evening", night, at(sat, 23, 0), false},
		{"night: midnight itself", night, at(sat, 0, 0), true},
		// fri-mon: the nights starting Fri, Sat, Sun and Mon.
		{"wrap: thursday night", weekendNights, at(thu, 23, 0), false},
		{"wrap: friday morning (thursday's night)", weekendNights, at(fri, 5, 0), false},
		{"wrap: friday night", weekendNights, at(fri, 23, 0), true},
		{"wrap: saturday morning", weekendNights, at(sat, 5, 0), true},
		{"wrap: saturday midday", weekendNights, at(sat, 12, 0), false},
		{"wrap: sunday night", weekendNights, at(sun, 22, 0), true},
		{"wrap: monday morning (sunday's night)", weekendNights, at(mon+7, 5, 59), true},
		{"wrap: monday night", weekendNights, at(mon, 23, 30), true},
		{"wrap: tuesday morning (monday's night)", weekendNights, at(tue, 5, 59), true},
		{"wrap: tuesday 06:00", weekendNights, at(tue, 6, 0), false},
		{"wrap: tuesday night", weekendNights, at(tue, 23, 0), false},
		{"wrap: wednesday morning", weekendNights, at(wed, 1, 0), false},
		{"wrap: the week before's sunday", weekendNights, at(prevSun, 23, 0), true},
		// Until midnight, written both ways.
		{"to 24:00", []string{win("sun", "20:00", "24:00")}, at(sun, 23, 59), true},
		{"to 24:00, next day", []string{win("sun", "20:00", "24:00")}, at(mon+7, 0, 0), false},
		{"to 00:00", []string{win("sun", "20:00", "00:00")}, at(sun, 23, 59), true},
		{"to 00:00, next day", []string{win("sun", "20:00", "00:00")}, at(mon+7, 0, 0), false},
		{"whole day", []string{win("wed", "00:00", "24:00")}, at(wed, 0, 0), true},
		{"whole day, next", []string{win("wed", "00:00", "24:00")}, at(thu, 0, 0), false},
		// Saturday's night ends on Sunday: the mask wraps from bit 6 to bit 0.
		{"saturday night into sunday", []string{win("sat", "23:00", "01:00")}, at(sun, 0, 30), true},
		{"saturday night, not monday", []string{win("sat", "23:00", "01:00")}, at(mon+7, 0, 30), false},
		// The zone is t's own: the same instant in UTC is another wall time.
		{"wall clock of t's zone", office, at(mon, 6, 30).UTC(), false},
		{"no windows: any time", nil, at(sun, 3, 0), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := group(t, tc.windows...)
			if got := g.InWindow(tc.at); got != tc.want {
				t.Errorf("InWindow(%s) = %v, want %v", tc.at.Format("Mon 2006-01-02 15:04 MST"), got, tc.want)
			}
		})
	}
}

// Both DST nights of 2026 in Europe/Amsterdam, walked in real time: the
// windows compare wall clocks.
func TestInWindowDST(t *testing.T) {
	ams := amsterdam(t)
	for _, tc := range []struct {
		name    string
		windows []string
		start   time.Time // walked for hours, a minute at a time
		hours   int
		// open is the number of real minutes the group is in a window.
		open int
	}{
		// 2026-03-29 02:00 CET becomes 03:00 CEST: 02:00-02:59 never
		// happens on the wall clock.
		{"spring: the skipped hour never opens", []string{win("sun", "02:00", "02:30")},
			time.Date(2026, 3, 29, 0, 0, 0, 0, ams), 6, 0},
		{"spring: 01:00-03:00 is one real hour", []string{win("sun", "01:00", "03:00")},
			time.Date(2026, 3, 29, 0, 0, 0, 0, ams), 6, 60},
		{"spring: saturday's night 22:00-06:00 is seven real hours", []string{win("sat", "22:00", "06:00")},
			time.Date(2026, 3, 28, 12, 0, 0, 0, ams), 24, 7 * 60},
		// 2026-10-25 03:00 CEST becomes 02:00 CET: 02:00-02:59 happens
		// twice.
		{"autumn: the repeated hour opens twice", []string{win("sun", "02:00", "03:00")},
			time.Date(2026, 10, 25, 0, 0, 0, 0, ams), 6, 120},
		{"autumn: 02:30-02:45 twice", []string{win("sun", "02:30", "02:45")},
			time.Date(2026, 10, 25, 0, 0, 0, 0, ams), 6, 30},
		{"autumn: saturday's night 22:00-06:00 is nine real hours", []string{win("sat", "22:00", "06:00")},
			time.Date(2026, 10, 24, 12, 0, 0, 0, ams), 24, 9 * 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := group(t, tc.windows...)
			open := 0
			for m := range tc.hours * 60 {
				if g.InWindow(tc.start.Add(time.Duration(m) * time.Minute)) {
					open++
				}
			}
			if open != tc.open {
				t.Errorf("open %d real minutes, want %d", open, tc.open)
			}
		})
	}
	// The instants either side of each change.
	g := group(t, win("sun", "01:00", "03:00"))
	spring := time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC) // 02:00 CET = 03:00 CEST
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{spring.Add(-time.Second).In(ams), true}, // 01:59:59 CET
		{spring.In(ams), false},                  // 03:00 CEST
	} {
		if got := g.InWindow(tc.at); got != tc.want {
			t.Errorf("InWindow(%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
	g = group(t, win("sun", "02:00", "03:00"))
	autumn := time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC) // 03:00 CEST = 02:00 CET
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{autumn.Add(-61 * time.Minute).In(ams), false}, // 01:59 CEST
		{autumn.Add(-time.Hour).In(ams), true},         // 02:00 CEST
		{autumn.Add(-time.Second).In(ams), true},       // 02:59:59 CEST
		{autumn.In(ams), true},                         // 02:00 CET
		{autumn.Add(time.Hour).In(ams), false},         // 03:00 CET
	} {
		if got := g.InWindow(tc.at); got != tc.want {
			t.Errorf("InWindow(%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
}

func TestAllowsReader(t *testing.T) {
	r, err := Parse([]byte(`{"version":1,"access_groups":[{"name":"staff","readers":["front","back"]},{"name":"all","readers":[]},{"name":"none"}],"employees":[{"id":"a"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	staff, all, none := &r.AccessGroups[0], &r.AccessGroups[1], &r.AccessGroups[2]
	var nilGroup *AccessGroup
	for _, tc := range []struct {
		g      *AccessGroup
		reader string
		want   bool
	}{
		{staff, "front", true},
		{staff, "back", true},
		{staff, "gate", false},
		{staff, "Front", false}, // names as given
		{staff, "", false},
		{all, "gate", true},
		{none, "gate", true},
		{nilGroup, "gate", true},
	} {
		if got := tc.g.AllowsReader(tc.reader); got != tc.want {
			t.Errorf("%+v.AllowsReader(%q) = %v, want %v", tc.g, tc.reader, got, tc.want)
		}
	}
	if !nilGroup.InWindow(time.Date(2026, 3, 8, 3, 0, 0, 0, time.UTC)) {
		t.Error("a nil group is outside its windows")
	}
}

// A group decoded without Validate or NewIndex has no compiled windows:
// it is closed, never open at all times.
func TestInWindowUncompiled(t *testing.T) {
	g := &AccessGroup{Name: "g", Windows: []Window{{Days: "mon-sun", From: "00:00", To: "24:00"}}}
	if g.InWindow(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)) {
		t.Error("an uncompiled group is open")
	}
}

func TestAccessNoAllocs(t *testing.T) {
	ams := amsterdam(t)
	g := group(t, win("mon-fri", "06:00", "22:00"), win("fri-mon", "22:00", "06:00"))
	g.Readers = []string{"front", "back", "gate"}
	at := time.Date(2026, 3, 7, 3, 0, 0, 0, ams)
	e := &Employee{JobCodes: []string{"1001", "2002", "3003"}}
	n := testing.AllocsPerRun(100, func() {
		if !g.InWindow(at) || !g.AllowsReader("gate") || !e.HasJobCode("3003") {
			t.Fatal("wrong answer")
		}
	})
	if n != 0 {
		t.Errorf("InWindow, AllowsReader and HasJobCode allocate %v times", n)
	}
}

func BenchmarkInWindow(b *testing.B) {
	ams := amsterdam(b)
	r, err := Parse([]byte(groupDoc(win("mon-fri", "06:00", "22:00"), win("sat", "08:00", "12:00"), win("fri-mon", "22:00", "06:00"))))
	if err != nil {
		b.Fatal(err)
	}
	g := &r.AccessGroups[0]
	// Sunday noon: outside every window, so every span is tried.
	at := time.Date(2026, 3, 8, 12, 0, 0, 0, ams)
	b.ReportAllocs()
	for b.Loop() {
		if g.InWindow(at) {
			b.Fatal("in window")
		}
	}
}

func BenchmarkAllowsReader(b *testing.B) {
	g := &AccessGroup{Name: "g", Readers: []string{"front", "back", "side", "gate"}}
	b.ReportAllocs()
	for b.Loop() {
		if g.AllowsReader("loading-dock") {
			b.Fatal("allowed")
		}
	}
}

// wallClock is t.Weekday() and t.Hour()*60+t.Minute() in one zone
// look-up: compared with them across zones with odd offsets, both DST
// changes, a clock at 1970 and instants before it.
func TestWallClock(t *testing.T) {
	var locs []*time.Location
	for _, name := range []string{"Europe/Amsterdam", "America/St_Johns", "Asia/Kathmandu", "Pacific/Chatham", "America/Los_Angeles"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, loc)
	}
	locs = append(locs, time.UTC, time.FixedZone("LMT", 19*60+32), time.FixedZone("west", -(9*3600+59)))
	starts := []time.Time{
		time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC),
		time.Unix(0, 0).Add(-72 * time.Hour), // before 1970: negative Unix seconds
		time.Date(1900, 2, 27, 0, 0, 0, 0, time.UTC),
		time.Date(2400, 2, 27, 0, 0, 0, 0, time.UTC),
	}
	for _, loc := range locs {
		for _, start := range starts {
			// Two weeks in steps of 7 min 13.5 s: every minute of the day,
			// and seconds and nanoseconds that are not zero.
			for i := range 2800 {
				at := start.Add(time.Duration(i) * (7*time.Minute + 13500*time.Millisecond)).In(loc)
				wd, m := wallClock(at)
				if wd != at.Weekday() || int(m) != at.Hour()*60+at.Minute() {
					t.Fatalf("wallClock(%v) = %v %d, want %v %d", at, wd, m, at.Weekday(), at.Hour()*60+at.Minute())
				}
			}
		}
	}
}
