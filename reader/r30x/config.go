package r30x

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/serialport"
)

// Driver is the r30x driver, as reader/drivers lists it.
var Driver = reader.Driver{
	Name: "r30x",
	Doc:  "R305/R307/R503/AS608 (ZFM-20 family) fingerprint sensor on a UART",
	NewConfig: func() reader.Config {
		return &Config{
			Baud:     DefaultBaud,
			Address:  "FFFFFFFF",
			Password: "00000000",
			MinScore: DefaultMinScore,
		}
	},
}

// DefaultBaud is the sensors' factory rate (9600 × 6).
const DefaultBaud = 57600

// TwinPages is the size of the twin's template library (an AS608's).
const TwinPages = 300

// Config is the [[readers]] table of an r30x reader, minus the keys the
// loader owns.
type Config struct {
	Port string `toml:"port"` // the UART, e.g. /dev/serial0
	Baud int    `toml:"baud"`
	// Address and Password are 8 hex digits: the 32-bit values, sent
	// big-endian.
	Address  string `toml:"address"`
	Password string `toml:"password"`
	MinScore int    `toml:"min_score"`
}

// The sensors run at 9600 × N baud (N = 1..12); these are the ones the
// serial library can set.
var bauds = []int{9600, 19200, 38400, 57600, 115200}

// Validate checks the keys.
func (c *Config) Validate() error {
	var errs []error
	if c.Port == "" {
		errs = append(errs, reader.BadKey("port", "is required"))
	}
	okBaud := false
	for _, b := range bauds {
		okBaud = okBaud || c.Baud == b
	}
	if !okBaud {
		errs = append(errs, reader.BadKey("baud", "%d is not one of %v", c.Baud, bauds))
	}
	if a, err := parseHex32(c.Address); err != nil {
		errs = append(errs, reader.BadKey("address", "%v", err))
	} else if a == 0 {
		errs = append(errs, reader.BadKey("address", "00000000 is not supported (FFFFFFFF is the factory address)"))
	}
	if _, err := parseHex32(c.Password); err != nil {
		// Never echo a password, even a malformed one.
		errs = append(errs, reader.BadKey("password", "must be 8 hex digits (the value is not shown)"))
	}
	if c.MinScore < 0 || c.MinScore > 0xFFFF {
		errs = append(errs, reader.BadKey("min_score", "%d is outside 0..65535", c.MinScore))
	}
	return errors.Join(errs...)
}

var errHex32 = errors.New("must be 8 hex digits")

func parseHex32(s string) (uint32, error) {
	if len(s) != 8 {
		return 0, fmt.Errorf("%q %w", s, errHex32)
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%q %w", s, errHex32)
	}
	return uint32(v), nil
}

// Claims names the UART.
func (c *Config) Claims() []string { return []string{c.Port} }

// New builds the reader on the configured UART.
func (c *Config) New(env reader.Env) (reader.Reader, error) {
	opt, err := c.options(env.Name)
	if err != nil {
		return nil, err
	}
	port, baud := c.Port, c.Baud
	opt.Open = func() (Port, error) { return serialport.Open(port, baud) }
	opt.Logger = env.Logger
	opt.Now = env.Now
	return NewReader(opt), nil
}

func (c *Config) options(name string) (Options, error) {
	if err := c.Validate(); err != nil {
		return Options{}, err
	}
	addr, _ := parseHex32(c.Address)
	pw, _ := parseHex32(c.Password)
	ms := c.MinScore
	if ms == 0 {
		ms = -1 // Options: zero means the default, negative means none
	}
	return Options{Name: name, Address: addr, Password: pw, MinScore: ms}, nil
}

// Twin builds the simulated sensor on a pseudo-terminal at the
// configured port, with an empty library of TwinPages pages.
func (c *Config) Twin(env reader.TwinEnv) (reader.Twin, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	addr, _ := parseHex32(c.Address)
	pw, _ := parseHex32(c.Password)
	return NewTwin(TwinOptions{
		Name:     env.Name,
		Link:     c.Port,
		Address:  addr,
		Password: pw,
		Pages:    TwinPages,
		Serial:   env.Serial,
		Logger:   env.Logger,
	})
}
