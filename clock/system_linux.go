package clock

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// bootTime reads CLOCK_BOOTTIME. It is a system call (x/sys does not go
// through the vDSO): a few hundred nanoseconds, measured in
// BenchmarkNow.
func bootTime() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, fmt.Errorf("clock: reading CLOCK_BOOTTIME: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}

// systemMono is bootTime for Options.Mono. New has read the clock once,
// and clock_gettime fails only on a bad clock id or address, so an
// error cannot happen here; were it to, zero means "no reading" and the
// stamp carries no boot.
func systemMono() time.Duration {
	d, err := bootTime()
	if err != nil {
		return 0
	}
	return d
}

// kernelSynced asks the kernel, without changing anything (modes 0),
// whether it considers its clock synchronised.
func kernelSynced() (bool, error) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false, fmt.Errorf("clock: adjtimex: %w", err)
	}
	return adjtimexSynced(state, int64(tx.Status)), nil
}

// adjtimexSynced is the kernel's own verdict: TIME_ERROR is the state
// it returns while STA_UNSYNC is set (or the PPS signal is lost); both
// are checked so that neither alone passes.
func adjtimexSynced(state int, status int64) bool {
	return state != unix.TIME_ERROR && status&unix.STA_UNSYNC == 0
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func readBootID() (string, error) {
	b, err := os.ReadFile(BootIDFile)
	if err != nil {
		return "", fmt.Errorf("clock: reading the boot id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("clock: reading the boot id: %s is empty", BootIDFile)
	}
	return id, nil
}
