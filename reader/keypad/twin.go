package keypad

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/gpioline"
)

// Twin timing: each key is held twinHold, twinGap apart, and its contact
// bounces for twinBounce at press and at release, changing every
// bounceStep.
const (
	twinHold       = 80 * time.Millisecond
	twinGap        = 80 * time.Millisecond
	twinBounce     = 5 * time.Millisecond
	bounceStep     = time.Millisecond
	twinWaitClient = 5 * time.Second
)

// A press is one key held from from to to, in the chip's time.
// seenDown and seenUp count the driver's reads of the key's column with
// its row driven low, while the key was held and after its release.
type press struct {
	key              int
	from, to         time.Duration
	seenDown, seenUp int
}

// forever is the release time of a key still held.
const forever = time.Duration(1<<63 - 1)

// minReads: a press lasts until the driver has read it this many times,
// and the next one waits until it has read the release as often, so
// that a slow or busy machine stretches the scenario instead of losing
// keys, as a person holds a key until it registers.
const minReads = int(Debounce/ActivePeriod) + 2

// closed reports whether the key's contact is closed at t: open before
// the press, bouncing for twinBounce after from and after to.
func (p press) closed(t time.Duration) bool {
	switch {
	case t < p.from:
		return false
	case t < p.from+twinBounce:
		return (t-p.from)/bounceStep%2 == 0
	case t < p.to:
		return true
	case t < p.to+twinBounce:
		return (t-p.to)/bounceStep%2 == 1
	}
	return false
}

// A Twin is a simulated matrix keypad: a simulated GPIO chip serving the
// socket the reader's `chip = "sim:PATH"` names. It watches the rows the
// driver drives and answers the columns' levels: a column is low while a
// pressed key joins it to a row driven low.
//
// Commands:
//
//	keys 4821#   press each key for 80 ms, 80 ms apart, bouncing for 5 ms at press and release
//	blip 5       a 5 ms contact on one key: shorter than Debounce, no press
type Twin struct {
	chip       *gpioline.SimChip
	rows, cols []string
	labels     []string

	cmd     sync.Mutex // one command at a time
	mu      sync.Mutex
	presses []*press
}

var _ reader.Twin = (*Twin)(nil)

// NewTwin serves a simulated keypad at socket; labels are row by row.
func NewTwin(socket string, rows, cols, labels []string) (*Twin, error) {
	if len(labels) != len(rows)*len(cols) {
		return nil, fmt.Errorf("keypad: twin: %d labels for %d×%d keys: %w", len(labels), len(rows), len(cols), reader.ErrConfig)
	}
	chip, err := gpioline.NewSimChip(socket)
	if err != nil {
		return nil, fmt.Errorf("keypad: twin: %w", err)
	}
	t := &Twin{chip: chip, rows: rows, cols: cols, labels: labels}
	chip.SetLevels(t.level)
	return t, nil
}

// level answers a read of line: a column is low when a key of it whose
// contact is closed now is on a row driven low.
func (t *Twin) level(line string) bool {
	c := -1
	for i, l := range t.cols {
		if l == line {
			c = i
		}
	}
	if c < 0 {
		return true
	}
	now := t.chip.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	level := true
	for _, p := range t.presses {
		if p.key%len(t.cols) != c {
			continue
		}
		if high, ok := t.chip.Output(t.rows[p.key/len(t.cols)]); !ok || high {
			continue // its row is not driven
		}
		switch {
		case p.closed(now):
			level = false
			if now >= p.from+twinBounce {
				p.seenDown++
			}
		case now >= p.to+twinBounce:
			p.seenUp++
		}
	}
	return level
}

// Chip returns the simulated chip.
func (t *Twin) Chip() *gpioline.SimChip { return t.chip }

// Path returns the socket's path.
func (t *Twin) Path() string { return t.chip.Path() }

// Unplug closes the socket as a pulled cable would.
func (t *Twin) Unplug() error { return t.chip.Unplug() }

// Replug serves the socket again at the same path.
func (t *Twin) Replug() error { return t.chip.Replug() }

// Close closes the chip. Safe to call more than once.
func (t *Twin) Close() error { return t.chip.Close() }

// ErrUsage is wrapped by Do's errors for an unknown command or bad
// arguments.
var ErrUsage = errors.New("keypad: twin: usage")

// until polls cond, under the twin's lock, until it holds, for up to
// twinWaitClient: a driver that does not scan is gone.
func (t *Twin) until(ctx context.Context, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, twinWaitClient)
	defer cancel()
	for {
		t.mu.Lock()
		ok := cond()
		t.mu.Unlock()
		if ok {
			return nil
		}
		if err := reader.Wait(ctx, ActivePeriod); err != nil {
			return fmt.Errorf("keypad: twin: waiting for the driver to scan: %w", err)
		}
	}
}

// Do runs one scenario command; it returns when the last key has been
// released and the driver has seen it released.
func (t *Twin) Do(ctx context.Context, cmd string, args []string) (string, error) {
	usage := func(format string, a ...any) (string, error) {
		return "", fmt.Errorf("%w: %s: %s", ErrUsage, cmd, fmt.Sprintf(format, a...))
	}
	if len(args) != 1 || args[0] == "" {
		return usage("want the keys, e.g. 4821#")
	}
	var keys []int
	for _, l := range args[0] {
		k := -1
		for i, lab := range t.labels {
			if lab == string(l) {
				k = i
			}
		}
		if k < 0 {
			return usage("no key %q on this pad (%s)", l, strings.Join(t.labels, ""))
		}
		keys = append(keys, k)
	}
	hold := twinHold
	switch cmd {
	case "keys":
	case "blip":
		if len(keys) != 1 {
			return usage("one key")
		}
		hold = Debounce / 4
	default:
		return usage("unknown command (keys, blip)")
	}

	t.cmd.Lock()
	defer t.cmd.Unlock()
	wctx, cancel := context.WithTimeout(ctx, twinWaitClient)
	defer cancel()
	if err := t.chip.WaitClaimed(wctx, append(append([]string(nil), t.rows...), t.cols...)...); err != nil {
		return "", fmt.Errorf("keypad: twin: %w", err)
	}
	t.mu.Lock()
	t.presses = nil // the previous command's are over
	t.mu.Unlock()
	for _, k := range keys {
		p := &press{key: k, from: t.chip.Now(), to: forever}
		t.mu.Lock()
		t.presses = append(t.presses, p)
		t.mu.Unlock()
		if err := reader.Wait(ctx, hold); err != nil {
			return "", fmt.Errorf("keypad: twin: %w", err)
		}
		if cmd == "keys" {
			if err := t.until(ctx, func() bool { return p.seenDown >= minReads }); err != nil {
				return "", err
			}
		}
		t.mu.Lock()
		p.to = t.chip.Now()
		t.mu.Unlock()
		if err := reader.Wait(ctx, twinBounce+twinGap); err != nil {
			return "", fmt.Errorf("keypad: twin: %w", err)
		}
		if err := t.until(ctx, func() bool { return p.seenUp >= minReads }); err != nil {
			return "", err
		}
	}
	return cmd + " " + args[0], nil
}
