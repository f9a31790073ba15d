package hid

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"syscall"
)

// Errors of OpenDevice.
var (
	// ErrNotDevice: the path is neither a character device, a FIFO nor
	// a socket (a regular file would replay the same values forever).
	ErrNotDevice = errors.New("hid: not an input device, FIFO or socket")
	// ErrNotEvdev: a character device that does not answer evdev's
	// EVIOCGVERSION, e.g. a tty configured by mistake.
	ErrNotEvdev = errors.New("hid: not an evdev device")
)

// OpenDevice opens path for reading input_event records:
//   - an evdev node (a character device), grabbed with EVIOCGRAB so
//     that no one else (the console, a login prompt, X) receives its
//     keys while the driver holds it; the grab ends when it is closed;
//   - a FIFO, as the simulator's twin makes: not grabbed (debug log);
//   - a unix socket, dialled: not grabbed (debug log).
//
// The file is opened non-blocking, so that reads wait in Go's poller
// (and Close interrupts them) and a FIFO without a writer does not block
// the open.
func OpenDevice(path string, log *slog.Logger) (Device, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ENXIO) {
		// open(2) of a unix socket fails with ENXIO.
		if fi, serr := os.Stat(path); serr == nil && fi.Mode().Type() == fs.ModeSocket {
			c, err := net.Dial("unix", path)
			if err != nil {
				return nil, fmt.Errorf("hid: %w", err)
			}
			log.Debug("not an evdev device: not grabbed", "path", path, "kind", "socket")
			return c, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("hid: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("hid: %w", err)
	}
	switch {
	case fi.Mode()&fs.ModeCharDevice != 0:
		if err := grab(f); err != nil {
			f.Close()
			if errors.Is(err, ErrNotEvdev) {
				return nil, fmt.Errorf("%w (%s)", err, path)
			}
			return nil, fmt.Errorf("hid: %s: %w", path, err)
		}
		log.Debug("evdev device grabbed", "path", path)
	case fi.Mode().Type() == fs.ModeNamedPipe:
		log.Debug("not an evdev device: not grabbed", "path", path, "kind", "fifo")
	default:
		f.Close()
		kind := "a regular file"
		if fi.IsDir() {
			kind = "a directory"
		}
		return nil, fmt.Errorf("%w: %s is %s", ErrNotDevice, path, kind)
	}
	return f, nil
}
