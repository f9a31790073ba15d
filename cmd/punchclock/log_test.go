package main

import (
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/store"
)

func TestParseBound(t *testing.T) {
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   string
		end  bool
		want time.Time
	}{
		{"", false, time.Time{}},
		{"2026-03-02", false, time.Date(2026, 3, 2, 0, 0, 0, 0, ams)},
		// -to names the last day included: the bound is the next midnight.
		{"2026-03-02", true, time.Date(2026, 3, 3, 0, 0, 0, 0, ams)},
		{"2026-03-02T08:00:00Z", true, time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)},
	} {
		got, err := parseBound(tc.in, ams, tc.end)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseBound(%q, end=%v) = %v, %v; want %v", tc.in, tc.end, got, err, tc.want)
		}
	}
	if _, err := parseBound("02-03-2026", ams, false); err == nil || !strings.Contains(err.Error(), `"02-03-2026"`) {
		t.Errorf("bad day: err = %v", err)
	}
}

func TestFormatLog(t *testing.T) {
	ams, _ := time.LoadLocation("Europe/Amsterdam")
	at := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	line := formatLog(store.LogEntry{Event: &punch.Event{ID: "d-x-e1", At: at, Reader: "front", CredentialType: "card",
		CredentialValue: "0B0BADCAFE", Decision: punch.Denied, Reason: punch.ReasonUnknownCredential}}, ams)
	for _, want := range []string{"2026-03-02T09:00:00+01:00", "front", "?card 0B0BADCAFE", "denied (unknown_credential)", "d-x-e1"} {
		if !strings.Contains(line, want) {
			t.Errorf("event line %q lacks %q", line, want)
		}
	}
	line = formatLog(store.LogEntry{Shift: &punch.Shift{ID: "d-x-s1", EmployeeID: "E1", PayrollNo: "1001", Department: "Kassa",
		In: at, Out: at.Add(8*time.Hour + 30*time.Minute), OutReader: "back", DurationS: 8*3600 + 1800}}, ams)
	for _, want := range []string{"2026-03-02T17:30:00+01:00", "shift", "back", "payroll 1001", "Kassa", "in 2026-03-02T09:00:00+01:00", "8h30m0s", "d-x-s1"} {
		if !strings.Contains(line, want) {
			t.Errorf("shift line %q lacks %q", line, want)
		}
	}
}
