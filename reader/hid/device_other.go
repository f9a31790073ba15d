//go:build !linux

package hid

import (
	"errors"
	"fmt"
	"os"
)

// grab: evdev is Linux's; elsewhere only the simulator's FIFO works.
func grab(*os.File) error {
	return fmt.Errorf("%w: evdev needs Linux: %w", ErrNotEvdev, errors.ErrUnsupported)
}
