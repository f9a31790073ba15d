package rdm6300

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/serialport"
)

// Driver is the rdm6300 entry of reader/drivers.
var Driver = reader.Driver{
	Name:      "rdm6300",
	Doc:       "125 kHz EM4100 module (RDM6300, ID-12/ID-20) on a UART: keys port, baud",
	NewConfig: func() reader.Config { return &Settings{Baud: DefaultBaud} },
}

// DefaultBaud is the module's fixed rate.
const DefaultBaud = 9600

// Settings are the driver's keys of a [[readers]] table.
type Settings struct {
	Port string `toml:"port"` // the UART, e.g. /dev/ttyAMA0
	Baud int    `toml:"baud"`
}

// Validate implements reader.Config.
func (s *Settings) Validate() error {
	var errs []error
	if s.Port == "" {
		errs = append(errs, reader.BadKey("port", "required, e.g. \"/dev/ttyAMA0\""))
	}
	if !slices.Contains(serialport.Bauds, s.Baud) {
		errs = append(errs, reader.BadKey("baud", "%d is not a supported rate (%v)", s.Baud, serialport.Bauds))
	}
	return errors.Join(errs...)
}

// Claims implements reader.Config.
func (s *Settings) Claims() []string { return []string{s.Port} }

// New implements reader.Config.
func (s *Settings) New(env reader.Env) (reader.Reader, error) {
	port, baud := s.Port, s.Baud
	return New(Config{
		Name:         env.Name,
		Open:         func() (Port, error) { return serialport.Open(port, baud) },
		RepeatWindow: env.RepeatWindow,
		Now:          env.Now,
		Logger:       env.Logger,
	}), nil
}

// Twin implements reader.Config: a pseudo-terminal at the port, on which
// the twin writes frames as the module does.
func (s *Settings) Twin(env reader.TwinEnv) (reader.Twin, error) {
	t := &Twin{link: s.Port, serial: env.Serial}
	if err := t.Replug(); err != nil {
		return nil, err
	}
	return t, nil
}

// Defaults of a Twin's card command.
const (
	DefaultRepeats        = 3
	DefaultRepeatInterval = 30 * time.Millisecond
	maxRepeats            = 1000
	maxGarbage            = 4096
)

// A Twin is a simulated RDM6300: it writes frames to the agent's end of
// the wire. Its scenario commands:
//
//	card <10 hex digits> [xN]  an EM4100 card: its frame N times (default
//	                           Repeats), RepeatInterval apart, as the module
//	                           does while the card stays in the field
//	id12 <10 hex digits> [xN]  the same card in ID-12/ID-20 framing
//	garbage <n>                n random bytes, none of them STX
//	raw <hex bytes>            bytes as given, e.g. "02 30 41" or "023041"
type Twin struct {
	Repeats        int           // frames per card; default DefaultRepeats
	RepeatInterval time.Duration // between them; default DefaultRepeatInterval
	// Sleep waits d or until ctx is done. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand makes garbage bytes. Default: randomly seeded.
	Rand *rand.Rand

	link   string
	serial func(link string) (reader.SerialEnd, error)

	mu  sync.Mutex
	w   io.Writer
	end reader.SerialEnd // nil for a twin on a plain writer
}

// NewTwin returns a twin writing to w (a *sim.Serial or a fake); it
// cannot be unplugged.
func NewTwin(w io.Writer) *Twin { return &Twin{w: w} }

// SetRepeats sets the frames per card command and the time between them.
func (t *Twin) SetRepeats(n int, interval time.Duration) {
	t.Repeats, t.RepeatInterval = n, interval
}

// DevicePath is the pseudo-terminal the link points to.
func (t *Twin) DevicePath() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.end == nil {
		return t.link
	}
	return t.end.Path()
}

// Path implements reader.Twin.
func (t *Twin) Path() string { return t.link }

// Unplug implements reader.Twin: the pty goes away, as a pulled cable.
func (t *Twin) Unplug() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.end == nil {
		return errors.New("rdm6300: twin: not plugged in")
	}
	err := t.end.Close()
	t.end, t.w = nil, nil
	return err
}

// Replug implements reader.Twin: a new pty at the same link.
func (t *Twin) Replug() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.serial == nil {
		return errors.New("rdm6300: twin: no serial link to plug")
	}
	if t.end != nil {
		return nil
	}
	end, err := t.serial(t.link)
	if err != nil {
		return fmt.Errorf("rdm6300: twin: %w", err)
	}
	t.end, t.w = end, end
	return nil
}

// Close implements reader.Twin; it is safe twice.
func (t *Twin) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.end == nil {
		return nil
	}
	err := t.end.Close()
	t.end, t.w = nil, nil
	return err
}

// Do implements reader.Twin.
func (t *Twin) Do(ctx context.Context, cmd string, args []string) (string, error) {
	switch cmd {
	case "card", "id12":
		return t.card(ctx, cmd, args)
	case "garbage":
		return t.garbage(args)
	case "raw":
		return t.raw(args)
	}
	return "", fmt.Errorf("rdm6300 twin: unknown command %q (want card, id12, garbage or raw)", cmd)
}

func (t *Twin) writer() (io.Writer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w == nil {
		return nil, errors.New("unplugged")
	}
	return t.w, nil
}

func (t *Twin) card(ctx context.Context, cmd string, args []string) (string, error) {
	if len(args) < 1 || len(args) > 2 {
		return "", fmt.Errorf("usage: %s <reader> <10 hex digits> [xN]", cmd)
	}
	value, err := Canonical(args[0])
	if err != nil {
		return "", fmt.Errorf("%q is not ten hex digits", args[0])
	}
	repeats := t.Repeats
	if repeats == 0 {
		repeats = DefaultRepeats
	}
	if len(args) == 2 {
		n, err := strconv.Atoi(strings.TrimPrefix(args[1], "x"))
		if !strings.HasPrefix(args[1], "x") || err != nil || n < 1 || n > maxRepeats {
			return "", fmt.Errorf("repeat count %q must be x1 to x%d", args[1], maxRepeats)
		}
		repeats = n
	}
	frame, err := Encode(value)
	if err != nil {
		return "", err
	}
	if cmd == "id12" {
		// STX, data, checksum, CR, LF, ETX.
		frame = append(append(frame[:FrameLen-1:FrameLen-1], '\r', '\n'), ETX)
	}
	interval := t.RepeatInterval
	if interval == 0 {
		interval = DefaultRepeatInterval
	}
	sleep := t.Sleep
	if sleep == nil {
		sleep = reader.Wait
	}
	for i := range repeats {
		if i > 0 {
			if err := sleep(ctx, interval); err != nil {
				return "", err
			}
		}
		if err := t.write(frame); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%s %s x%d", cmd, value, repeats), nil
}

func (t *Twin) garbage(args []string) (string, error) {
	if len(args) != 1 {
		return "", errors.New("usage: garbage <reader> <n>")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 || n > maxGarbage {
		return "", fmt.Errorf("count %q must be 1 to %d", args[0], maxGarbage)
	}
	r := t.Rand
	if r == nil {
		r = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	b := make([]byte, n)
	for i := range b {
		// Any byte but STX, so garbage never starts a frame.
		b[i] = byte(r.IntN(255))
		if b[i] >= STX {
			b[i]++
		}
	}
	if err := t.write(b); err != nil {
		return "", err
	}
	return fmt.Sprintf("garbage %d", n), nil
}

func (t *Twin) raw(args []string) (string, error) {
	if len(args) < 1 {
		return "", errors.New("usage: raw <reader> <hex bytes>")
	}
	b, err := hex.DecodeString(strings.Join(args, ""))
	if err != nil {
		return "", fmt.Errorf("%q is not hex bytes: %v", strings.Join(args, " "), err)
	}
	if err := t.write(b); err != nil {
		return "", err
	}
	return fmt.Sprintf("raw % X", b), nil
}

func (t *Twin) write(b []byte) error {
	w, err := t.writer()
	if err != nil {
		return err
	}
	n, err := w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}
