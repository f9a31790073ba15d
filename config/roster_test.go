package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/config"
)

const remoteMinimal = "device_id = \"door-1\"\ntimezone = \"Europe/Amsterdam\"\n"

func TestRemoteDefaults(t *testing.T) {
	c, err := config.Parse("t.toml", []byte(remoteMinimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Roster.Refresh != "04:30" || c.Roster.RefreshHour != 4 || c.Roster.RefreshMinute != 30 {
		t.Errorf("roster = %+v, want refresh 04:30", c.Roster)
	}
	if c.Commands.MaxAge.Duration != 5*time.Minute {
		t.Errorf("commands.max_age = %v, want 5m", c.Commands.MaxAge)
	}
	c, err = config.Parse("t.toml", []byte(remoteMinimal+"[roster]\nrefresh = \"\"\n[commands]\nmax_age = \"30s\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Roster.NextRosterRefresh(time.Now(), c.Location); ok || c.Commands.MaxAge.Duration != 30*time.Second {
		t.Errorf("empty refresh still schedules, or max_age %v not 30s", c.Commands.MaxAge)
	}
}

func TestRemoteInvalid(t *testing.T) {
	for _, tc := range []struct{ toml, key string }{
		{"[roster]\nrefresh = \"4h30\"\n", "roster.refresh"},
		{"[roster]\nrefresh = \"25:00\"\n", "roster.refresh"},
		{"[commands]\nmax_age = \"0s\"\n", "commands.max_age"},
		{"[commands]\nmax_age = \"2d\"\n", "commands.max_age"},
	} {
		_, err := config.Parse("t.toml", []byte(remoteMinimal+tc.toml))
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), `t.toml: key "`+tc.key+`"`) {
			t.Errorf("%q: err = %v, want one naming %s", tc.toml, err, tc.key)
		}
	}
}

func TestNextRosterRefresh(t *testing.T) {
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	r := config.Roster{Refresh: "04:30", RefreshHour: 4, RefreshMinute: 30}
	for _, tc := range []struct{ now, want string }{
		{"2026-12-04T03:00:00+01:00", "2026-12-04T04:30:00+01:00"},
		{"2026-12-04T04:30:00+01:00", "2026-12-05T04:30:00+01:00"}, // strictly after
		{"2026-12-04T22:00:00+01:00", "2026-12-05T04:30:00+01:00"},
		{"2026-03-28T05:00:00+01:00", "2026-03-29T04:30:00+02:00"}, // across the spring DST night
		{"2026-10-24T05:00:00+02:00", "2026-10-25T04:30:00+01:00"}, // and the autumn one
	} {
		now, _ := time.Parse(time.RFC3339, tc.now)
		got, ok := r.NextRosterRefresh(now, ams)
		if !ok || got.Format(time.RFC3339) != tc.want {
			t.Errorf("after %s: %v %v, want %s", tc.now, got.Format(time.RFC3339), ok, tc.want)
		}
	}
}
