package hid

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// evdev ioctls (linux/input.h), in the generic _IOC encoding that arm,
// arm64 and amd64 share: dir<<30 | size<<16 | 'E'<<8 | nr.
const (
	eviocgversion = 0x80044501 // _IOR('E', 0x01, int)
	eviocgrab     = 0x40044590 // _IOW('E', 0x90, int)
)

// grab checks that f is an evdev node and grabs it. It works on the
// descriptor through SyscallConn: f.Fd() would put the file back into
// blocking mode, and Close could no longer interrupt a Read.
func grab(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		if _, err := unix.IoctlGetInt(int(fd), eviocgversion); err != nil {
			ierr = fmt.Errorf("%w: EVIOCGVERSION: %w", ErrNotEvdev, err)
			return
		}
		// The argument is the grab flag itself, not a pointer to it.
		if err := unix.IoctlSetInt(int(fd), eviocgrab, 1); err != nil {
			ierr = fmt.Errorf("EVIOCGRAB: %w (another program holds the reader?)", err)
		}
	}); err != nil {
		return err
	}
	return ierr
}
