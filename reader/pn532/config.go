package pn532

import (
	"errors"
	"fmt"
	"slices"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/serialport"
)

// Driver is the pn532 entry of reader/drivers.
var Driver = reader.Driver{
	Name:      "pn532",
	Doc:       "NXP PN532 13.56 MHz NFC module (ISO 14443A UIDs) on a UART (HSU): keys port, baud",
	NewConfig: func() reader.Config { return &Config{Baud: DefaultBaud} },
}

// DefaultBaud is the PN532's HSU rate after power-up.
const DefaultBaud = PowerUpBaud

// Bauds are the rates the serial layer (reader/serialport) supports that
// the PN532's HSU also speaks. At any but 115200 the driver wakes the
// module at 115200 and switches it with SetSerialBaudRate.
var Bauds = []int{9600, 19200, 38400, 57600, 115200}

// Config is the driver's keys of a [[readers]] table.
type Config struct {
	Port string `toml:"port"` // the UART, e.g. /dev/ttyAMA0 or /dev/serial0
	Baud int    `toml:"baud"` // default DefaultBaud
}

var _ reader.Config = (*Config)(nil)

// Validate implements reader.Config.
func (c *Config) Validate() error {
	var errs []error
	if c.Port == "" {
		errs = append(errs, reader.BadKey("port", "required, e.g. \"/dev/ttyAMA0\""))
	}
	if !slices.Contains(Bauds, c.Baud) {
		errs = append(errs, reader.BadKey("baud", "%d is not a supported rate (%v)", c.Baud, Bauds))
	}
	return errors.Join(errs...)
}

// Claims implements reader.Config: the UART, for this reader alone.
func (c *Config) Claims() []string { return []string{c.Port} }

// New implements reader.Config.
func (c *Config) New(env reader.Env) (reader.Reader, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("pn532: %w", err)
	}
	port := c.Port
	return New(Options{
		Name:         env.Name,
		Open:         func(baud int) (Port, error) { return serialport.Open(port, baud) },
		Baud:         c.Baud,
		RepeatWindow: env.RepeatWindow,
		Now:          env.Now,
		Logger:       env.Logger,
	}), nil
}

// Twin implements reader.Config: a simulated PN532 on a pseudo-terminal
// linked at the port.
func (c *Config) Twin(env reader.TwinEnv) (reader.Twin, error) {
	if env.Serial == nil {
		return nil, fmt.Errorf("pn532: twin %q: no serial environment", env.Name)
	}
	t := NewTwin(c.Port, env.Serial)
	if env.Logger != nil {
		t.Logger = env.Logger
	}
	if err := t.Replug(); err != nil {
		return nil, err
	}
	return t, nil
}
