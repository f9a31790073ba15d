// Package sim simulates the terminal's reader hardware on a development
// machine or in CI: virtual serial readers on real pseudo-terminals, linked
// where the agent's configuration expects the UART, and a line-oriented
// scenario language that presents cards on them. The agent runs unchanged
// against it; nothing in the agent knows it is simulated.
package sim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("sim: closed")

// ErrPathInUse is wrapped by NewSerial when the link path exists and is
// not a symlink it may replace.
var ErrPathInUse = errors.New("sim: port path in use")

// WriteTimeout bounds a Serial's Write. A pseudo-terminal holds about
// 4 KiB that nobody has read; past that a write would block.
const WriteTimeout = 2 * time.Second

// A Serial is a virtual serial device: the slave side of a pseudo-terminal
// in raw mode (no echo, no CR/LF translation, no signal characters), which
// the agent opens like a UART, and the master side, to which Write sends
// bytes as the reader module would. It keeps its own slave fd open, so the
// pty stays usable while the agent closes and reopens the device.
// Bytes written while the agent has the device closed wait in the pty's
// buffer and are read when it reopens.
type Serial struct {
	link         string
	master       *os.File
	slave        *os.File
	writeTimeout time.Duration

	mu     sync.Mutex
	closed bool
}

// NewSerial creates a pseudo-terminal and, if link is not empty, a symlink
// at link to its slave device, creating link's parent directories. An
// existing symlink at link is replaced if it is dangling or points to a
// pseudo-terminal (/dev/pts/N, a previous simulator's); any other existing
// path is left alone and NewSerial returns an error wrapping ErrPathInUse.
func NewSerial(link string) (*Serial, error) {
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("sim: open pseudo-terminal: %w", err)
	}
	s := &Serial{link: link, master: master, slave: slave, writeTimeout: WriteTimeout}
	if s.master, err = pollable(master); err != nil {
		slave.Close()
		return nil, fmt.Errorf("sim: pseudo-terminal: %w", err)
	}
	if err := makeRaw(slave); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("sim: raw mode on %s: %w", slave.Name(), err)
	}
	if link != "" {
		if err := placeLink(link, slave.Name()); err != nil {
			s.closeFiles()
			return nil, err
		}
	}
	return s, nil
}

// Path returns the slave device, e.g. /dev/pts/3.
func (s *Serial) Path() string { return s.slave.Name() }

// Link returns the symlink path given to NewSerial.
func (s *Serial) Link() string { return s.link }

// Write sends p to whoever has the device open, unchanged.
func (s *Serial) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	if err := s.master.SetWriteDeadline(time.Now().Add(s.writeTimeout)); err != nil {
		return 0, fmt.Errorf("sim: %s: %w", s.slave.Name(), err)
	}
	n, err := s.master.Write(p)
	if err != nil {
		return n, fmt.Errorf("sim: write %s: %w", s.slave.Name(), err)
	}
	return n, nil
}

// Read returns bytes the agent wrote to the device (a polled reader's
// requests), as the module would receive them.
func (s *Serial) Read(p []byte) (int, error) {
	n, err := s.master.Read(p)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return n, ErrClosed
		}
		return n, fmt.Errorf("sim: read %s: %w", s.slave.Name(), err)
	}
	return n, err
}

// SetReadDeadline bounds the next Read; a Read past it returns an error
// matching os.ErrDeadlineExceeded.
func (s *Serial) SetReadDeadline(t time.Time) error { return s.master.SetReadDeadline(t) }

// Close removes the link (if it still points to this device) and closes
// the pseudo-terminal; whoever has the device open then reads an error.
// It is safe to call more than once.
func (s *Serial) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.drain()
	var errs []error
	if s.link != "" {
		if target, err := os.Readlink(s.link); err == nil && target == s.slave.Name() {
			if err := os.Remove(s.link); err != nil {
				errs = append(errs, fmt.Errorf("sim: remove link: %w", err))
			}
		}
	}
	if err := s.closeFiles(); err != nil {
		errs = append(errs, fmt.Errorf("sim: close %s: %w", s.slave.Name(), err))
	}
	return errors.Join(errs...)
}

// DrainTimeout bounds how long Close waits for the reader to take the
// bytes written before it.
const DrainTimeout = time.Second

// drain waits, up to DrainTimeout, until the device's input queue has
// stayed empty for a moment: closing the master hangs the device up and
// discards what its reader has not read yet (the last card of a script).
// Bytes just written reach that queue asynchronously, hence "stayed".
func (s *Serial) drain() {
	const settle = 30 * time.Millisecond
	deadline := time.Now().Add(DrainTimeout)
	emptySince := time.Now()
	for time.Now().Before(deadline) {
		n, err := unix.IoctlGetInt(int(s.slave.Fd()), unix.TIOCINQ)
		if err != nil {
			return
		}
		now := time.Now()
		if n > 0 {
			emptySince = now
		} else if now.Sub(emptySince) >= settle {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *Serial) closeFiles() error {
	return errors.Join(s.master.Close(), s.slave.Close())
}

func placeLink(link, target string) error {
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return fmt.Errorf("sim: link %s: %w", link, err)
	}
	fi, err := os.Lstat(link)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("sim: link %s: %w", link, err)
	case fi.Mode()&fs.ModeSymlink == 0:
		return fmt.Errorf("%w: %s exists and is not a symlink; not replacing it", ErrPathInUse, link)
	default:
		old, err := os.Readlink(link)
		if err != nil {
			return fmt.Errorf("sim: link %s: %w", link, err)
		}
		if _, err := os.Stat(link); err == nil && !strings.HasPrefix(old, "/dev/pts/") {
			return fmt.Errorf("%w: %s links to %s, which exists and is not a pseudo-terminal; not replacing it", ErrPathInUse, link, old)
		}
	}
	// Create beside it and rename over it, so the path never points
	// nowhere while being replaced.
	tmp := fmt.Sprintf("%s.punchsim-%d", link, os.Getpid())
	_ = os.Remove(tmp) // a leftover of a crashed run, if any
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("sim: link %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("sim: link %s: %w", link, err)
	}
	return nil
}
