// Package device drives the feedback hardware at a badge reader: a green
// and a red LED, a buzzer and a door relay, each a periph gpio.PinOut ("a
// LED, a buzzer … are semantically a PinOut"). A Panel turns a decision
// into a short timed signal on those pins; time comes from an injected
// Clock, so the driver never sleeps and tests run on a manual clock
// (package devicetest). Feedback adapts a Panel to the agent's decisions
// without importing the agent: dependencies point inward. OpenPin finds a
// real pin by name through periph's host drivers.
package device

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// ErrClosed is returned by Accept and Deny after Close.
var ErrClosed = errors.New("device: panel closed")

// Pins are the outputs a Panel drives. Any may be nil: that part is not
// wired. (A typed nil pointer in the interface is not nil: leave the field
// unset instead.)
type Pins struct {
	Green  gpio.PinOut // lit while an accepted punch is shown
	Red    gpio.PinOut // lit while a denied punch is shown
	Buzzer gpio.PinOut // one short beep on accept, DenyBeeps on deny
	Relay  gpio.PinOut // door strike: energised for RelayPulse on accept
}

func (p Pins) all() []gpio.PinOut {
	var out []gpio.PinOut
	for _, pin := range []gpio.PinOut{p.Green, p.Red, p.Buzzer, p.Relay} {
		if pin != nil {
			out = append(out, pin)
		}
	}
	return out
}

// Timing shapes the signals. Zero fields take the defaults below, except
// RelayPulse, whose zero means the relay is never pulsed.
type Timing struct {
	// Light is how long the green or red LED stays lit. On accept the
	// green LED stays lit at least as long as the door is unlocked.
	Light time.Duration
	// Beep is the length of one short beep, and of the pause between the
	// beeps of a deny.
	Beep time.Duration
	// DenyBeeps is how many short beeps a deny sounds.
	DenyBeeps int
	// RelayPulse is how long an accept energises the relay (unlocks the
	// door). Zero: the relay is not pulsed.
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

// Signaler shows a decision to the person at the reader. Both methods
// return at once; the signal runs on timers and a new one cancels it.
type Signaler interface {
	Accept() error
	Deny() error
	// Fault tells the person that the terminal itself cannot take the
	// punch (its storage is full): not a verdict on their badge.
	Fault() error
}

var _ Signaler = (*Panel)(nil)

// A Panel drives the feedback pins. Accept and Deny only switch pins and
// schedule timers: they never sleep. A new signal cancels the running
// one: every pin is switched off first, so an accept's relay pulse does
// not outlive a deny that follows it. A Panel is safe for concurrent use.
type Panel struct {
	pins      Pins
	timing    Timing
	activeLow bool
	clock     Clock
	log       *slog.Logger

	mu     sync.Mutex
	closed bool
	gen    uint64 // the running signal; timers of older ones do nothing
	timer  Timer  // the running signal's next step, nil when none
}

// step switches one pin at an offset from the signal's start.
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
	if err := p.allOff(); err != nil {
		return nil, err
	}
	return p, nil
}

// Accept lights green, sounds one short beep and, when a relay is wired
// and RelayPulse is not zero, energises the relay for RelayPulse. It
// returns the errors of the pins switched at once.
func (p *Panel) Accept() error {
	t := p.timing
	green := t.Light
	var steps []step
	if p.pins.Relay != nil && t.RelayPulse > 0 {
		steps = append(steps, step{0, p.pins.Relay, true}, step{t.RelayPulse, p.pins.Relay, false})
		green = max(green, t.RelayPulse)
	}
	steps = append(steps,
		step{0, p.pins.Green, true}, step{green, p.pins.Green, false},
		step{0, p.pins.Buzzer, true}, step{t.Beep, p.pins.Buzzer, false})
	return p.start(steps)
}

// Deny lights red and sounds DenyBeeps short beeps. The relay stays off.
func (p *Panel) Deny() error {
	t := p.timing
	steps := []step{{0, p.pins.Red, true}, {t.Light, p.pins.Red, false}}
	for i := range t.DenyBeeps {
		at := time.Duration(2*i) * t.Beep
		steps = append(steps, step{at, p.pins.Buzzer, true}, step{at + t.Beep, p.pins.Buzzer, false})
	}
	return p.start(steps)
}

// Fault lights red and green together and sounds one long beep (Light):
// unlike a deny, it says that the terminal cannot take the punch now. The
// relay stays off.
func (p *Panel) Fault() error {
	t := p.timing
	return p.start([]step{
		{0, p.pins.Red, true}, {t.Light, p.pins.Red, false},
		{0, p.pins.Green, true}, {t.Light, p.pins.Green, false},
		{0, p.pins.Buzzer, true}, {t.Light, p.pins.Buzzer, false},
	})
}

// Close stops the running signal and switches every pin off. It is safe
// to call twice; the second call does nothing.
func (p *Panel) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.cancel()
	return p.allOff()
}

// start cancels the running signal and runs steps from now on.
func (p *Panel) start(steps []step) error {
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
	p.cancel()
	err := p.allOff()
	return errors.Join(err, p.run(p.gen, 0, s))
}

// cancel makes the running signal's timers do nothing. p.mu is held.
func (p *Panel) cancel() {
	p.gen++
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
}

// run applies the steps due at offset now and schedules the rest. p.mu is
// held.
func (p *Panel) run(gen uint64, now time.Duration, s []step) error {
	var errs []error
	for len(s) > 0 && s[0].at <= now {
		errs = append(errs, p.set(s[0].pin, s[0].on))
		s = s[1:]
	}
	p.timer = nil
	if len(s) > 0 {
		next := s[0].at
		p.timer = p.clock.AfterFunc(next-now, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.gen != gen || p.closed {
				return // cancelled while the timer fired
			}
			if err := p.run(gen, next, s); err != nil {
				p.log.Error("feedback pin", "err", err)
			}
		})
	}
	return errors.Join(errs...)
}

func (p *Panel) allOff() error {
	var errs []error
	for _, pin := range p.pins.all() {
		errs = append(errs, p.set(pin, false))
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
