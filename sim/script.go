package sim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/rdm6300"
)

// ErrScript is wrapped by every error about a scenario line.
var ErrScript = errors.New("sim: script")

// Defaults for Script fields left zero.
const (
	DefaultRepeats        = rdm6300.DefaultRepeats
	DefaultRepeatInterval = rdm6300.DefaultRepeatInterval
)

// A Script runs scenario text against named readers' twins. The language
// has one command per line; blank lines are ignored, and so is a comment:
// from a '#' at the start of the line, or a '#' with white space on both
// sides ("card front 0A00123456  # Anna"). Any other '#' is a key: "keys
// pad 4821#".
// The script itself knows three commands:
//
//	sleep <duration>   wait, e.g. "250ms"
//	unplug <reader>    take the reader's device away, as a pulled cable
//	replug <reader>    bring it back at the same path
//
// Every other line is "<command> <reader> <args...>" and goes to that
// reader's twin, which documents its commands (an rdm6300 takes card,
// id12, garbage and raw; a pn532 card; an r30x finger; a wiegand reader
// wiegand and keys; ...).
//
// Each executed command echoes one line to Out, e.g.
// "sim: card front 0A00123456 x3".
type Script struct {
	// Twins maps reader names to their twins.
	Twins map[string]reader.Twin
	// Readers maps reader names to plain devices that an rdm6300 twin
	// writes to (a *Serial, or a fake); they join Twins.
	Readers map[string]io.Writer
	// Out receives one line per executed command. Nil discards.
	Out io.Writer
	// Errs, if set, receives bad lines' errors, one per line, and Run
	// carries on with the next line; at the end Run returns an error
	// counting them. If nil, Run stops at the first bad line.
	Errs io.Writer

	// For the rdm6300 twins made from Readers.
	Repeats        int           // frames per card command; default DefaultRepeats
	RepeatInterval time.Duration // between them; default DefaultRepeatInterval
	// Sleep waits d or until ctx is done. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand makes garbage bytes. Default: randomly seeded.
	Rand *rand.Rand
}

// Run runs a script with default settings, stopping at the first bad
// line.
func Run(ctx context.Context, r io.Reader, readers map[string]io.Writer, out io.Writer) error {
	s := &Script{Readers: readers, Out: out}
	return s.Run(ctx, r)
}

// Run executes the lines of r in order until EOF or until ctx is done (then
// it returns ctx.Err()). Errors name the line number and what is wrong and
// wrap ErrScript.
func (s *Script) Run(ctx context.Context, r io.Reader) error {
	s.fill()
	sc := bufio.NewScanner(r)
	failed := 0
	for n := 1; sc.Scan(); n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		echo, err := s.exec(ctx, sc.Text())
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			err = fmt.Errorf("%w: line %d: %v", ErrScript, n, err)
			if s.Errs == nil {
				return err
			}
			fmt.Fprintln(s.Errs, err)
			failed++
			continue
		}
		if echo != "" && s.Out != nil {
			fmt.Fprintln(s.Out, "sim: "+echo)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("sim: reading script: %w", err)
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d bad lines", ErrScript, failed)
	}
	return nil
}

func (s *Script) fill() {
	if s.Repeats == 0 {
		s.Repeats = DefaultRepeats
	}
	if s.RepeatInterval == 0 {
		s.RepeatInterval = DefaultRepeatInterval
	}
	if s.Sleep == nil {
		s.Sleep = reader.Wait
	}
	if s.Rand == nil {
		s.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if len(s.Readers) > 0 && s.Twins == nil {
		s.Twins = map[string]reader.Twin{}
	}
	for name, w := range s.Readers {
		if _, ok := s.Twins[name]; ok {
			continue
		}
		t := rdm6300.NewTwin(w)
		t.Repeats, t.RepeatInterval, t.Sleep, t.Rand = s.Repeats, s.RepeatInterval, s.Sleep, s.Rand
		s.Twins[name] = t
	}
}

// exec runs one line and returns what to echo ("" for nothing).
func (s *Script) exec(ctx context.Context, line string) (string, error) {
	f := strings.Fields(stripComment(line))
	if len(f) == 0 {
		return "", nil
	}
	cmd, args := f[0], f[1:]
	switch cmd {
	case "sleep":
		if len(args) != 1 {
			return "", errors.New("usage: sleep <duration>")
		}
		d, err := time.ParseDuration(args[0])
		if err != nil || d < 0 {
			return "", fmt.Errorf("sleep: %q is not a duration like 250ms", args[0])
		}
		if err := s.Sleep(ctx, d); err != nil {
			return "", err
		}
		return "sleep " + d.String(), nil
	case "unplug", "replug":
		if len(args) != 1 {
			return "", fmt.Errorf("usage: %s <reader>", cmd)
		}
		t, err := s.twin(cmd, args[0])
		if err != nil {
			return "", err
		}
		if cmd == "unplug" {
			err = t.Unplug()
		} else {
			err = t.Replug()
		}
		if err != nil {
			return "", fmt.Errorf("%s %s: %w", cmd, args[0], err)
		}
		return cmd + " " + args[0], nil
	}
	if len(args) == 0 {
		return "", fmt.Errorf("%q names no reader (want <command> <reader> <args...>, sleep, unplug or replug)", cmd)
	}
	t, err := s.twin(cmd, args[0])
	if err != nil {
		return "", err
	}
	echo, err := t.Do(ctx, cmd, args[1:])
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", cmd, args[0], err)
	}
	return cmd + " " + args[0] + " " + strings.TrimPrefix(echo, cmd+" "), nil
}

// stripComment cuts a comment off a line: from a '#' that is the first
// thing on the line (after white space), or that stands between white
// space and white space. Any other '#' is a key: "keys pad 4821#",
// "keys pad #" (a lone '#' at the end of a line is the enter key).
func stripComment(line string) string {
	line = strings.TrimRight(line, " \t\r")
	if t := strings.TrimLeft(line, " \t"); strings.HasPrefix(t, "#") {
		return ""
	}
	space := func(i int) bool { return line[i] == ' ' || line[i] == '\t' }
	for i := 1; i+1 < len(line); i++ {
		if line[i] == '#' && space(i-1) && space(i+1) {
			return line[:i]
		}
	}
	return line
}

func (s *Script) twin(cmd, name string) (reader.Twin, error) {
	t, ok := s.Twins[name]
	if !ok {
		names := make([]string, 0, len(s.Twins))
		for n := range s.Twins {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("%s: unknown reader %q (have %s)", cmd, name, strings.Join(names, ", "))
	}
	return t, nil
}
