package osdp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/punchclock/punchclock/reader"
)

// The twin is a simulated PD. Several twins (one per address) may share
// one pseudo-terminal, as PDs share a bus: twins are kept in a registry
// of bus twins keyed by the port's link; the first twin of a link
// creates its pty and a goroutine that frames what the driver sends and
// lets the addressed PD answer; the last Close removes it.

// ErrTwin is wrapped by the twin's errors (unknown command, bad
// argument, closed).
var ErrTwin = errors.New("osdp: twin")

var twinBuses = struct {
	mu sync.Mutex
	m  map[string]*twinBus
}{m: make(map[string]*twinBus)}

type twinBus struct {
	link   string
	serial func(string) (reader.SerialEnd, error)
	log    *slog.Logger

	mu      sync.Mutex // guards the fields below and every write to end
	end     reader.SerialEnd
	changed chan struct{} // closed and replaced when end changes
	pds     map[byte]*Twin

	cancel context.CancelFunc
	done   chan struct{}
}

// A Twin is one simulated PD. It implements reader.Twin.
type Twin struct {
	bus  *twinBus
	addr byte

	mu     sync.Mutex // guards pd
	pd     *pdSim
	closed bool
}

var _ reader.Twin = (*Twin)(nil)

// Twin builds the simulated PD at the configured address (and key).
func (c *Config) Twin(env reader.TwinEnv) (reader.Twin, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var scbk *Key
	if c.SCBK != "" {
		scbk, _ = parseKey(c.SCBK)
	}
	return NewTwin(c.Port, byte(c.Address), scbk, env.Serial, env.Logger)
}

// NewTwin returns a simulated PD at addr on the pseudo-terminal linked
// at link, created with serial if no twin has it yet.
func NewTwin(link string, addr byte, scbk *Key, serial func(string) (reader.SerialEnd, error), log *slog.Logger) (*Twin, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	twinBuses.mu.Lock()
	defer twinBuses.mu.Unlock()
	b := twinBuses.m[link]
	if b == nil {
		end, err := serial(link)
		if err != nil {
			return nil, fmt.Errorf("osdp: twin on %s: %w", link, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		b = &twinBus{link: link, serial: serial, log: log, end: end, changed: make(chan struct{}),
			pds: make(map[byte]*Twin), cancel: cancel, done: make(chan struct{})}
		twinBuses.m[link] = b
		go func() {
			defer close(b.done)
			b.run(ctx)
		}()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pds[addr] != nil {
		return nil, fmt.Errorf("%w: address %d on %s is taken", ErrTwin, addr, link)
	}
	randFill := func(p []byte) { _, _ = rand.Read(p) }
	t := &Twin{bus: b, addr: addr, pd: newPDSim(addr, scbk, randFill, time.Now)}
	b.pds[addr] = t
	return t, nil
}

// run reads what the driver sends and lets the addressed PD answer.
func (b *twinBus) run(ctx context.Context) {
	var framer Framer
	buf := make([]byte, 512)
	for ctx.Err() == nil {
		b.mu.Lock()
		end, changed := b.end, b.changed
		b.mu.Unlock()
		if end == nil { // unplugged
			select {
			case <-ctx.Done():
				return
			case <-changed:
				framer = Framer{}
				continue
			}
		}
		_ = end.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := end.Read(buf)
		framer.Feed(buf[:n], func(f Frame) { b.dispatch(end, f) })
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			// Closed under us (Unplug): wait for Replug.
			select {
			case <-ctx.Done():
				return
			case <-changed:
				framer = Framer{}
			}
		}
	}
}

func (b *twinBus) dispatch(end reader.SerialEnd, f Frame) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.end != end {
		return
	}
	for _, t := range b.pds {
		t.mu.Lock()
		r := t.pd.handle(f)
		t.mu.Unlock()
		if r != nil {
			if _, err := end.Write(r); err != nil {
				b.log.Debug("twin write", "err", err)
			}
		}
	}
}

// write sends p on the bus now (garbage, raw bytes).
func (b *twinBus) write(p []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.end == nil {
		return fmt.Errorf("%w: %s is unplugged", ErrTwin, b.link)
	}
	if _, err := b.end.Write(p); err != nil {
		return fmt.Errorf("osdp: twin: %w", err)
	}
	return nil
}

// Path returns the link the driver opens.
func (t *Twin) Path() string { return t.bus.link }

// Unplug closes the pseudo-terminal as a pulled cable: every PD on it
// goes away.
func (t *Twin) Unplug() error {
	b := t.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.end == nil {
		return nil
	}
	err := b.end.Close()
	b.end = nil
	if err != nil {
		return fmt.Errorf("osdp: twin unplug: %w", err)
	}
	return nil
}

// Replug creates the pseudo-terminal again at the same link.
func (t *Twin) Replug() error {
	b := t.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.end != nil {
		return nil
	}
	end, err := b.serial(b.link)
	if err != nil {
		return fmt.Errorf("osdp: twin replug: %w", err)
	}
	b.end = end
	close(b.changed)
	b.changed = make(chan struct{})
	return nil
}

// Close removes this PD; the last one's Close removes the
// pseudo-terminal. It is safe to call more than once.
func (t *Twin) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()

	twinBuses.mu.Lock()
	defer twinBuses.mu.Unlock()
	b := t.bus
	b.mu.Lock()
	delete(b.pds, t.addr)
	last := len(b.pds) == 0
	end := b.end
	if last {
		b.end = nil
	}
	b.mu.Unlock()
	if !last {
		return nil
	}
	delete(twinBuses.m, b.link)
	b.cancel()
	<-b.done
	if end != nil {
		if err := end.Close(); err != nil {
			return fmt.Errorf("osdp: twin close: %w", err)
		}
	}
	return nil
}

// LEDs returns the osdp_LED records the PD received, oldest first.
func (t *Twin) LEDs() []LED {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]LED(nil), t.pd.leds...)
}

// Buzzes returns the osdp_BUZ records the PD received, oldest first.
func (t *Twin) Buzzes() []Buzzer {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Buzzer(nil), t.pd.buzzes...)
}

// Pending returns how many reports the PD still holds for its next polls.
func (t *Twin) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.pd.events)
	if t.pd.inflight != nil {
		n++
	}
	return n
}

// Secure reports whether the PD has a secure session.
func (t *Twin) Secure() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pd.sess != nil
}

func colorName(c byte) string {
	switch c {
	case ColorBlack:
		return "black"
	case ColorRed:
		return "red"
	case ColorGreen:
		return "green"
	case ColorAmber:
		return "amber"
	}
	return strconv.Itoa(int(c))
}

// Do runs one scenario command:
//
//	card FAC:CARD           an osdp_RAW 26-bit H10301 read, parity set
//	card 26|34|37 FAC:CARD  the same in 26-, 34- or 37-bit Wiegand
//	card HEX                an osdp_RAW of 4×len(HEX) bits
//	card raw BITS HEX       an osdp_RAW of BITS bits
//	fmt TEXT                an osdp_FMT read of TEXT
//	keys 4821#              an osdp_KEYPPAD of those keys ('#' sent as 0x0D, '*' as 0x7F)
//	garbage N               N random bytes on the bus now
//	raw HEX                 those bytes on the bus now
//	silent DURATION         no answer from this PD for that long
//	leds                    echoes the colour of the last osdp_LED received
//
// Reads wait in the PD until the driver polls it.
func (t *Twin) Do(ctx context.Context, cmd string, args []string) (string, error) {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return "", fmt.Errorf("%w: closed", ErrTwin)
	}
	switch cmd {
	case "card":
		f, what, err := cardReply(args)
		if err != nil {
			return "", err
		}
		t.queue(f)
		return fmt.Sprintf("card %s at address %d", what, t.addr), nil
	case "fmt":
		if len(args) != 1 || len(args[0]) == 0 || len(args[0]) > 255 {
			return "", fmt.Errorf("%w: fmt TEXT", ErrTwin)
		}
		d := append([]byte{0, 0, byte(len(args[0]))}, args[0]...)
		t.queue(Frame{Code: ReplyFMT, Data: d})
		return fmt.Sprintf("fmt %s at address %d", args[0], t.addr), nil
	case "keys":
		if len(args) != 1 || len(args[0]) == 0 || len(args[0]) > 255 {
			return "", fmt.Errorf("%w: keys DIGITS", ErrTwin)
		}
		if _, err := DecodeKeypad(EncodeKeypad(args[0])); err != nil {
			return "", fmt.Errorf("%w: keys %q: %w", ErrTwin, args[0], err)
		}
		t.queue(Frame{Code: ReplyKEYPPAD, Data: EncodeKeypad(args[0])})
		return fmt.Sprintf("keys %s at address %d", args[0], t.addr), nil
	case "garbage":
		n, err := oneInt(args)
		if err != nil || n < 0 || n > 4096 {
			return "", fmt.Errorf("%w: garbage N (0–4096)", ErrTwin)
		}
		p := make([]byte, n)
		_, _ = rand.Read(p)
		if err := t.bus.write(p); err != nil {
			return "", err
		}
		return fmt.Sprintf("garbage %d bytes", n), nil
	case "raw":
		if len(args) != 1 {
			return "", fmt.Errorf("%w: raw HEX", ErrTwin)
		}
		p, err := hex.DecodeString(args[0])
		if err != nil {
			return "", fmt.Errorf("%w: raw %q: %w", ErrTwin, args[0], err)
		}
		if err := t.bus.write(p); err != nil {
			return "", err
		}
		return fmt.Sprintf("raw %d bytes", len(p)), nil
	case "silent":
		if len(args) != 1 {
			return "", fmt.Errorf("%w: silent DURATION", ErrTwin)
		}
		d, err := time.ParseDuration(args[0])
		if err != nil || d < 0 {
			return "", fmt.Errorf("%w: silent %q", ErrTwin, args[0])
		}
		t.mu.Lock()
		t.pd.silentUntil = time.Now().Add(d)
		t.mu.Unlock()
		return fmt.Sprintf("address %d silent for %v", t.addr, d), nil
	case "leds":
		leds := t.LEDs()
		if len(leds) == 0 {
			return "none", nil
		}
		return colorName(leds[len(leds)-1].TempOnColor), nil
	}
	return "", fmt.Errorf("%w: unknown command %q", ErrTwin, cmd)
}

func (t *Twin) queue(f Frame) {
	t.mu.Lock()
	t.pd.queue(f)
	t.mu.Unlock()
}

func oneInt(args []string) (int, error) {
	if len(args) != 1 {
		return 0, ErrTwin
	}
	return strconv.Atoi(args[0])
}

// cardReply builds the osdp_RAW reply of a card command.
func cardReply(args []string) (Frame, string, error) {
	usage := fmt.Errorf("%w: card FAC:CARD | card 26|34|37 FAC:CARD | card HEX | card raw BITS HEX", ErrTwin)
	switch {
	case len(args) == 1 && strings.Contains(args[0], ":"):
		return wiegandReply(26, args[0])
	case len(args) == 1:
		d, err := hex.DecodeString(args[0])
		if err != nil || len(d) == 0 {
			return Frame{}, "", usage
		}
		return Frame{Code: ReplyRAW, Data: EncodeRAW(8*len(d), d)}, args[0], nil
	case len(args) == 2:
		bits, err := strconv.Atoi(args[0])
		if err != nil {
			return Frame{}, "", usage
		}
		return wiegandReply(bits, args[1])
	case len(args) == 3 && args[0] == "raw":
		bits, err := strconv.Atoi(args[1])
		d, herr := hex.DecodeString(args[2])
		if err != nil || herr != nil || bits <= 0 || len(d) != (bits+7)/8 {
			return Frame{}, "", usage
		}
		return Frame{Code: ReplyRAW, Data: EncodeRAW(bits, d)}, args[1] + ":" + args[2], nil
	}
	return Frame{}, "", usage
}

func wiegandReply(bits int, fc string) (Frame, string, error) {
	fac, card, err := ParseFacCard(fc)
	if err != nil {
		return Frame{}, "", fmt.Errorf("%w: %w", ErrTwin, err)
	}
	d, err := EncodeWiegand(bits, fac, card)
	if err != nil {
		return Frame{}, "", fmt.Errorf("%w: %w", ErrTwin, err)
	}
	return Frame{Code: ReplyRAW, Data: EncodeRAW(bits, d)}, fc, nil
}
