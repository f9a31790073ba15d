package device_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/punchclock/punchclock/device"
	"github.com/punchclock/punchclock/device/devicetest"
)

const pulse = 3 * time.Second

func newPanel(t *testing.T, o device.Options) (*device.Panel, *devicetest.Pins, *devicetest.Clock) {
	t.Helper()
	pins := devicetest.NewPins()
	clock := devicetest.NewClock()
	if o.Pins == (device.Pins{}) {
		o.Pins = pins.Device()
	}
	o.Clock = clock
	if o.Timing.RelayPulse == 0 {
		o.Timing.RelayPulse = pulse
	}
	p, err := device.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, pins, clock
}

// levels reads green, red, buzzer, relay as "g r b R" with 1 for High.
func levels(p *devicetest.Pins) string {
	s := ""
	for _, pin := range []*devicetest.Pin{p.Green, p.Red, p.Buzzer, p.Relay} {
		if pin.Level() == gpio.High {
			s += "1"
		} else {
			s += "0"
		}
	}
	return s
}

func TestNewSwitchesAllOff(t *testing.T) {
	pins := devicetest.NewPins()
	for _, p := range []*devicetest.Pin{pins.Green, pins.Red, pins.Buzzer, pins.Relay} {
		p.Out(gpio.High) // left on by a previous run
	}
	p, err := device.New(device.Options{Pins: pins.Device(), Clock: devicetest.NewClock()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got := levels(pins); got != "0000" {
		t.Errorf("after New: %s, want all off", got)
	}
}

// at is the state of the pins a given time after a signal started.
type at struct {
	t    time.Duration
	want string // levels
}

// follow advances clock to each checkpoint in turn (they are in time
// order, from the signal's start) and reports the pins that differ.
func follow(t *testing.T, clock *devicetest.Clock, pins *devicetest.Pins, checks []at) {
	t.Helper()
	start := clock.Elapsed()
	for _, c := range checks {
		clock.Advance(start + c.t - clock.Elapsed())
		if got := levels(pins); got != c.want {
			t.Errorf("%v after the signal: pins %s, want %s (green red buzzer relay)", c.t, got, c.want)
		}
	}
}

func TestPatterns(t *testing.T) {
	const beep = device.DefaultBeep
	for _, c := range []struct {
		pattern device.Pattern
		checks  []at
		beeps   int
	}{
		{device.PatternIn, []at{
			{0, "1010"}, {beep - 1, "1010"}, {beep, "1000"},
			{device.DefaultLight - 1, "1000"}, {device.DefaultLight, "0000"},
		}, 1},
		{device.PatternOut, []at{
			{0, "1010"}, {beep, "1000"}, {2 * beep, "1010"}, {3 * beep, "1000"},
			{device.DefaultLight - 1, "1000"}, {device.DefaultLight, "0000"},
		}, 2},
		{device.PatternDeny, []at{
			{0, "0110"}, {beep, "0100"}, {2 * beep, "0110"}, {3 * beep, "0100"},
			{4 * beep, "0110"}, {5 * beep, "0100"},
			{device.DefaultLight - 1, "0100"}, {device.DefaultLight, "0000"},
		}, device.DefaultDenyBeeps},
		{device.PatternFault, []at{ // one long tone, both LEDs
			{0, "1110"}, {beep, "1110"}, {device.DefaultLight - 1, "1110"}, {device.DefaultLight, "0000"},
		}, 1},
		{device.PatternFull, []at{ // three long beeps, both LEDs
			{0, "1110"}, {3*beep - 1, "1110"}, {3 * beep, "1100"}, {4 * beep, "1110"}, {7 * beep, "1100"},
			{8 * beep, "1110"}, {11 * beep, "1100"}, {device.DefaultLight - 1, "1100"}, {device.DefaultLight, "0000"},
		}, 3},
	} {
		t.Run(c.pattern.String(), func(t *testing.T) {
			p, pins, clock := newPanel(t, device.Options{})
			if err := p.Signal(c.pattern); err != nil {
				t.Fatal(err)
			}
			follow(t, clock, pins, c.checks)
			if n := pins.Buzzer.Rises(); n != c.beeps {
				t.Errorf("%d beeps, want %d", n, c.beeps)
			}
			if n := pins.Relay.Rises(); n != 0 {
				t.Errorf("a pattern pulsed the relay %d times", n)
			}
			if n := clock.Pending(); n != 0 {
				t.Errorf("%d timers left after the pattern", n)
			}
		})
	}
}

func TestUnknownPattern(t *testing.T) {
	p, pins, _ := newPanel(t, device.Options{})
	if err := p.Signal(device.Pattern(99)); err == nil || !strings.Contains(err.Error(), "Pattern(99)") {
		t.Errorf("Signal(99): %v, want an error naming the pattern", err)
	}
	if got := levels(pins); got != "0000" {
		t.Errorf("pins %s after an unknown pattern", got)
	}
}

func TestUnlock(t *testing.T) {
	p, pins, clock := newPanel(t, device.Options{})
	if err := p.Unlock(); err != nil {
		t.Fatal(err)
	}
	follow(t, clock, pins, []at{{0, "0001"}, {pulse - 1, "0001"}, {pulse, "0000"}})
	if n := pins.Relay.Rises(); n != 1 {
		t.Errorf("relay pulsed %d times, want 1", n)
	}
	if n := clock.Pending(); n != 0 {
		t.Errorf("%d timers left after the pulse", n)
	}
}

func TestUnlockRestartsPulse(t *testing.T) {
	p, pins, clock := newPanel(t, device.Options{})
	p.Unlock()
	clock.Advance(2 * time.Second)
	p.Unlock() // the next person: the door stays open a full pulse from now
	follow(t, clock, pins, []at{{0, "0001"}, {pulse - 1, "0001"}, {pulse, "0000"}})
	if n := pins.Relay.Rises(); n != 1 {
		t.Errorf("relay rose %d times, want once: no click between two people", n)
	}
}

// TestPatternNeverCutsPulse: whatever is shown after a door opened, the
// relay stays energised for its whole pulse.
func TestPatternNeverCutsPulse(t *testing.T) {
	for _, later := range []device.Pattern{device.PatternIn, device.PatternOut, device.PatternDeny, device.PatternFault, device.PatternFull} {
		t.Run(later.String(), func(t *testing.T) {
			p, pins, clock := newPanel(t, device.Options{})
			p.Unlock()
			p.Signal(device.PatternIn)
			clock.Advance(time.Second)
			if err := p.Signal(later); err != nil {
				t.Fatal(err)
			}
			for clock.Elapsed() < pulse {
				if pins.Relay.Level() != gpio.High {
					t.Fatalf("relay released at %v, within its %v pulse", clock.Elapsed(), pulse)
				}
				clock.Advance(50 * time.Millisecond)
			}
			if pins.Relay.Level() != gpio.Low {
				t.Errorf("relay still on at %v", clock.Elapsed())
			}
			if n := pins.Relay.Rises(); n != 1 {
				t.Errorf("relay rose %d times, want 1", n)
			}
		})
	}
}

func TestPatternReplacesPattern(t *testing.T) {
	p, pins, clock := newPanel(t, device.Options{})
	p.Signal(device.PatternIn)
	clock.Advance(time.Second)
	if err := p.Signal(device.PatternDeny); err != nil {
		t.Fatal(err)
	}
	if got := levels(pins); got != "0110" {
		t.Errorf("deny during in: pins %s, want red and buzzer only", got)
	}
	// The first pattern's timers must not switch anything any more.
	for range 50 {
		clock.Advance(100 * time.Millisecond)
		if pins.Green.Level() == gpio.High {
			t.Fatalf("at %v: green came back: pins %s", clock.Elapsed(), levels(pins))
		}
	}
	if got := levels(pins); got != "0000" {
		t.Errorf("end: pins %s, want all off", got)
	}
	if n := pins.Buzzer.Rises(); n != 1+device.DefaultDenyBeeps {
		t.Errorf("%d beeps, want 1 + %d", n, device.DefaultDenyBeeps)
	}
}

func TestUnlockWithoutPulseOrRelay(t *testing.T) {
	pins := devicetest.NewPins()
	clock := devicetest.NewClock()
	p, err := device.New(device.Options{Pins: pins.Device(), Clock: clock}) // RelayPulse 0
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Unlock(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if n := pins.Relay.Rises(); n != 0 {
		t.Errorf("relay pulsed %d times with RelayPulse 0", n)
	}

	green := devicetest.NewPin("GPIO17")
	q, err := device.New(device.Options{Pins: device.Pins{Green: green}, Clock: clock,
		Timing: device.Timing{RelayPulse: pulse}})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Unlock(); err != nil {
		t.Errorf("Unlock without a relay: %v", err)
	}
	q.Close()
	if err := q.Unlock(); !errors.Is(err, device.ErrClosed) {
		t.Errorf("Unlock without a relay after Close: %v, want ErrClosed", err)
	}
}

func TestActiveLow(t *testing.T) {
	p, pins, clock := newPanel(t, device.Options{ActiveLow: true})
	if got := levels(pins); got != "1111" {
		t.Errorf("idle, active low: pins %s, want all High (off)", got)
	}
	p.Signal(device.PatternIn)
	p.Unlock()
	if got := levels(pins); got != "0100" {
		t.Errorf("in and unlock, active low: pins %s, want green, buzzer, relay Low", got)
	}
	clock.Advance(pulse)
	p.Close()
	if got := levels(pins); got != "1111" {
		t.Errorf("closed, active low: pins %s, want all High (off)", got)
	}
}

func TestUnwiredPins(t *testing.T) {
	relay := devicetest.NewPin("GPIO23")
	clock := devicetest.NewClock()
	p, err := device.New(device.Options{Pins: device.Pins{Relay: relay}, Clock: clock,
		Timing: device.Timing{RelayPulse: pulse}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(device.PatternDeny); err != nil {
		t.Fatal(err)
	}
	if relay.Level() != gpio.High {
		t.Error("relay off at once after unlock and deny")
	}
	clock.Advance(time.Minute)
	if relay.Level() != gpio.Low {
		t.Error("relay on a minute after unlock")
	}
	p.Close()

	none, err := device.New(device.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(none.Signal(device.PatternIn), none.Unlock()); err != nil {
		t.Fatal(err)
	}
	none.Close()
}

func TestCloseTwice(t *testing.T) {
	p, pins, clock := newPanel(t, device.Options{})
	p.Unlock()
	p.Signal(device.PatternOut)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got := levels(pins); got != "0000" {
		t.Errorf("after Close: pins %s, want all off", got)
	}
	if n := clock.Pending(); n != 0 {
		t.Errorf("%d timers left after Close", n)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := p.Signal(device.PatternIn); !errors.Is(err, device.ErrClosed) {
		t.Errorf("Signal after Close: %v, want ErrClosed", err)
	}
	if err := p.Unlock(); !errors.Is(err, device.ErrClosed) {
		t.Errorf("Unlock after Close: %v, want ErrClosed", err)
	}
	clock.Advance(time.Minute)
	if got := levels(pins); got != "0000" {
		t.Errorf("after Close and a minute: pins %s", got)
	}
}

// TestSystemClock runs a short signal on real timers.
func TestSystemClock(t *testing.T) {
	pins := devicetest.NewPins()
	p, err := device.New(device.Options{Pins: pins.Device(),
		Timing: device.Timing{Light: 20 * time.Millisecond, Beep: 5 * time.Millisecond, RelayPulse: 30 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Signal(device.PatternIn)
	p.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for levels(pins) != "0000" {
		if time.Now().After(deadline) {
			t.Fatalf("pins %s five seconds after a 30ms signal", levels(pins))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConcurrent is for -race: signals from many goroutines while the
// clock runs and the panel closes.
func TestConcurrent(t *testing.T) {
	p, pins, clock := newPanel(t, device.Options{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				if i%2 == 0 {
					p.Unlock()
				}
				p.Signal(device.Pattern(1 + i%4))
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			clock.Advance(50 * time.Millisecond)
		}
	})
	wg.Wait()
	p.Close()
	clock.Advance(time.Minute)
	if got := levels(pins); got != "0000" {
		t.Errorf("after Close: pins %s", got)
	}
}

type failingPin struct{ gpiotest.Pin }

func (*failingPin) Out(gpio.Level) error { return errors.New("ioctl: no such device") }

func TestPinErrors(t *testing.T) {
	bad := &failingPin{gpiotest.Pin{N: "GPIO5"}}
	_, err := device.New(device.Options{Pins: device.Pins{Red: bad}})
	if err == nil || !strings.Contains(err.Error(), "GPIO5") {
		t.Errorf("New with a failing pin: %v, want an error naming GPIO5", err)
	}
}

func TestOpenPinUnknown(t *testing.T) {
	_, err := device.OpenPin("feedback.relay", "GPIO999")
	if !errors.Is(err, device.ErrPinNotFound) {
		t.Fatalf("OpenPin(GPIO999): %v, want ErrPinNotFound", err)
	}
	for _, want := range []string{"feedback.relay", "GPIO999"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestOpenPinRegistered(t *testing.T) {
	name := fmt.Sprintf("TESTPIN%d", time.Now().UnixNano()%1e6)
	fake := &gpiotest.Pin{N: name, Num: -1}
	if err := gpioreg.Register(fake); err != nil {
		t.Fatal(err)
	}
	defer gpioreg.Unregister(name)
	got, err := device.OpenPin("feedback.green", name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name() != name {
		t.Errorf("OpenPin returned %s, want %s", got.Name(), name)
	}
}
