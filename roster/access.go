package roster

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// AccessGroup says at which readers and when its members may punch. An
// employee names one in access_group; an employee without one may punch
// at every reader at any time.
type AccessGroup struct {
	Name string `json:"name"`
	// Readers are reader names as the agent's config spells them; none
	// means every reader.
	Readers []string `json:"readers,omitempty"`
	// Windows are the times the group may punch; none means at any time.
	Windows []Window `json:"windows,omitempty"`

	// spans are Windows compiled by Validate (or NewIndex) for InWindow.
	spans []span
}

// Window is a weekly time window: on the days listed, from From
// (inclusive) to To (exclusive), on the wall clock of the site's zone. A
// window whose From is later than its To crosses midnight and belongs to
// the day it starts on: fri 22:00–06:00 is Friday 22:00 to Saturday
// 06:00.
type Window struct {
	Days string `json:"days"` // "mon-fri", "sat,sun", "fri-mon", "mon-wed,fri"
	From string `json:"from"` // HH:MM, 00:00 to 23:59
	To   string `json:"to"`   // HH:MM, 00:00 to 24:00
}

// span is a compiled window, or the part of one on one side of midnight:
// on the weekdays of the mask (bit time.Weekday), minutes of the day in
// [from, to).
type span struct {
	days     uint8
	from, to uint16
}

const minutesPerDay = 24 * 60

// AllowsReader reports whether the group lets its members punch at the
// reader with this name (compared as given: case matters). A group
// without readers allows every reader, and so does a nil group (no group
// at all). It allocates nothing.
func (g *AccessGroup) AllowsReader(name string) bool {
	if g == nil || len(g.Readers) == 0 {
		return true
	}
	for _, r := range g.Readers {
		if r == name {
			return true
		}
	}
	return false
}

// InWindow reports whether t falls in one of the group's windows. t must
// be in the site's location already: only its wall clock counts
// (t.Weekday, t.Hour, t.Minute; seconds are ignored). So on the night
// clocks go forward the skipped hour never matches (in Europe/Amsterdam
// on 2026-03-29 a window 02:00–02:30 is not open at all, and 01:00–03:00
// is open one real hour), and on the night they go back the repeated
// hour matches twice (02:00–03:00 on 2026-10-25 is open two real hours).
// A group without windows, and a nil group, allow any time. The windows
// are judged as Validate or NewIndex compiled them: a group taken from a
// roster that went through neither is outside every window. It allocates
// nothing.
func (g *AccessGroup) InWindow(t time.Time) bool {
	if g == nil || len(g.Windows) == 0 {
		return true
	}
	wd, m := wallClock(t)
	day := uint8(1) << wd
	for _, s := range g.spans {
		if s.days&day != 0 && m >= s.from && m < s.to {
			return true
		}
	}
	return false
}

// wallClock returns t's weekday and minute of the day on its own
// location's wall clock: t.Weekday() and t.Hour()*60+t.Minute(), with
// one look-up of the zone's offset instead of one per call.
func wallClock(t time.Time) (time.Weekday, uint16) {
	_, off := t.Zone()
	sec := t.Unix() + int64(off)
	days, rem := sec/86400, sec%86400
	if rem < 0 {
		days, rem = days-1, rem+86400
	}
	wd := (days + 4) % 7 // 1970-01-01 was a Thursday
	if wd < 0 {
		wd += 7
	}
	return time.Weekday(wd), uint16(rem / 60)
}

// compile checks the group's windows and keeps their compiled form. A
// window that crosses midnight becomes two spans: the evening on its own
// days, and the morning on the day after each.
func (g *AccessGroup) compile() error {
	g.spans = nil
	if len(g.Windows) == 0 {
		return nil
	}
	spans := make([]span, 0, 2*len(g.Windows))
	for i, w := range g.Windows {
		days, err := ParseDays(w.Days)
		if err != nil {
			return fmt.Errorf("windows[%d].days: %w", i, err)
		}
		from, err := parseClock(w.From, false)
		if err != nil {
			return fmt.Errorf("windows[%d].from: %w", i, err)
		}
		to, err := parseClock(w.To, true)
		if err != nil {
			return fmt.Errorf("windows[%d].to: %w", i, err)
		}
		switch {
		case from == to:
			return fmt.Errorf("windows[%d]: from and to are both %s: an empty window (write 00:00 to 24:00 for a whole day)", i, w.From)
		case from < to:
			spans = append(spans, span{days, from, to})
		default: // across midnight
			spans = append(spans, span{days, from, minutesPerDay})
			if to > 0 {
				spans = append(spans, span{nextDays(days), 0, to})
			}
		}
	}
	g.spans = spans
	return nil
}

// nextDays is the mask of the days after those of mask (Saturday's next
// is Sunday).
func nextDays(mask uint8) uint8 {
	return (mask<<1 | mask>>6) & 0x7F
}

var dayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseDays parses the days of a window into a mask with bit
// time.Weekday set for each day: a comma list of days (mon … sun, in any
// case) and ranges of them (mon-fri; fri-mon wraps over the weekend into
// fri, sat, sun and mon). Spaces around items are ignored.
func ParseDays(s string) (uint8, error) {
	if strings.TrimSpace(s) == "" {
		return 0, errors.New(`days is empty: list days like "mon-fri" or "sat,sun"`)
	}
	var mask uint8
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return 0, fmt.Errorf("%q has an empty item between commas", s)
		}
		a, b, isRange := strings.Cut(item, "-")
		first, ok := dayNumber(a)
		if !ok {
			return 0, fmt.Errorf("%q: %q is not a day (mon, tue, wed, thu, fri, sat, sun)", s, strings.TrimSpace(a))
		}
		if !isRange {
			mask |= 1 << first
			continue
		}
		last, ok := dayNumber(b)
		if !ok {
			return 0, fmt.Errorf("%q: %q is not a day (mon, tue, wed, thu, fri, sat, sun)", s, strings.TrimSpace(b))
		}
		if first == last {
			return 0, fmt.Errorf("%q: the range %q starts and ends on one day: write the day alone, or mon-sun for every day", s, item)
		}
		for d := first; ; d = (d + 1) % 7 {
			mask |= 1 << d
			if d == last {
				break
			}
		}
	}
	return mask, nil
}

func dayNumber(s string) (int, bool) {
	s = strings.TrimSpace(s)
	for i, n := range dayNames {
		if strings.EqualFold(s, n) {
			return i, true
		}
	}
	return 0, false
}

// parseClock parses HH:MM into minutes since midnight. 24:00 (the end of
// the day) is allowed only where end is true.
func parseClock(s string, end bool) (uint16, error) {
	limit := "00:00 to 23:59"
	if end {
		limit = "00:00 to 24:00"
	}
	bad := func() error { return fmt.Errorf("%q is not a time HH:MM from %s", s, limit) }
	if len(s) != 5 || s[2] != ':' || !isDigits(s[:2]) || !isDigits(s[3:]) {
		return 0, bad()
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	switch {
	case end && h == 24 && m == 0:
		return minutesPerDay, nil
	case h > 23 || m > 59:
		return 0, bad()
	}
	return uint16(h*60 + m), nil
}

// validateGroups checks the access groups and compiles their windows.
// It returns the groups by name.
func (r *Roster) validateGroups() (map[string]bool, error) {
	names := make(map[string]bool, len(r.AccessGroups))
	for i := range r.AccessGroups {
		g := &r.AccessGroups[i]
		if g.Name == "" {
			return nil, fmt.Errorf("%w: access_groups[%d].name is required", ErrInvalid, i)
		}
		if names[g.Name] {
			return nil, fmt.Errorf("%w: access_groups[%d]: the name %q is also another group's", ErrInvalid, i, g.Name)
		}
		names[g.Name] = true
		for j, rd := range g.Readers {
			if rd == "" {
				return nil, fmt.Errorf("%w: access_groups[%d] (name %q).readers[%d] is empty: name a reader, or leave readers out for every reader", ErrInvalid, i, g.Name, j)
			}
		}
		if err := g.compile(); err != nil {
			return nil, fmt.Errorf("%w: access_groups[%d] (name %q).%w", ErrInvalid, i, g.Name, err)
		}
	}
	return names, nil
}
