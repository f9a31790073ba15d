package wiegand

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/gpioline"
)

// Pulses returns the edges that send bits on D0 and D1: each bit a pulse
// of width pulse, pulses starting interval apart, the first at start.
func Pulses(bits []bool, start, pulse, interval time.Duration) []gpioline.Edge {
	edges := make([]gpioline.Edge, 0, 2*len(bits))
	for i, b := range bits {
		line := D0
		if b {
			line = D1
		}
		at := start + time.Duration(i)*interval
		edges = append(edges, gpioline.Edge{Line: line, At: at}, gpioline.Edge{Line: line, Rising: true, At: at + pulse})
	}
	return edges
}

// Twin timing: a typical reader's pulse and bit interval, jittered by
// up to a fifth so that the decoder never sees a perfect clock.
const (
	twinPulse    = 80 * time.Microsecond
	twinInterval = 2 * time.Millisecond
	// twinGap separates the frames the twin sends: more than FrameGap.
	twinGap = FrameGap + 15*time.Millisecond
	// twinWaitClient bounds how long a command waits for the driver
	// to watch the lines.
	twinWaitClient = 5 * time.Second
)

// A Twin is a simulated Wiegand reader: a simulated GPIO chip serving
// the socket the reader's `chip = "sim:PATH"` names, on which scenario
// commands play edge streams with real Wiegand timing.
//
// Commands:
//
//	wiegand 26|34|37 FACILITY CARD   present a card
//	badparity 26|34|37 FACILITY CARD the same with its even parity bit flipped
//	keys 4821#                       key presses, 4 bits each (0-9, * and #)
//	keys8 4821#                      key presses, 8 bits each
//	raw 0110...                      a frame of these bits
//	glitch                           noise: a 1 µs spike, both lines low at once, a lone rising edge
type Twin struct {
	chip   *gpioline.SimChip
	d0, d1 string

	mu   sync.Mutex // one command at a time
	rng  *rand.Rand
	next time.Duration // the earliest start of the next frame
}

var _ reader.Twin = (*Twin)(nil)

// NewTwin serves a simulated chip at socket with D0 and D1 on lines d0
// and d1.
func NewTwin(socket, d0, d1 string) (*Twin, error) {
	chip, err := gpioline.NewSimChip(socket)
	if err != nil {
		return nil, fmt.Errorf("wiegand: twin: %w", err)
	}
	return &Twin{chip: chip, d0: d0, d1: d1, rng: rand.New(rand.NewPCG(1, 2))}, nil
}

// Chip returns the simulated chip, for tests that inject edges directly.
func (t *Twin) Chip() *gpioline.SimChip { return t.chip }

// Path returns the socket's path.
func (t *Twin) Path() string { return t.chip.Path() }

// Unplug closes the socket as a pulled cable would.
func (t *Twin) Unplug() error { return t.chip.Unplug() }

// Replug serves the socket again at the same path.
func (t *Twin) Replug() error { return t.chip.Replug() }

// Close closes the chip. Safe to call more than once.
func (t *Twin) Close() error { return t.chip.Close() }

// ErrUsage is wrapped by Do's errors for a command it does not know or
// bad arguments.
var ErrUsage = errors.New("wiegand: twin: usage")

// Do runs one scenario command; it returns once its edges are played
// and the silence that ends the last frame has passed.
func (t *Twin) Do(ctx context.Context, cmd string, args []string) (string, error) {
	usage := func(format string, a ...any) (string, error) {
		return "", fmt.Errorf("%w: %s: %s", ErrUsage, cmd, fmt.Sprintf(format, a...))
	}
	var frames [][]bool
	var glitch bool
	switch cmd {
	case "wiegand", "badparity":
		if len(args) != 3 {
			return usage("want BITS FACILITY CARD")
		}
		n, err1 := strconv.Atoi(args[0])
		fac, err2 := strconv.ParseUint(args[1], 10, 64)
		card, err3 := strconv.ParseUint(args[2], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return usage("%v", err)
		}
		b, err := EncodeCard(n, fac, card)
		if err != nil {
			return usage("%v", err)
		}
		if cmd == "badparity" {
			b[0] = !b[0]
		}
		frames = append(frames, b)
	case "keys", "keys8":
		if len(args) != 1 || args[0] == "" {
			return usage("want the keys, e.g. 4821#")
		}
		for _, k := range args[0] {
			b, ok := EncodeKey(string(k), cmd == "keys8")
			if !ok {
				return usage("no key %q (0-9, *, #)", k)
			}
			frames = append(frames, b)
		}
	case "raw":
		if len(args) != 1 || args[0] == "" || len(args[0]) > MaxBits+1 || strings.Trim(args[0], "01") != "" {
			return usage("want bits, e.g. 0110")
		}
		b := make([]bool, len(args[0]))
		for i, c := range args[0] {
			b[i] = c == '1'
		}
		frames = append(frames, b)
	case "glitch":
		if len(args) != 0 {
			return usage("takes no arguments")
		}
		glitch = true
	default:
		return usage("unknown command (wiegand, badparity, keys, keys8, raw, glitch)")
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, twinWaitClient)
	defer cancel()
	if err := t.chip.WaitClaimed(wctx, t.d0, t.d1); err != nil {
		return "", fmt.Errorf("wiegand: twin: %w", err)
	}
	// Each frame is injected whole when it starts, its edges stamped
	// with real Wiegand timing, as a kernel queue read after a delay
	// delivers them; the frames are paced in real time. Pacing edge by
	// edge would let a busy machine stretch a frame past the silence
	// that ends it.
	var bursts [][]gpioline.SimEdge
	start := max(t.chip.Now()+time.Millisecond, t.next)
	if glitch {
		g := t.glitches(start)
		bursts = append(bursts, g)
		start = g[len(g)-1].At + twinGap
	}
	for _, f := range frames {
		var edges []gpioline.SimEdge
		at, end := start, start
		for _, b := range f {
			line := t.d0
			if b {
				line = t.d1
			}
			end = at + t.jitter(twinPulse)
			edges = append(edges, gpioline.SimEdge{Line: line, At: at}, gpioline.SimEdge{Line: line, Rising: true, At: end})
			at += t.jitter(twinInterval)
		}
		bursts = append(bursts, edges)
		start = end + twinGap
	}
	t.next = start
	for _, edges := range bursts {
		if err := reader.Wait(ctx, edges[0].At-t.chip.Now()); err != nil {
			return "", fmt.Errorf("wiegand: twin: %w", err)
		}
		t.chip.Inject(edges...)
	}
	// The frame's own time on the wire, and the silence that ends it,
	// are part of the command.
	last := bursts[len(bursts)-1]
	if err := reader.Wait(ctx, last[len(last)-1].At+FrameGap-t.chip.Now()); err != nil {
		return "", fmt.Errorf("wiegand: twin: %w", err)
	}
	return strings.TrimSpace(cmd + " " + strings.Join(args, " ")), nil
}

// jitter returns d plus or minus up to a fifth of it.
func (t *Twin) jitter(d time.Duration) time.Duration {
	return d - d/5 + time.Duration(t.rng.Int64N(int64(2*d/5)+1))
}

// glitches returns noise that must decode to nothing: a 1 µs spike on
// D0, both lines low at once, and a rising edge on a line that is high.
func (t *Twin) glitches(at time.Duration) []gpioline.SimEdge {
	us := time.Microsecond
	return []gpioline.SimEdge{
		{Line: t.d0, At: at}, {Line: t.d0, Rising: true, At: at + us},
		{Line: t.d0, At: at + 500*us}, {Line: t.d1, At: at + 520*us},
		{Line: t.d0, Rising: true, At: at + 580*us}, {Line: t.d1, Rising: true, At: at + 600*us},
		{Line: t.d1, Rising: true, At: at + 900*us},
	}
}
