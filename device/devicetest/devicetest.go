// Package devicetest holds fakes for testing code that drives feedback
// hardware: a Pin (periph's gpiotest.Pin, recording every level set), a
// manual Clock whose timers fire only when the test advances it, and a
// Signaler recording the patterns and unlocks asked of it. All are safe
// for concurrent use and under -race.
package devicetest

import (
	"sort"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/punchclock/punchclock/device"
)

var (
	_ gpio.PinOut     = (*Pin)(nil)
	_ device.Clock    = (*Clock)(nil)
	_ device.Timer    = (*timer)(nil)
	_ device.Signaler = (*Signaler)(nil)
)

// A Pin is a gpiotest.Pin that also records the history of levels set
// with Out.
type Pin struct {
	gpiotest.Pin
	hist []gpio.Level // guarded by Pin.Mutex
}

// NewPin returns a Pin called name, at Low.
func NewPin(name string) *Pin {
	return &Pin{Pin: gpiotest.Pin{N: name, L: gpio.Low}}
}

// Out implements gpio.PinOut.
func (p *Pin) Out(l gpio.Level) error {
	p.Lock()
	defer p.Unlock()
	p.L = l
	p.hist = append(p.hist, l)
	return nil
}

// Level returns the pin's current level.
func (p *Pin) Level() gpio.Level {
	p.Lock()
	defer p.Unlock()
	return p.L
}

// History returns every level set with Out, oldest first.
func (p *Pin) History() []gpio.Level {
	p.Lock()
	defer p.Unlock()
	return append([]gpio.Level(nil), p.hist...)
}

// Rises counts the Low to High transitions in the history (for example
// the beeps of a buzzer), starting from Low.
func (p *Pin) Rises() int {
	n, last := 0, gpio.Low
	for _, l := range p.History() {
		if l == gpio.High && last == gpio.Low {
			n++
		}
		last = l
	}
	return n
}

// Pins are four recording pins named like a Raspberry Pi's GPIOs.
type Pins struct {
	Green, Red, Buzzer, Relay *Pin
}

// NewPins returns four Pins at Low.
func NewPins() *Pins {
	return &Pins{
		Green:  NewPin("GPIO17"),
		Red:    NewPin("GPIO27"),
		Buzzer: NewPin("GPIO22"),
		Relay:  NewPin("GPIO23"),
	}
}

// Device returns the pins as device.Pins, all wired.
func (p *Pins) Device() device.Pins {
	return device.Pins{Green: p.Green, Red: p.Red, Buzzer: p.Buzzer, Relay: p.Relay}
}

// A Clock is a manual device.Clock. Timers fire only in Advance, in the
// order they are due, on the goroutine calling Advance; a timer a firing
// function schedules fires in the same Advance if it falls due within it.
type Clock struct {
	mu     sync.Mutex
	now    time.Duration // since the clock was made
	seq    int
	timers []*timer
}

type timer struct {
	c   *Clock
	at  time.Duration
	seq int
	f   func()
}

// NewClock returns a Clock with no timers.
func NewClock() *Clock { return &Clock{} }

// AfterFunc implements device.Clock.
func (c *Clock) AfterFunc(d time.Duration, f func()) device.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &timer{c: c, at: c.now + max(d, 0), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

// Stop implements device.Timer.
func (t *timer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.timers {
		if x == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			return true
		}
	}
	return false
}

// Advance moves the clock forward by d, firing every timer that falls due,
// each with the clock set to its due time.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now + d
	c.mu.Unlock()
	for {
		c.mu.Lock()
		sort.Slice(c.timers, func(i, j int) bool {
			a, b := c.timers[i], c.timers[j]
			return a.at < b.at || a.at == b.at && a.seq < b.seq
		})
		if len(c.timers) == 0 || c.timers[0].at > end {
			c.now = end
			c.mu.Unlock()
			return
		}
		t := c.timers[0]
		c.timers = c.timers[1:]
		c.now = t.at
		c.mu.Unlock()
		t.f()
	}
}

// Elapsed is how far the clock has been advanced.
func (c *Clock) Elapsed() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Pending is the number of timers not yet fired or stopped.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// A Signaler records the signals asked of it.
type Signaler struct {
	mu    sync.Mutex
	calls []string
	err   error
}

// Signal implements device.Signaler.
func (s *Signaler) Signal(p device.Pattern) error { return s.record(p.String()) }

// Unlock implements device.Signaler.
func (s *Signaler) Unlock() error { return s.record("unlock") }

// SetErr makes the following calls return err.
func (s *Signaler) SetErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// Calls returns, oldest first, the pattern's name ("in", "out", "deny",
// "fault") for each Signal and "unlock" for each Unlock.
func (s *Signaler) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func (s *Signaler) record(what string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, what)
	return s.err
}
