package device

import (
	"errors"
	"fmt"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"
)

// ErrPinNotFound is wrapped by OpenPin when no GPIO of that name exists on
// this host.
var ErrPinNotFound = errors.New("device: pin not found")

// OpenPin loads periph's host drivers (once; later calls reuse them) and
// returns the GPIO called name, e.g. "GPIO17" (the chip's name), "P1_11"
// (the header position) or "17". key is the configuration key that named
// the pin, for the error, e.g. "feedback.relay". A host without that pin
// (any machine without GPIO) gets an error wrapping ErrPinNotFound.
func OpenPin(key, name string) (gpio.PinOut, error) {
	if _, err := host.Init(); err != nil {
		return nil, fmt.Errorf("device: %s: pin %q: loading the GPIO drivers: %w", key, name, err)
	}
	p := gpioreg.ByName(name)
	if p == nil {
		known := len(gpioreg.All())
		hint := "this host has no GPIO driver loaded (not a Raspberry Pi, or no access to /dev/gpiochip*)"
		if known > 0 {
			hint = fmt.Sprintf("this host has %d GPIOs, e.g. %s", known, gpioreg.All()[0].Name())
		}
		return nil, fmt.Errorf("%w: key %q: no GPIO %q on this host: %s", ErrPinNotFound, key, name, hint)
	}
	return p, nil
}
