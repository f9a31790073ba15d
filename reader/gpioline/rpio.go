package gpioline

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/stianeikeland/go-rpio/v4"
)

// The go-rpio backend: the BCM2835–BCM2711's GPIO registers mapped into
// memory (/dev/gpiomem), for outputs and the polled matrix keypad scan
// on a Raspberry Pi 1 to 4. A read is a memory load instead of an
// ioctl. It has no edge events, so Watch fails: Wiegand needs the
// character device. The Pi 5's GPIO is elsewhere (in the RP1), where
// these registers do not exist, so it refuses to open there. It cannot
// be tested without hardware, so it is kept to a thin translation.

// MemChip is the `chip` value that selects the go-rpio backend.
const MemChip = "rpio"

// ErrNoEdges is returned by Watch on a chip that cannot report edges.
var ErrNoEdges = errors.New("gpioline: this chip reports no edges (go-rpio): use the character device")

// ErrUnsupportedBoard is wrapped by OpenRPIO on a board go-rpio does not
// know.
var ErrUnsupportedBoard = errors.New("gpioline: go-rpio drives only the BCM2835, BCM2836, BCM2837 and BCM2711 (Raspberry Pi 1 to 4)")

// go-rpio maps the registers once per process; the mapping is shared by
// every RPIO and unmapped when the last is closed.
var (
	rpioMu    sync.Mutex
	rpioUsers int
	rpioLines = make(map[int]bool) // BCM numbers in use
)

// RPIO is the go-rpio backend.
type RPIO struct {
	mu     sync.Mutex
	lines  map[int]bool // BCM numbers requested through this chip
	closed bool
}

var _ Chip = (*RPIO)(nil)

// rpioSupported reports whether the device tree's compatible strings
// (NUL separated) name a SoC go-rpio drives.
func rpioSupported(compatible []byte) bool {
	ok := false
	for _, c := range bytes.Split(compatible, []byte{0}) {
		switch string(c) {
		case "brcm,bcm2712":
			return false
		case "brcm,bcm2835", "brcm,bcm2836", "brcm,bcm2837", "brcm,bcm2711":
			ok = true
		}
	}
	return ok
}

// OpenRPIO maps the GPIO registers.
func OpenRPIO() (*RPIO, error) {
	compat, err := os.ReadFile("/proc/device-tree/compatible")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupportedBoard, err)
	}
	if !rpioSupported(compat) {
		return nil, fmt.Errorf("%w: this is %q", ErrUnsupportedBoard, strings.ReplaceAll(string(bytes.TrimRight(compat, "\x00")), "\x00", ", "))
	}
	rpioMu.Lock()
	defer rpioMu.Unlock()
	if rpioUsers == 0 {
		if err := rpio.Open(); err != nil {
			return nil, fmt.Errorf("gpioline: go-rpio: %w", err)
		}
	}
	rpioUsers++
	return &RPIO{lines: make(map[int]bool)}, nil
}

// bcmNumber parses a line name "GPIO17": the BCM number, 0–53.
func bcmNumber(name string) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(name, "GPIO"))
	if !strings.HasPrefix(name, "GPIO") || err != nil || n < 0 || n > 53 || strconv.Itoa(n) != name[4:] {
		return 0, fmt.Errorf("gpioline: go-rpio: %q is not a line name GPIO0 to GPIO53", name)
	}
	return n, nil
}

// claim reserves lines for this chip.
func (c *RPIO) claim(names []string) ([]rpio.Pin, error) {
	var nums []int
	for _, name := range names {
		n, err := bcmNumber(name)
		if err != nil {
			return nil, err
		}
		nums = append(nums, n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("gpioline: go-rpio: %w", ErrClosed)
	}
	rpioMu.Lock()
	defer rpioMu.Unlock()
	for i, n := range nums {
		if rpioLines[n] || slicesIndex(nums, n) != i {
			return nil, fmt.Errorf("gpioline: go-rpio: line GPIO%d is busy", n)
		}
	}
	pins := make([]rpio.Pin, len(nums))
	for i, n := range nums {
		rpioLines[n], c.lines[n] = true, true
		pins[i] = rpio.Pin(n)
	}
	return pins, nil
}

func slicesIndex(s []int, v int) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// release makes pins inputs with pull-ups again and frees them.
func (c *RPIO) release(pins []rpio.Pin) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rpioMu.Lock()
	defer rpioMu.Unlock()
	for _, p := range pins {
		if !c.lines[int(p)] {
			continue
		}
		p.Input()
		p.PullUp()
		delete(c.lines, int(p))
		delete(rpioLines, int(p))
	}
}

// Watch fails: the registers give levels, not timestamped edges.
func (c *RPIO) Watch([]string) (Edges, error) { return nil, ErrNoEdges }

// Inputs requests lines as inputs with pull-ups.
func (c *RPIO) Inputs(lines []string) (Inputs, error) {
	pins, err := c.claim(lines)
	if err != nil {
		return nil, err
	}
	for _, p := range pins {
		p.Input()
		p.PullUp()
	}
	return &rpioInputs{c: c, pins: pins}, nil
}

type rpioInputs struct {
	c    *RPIO
	pins []rpio.Pin
	once sync.Once
}

func (in *rpioInputs) Read() (uint64, error) {
	in.c.mu.Lock()
	defer in.c.mu.Unlock()
	var v uint64
	for i, p := range in.pins {
		if !in.c.lines[int(p)] {
			return 0, fmt.Errorf("gpioline: go-rpio: %w", ErrClosed)
		}
		if p.Read() == rpio.High {
			v |= 1 << i
		}
	}
	return v, nil
}

func (in *rpioInputs) Close() error {
	in.once.Do(func() { in.c.release(in.pins) })
	return nil
}

// Output requests a line as an open-drain output, emulated: released is
// an input with pull-up, low is an output driving low.
func (c *RPIO) Output(line string) (Out, error) {
	pins, err := c.claim([]string{line})
	if err != nil {
		return nil, err
	}
	o := &rpioOut{c: c, pin: pins[0]}
	o.Set(true)
	return o, nil
}

type rpioOut struct {
	c    *RPIO
	pin  rpio.Pin
	once sync.Once
}

func (o *rpioOut) Set(high bool) error {
	o.c.mu.Lock()
	defer o.c.mu.Unlock()
	if !o.c.lines[int(o.pin)] {
		return fmt.Errorf("gpioline: go-rpio: %w", ErrClosed)
	}
	if high {
		o.pin.Input()
		o.pin.PullUp()
	} else {
		o.pin.Low() // the latch first, so that the line never goes high
		o.pin.Output()
	}
	return nil
}

func (o *rpioOut) Close() error {
	o.once.Do(func() { o.c.release([]rpio.Pin{o.pin}) })
	return nil
}

// Close releases every line requested through c, and unmaps the
// registers when it is the last RPIO open. Safe to call more than once.
func (c *RPIO) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	var pins []rpio.Pin
	for n := range c.lines {
		pins = append(pins, rpio.Pin(n))
	}
	c.mu.Unlock()
	c.release(pins)
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	rpioMu.Lock()
	defer rpioMu.Unlock()
	rpioUsers--
	if rpioUsers == 0 {
		if err := rpio.Close(); err != nil {
			return fmt.Errorf("gpioline: go-rpio: %w", err)
		}
	}
	return nil
}
