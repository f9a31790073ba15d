package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// Profiling a running terminal: `punchclock run` writes an execution
// trace to the file PUNCHCLOCK_TRACE names and a CPU profile to the file
// PUNCHCLOCK_CPUPROFILE names, from start to a clean stop (SIGTERM or
// SIGINT), for `go tool trace` and `go tool pprof`. Both are off unless
// set; docs/performance.md shows how they were used. They are variables
// of the environment, not flags, so that a systemd drop-in can switch
// them on without changing the unit's command line.
const (
	envTrace      = "PUNCHCLOCK_TRACE"
	envCPUProfile = "PUNCHCLOCK_CPUPROFILE"
)

// startProfiles starts what getenv asks for and returns the function that
// stops it and closes the files.
func startProfiles(getenv func(string) string) (stop func() error, err error) {
	var stops []func() error
	stop = func() error {
		var errs []error
		for i := len(stops) - 1; i >= 0; i-- {
			errs = append(errs, stops[i]())
		}
		stops = nil
		return errors.Join(errs...)
	}
	if path := getenv(envTrace); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envTrace, err)
		}
		if err := trace.Start(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", envTrace, err)
		}
		stops = append(stops, func() error { trace.Stop(); return f.Close() })
	}
	if path := getenv(envCPUProfile); path != "" {
		f, err := os.Create(path)
		if err == nil {
			if err = pprof.StartCPUProfile(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			stop()
			return nil, fmt.Errorf("%s: %w", envCPUProfile, err)
		}
		stops = append(stops, func() error { pprof.StopCPUProfile(); return f.Close() })
	}
	return stop, nil
}
