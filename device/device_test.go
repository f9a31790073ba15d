package device_test

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/punchclock/punchclock/device"
	"github.com/punchclock/punchclock/device/devicetest"
	"github.com/punchclock/punchclock/punch"
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

func TestAcceptPulsesRelay(t *testing.T) {
	p, pins, clock := newPanel(t, device.Options{})
	if err := p.Accept(); err != nil {
		t.Fatal(err)
	}
	// green, red, buzzer, relay
	for _, c := range []struct {
		advance time.Duration
		want    string
	}{
		{0, "1011"},                  // green, beep, door unlocked
		{device.DefaultBeep, "1001"}, // beep over
		{pulse - device.DefaultBeep - time.Nanosecond, "1001"}, // relay still held
		{time.Nanosecond, "0000"},                              // pulse over: relay released, green off with it
	} {
		clock.Advance(c.advance)
		if got := levels(pins); got != c.want {
			t.Errorf("at %v: pins %s, want %s", clock.Elapsed(), got, c.want)
		}
	}
	if n := clock.Pending(); n != 0 {
		t.Errorf("%d timers left after the signal", n)
	}
	if n := pins.Relay.Rises(); n != 1 {
		t.Errorf("relay pulsed %d times, want 1", n)
	}
}

func TestAcceptWithoutRelayPulse(t *testing.T) {
	pins := devicetest.NewPins()
	clock := devicetest.NewClock()
	p, err := device.New(device.Options{Pins: pins.Device(), Clock: clock}) // RelayPulse 0
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Accept()
	if got := levels(pins); got != "1010" {
		t.Errorf("pins %s, want green and beep, relay off", got)
	}
	clock.Advance(device.DefaultLight)
	if got := levels(pins); got != "0000" {
		t.Errorf("after %v: pins %s, want all off", device.DefaultLight, got)
	}
	if n := pins.Relay.Rises(); n != 0 {
		t.Errorf("relay pulsed %d times with RelayPulse 0", n)
	}
}

func TestDeny(t *testing.T) {
	p, pins, clock := newPanel(t, device.Options{})
	if err := p.Deny(); err != nil {
		t.Fatal(err)
	}
	if got := levels(pins); got != "0110" {
		t.Errorf("pins %s, want red and buzzer", got)
	}
	clock.Advance(device.DefaultLight)
	if got := levels(pins); got != "0000" {
		t.Errorf("after %v: pins %s, want all off", device.DefaultLight, got)
	}
	if n := pins.Buzzer.Rises(); n != device.DefaultDenyBeeps {
		t.Errorf("%d beeps, want %d", n, device.DefaultDenyBeeps)
	}
	if n := pins.Relay.Rises(); n != 0 {
		t.Errorf("deny pulsed the relay")
	}
}

func TestDenyCancelsAccept(t *testing.T) {
	p, pins, clock := newPanel(t, device.Options{})
	p.Accept()
	clock.Advance(time.Second) // door unlocked, green lit
	if got := levels(pins); got != "1001" {
		t.Fatalf("during accept: pins %s", got)
	}
	if err := p.Deny(); err != nil {
		t.Fatal(err)
	}
	if got := levels(pins); got != "0110" {
		t.Errorf("deny during accept: pins %s, want red and buzzer, relay off", got)
	}
	// The accept's timers must not switch anything any more.
	for range 50 {
		clock.Advance(100 * time.Millisecond)
		if pins.Relay.Level() == gpio.High || pins.Green.Level() == gpio.High {
			t.Fatalf("at %v: accept came back: pins %s", clock.Elapsed(), levels(pins))
		}
	}
	if got := levels(pins); got != "0000" {
		t.Errorf("end: pins %s, want all off", got)
	}
	if n := pins.Buzzer.Rises(); n != 1+device.DefaultDenyBeeps {
		t.Errorf("%d beeps, want 1 + %d", n, device.DefaultDenyBeeps)
	}
}

func TestAcceptRestartsPulse(t *testing.T) {
	p, pins, clock := newPanel(t, device.Options{})
	p.Accept()
	clock.Advance(2 * time.Second)
	p.Accept() // the next person: the door stays open a full pulse from now
	clock.Advance(2 * time.Second)
	if pins.Relay.Level() != gpio.High {
		t.Errorf("relay released %v after the second accept, want it held %v", 2*time.Second, pulse)
	}
	clock.Advance(time.Second)
	if got := levels(pins); got != "0000" {
		t.Errorf("pins %s, want all off", got)
	}
}

func TestActiveLow(t *testing.T) {
	p, pins, clock := newPanel(t, device.Options{ActiveLow: true})
	if got := levels(pins); got != "1111" {
		t.Errorf("idle, active low: pins %s, want all High (off)", got)
	}
	p.Accept()
	if got := levels(pins); got != "0100" {
		t.Errorf("accept, active low: pins %s, want green, buzzer, relay Low", got)
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
	if err := p.Accept(); err != nil {
		t.Fatal(err)
	}
	if err := p.Deny(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if relay.Level() != gpio.Low {
		t.Error("relay on after deny")
	}
	p.Close()

	none, err := device.New(device.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := none.Accept(); err != nil {
		t.Fatal(err)
	}
	none.Close()
}

func TestCloseTwice(t *testing.T) {
	p, pins, clock := newPanel(t, device.Options{})
	p.Accept()
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
	if err := p.Accept(); !errors.Is(err, device.ErrClosed) {
		t.Errorf("Accept after Close: %v, want ErrClosed", err)
	}
	if err := p.Deny(); !errors.Is(err, device.ErrClosed) {
		t.Errorf("Deny after Close: %v, want ErrClosed", err)
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
	p.Accept()
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
					p.Accept()
				} else {
					p.Deny()
				}
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

func TestFeedback(t *testing.T) {
	sig := &devicetest.Signaler{}
	fb := device.NewFeedback(sig, nil)
	fb.Show("front", punch.Event{Decision: punch.Accepted})
	fb.Show("front", punch.Event{Decision: punch.Denied, Reason: punch.ReasonUnknownCredential})
	fb.Show("back", punch.Event{Decision: "maybe"})
	fb.Show("back", punch.Event{Decision: punch.Denied, Reason: punch.ReasonStorageFull})
	if got, want := sig.Calls(), []string{"accept", "deny", "fault"}; !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}

	var log strings.Builder
	sig.SetErr(errors.New("pin broken"))
	fb = device.NewFeedback(sig, slog.New(slog.NewTextHandler(&log, nil)))
	fb.Show("back", punch.Event{Decision: punch.Denied})
	if !strings.Contains(log.String(), "pin broken") || !strings.Contains(log.String(), "reader=back") {
		t.Errorf("log %q, want the pin error and the reader", log.String())
	}
}

func TestFeedbackDrivesPanel(t *testing.T) {
	p, pins, _ := newPanel(t, device.Options{})
	fb := device.NewFeedback(p, nil)
	fb.Show("front", punch.Event{Decision: punch.Accepted})
	if got := levels(pins); got != "1011" {
		t.Errorf("accepted: pins %s", got)
	}
	fb.Show("front", punch.Event{Decision: punch.Denied})
	if got := levels(pins); got != "0110" {
		t.Errorf("denied: pins %s", got)
	}
	fb.Show("front", punch.Event{Decision: punch.Denied, Reason: punch.ReasonStorageFull})
	if got := levels(pins); got != "1110" {
		t.Errorf("storage full: pins %s, want red, green and the buzzer", got)
	}
	if n := pins.Relay.Rises(); n != 1 {
		t.Errorf("relay pulsed %d times, want once (the accept only)", n)
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
