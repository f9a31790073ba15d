package clock

import (
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestAdjtimexSynced(t *testing.T) {
	tests := []struct {
		name   string
		state  int
		status int64
		want   bool
	}{
		{"TIME_OK, PLL", unix.TIME_OK, unix.STA_PLL, true},
		{"TIME_OK, no flags", unix.TIME_OK, 0, true},
		{"leap second pending", unix.TIME_INS, unix.STA_PLL | unix.STA_INS, true},
		{"unsynced (this build machine)", unix.TIME_ERROR, unix.STA_UNSYNC, false},
		{"TIME_ERROR without STA_UNSYNC (PPS lost)", unix.TIME_ERROR, unix.STA_PLL, false},
		{"STA_UNSYNC with another state", unix.TIME_OK, unix.STA_UNSYNC | unix.STA_PLL, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := adjtimexSynced(tt.state, tt.status); got != tt.want {
				t.Fatalf("adjtimexSynced(%d, %#x) = %v, want %v", tt.state, tt.status, got, tt.want)
			}
		})
	}
}

// The system's own sources on this machine: a sane stamp whatever the
// machine's sync state, and the sync state the kernel and timesyncd
// report (unsynced on the build machine, synced on a synced one).
func TestSystemSource(t *testing.T) {
	var before unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &before); err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Source() != SourceKernel {
		t.Fatalf("default source = %q, want kernel", c.Source())
	}
	s := c.Now()
	id, err := os.ReadFile(BootIDFile)
	if err != nil {
		t.Fatal(err)
	}
	if s.Boot == "" || s.Boot != strings.TrimSpace(string(id)) {
		t.Errorf("Boot = %q, want %q", s.Boot, strings.TrimSpace(string(id)))
	}
	// CLOCK_BOOTTIME is CLOCK_MONOTONIC plus time suspended.
	if s.Mono <= 0 || s.Mono < time.Duration(before.Nano()) {
		t.Errorf("Mono = %v, want > 0 and >= CLOCK_MONOTONIC read before (%v)", s.Mono, time.Duration(before.Nano()))
	}
	if d := time.Since(s.Wall); d < 0 || d > time.Minute {
		t.Errorf("Wall = %v, %v from time.Now", s.Wall, d)
	}
	if s.Wall != s.Wall.Round(0) {
		t.Error("Wall carries Go's monotonic reading")
	}
	if err := c.Err(); err != nil {
		t.Errorf("read-only adjtimex failed: %v", err)
	}
	kernel, err := kernelSynced()
	if err != nil {
		t.Fatal(err)
	}
	want := kernel || fileExists(TimesyncFile)
	if s.Synced != want {
		t.Errorf("Synced = %v; kernel says %v, %s exists: %v", s.Synced, kernel, TimesyncFile, fileExists(TimesyncFile))
	}
	t.Logf("this machine: %+v (kernel synced %v)", s, kernel)
	next := c.Now()
	if next.Mono < s.Mono || next.Boot != s.Boot {
		t.Errorf("second stamp %+v after %+v", next, s)
	}
	if d, ok := Elapsed(s, next); !ok || d < 0 {
		t.Errorf("Elapsed between two stamps = %v, %v", d, ok)
	}
}
