package hid

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/punchclock/punchclock/reader"
)

// Errors of the Twin.
var (
	ErrTwinClosed = errors.New("hid: twin closed")
	ErrUnplugged  = errors.New("hid: twin unplugged")
	ErrPlugged    = errors.New("hid: twin already plugged")
	// ErrPathInUse: the device path exists and is not a FIFO (a
	// previous twin's, which is replaced).
	ErrPathInUse = errors.New("hid: device path in use")
	// ErrCommand is wrapped by Do's errors for a bad scenario command.
	ErrCommand = errors.New("hid: bad twin command")
)

// TwinWriteTimeout bounds a Do's write. The FIFO holds 64 KiB that the
// driver has not read (about 40 ten-digit values); past that a write
// waits for the driver.
const TwinWriteTimeout = 2 * time.Second

// maxGarbage bounds `garbage <n>`.
const maxGarbage = 10_000

// A Twin is a simulated keyboard-wedge reader: a FIFO at the reader's
// device path into which it writes struct input_event records in this
// build's layout, as the kernel would hand them to the driver. It holds
// the FIFO open read-write, so that its open does not wait for the driver
// and the driver's reads block rather than see EOF while it is plugged.
//
// Scenario commands (Do):
//
//	hid <value> [keypad]  type value (digits, a-f, A-F; 1 to 64) and
//	                      Enter, as a reader does: per key MSC_SCAN, key
//	                      down, SYN_REPORT, MSC_SCAN, key up, SYN_REPORT;
//	                      left shift around upper-case letters; with
//	                      "keypad", keypad digits and keypad Enter
//	garbage <n>           n random events (presses of any key but Enter,
//	                      releases, autorepeats, MSC, LED, SYN), then Esc
//	                      and Enter so that none of it forms a value
//	raw <hex>             bytes as given, e.g. "01 02" (records or not)
//
// Unplug closes and removes the FIFO: the driver reads what was written,
// then EOF, and reopens with backoff; Replug makes a new FIFO at the
// same path.
type Twin struct {
	name, path string
	log        *slog.Logger
	now        func() time.Time

	mu     sync.Mutex
	w      *os.File // nil while unplugged
	rng    *rand.Rand
	closed bool
}

var _ reader.Twin = (*Twin)(nil)

// NewTwin makes a FIFO at path (creating its directory) and returns the
// twin of reader name writing into it. An existing FIFO at path is
// replaced; anything else there is left alone (ErrPathInUse).
func NewTwin(name, path string, log *slog.Logger) (*Twin, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Twin{
		name: name,
		path: path,
		log:  log.With("reader", name, "driver", "hid", "twin", true),
		now:  time.Now,
		rng:  rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	if err := t.plug(); err != nil {
		return nil, err
	}
	return t, nil
}

// Path returns the FIFO's path, which the driver opens.
func (t *Twin) Path() string { return t.path }

func (t *Twin) plug() error {
	if err := os.MkdirAll(filepath.Dir(t.path), 0o755); err != nil {
		return fmt.Errorf("hid: twin: %w", err)
	}
	if fi, err := os.Lstat(t.path); err == nil {
		if fi.Mode().Type() != fs.ModeNamedPipe {
			return fmt.Errorf("%w: %s is %v", ErrPathInUse, t.path, fi.Mode().Type())
		}
		if err := os.Remove(t.path); err != nil {
			return fmt.Errorf("hid: twin: %w", err)
		}
	}
	if err := unix.Mkfifo(t.path, 0o600); err != nil {
		return fmt.Errorf("hid: twin: mkfifo %s: %w", t.path, err)
	}
	// Read-write: on Linux this open does not wait for a reader.
	w, err := os.OpenFile(t.path, os.O_RDWR, 0)
	if err != nil {
		os.Remove(t.path)
		return fmt.Errorf("hid: twin: %w", err)
	}
	t.w = w
	return nil
}

func (t *Twin) unplug() error {
	err := t.w.Close()
	t.w = nil
	if rerr := os.Remove(t.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return fmt.Errorf("hid: twin: %w", err)
	}
	return nil
}

// Unplug closes and removes the FIFO, as a pulled USB cable removes the
// evdev node.
func (t *Twin) Unplug() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return ErrTwinClosed
	case t.w == nil:
		return ErrUnplugged
	}
	return t.unplug()
}

// Replug makes a new FIFO at the same path.
func (t *Twin) Replug() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return ErrTwinClosed
	case t.w != nil:
		return ErrPlugged
	}
	return t.plug()
}

// Close unplugs the twin for good. It is safe to call more than once.
func (t *Twin) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	if t.w == nil {
		return nil
	}
	return t.unplug()
}

// Do runs one scenario command (see Twin) and returns the line to echo.
func (t *Twin) Do(ctx context.Context, cmd string, args []string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ty := typist{l: NativeLayout, t: t.now()}
	var (
		b    []byte
		echo string
		err  error
	)
	switch cmd {
	case "hid":
		if len(args) < 1 || len(args) > 2 || len(args) == 2 && args[1] != "keypad" {
			return "", fmt.Errorf("%w: usage: hid <value> [keypad]", ErrCommand)
		}
		if b, err = ty.typeValue(nil, args[0], len(args) == 2); err != nil {
			return "", fmt.Errorf("%w: %w", ErrCommand, err)
		}
		echo = fmt.Sprintf("hid %s %s", t.name, strings.Join(args, " "))
	case "garbage":
		n := 0
		if len(args) == 1 {
			n, err = strconv.Atoi(args[0])
		}
		if len(args) != 1 || err != nil || n < 1 || n > maxGarbage {
			return "", fmt.Errorf("%w: usage: garbage <n>, n from 1 to %d", ErrCommand, maxGarbage)
		}
		b = ty.garbage(nil, t.rng, n)
		echo = fmt.Sprintf("garbage %s %d", t.name, n)
	case "raw":
		if b, err = hex.DecodeString(strings.Join(args, "")); err != nil || len(b) == 0 {
			return "", fmt.Errorf("%w: usage: raw <hex bytes>", ErrCommand)
		}
		echo = fmt.Sprintf("raw %s % X", t.name, b)
	default:
		return "", fmt.Errorf("%w: %q (hid, garbage, raw)", ErrCommand, cmd)
	}
	if err := t.write(ctx, b); err != nil {
		return "", err
	}
	return echo, nil
}

// write writes b, waiting at most TwinWriteTimeout or until ctx's
// deadline for the driver to make room.
func (t *Twin) write(ctx context.Context, b []byte) error {
	switch {
	case t.closed:
		return ErrTwinClosed
	case t.w == nil:
		return ErrUnplugged
	}
	deadline := time.Now().Add(TwinWriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := t.w.SetWriteDeadline(deadline); err != nil {
		return fmt.Errorf("hid: twin: %w", err)
	}
	if _, err := t.w.Write(b); err != nil {
		return fmt.Errorf("hid: twin: write: %w", err)
	}
	return nil
}

// garbage appends n random events such as a confused reader or a
// keyboard sends, never a value: presses of any key but Enter (digits
// and hex letters half the time), releases, autorepeats, MSC_SCAN, LED
// events and SYN_REPORT; then both shifts up, and Esc and Enter, so that
// any keys it pressed are discarded and the next value starts clean.
func (ty *typist) garbage(b []byte, rng *rand.Rand, n int) []byte {
	anyKey := func() uint16 {
		for {
			c := uint16(1 + rng.IntN(keyMax))
			if c != keyEnter && c != keyKPEnter {
				return c
			}
		}
	}
	typable := []uint16{key1, key1 + 3, key1 + 8, key0, keyKP0, keyKP5, keyA, keyF, keyLeftShift}
	for range n {
		switch rng.IntN(7) {
		case 0:
			b = ty.key(b, typable[rng.IntN(len(typable))], keyDown)
		case 1:
			b = ty.key(b, anyKey(), keyDown)
		case 2:
			b = ty.key(b, anyKey(), keyUp)
		case 3:
			b = ty.key(b, anyKey(), keyRepeat)
		case 4:
			b = ty.add(b, evMsc, mscScan, rng.Int32())
		case 5:
			b = ty.add(b, 0x11, uint16(rng.IntN(11)), int32(rng.IntN(2))) // EV_LED
		case 6:
			b = ty.add(b, evSyn, synReport, 0)
		}
	}
	b = ty.key(b, keyLeftShift, keyUp)
	b = ty.key(b, keyRightShift, keyUp)
	b = ty.press(b, keyEsc)
	return ty.press(b, keyEnter)
}
