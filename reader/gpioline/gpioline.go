// Package gpioline is the one small interface the GPIO reader drivers
// (reader/wiegand, reader/keypad) consume: input lines that report their
// edges with a timestamp, input lines read on demand, and open-drain
// output lines. Backends implement it as peers: the Linux GPIO character
// device through periph.io's gpioioctl (chardev.go), a simulated chip
// that the simulator serves on a unix socket (sim*.go), so that the same
// decoders run edge by edge in CI without hardware, and go-rpio's
// memory-mapped registers for outputs and polled inputs on a Raspberry
// Pi 1 to 4 (rpio.go; no edges).
//
// The interface is this small because that is all a Wiegand decoder and
// a matrix scan need: Wiegand needs the order and the time of every edge
// on D0 and D1 (a bit is a pulse; a frame ends with silence); a keypad
// scan needs to pull a row low and read the columns. Line requests are
// separate objects, as a character-device line request is its own file
// descriptor, so a driver can close and re-request them independently.
package gpioline

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// An Edge is one level change on a watched input line.
type Edge struct {
	// Line is the index of the line in the list given to Watch.
	Line int
	// Rising: the line went high; otherwise it went low.
	Rising bool
	// At is when the edge happened, as a duration since the chip's
	// epoch: a monotonic clock that only the differences of which mean
	// anything. A chip that is reopened may start a new epoch.
	At time.Duration
}

// A Chip is one GPIO controller. Its methods request lines by name
// ("GPIO17"); a line can be requested once at a time.
type Chip interface {
	// Watch requests lines as inputs with pull-ups and reports both
	// edges of each, in the order they happened.
	Watch(lines []string) (Edges, error)
	// Inputs requests lines as inputs with pull-ups, read on demand.
	Inputs(lines []string) (Inputs, error)
	// Output requests line as an open-drain output, released (high on
	// its pull-up) at first.
	Output(line string) (Out, error)
	// Close releases every line requested through the chip and makes
	// their pending calls return.
	Close() error
}

// Edges is a Watch request.
type Edges interface {
	// C delivers the edges. It is closed when the request fails (the
	// chip went away) or is closed; Err then says why.
	C() <-chan Edge
	// Err returns why C was closed: nil after Close.
	Err() error
	Close() error
}

// Inputs is an Inputs request.
type Inputs interface {
	// Read returns the lines' levels at once: bit i is set when line i
	// of the request is high.
	Read() (uint64, error)
	Close() error
}

// Out is an open-drain output: Set(false) drives the line low,
// Set(true) releases it and its pull-up takes it high. That is what a
// matrix scan needs: two keys pressed in one column never short a row
// driven high to a row driven low.
type Out interface {
	Set(high bool) error
	Close() error
}

// ErrClosed is wrapped by the errors of a request or chip used after
// Close.
var ErrClosed = errors.New("gpioline: closed")

// ErrBadSpec is wrapped by ParseSpec's errors.
var ErrBadSpec = errors.New("gpioline: bad chip")

// Chip specs, as the `chip` key of the GPIO drivers spells them.
const (
	// DefaultChip is the host's first GPIO character device, the one
	// that carries the 40-pin header on every Raspberry Pi model.
	DefaultChip = "/dev/gpiochip0"
	// SimPrefix starts a simulated chip's spec: "sim:/run/punchsim/front.sock".
	SimPrefix = "sim:"
)

// A Spec says which chip a driver opens.
type Spec struct {
	Sim  bool   // a simulated chip on a unix socket
	Mem  bool   // go-rpio's memory-mapped registers (Path is empty)
	Path string // the character device, or the simulated chip's socket
}

// String returns the spec as the `chip` key spells it.
func (s Spec) String() string {
	switch {
	case s.Sim:
		return SimPrefix + s.Path
	case s.Mem:
		return MemChip
	}
	return s.Path
}

// Claim names a line of the chip for the config's check that no two
// readers use one line. go-rpio's registers drive the same lines as the
// first character device, so its lines are claimed under that name.
func (s Spec) Claim(line string) string {
	line = LineName(line)
	if s.Mem {
		return DefaultChip + ":" + line
	}
	return s.String() + ":" + line
}

// LineName is the canonical name of a line: a bare number ("17") is the
// chip's line GPIO17, as periph reads it.
func LineName(line string) string {
	if line == "" {
		return line
	}
	for _, c := range line {
		if c < '0' || c > '9' {
			return line
		}
	}
	return "GPIO" + line
}

// ParseSpec parses the `chip` key: "" is DefaultChip, "/dev/gpiochipN" a
// character device, "sim:PATH" a simulated chip listening at PATH,
// "rpio" go-rpio's memory-mapped registers (Raspberry Pi 1 to 4).
func ParseSpec(s string) (Spec, error) {
	switch {
	case s == "":
		return Spec{Path: DefaultChip}, nil
	case s == MemChip:
		return Spec{Mem: true}, nil
	case strings.HasPrefix(s, SimPrefix):
		p := strings.TrimPrefix(s, SimPrefix)
		if p == "" {
			return Spec{}, fmt.Errorf("%w: %q: no socket path after %q", ErrBadSpec, s, SimPrefix)
		}
		return Spec{Sim: true, Path: p}, nil
	case strings.HasPrefix(s, "/dev/gpiochip") && isDigits(strings.TrimPrefix(s, "/dev/gpiochip")):
		return Spec{Path: s}, nil
	}
	return Spec{}, fmt.Errorf("%w: %q is neither /dev/gpiochipN, %sPATH nor %s", ErrBadSpec, s, SimPrefix, MemChip)
}

func isDigits(s string) bool {
	if s == "" || len(s) > 3 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Open opens the chip spec names: a character device through periph, a
// connection to a simulated chip, or go-rpio's registers.
func Open(spec Spec) (Chip, error) {
	switch {
	case spec.Sim:
		return DialSim(spec.Path), nil
	case spec.Mem:
		return OpenRPIO()
	}
	return OpenCharDev(spec.Path)
}

// ValidLineName reports whether name can name a line: 1 to MaxNameLen
// letters, digits, '_' or '-' ("GPIO17", "PIN_11").
func ValidLineName(name string) bool {
	if name == "" || len(name) > MaxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
