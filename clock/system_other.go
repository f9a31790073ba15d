//go:build !linux

package clock

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// The terminal runs on Linux; elsewhere the package builds so that the
// pure rules and tests with injected sources run, and New without
// injected sources fails.

func bootTime() (time.Duration, error) {
	return 0, fmt.Errorf("clock: CLOCK_BOOTTIME: %w", errors.ErrUnsupported)
}

func systemMono() time.Duration { return 0 }

func kernelSynced() (bool, error) {
	return false, fmt.Errorf("clock: adjtimex: %w", errors.ErrUnsupported)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func readBootID() (string, error) {
	return "", fmt.Errorf("clock: reading the boot id from %s: %w", BootIDFile, errors.ErrUnsupported)
}
