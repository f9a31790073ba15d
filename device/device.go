// Package device drives the feedback hardware at a badge reader: a green
// and a red LED, a buzzer and a door relay, each a periph gpio.PinOut ("a
// LED, a buzzer … are semantically a PinOut"). A Panel turns a decision
// into a short timed signal on those pins; time comes from an injected
// Clock, so the driver never sleeps and tests run on a manual clock
// (package devicetest). Feedback adapts Panels to the agent's decisions
// without importing the agent: dependencies point inward. OpenPin finds a
// real pin by name through periph's host drivers.
//
// A terminal has one shared Panel (the [feedback] of the config) and any
// reader may have its own; Feedback routes each decision to the reader's
// Panel, else to the shared one. What the person sees and hears:
//
//	outcome                                   LEDs and buzzer                   relay (door readers only)
//	accepted, direction in (or none)          green, one short beep             pulsed if access granted
//	accepted, direction out                   green, two short beeps            pulsed if access granted
//	denied (any reason but the two below)     red, DenyBeeps short beeps        pulsed if access granted
//	store_error                               red and green, one long tone      pulsed if access granted
//	storage_full                              red and green, three long beeps   pulsed if access granted
//
// The relay follows the access decision (punch.Event.Access), not the
// attendance one: a denied double_in at a door whose access was granted
// shows red and deny beeps while the door opens, so the person learns
// their clock-in was refused and is still let through. Only readers with
// role access or both are doors; an attendance reader never pulses a
// relay. On a Panel the LED and buzzer pattern and the relay are two
// channels: a later decision replaces the pattern, but only a new grant
// (which restarts the pulse) or Close touches a running relay pulse, so a
// deny at one door never cuts the pulse of another door on a shared Panel.
package device

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// ErrClosed is returned by Signal and Unlock after Close.
var ErrClosed = errors.New("device: panel closed")

// Pins are the outputs a Panel drives. Any may be nil: that part is not
// wired. (A typed nil pointer in the interface is not nil: leave the field
// unset instead.)
type Pins struct {
	Green  gpio.PinOut // lit while an accepted punch is shown
	Red    gpio.PinOut // lit while a denied punch is shown
	Buzzer gpio.PinOut // the beeps and the fault tone of the patterns
	Relay  gpio.PinOut // door strike: energised for RelayPulse by Unlock
}

func (p Pins) all() []gpio.PinOut { return []gpio.PinOut{p.Green, p.Red, p.Buzzer, p.Relay} }

// Timing shapes the signals. Zero fields take the defaults below, except
// RelayPulse, whose zero means the relay is never pulsed.
type Timing struct {
	// Light is how long the green or red LED stays lit, and how long the
	// fault tone sounds.
	Light time.Duration
	// Beep is the length of one short beep, and of the pause between two
	// beeps.
	Beep time.Duration
	// DenyBeeps is how many short beeps a deny sounds.
	DenyBeeps int
	// RelayPulse is how long Unlock energises the relay (unlocks the
	// door). Zero: the relay is never pulsed.
	RelayPulse time.Duration
}

// Defaults for Timing fields left zero.
const (
	DefaultLight     = 2 * time.Second
	DefaultBeep      = 100 * time.Millisecond
	DefaultDenyBeeps = 3
)

// Options configure a Panel.
type Options struct {
	Pins   Pins
	Timing Timing
	// ActiveLow inverts every pin: on is Low. Many relay boards and
	// common-anode LEDs are wired so.
	ActiveLow bool
	// Clock schedules the timed steps. Nil: the system clock.
	Clock Clock
	// Logger receives errors of pins switched by a timer, where no caller
	// can take them. Nil: silent.
	Logger *slog.Logger
}

// A Pattern is what the LEDs and the buzzer show for one decision. The
// relay is not part of it: it follows the door's decision (Unlock).
type Pattern int

// Patterns, one per outcome the person at the reader must tell apart.
const (
	// PatternIn: green, one short beep. An accepted entry, or an
	// accepted punch that has no direction (a door that keeps no
	// attendance).
	PatternIn Pattern = iota + 1
	// PatternOut: green, two short beeps. An accepted exit.
	PatternOut
	// PatternDeny: red, DenyBeeps short beeps. A denied punch, including
	// an attendance error at a door that lets the person through.
	PatternDeny
	// PatternFault: red and green together and one long tone (Light):
	// the terminal could not keep the punch (its storage failed), not a
	// verdict on the badge.
	PatternFault
	// PatternFull: red and green together and three long beeps (3 Beep
	// on, 1 off): the terminal's storage is full — it refuses punches it
	// cannot keep until space frees; staff must be told.
	PatternFull
)

// String names the pattern ("in", "out", "deny", "fault"), as logs and
// devicetest.Signaler show it.
func (p Pattern) String() string {
	switch p {
	case PatternIn:
		return "in"
	case PatternOut:
		return "out"
	case PatternDeny:
		return "deny"
	case PatternFault:
		return "fault"
	case PatternFull:
		return "full"
	}
	return fmt.Sprintf("Pattern(%d)", int(p))
}

// Signaler shows decisions at a reader. Both methods return at once; the
// signals run on timers. The LED and buzzer pattern and the relay are two
// channels: a new pattern replaces the running one, but nothing except a
// new Unlock (which restarts the pulse) or Close touches a running relay
// pulse, so a deny at one door never cuts the door another reader opened.
type Signaler interface {
	// Signal shows p on the LEDs and the buzzer, replacing the running
	// pattern.
	Signal(p Pattern) error
	// Unlock energises the door relay for its pulse, from now.
	Unlock() error
}

var _ Signaler = (*Panel)(nil)

// A Panel drives the feedback pins. Signal and Unlock only switch pins and
// schedule timers: they never sleep. A Panel is safe for concurrent use.
type Panel struct {
	pins      Pins
	timing    Timing
	activeLow bool
	clock     Clock
	log       *slog.Logger

	mu      sync.Mutex
	closed  bool
	pattern channel // green, red, buzzer
	relay   channel
}

// A channel runs one timed sequence of steps at a time.
type channel struct {
	gen   uint64 // the running sequence; timers of older ones do nothing
	timer Timer  // the running sequence's next step, nil when none
}

// step switches one pin at an offset from the sequence's start.
type step struct {
	at  time.Duration
	pin gpio.PinOut
	on  bool
}

// New switches every pin off and returns the Panel.
func New(o Options) (*Panel, error) {
	t := o.Timing
	if t.Light <= 0 {
		t.Light = DefaultLight
	}
	if t.Beep <= 0 {
		t.Beep = DefaultBeep
	}
	if t.DenyBeeps <= 0 {
		t.DenyBeeps = DefaultDenyBeeps
	}
	if t.RelayPulse < 0 {
		return nil, fmt.Errorf("device: negative relay pulse %v", t.RelayPulse)
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Panel{pins: o.Pins, timing: t, activeLow: o.ActiveLow, clock: o.Clock, log: o.Logger}
	if err := p.off(p.pins.all()); err != nil {
		return nil, err
	}
	return p, nil
}

// Signal runs pattern pt on the LEDs and the buzzer (see Pattern),
// replacing the running pattern: those three pins are switched off first.
// The relay is untouched. It returns the errors of the pins switched at
// once.
func (p *Panel) Signal(pt Pattern) error {
	t := p.timing
	beeps := func(n int) []step {
		var s []step
		for i := range n {
			at := time.Duration(2*i) * t.Beep
			s = append(s, step{at, p.pins.Buzzer, true}, step{at + t.Beep, p.pins.Buzzer, false})
		}
		return s
	}
	lit := func(pin gpio.PinOut) []step {
		return []step{{0, pin, true}, {t.Light, pin, false}}
	}
	var s []step
	switch pt {
	case PatternIn:
		s = append(lit(p.pins.Green), beeps(1)...)
	case PatternOut:
		s = append(lit(p.pins.Green), beeps(2)...)
	case PatternDeny:
		s = append(lit(p.pins.Red), beeps(t.DenyBeeps)...)
	case PatternFault:
		s = append(append(lit(p.pins.Red), lit(p.pins.Green)...), lit(p.pins.Buzzer)...)
	case PatternFull:
		s = append(lit(p.pins.Red), lit(p.pins.Green)...)
		for i := range 3 {
			at := time.Duration(4*i) * t.Beep
			s = append(s, step{at, p.pins.Buzzer, true}, step{at + 3*t.Beep, p.pins.Buzzer, false})
		}
	default:
		return fmt.Errorf("device: unknown pattern %v", pt)
	}
	return p.start(&p.pattern, []gpio.PinOut{p.pins.Green, p.pins.Red, p.pins.Buzzer}, s)
}

// Unlock energises the relay for RelayPulse from now; a pulse running is
// extended to end RelayPulse from now. Without a relay, or with
// RelayPulse zero, it does nothing.
func (p *Panel) Unlock() error {
	if p.pins.Relay == nil || p.timing.RelayPulse == 0 {
		// Nothing to switch; start keeps ErrClosed after Close.
		return p.start(&p.relay, nil, nil)
	}
	// Not switched off first: the strike stays energised across the
	// restart, with no click between two people.
	return p.start(&p.relay, nil, []step{{0, p.pins.Relay, true}, {p.timing.RelayPulse, p.pins.Relay, false}})
}

// Close stops the running signals and switches every pin off. It is safe
// to call twice; the second call does nothing.
func (p *Panel) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.cancel(&p.pattern)
	p.cancel(&p.relay)
	return p.off(p.pins.all())
}

// start cancels the sequence running on ch, switches the pins clear off
// and runs steps from now on.
func (p *Panel) start(ch *channel, clear []gpio.PinOut, steps []step) error {
	// Drop unwired pins and order by offset (stable: few steps).
	var s []step
	for _, st := range steps {
		if st.pin != nil {
			s = append(s, st)
		}
	}
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].at < s[j-1].at; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.cancel(ch)
	err := p.off(clear)
	return errors.Join(err, p.run(ch, ch.gen, 0, s))
}

// cancel makes the timers of the sequence running on ch do nothing. p.mu
// is held.
func (p *Panel) cancel(ch *channel) {
	ch.gen++
	if ch.timer != nil {
		ch.timer.Stop()
		ch.timer = nil
	}
}

// run applies the steps due at offset now and schedules the rest on ch.
// p.mu is held.
func (p *Panel) run(ch *channel, gen uint64, now time.Duration, s []step) error {
	var errs []error
	for len(s) > 0 && s[0].at <= now {
		errs = append(errs, p.set(s[0].pin, s[0].on))
		s = s[1:]
	}
	ch.timer = nil
	if len(s) > 0 {
		next := s[0].at
		ch.timer = p.clock.AfterFunc(next-now, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if ch.gen != gen || p.closed {
				return // cancelled while the timer fired
			}
			if err := p.run(ch, gen, next, s); err != nil {
				p.log.Error("feedback pin", "err", err)
			}
		})
	}
	return errors.Join(errs...)
}

// off switches the wired pins among pins off.
func (p *Panel) off(pins []gpio.PinOut) error {
	var errs []error
	for _, pin := range pins {
		if pin != nil {
			errs = append(errs, p.set(pin, false))
		}
	}
	return errors.Join(errs...)
}

func (p *Panel) set(pin gpio.PinOut, on bool) error {
	if err := pin.Out(gpio.Level(on != p.activeLow)); err != nil {
		return fmt.Errorf("device: pin %s: %w", pin.Name(), err)
	}
	return nil
}

// Clock schedules a function. The system clock is time.AfterFunc;
// devicetest.Clock is a manual one.
type Clock interface {
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a scheduled function. Stop reports whether it stopped it
// before it ran.
type Timer interface {
	Stop() bool
}

type systemClock struct{}

func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
