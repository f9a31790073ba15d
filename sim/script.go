package sim

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/punchclock/punchclock/reader/rdm6300"
)

// ErrScript is wrapped by every error about a scenario line.
var ErrScript = errors.New("sim: script")

// Defaults for Script fields left zero.
const (
	DefaultRepeats        = 3
	DefaultRepeatInterval = 30 * time.Millisecond
	maxRepeats            = 1000
	maxGarbage            = 4096
)

// A Script runs scenario text against named readers. The language has
// one command per line; blank lines and text after '#' are ignored:
//
//	card <reader> <10 hex digits> [xN]  present an EM4100 card: its frame N
//	                                    times (default Repeats), RepeatInterval
//	                                    apart, as the module does while the
//	                                    card stays in the field
//	garbage <reader> <n>                n random bytes, none of them STX
//	raw <reader> <hex bytes>            bytes as given, e.g. "02 30 41" or "023041"
//	sleep <duration>                    wait, e.g. "250ms"
//
// Each executed command echoes one line to Out, e.g.
// "sim: card front 0A00123456 x3".
type Script struct {
	// Readers maps reader names to their devices (a *Serial, or a fake).
	Readers map[string]io.Writer
	// Out receives one line per executed command. Nil discards.
	Out io.Writer
	// Errs, if set, receives bad lines' errors, one per line, and Run
	// carries on with the next line; at the end Run returns an error
	// counting them. If nil, Run stops at the first bad line.
	Errs io.Writer

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
		s.Sleep = sleepTimer
	}
	if s.Rand == nil {
		s.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
}

// exec runs one line and returns what to echo ("" for nothing).
func (s *Script) exec(ctx context.Context, line string) (string, error) {
	line, _, _ = strings.Cut(line, "#")
	f := strings.Fields(line)
	if len(f) == 0 {
		return "", nil
	}
	cmd, args := f[0], f[1:]
	switch cmd {
	case "card":
		return s.card(ctx, args)
	case "garbage":
		return s.garbage(args)
	case "raw":
		return s.raw(args)
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
	}
	return "", fmt.Errorf("unknown command %q (want card, garbage, raw or sleep)", cmd)
}

func (s *Script) reader(cmd, name string) (io.Writer, error) {
	w, ok := s.Readers[name]
	if !ok {
		names := make([]string, 0, len(s.Readers))
		for n := range s.Readers {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("%s: unknown reader %q (have %s)", cmd, name, strings.Join(names, ", "))
	}
	return w, nil
}

func (s *Script) card(ctx context.Context, args []string) (string, error) {
	if len(args) < 2 || len(args) > 3 {
		return "", errors.New("usage: card <reader> <10 hex digits> [xN]")
	}
	w, err := s.reader("card", args[0])
	if err != nil {
		return "", err
	}
	value, err := rdm6300.Canonical(args[1])
	if err != nil {
		return "", fmt.Errorf("card: %q is not ten hex digits", args[1])
	}
	repeats := s.Repeats
	if len(args) == 3 {
		n, err := strconv.Atoi(strings.TrimPrefix(args[2], "x"))
		if !strings.HasPrefix(args[2], "x") || err != nil || n < 1 || n > maxRepeats {
			return "", fmt.Errorf("card: repeat count %q must be x1 to x%d", args[2], maxRepeats)
		}
		repeats = n
	}
	frame, err := rdm6300.Encode(value)
	if err != nil {
		return "", fmt.Errorf("card: %w", err)
	}
	for i := range repeats {
		if i > 0 {
			if err := s.Sleep(ctx, s.RepeatInterval); err != nil {
				return "", err
			}
		}
		if err := write(w, frame); err != nil {
			return "", fmt.Errorf("card %s: %w", args[0], err)
		}
	}
	return fmt.Sprintf("card %s %s x%d", args[0], value, repeats), nil
}

func (s *Script) garbage(args []string) (string, error) {
	if len(args) != 2 {
		return "", errors.New("usage: garbage <reader> <n>")
	}
	w, err := s.reader("garbage", args[0])
	if err != nil {
		return "", err
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 1 || n > maxGarbage {
		return "", fmt.Errorf("garbage: count %q must be 1 to %d", args[1], maxGarbage)
	}
	b := make([]byte, n)
	for i := range b {
		// Any byte but STX, so garbage never starts a frame.
		b[i] = byte(s.Rand.IntN(255))
		if b[i] >= rdm6300.STX {
			b[i]++
		}
	}
	if err := write(w, b); err != nil {
		return "", fmt.Errorf("garbage %s: %w", args[0], err)
	}
	return fmt.Sprintf("garbage %s %d", args[0], n), nil
}

func (s *Script) raw(args []string) (string, error) {
	if len(args) < 2 {
		return "", errors.New("usage: raw <reader> <hex bytes>")
	}
	w, err := s.reader("raw", args[0])
	if err != nil {
		return "", err
	}
	b, err := hex.DecodeString(strings.Join(args[1:], ""))
	if err != nil {
		return "", fmt.Errorf("raw: %q is not hex bytes: %v", strings.Join(args[1:], " "), err)
	}
	if err := write(w, b); err != nil {
		return "", fmt.Errorf("raw %s: %w", args[0], err)
	}
	return fmt.Sprintf("raw %s % X", args[0], b), nil
}

func write(w io.Writer, b []byte) error {
	n, err := w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}

func sleepTimer(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
