package config

import "time"

// Roster configures how the terminal asks for a fresh roster.
type Roster struct {
	// Refresh is the local time of day ("HH:MM", in timezone) at which
	// the agent publishes a roster request every day; empty never asks
	// daily (it still asks at connect without a roster, and on sync).
	Refresh string `toml:"refresh"`
	// RefreshHour and RefreshMinute are Refresh parsed by Validate.
	RefreshHour   int `toml:"-"`
	RefreshMinute int `toml:"-"`
}

// Commands configures the remote commands received over MQTT.
type Commands struct {
	// MaxAge refuses a command whose "at" is older than it as stale, so
	// that a queued message arriving hours late opens no door.
	MaxAge Duration `toml:"max_age"`
}

// Defaults of [roster] and [commands].
const (
	DefaultRosterRefresh = "04:30"
	DefaultCommandMaxAge = 5 * time.Minute
	// MaxCommandMaxAge bounds commands.max_age: executed ids are kept 7
	// days, so an older command could no longer be recognised as a
	// repeat.
	MaxCommandMaxAge = 24 * time.Hour
)

// validateRemote checks [roster] and [commands] and parses
// roster.refresh.
func (c *Config) validateRemote(bad func(key, format string, args ...any)) {
	if s := c.Roster.Refresh; s != "" {
		t, err := time.Parse("15:04", s)
		if err != nil {
			bad("roster.refresh", "%q is not a local time of day like \"04:30\" (or empty: no daily request)", s)
		} else {
			c.Roster.RefreshHour, c.Roster.RefreshMinute = t.Hour(), t.Minute()
		}
	}
	if d := c.Commands.MaxAge.Duration; d < time.Second || d > MaxCommandMaxAge {
		bad("commands.max_age", "%v must be between 1s and %v", d, MaxCommandMaxAge)
	}
}

// NextRosterRefresh is the first daily refresh time strictly after now,
// in loc; ok is false when roster.refresh is empty. A refresh time that a
// DST change skips on some day falls on the time normalised by time.Date.
func (r Roster) NextRosterRefresh(now time.Time, loc *time.Location) (next time.Time, ok bool) {
	if r.Refresh == "" {
		return time.Time{}, false
	}
	l := now.In(loc)
	next = time.Date(l.Year(), l.Month(), l.Day(), r.RefreshHour, r.RefreshMinute, 0, 0, loc)
	for !next.After(now) {
		l = l.AddDate(0, 0, 1)
		next = time.Date(l.Year(), l.Month(), l.Day(), r.RefreshHour, r.RefreshMinute, 0, 0, loc)
	}
	return next, true
}
