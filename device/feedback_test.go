package device_test

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/punchclock/punchclock/device"
	"github.com/punchclock/punchclock/device/devicetest"
	"github.com/punchclock/punchclock/punch"
)

func TestFeedbackShow(t *testing.T) {
	granted := func(ev punch.Event) punch.Event { ev.Access = punch.AccessGranted; return ev }
	denied := func(ev punch.Event) punch.Event { ev.Access = punch.AccessDenied; return ev }
	in := punch.Event{Decision: punch.Accepted, Direction: punch.In}
	out := punch.Event{Decision: punch.Accepted, Direction: punch.Out}
	// The terminal: front is a door on the shared panel, gate a door
	// with its own, desk an attendance reader on the shared panel and
	// kiosk one with its own (LEDs only).
	doors := map[string]bool{"front": true, "gate": true, "desk": false}
	for _, c := range []struct {
		name   string
		reader string
		ev     punch.Event
		shared []string // calls on the shared panel
		own    []string // calls on the reader's own panel
	}{
		{"in at a door", "front", granted(in), []string{"unlock", "in"}, nil},
		{"out at a door", "front", granted(out), []string{"unlock", "out"}, nil},
		{"at a door with its own panel", "gate", granted(punch.Event{Decision: punch.Accepted}), nil, []string{"unlock", "in"}},
		{"double_in at an in door opens it", "front",
			granted(punch.Event{Decision: punch.Denied, Reason: punch.ReasonDoubleIn, Direction: punch.In}), []string{"unlock", "deny"}, nil},
		{"too_soon at a door with its own panel", "gate",
			granted(punch.Event{Decision: punch.Denied, Reason: punch.ReasonTooSoon}), nil, []string{"unlock", "deny"}},
		{"outside its window", "gate", denied(punch.Event{Decision: punch.Denied, Reason: punch.ReasonOutsideWindow}), nil, []string{"deny"}},
		{"unknown credential", "front", punch.Event{Decision: punch.Denied, Reason: punch.ReasonUnknownCredential}, []string{"deny"}, nil},
		{"an attendance reader never unlocks", "desk", granted(in), []string{"in"}, nil},
		{"an attendance reader with its own panel", "kiosk", granted(out), nil, []string{"out"}},
		{"a reader neither door nor configured", "lobby", granted(in), []string{"in"}, nil},
		{"storage full", "front", punch.Event{Decision: punch.Denied, Reason: punch.ReasonStorageFull}, []string{"full"}, nil},
		{"store error, access granted", "gate",
			granted(punch.Event{Decision: punch.Denied, Reason: punch.ReasonStoreError}), nil, []string{"unlock", "fault"}},
		{"no decision", "front", punch.Event{Decision: "maybe"}, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			shared, gate, kiosk := &devicetest.Signaler{}, &devicetest.Signaler{}, &devicetest.Signaler{}
			fb := device.NewFeedback(device.FeedbackOptions{
				Shared:  shared,
				Readers: map[string]device.Signaler{"gate": gate, "kiosk": kiosk},
				Doors:   doors,
			})
			fb.Show(c.reader, c.ev)
			own := append(gate.Calls(), kiosk.Calls()...)
			if got := shared.Calls(); !slices.Equal(got, c.shared) {
				t.Errorf("shared panel: %v, want %v", got, c.shared)
			}
			if !slices.Equal(own, c.own) {
				t.Errorf("own panels: %v, want %v", own, c.own)
			}
		})
	}
}

func TestFeedbackWithoutShared(t *testing.T) {
	gate := &devicetest.Signaler{}
	fb := device.NewFeedback(device.FeedbackOptions{Readers: map[string]device.Signaler{"gate": gate}})
	fb.Show("front", punch.Event{Decision: punch.Accepted, Access: punch.AccessGranted}) // no panel: nothing
	fb.Show("gate", punch.Event{Decision: punch.Denied})
	if got, want := gate.Calls(), []string{"deny"}; !slices.Equal(got, want) {
		t.Errorf("gate: %v, want %v", got, want)
	}
}

func TestFeedbackCopiesMaps(t *testing.T) {
	shared, gate := &devicetest.Signaler{}, &devicetest.Signaler{}
	readers := map[string]device.Signaler{"gate": gate}
	doors := map[string]bool{"gate": true}
	fb := device.NewFeedback(device.FeedbackOptions{Shared: shared, Readers: readers, Doors: doors})
	delete(readers, "gate")
	doors["front"] = true
	fb.Show("gate", punch.Event{Decision: punch.Accepted, Access: punch.AccessGranted})
	fb.Show("front", punch.Event{Decision: punch.Accepted, Access: punch.AccessGranted})
	if got, want := gate.Calls(), []string{"unlock", "in"}; !slices.Equal(got, want) {
		t.Errorf("gate: %v, want %v", got, want)
	}
	if got, want := shared.Calls(), []string{"in"}; !slices.Equal(got, want) {
		t.Errorf("shared: %v, want %v (front was not a door when the Feedback was made)", got, want)
	}
}

func TestFeedbackLogsErrors(t *testing.T) {
	sig := &devicetest.Signaler{}
	sig.SetErr(errors.New("pin broken"))
	var log strings.Builder
	fb := device.NewFeedback(device.FeedbackOptions{Shared: sig, Doors: map[string]bool{"back": true},
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	fb.Show("back", punch.Event{Decision: punch.Denied, Reason: punch.ReasonDoubleIn, Access: punch.AccessGranted})
	for _, want := range []string{"pin broken", "reader=back", "reason=double_in"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log %q, want %s", log.String(), want)
		}
	}
	if got, want := sig.Calls(), []string{"unlock", "deny"}; !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v: a failing relay must not stop the pattern", got, want)
	}
}

// TestSharedPanelTwoDoors: two doors on one panel; a deny at the second
// does not cut the first one's pulse, a grant there restarts it, and an
// attendance reader on the same panel never touches it.
func TestSharedPanelTwoDoors(t *testing.T) {
	p, pins, clock := newPanel(t, device.Options{})
	fb := device.NewFeedback(device.FeedbackOptions{Shared: p, Doors: map[string]bool{"a": true, "b": true}})
	fb.Show("a", punch.Event{Decision: punch.Accepted, Direction: punch.In, Access: punch.AccessGranted})
	clock.Advance(time.Second)
	fb.Show("b", punch.Event{Decision: punch.Denied, Reason: punch.ReasonOutsideWindow, Access: punch.AccessDenied})
	fb.Show("desk", punch.Event{Decision: punch.Accepted, Direction: punch.Out, Access: punch.AccessGranted})
	if got := levels(pins); got != "1011" {
		t.Errorf("after a's grant, b's deny and desk's out: pins %s, want green, beep and the relay held", got)
	}
	follow(t, clock, pins, []at{{pulse - time.Second - 1, "1001"}, {pulse - time.Second, "0000"}}) // the pulse ends 3s after a's grant, the green of desk's out with it

	// b grants 1s before a's pulse ends: the door stays open a full
	// pulse from b's grant, with no release in between.
	fb.Show("a", punch.Event{Decision: punch.Accepted, Access: punch.AccessGranted})
	clock.Advance(pulse - time.Second)
	fb.Show("b", punch.Event{Decision: punch.Accepted, Access: punch.AccessGranted})
	follow(t, clock, pins, []at{{pulse - 1, "0001"}, {pulse, "0000"}})
	if n := pins.Relay.Rises(); n != 2 {
		t.Errorf("relay rose %d times, want 2 (a, then a again extended by b)", n)
	}
}

// TestOwnPanels: each door drives its own relay; a deny at one does not
// touch the other's pins.
func TestOwnPanels(t *testing.T) {
	clock := devicetest.NewClock()
	panel := func() (*device.Panel, *devicetest.Pins) {
		pins := devicetest.NewPins()
		p, err := device.New(device.Options{Pins: pins.Device(), Clock: clock, Timing: device.Timing{RelayPulse: pulse}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p, pins
	}
	a, aPins := panel()
	b, bPins := panel()
	fb := device.NewFeedback(device.FeedbackOptions{
		Readers: map[string]device.Signaler{"a": a, "b": b},
		Doors:   map[string]bool{"a": true, "b": true},
	})
	// A forgotten exit at a: attendance says double_in, the door opens.
	fb.Show("a", punch.Event{Decision: punch.Denied, Reason: punch.ReasonDoubleIn, Direction: punch.In, Access: punch.AccessGranted})
	fb.Show("b", punch.Event{Decision: punch.Denied, Reason: punch.ReasonReaderNotAllowed, Access: punch.AccessDenied})
	if got := levels(aPins); got != "0111" {
		t.Errorf("door a after double_in: pins %s, want red, beep and the relay", got)
	}
	if got := levels(bPins); got != "0110" {
		t.Errorf("door b after its deny: pins %s, want red and beep, relay off", got)
	}
	clock.Advance(pulse - 1)
	if aPins.Relay.Level() != gpio.High || bPins.Relay.Rises() != 0 {
		t.Errorf("at %v: a's relay %v, b's relay rose %d times", clock.Elapsed(), aPins.Relay.Level(), bPins.Relay.Rises())
	}
	clock.Advance(1)
	if aPins.Relay.Level() != gpio.Low {
		t.Errorf("a's relay on after its pulse")
	}
}

// The remote open command pulses a door's relay, its own or the shared
// one, and refuses a reader that is no door or has no panel.
func TestFeedbackOpen(t *testing.T) {
	shared, gate := &devicetest.Signaler{}, &devicetest.Signaler{}
	fb := device.NewFeedback(device.FeedbackOptions{Shared: shared, Readers: map[string]device.Signaler{"gate": gate},
		Doors: map[string]bool{"gate": true, "door": true}})
	if err := fb.Open("gate"); err != nil || !slices.Equal(gate.Calls(), []string{"unlock"}) {
		t.Fatalf("gate: %v, calls %v", err, gate.Calls())
	}
	if err := fb.Open("door"); err != nil || !slices.Equal(shared.Calls(), []string{"unlock"}) {
		t.Fatalf("door on the shared panel: %v, calls %v", err, shared.Calls())
	}
	if err := fb.Open("front"); err == nil || !strings.Contains(err.Error(), "not a door") {
		t.Fatalf("an attendance reader opened: %v", err)
	}
	lone := device.NewFeedback(device.FeedbackOptions{Doors: map[string]bool{"door": true}})
	if err := lone.Open("door"); err == nil || !strings.Contains(err.Error(), "no door relay") {
		t.Fatalf("a door without a panel: %v", err)
	}
}
