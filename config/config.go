// Package config loads and validates the agent's TOML configuration. Every
// default is set in one place (Default), every check in Validate, and every
// error names the file, the key and what is wrong.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Sample is the commented sample configuration shipped with the agent
// (docs/config.md documents every key; a test loads it).
//
//go:embed sample.toml
var Sample []byte

// ErrInvalid is wrapped by every error Load and Validate return.
var ErrInvalid = errors.New("config: invalid")

// Config is the whole agent configuration.
type Config struct {
	DeviceID   string   `toml:"device_id"`
	DataDir    string   `toml:"data_dir"`
	Timezone   string   `toml:"timezone"`
	RosterFile string   `toml:"roster_file"`
	MQTT       MQTT     `toml:"mqtt"`
	Delivery   Delivery `toml:"delivery"`
	Storage    Storage  `toml:"storage"`
	Readers    []Reader `toml:"readers"`
	Feedback   Feedback `toml:"feedback"`
	Pairing    Pairing  `toml:"pairing"`
	Clock      Clock    `toml:"clock"`
	HTTP       HTTP     `toml:"http"`
	Display    Display  `toml:"display"`
	Roster     Roster   `toml:"roster"`
	Commands   Commands `toml:"commands"`
	// NewReaders is the state of a reader this device never ran before:
	// NewReadersEnabled or NewReadersSuspended.
	NewReaderState string `toml:"new_readers"`

	// lines locates the reader tables' keys for error messages.
	lines *keyLines
	// Location is Timezone resolved by Validate.
	Location *time.Location `toml:"-"`
	// Path is the file the configuration was loaded from, if any.
	Path string `toml:"-"`
}

// MQTT configures the uplink.
type MQTT struct {
	Broker      string `toml:"broker"` // empty: offline, buffer everything
	TopicPrefix string `toml:"topic_prefix"`
	ClientID    string `toml:"client_id"`
	Username    string `toml:"username"`
	Password    string `toml:"password"` // never shown back
	// TLS files (PEM), for an ssl:// broker only. CAFile verifies the
	// broker (empty: the system roots); CertFile and KeyFile, both or
	// neither, are the client certificate for mutual TLS.
	CAFile   string `toml:"ca_file"`
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
}

// validateTLSFiles checks that the mqtt TLS files are readable, that the
// client certificate and key come together, and that the broker uses TLS.
func (c *Config) validateTLSFiles(bad func(key, format string, args ...any)) {
	m := c.MQTT
	given := false
	for _, f := range []struct{ key, path string }{
		{"mqtt.ca_file", m.CAFile}, {"mqtt.cert_file", m.CertFile}, {"mqtt.key_file", m.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		given = true
		switch b, err := os.ReadFile(f.path); {
		case err != nil:
			bad(f.key, "%v", err)
		case len(b) == 0:
			bad(f.key, "%s is empty", f.path)
		}
	}
	switch {
	case m.CertFile != "" && m.KeyFile == "":
		bad("mqtt.key_file", "required with mqtt.cert_file %s", m.CertFile)
	case m.KeyFile != "" && m.CertFile == "":
		bad("mqtt.cert_file", "required with mqtt.key_file %s", m.KeyFile)
	}
	if given && m.Broker != "" && !strings.HasPrefix(m.Broker, "ssl://") {
		bad("mqtt.broker", "%s is not ssl://, but TLS files are given (mqtt.ca_file, cert_file, key_file)", redactURL(m.Broker))
	}
}

// Delivery configures when a record's road ends.
type Delivery struct {
	// Confirm is "broker" (the broker's PUBACK ends it) or "connector"
	// (a connector's ack on the acks topic does).
	Confirm string `toml:"confirm"`
	// ResendUnconfirmed is when a record the broker acknowledged but no
	// connector confirmed is published again.
	ResendUnconfirmed Duration `toml:"resend_unconfirmed"`
}

// Confirmation modes.
const (
	ConfirmBroker    = "broker"
	ConfirmConnector = "connector"
)

// Storage bounds what the terminal keeps.
type Storage struct {
	// Retention is how long delivered (or confirmed) records are kept
	// for the log. Undelivered ones are never evicted.
	Retention Duration `toml:"retention"`
	// MaxDataMB bounds the database and journal: status warns at 80 %
	// and 95 %; at 100 % new punches are denied storage_full.
	MaxDataMB int `toml:"max_data_mb"`
	// MaxRosterMB rejects a larger roster before it is parsed.
	MaxRosterMB int `toml:"max_roster_mb"`
}

// Directions a reader can have.
const (
	DirToggle = "toggle"
	DirIn     = "in"
	DirOut    = "out"
	// DirKey: the person presses in_key or out_key before badging;
	// without a key press the reader toggles.
	DirKey = "key"
)

// Reader roles.
const (
	RoleAttendance = "attendance"
	RoleAccess     = "access"
	RoleBoth       = "both"
)

// directionKeys are the keys a reader's in_key and out_key may name.
var directionKeys = []string{"F1", "F2", "F3", "F4", "A", "B", "C", "D", "*"}

// New reader states (new_readers).
const (
	NewReadersEnabled   = "enabled"
	NewReadersSuspended = "suspended"
)

// Pairing policies for a double arrival or departure.
const (
	PolicyDeny           = "deny"
	PolicyCloseAndReopen = "close_and_reopen"
)

// Clock says how the agent knows that the system clock is set (a
// Raspberry Pi has no real-time clock).
type Clock struct {
	// Source is "kernel" (adjtimex or systemd-timesyncd say the clock is
	// synchronised: a Pi), "trusted" (the clock is always set: a VM, a
	// container, CI) or "floor" (set once past Floor: the old rule).
	Source string `toml:"source"`
	// Floor is a date before which the clock is never set, whatever the
	// source says ("YYYY-MM-DD", UTC).
	Floor string `toml:"floor"`
	// FloorTime is Floor parsed by Validate.
	FloorTime time.Time `toml:"-"`
}

// Clock sources.
const (
	ClockKernel  = "kernel"
	ClockTrusted = "trusted"
	ClockFloor   = "floor"
)

// Pairing configures how punches pair into shifts.
type Pairing struct {
	// DoubleIn: PolicyDeny keeps a second arrival as a denied event;
	// PolicyCloseAndReopen closes the open entry into a shift flagged
	// missing_out and opens a new one. DoubleOut: PolicyDeny keeps a
	// departure with no entry open as a denied event;
	// PolicyCloseAndReopen accepts it as an event flagged missing_in
	// (no shift: no time is made up).
	DoubleIn  string `toml:"double_in"`
	DoubleOut string `toml:"double_out"`
	// MaxShift closes an entry still open after it into a shift flagged
	// auto_closed.
	MaxShift Duration `toml:"max_shift"`
	// MinShift denies an exit sooner than it after the entry (too_soon).
	MinShift Duration `toml:"min_shift"`
}

// Feedback names the GPIO pins of the feedback shown at the readers (LEDs,
// buzzer, door relay). Every pin is optional; with none set the terminal
// shows no feedback.
type Feedback struct {
	Green  string `toml:"green"`  // LED lit on an accepted punch
	Red    string `toml:"red"`    // LED lit on a denied punch
	Buzzer string `toml:"buzzer"` // beeps per outcome (docs/config.md), a long tone on a fault
	Relay  string `toml:"relay"`  // door strike, pulsed when a door reader grants access
	// RelayPulse is how long an accepted punch energises the relay;
	// 0 never pulses it.
	RelayPulse Duration `toml:"relay_pulse"`
	// ActiveLow drives every pin Low for on (relay boards and
	// common-anode LEDs are often wired so).
	ActiveLow bool `toml:"active_low"`
}

// FeedbackPin is one pin of Feedback with its configuration key.
type FeedbackPin struct {
	Key  string // e.g. "feedback.relay"
	Name string // e.g. "GPIO17"; empty: not wired
}

// Pins lists the four pins with their keys, wired or not, in the order
// green, red, buzzer, relay.
func (f Feedback) Pins() []FeedbackPin {
	return []FeedbackPin{
		{"feedback.green", f.Green},
		{"feedback.red", f.Red},
		{"feedback.buzzer", f.Buzzer},
		{"feedback.relay", f.Relay},
	}
}

// Wired reports whether any feedback pin is configured.
func (f Feedback) Wired() bool {
	return f.Green != "" || f.Red != "" || f.Buzzer != "" || f.Relay != ""
}

// Duration is a time.Duration written in TOML as a Go duration string.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler. Besides Go's
// duration syntax it takes whole days, as "30d".
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return fmt.Errorf("not a duration like \"500ms\", \"15m\" or \"30d\": %q", b)
		}
		d.Duration = time.Duration(n) * 24 * time.Hour
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("not a duration like \"500ms\", \"15m\" or \"30d\": %q", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Defaults applied by Default and by Load for keys left out.
const (
	DefaultDataDir      = "/var/lib/punchclock"
	DefaultTimezone     = "UTC"
	DefaultTopicPrefix  = "punchclock"
	DefaultRepeatWindow = 500 * time.Millisecond
	DefaultRelayPulse   = 3 * time.Second
	// MaxRelayPulse bounds relay_pulse: a door left unlocked longer is
	// a door left open.
	MaxRelayPulse = 30 * time.Second

	DefaultConfirm           = ConfirmBroker
	DefaultResendUnconfirmed = 15 * time.Minute
	DefaultRetention         = 30 * 24 * time.Hour
	DefaultMaxDataMB         = 512
	DefaultMaxRosterMB       = 32

	DefaultMaxShift   = 16 * time.Hour
	MinMaxShift       = 10 * time.Second
	MaxMaxShift       = 168 * time.Hour
	DefaultKeyTimeout = 5 * time.Second
	DefaultPINTimeout = 10 * time.Second
	DefaultClockFloor = "2026-01-01"
	DefaultInKey      = "F1"
	DefaultOutKey     = "F2"
)

// Default returns a configuration with every default set.
func Default() *Config {
	return &Config{
		DataDir:  DefaultDataDir,
		Timezone: DefaultTimezone,
		MQTT:     MQTT{TopicPrefix: DefaultTopicPrefix},
		Feedback: Feedback{RelayPulse: Duration{DefaultRelayPulse}},
		Delivery: Delivery{Confirm: DefaultConfirm, ResendUnconfirmed: Duration{DefaultResendUnconfirmed}},
		Storage:  Storage{Retention: Duration{DefaultRetention}, MaxDataMB: DefaultMaxDataMB, MaxRosterMB: DefaultMaxRosterMB},
		Pairing: Pairing{DoubleIn: PolicyDeny, DoubleOut: PolicyDeny,
			MaxShift: Duration{DefaultMaxShift}},
		NewReaderState: NewReadersEnabled,
		Clock:          Clock{Source: ClockKernel, Floor: DefaultClockFloor},
		HTTP:           HTTP{Listen: DefaultHTTPListen},
		Roster:         Roster{Refresh: DefaultRosterRefresh},
		Commands:       Commands{MaxAge: Duration{DefaultCommandMaxAge}},
	}
}

func (c *Config) fillReaderDefaults() {
	for i := range c.Readers {
		r := &c.Readers[i]
		if r.Direction == "" {
			r.Direction = DirToggle
		}
		if r.RepeatWindow.Duration == 0 {
			r.RepeatWindow.Duration = DefaultRepeatWindow
		}
		if r.Role == "" {
			r.Role = RoleAttendance
		}
		if r.InKey == "" {
			r.InKey = DefaultInKey
		}
		if r.OutKey == "" {
			r.OutKey = DefaultOutKey
		}
		if r.KeyTimeout.Duration == 0 {
			r.KeyTimeout.Duration = DefaultKeyTimeout
		}
		if r.PINTimeout.Duration == 0 {
			r.PINTimeout.Duration = DefaultPINTimeout
		}

	}
	if c.MQTT.ClientID == "" && c.DeviceID != "" {
		c.MQTT.ClientID = "punchclock-" + c.DeviceID
	}
}

// Load reads, decodes and validates the file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return Parse(path, b)
}

// Parse decodes and validates b; name is used in error messages.
func Parse(name string, b []byte) (*Config, error) {
	c := Default()
	c.Path = name
	dec := toml.NewDecoder(bytes.NewReader(b)).DisallowUnknownFields().EnableUnmarshalerInterface()
	if err := dec.Decode(c); err != nil {
		return nil, decodeError(name, err)
	}
	if errs := c.decodeReaders(b); len(errs) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	c.fillReaderDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func decodeError(name string, err error) error {
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) {
		var msgs []string
		for _, e := range sm.Errors {
			row, col := e.Position()
			msgs = append(msgs, fmt.Sprintf("%s:%d:%d: unknown key %q", name, row, col, strings.Join(e.Key(), ".")))
		}
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(msgs, "; "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		key := strings.Join(de.Key(), ".")
		if key != "" {
			return fmt.Errorf("%w: %s:%d:%d: key %q: %v", ErrInvalid, name, row, col, key, de.Error())
		}
		return fmt.Errorf("%w: %s:%d:%d: %v", ErrInvalid, name, row, col, de.Error())
	}
	return fmt.Errorf("%w: %s: %v", ErrInvalid, name, err)
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// pinRE matches periph's pin names: the chip's "GPIO17", the header's
// "P1_11", a function such as "PWM0_OUT", or the bare number "17".
var pinRE = regexp.MustCompile(`^([A-Z][A-Z0-9_]{0,31}|[0-9]{1,3})$`)

// Validate checks every key and resolves Location. Its errors name the
// file and the key.
func (c *Config) Validate() error {
	var errs []string
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("%s: key %q: %s", c.Path, key, fmt.Sprintf(format, args...)))
	}
	switch {
	case c.DeviceID == "":
		bad("device_id", "required, letters, digits, '_' or '-'")
	case !idRE.MatchString(c.DeviceID):
		bad("device_id", "%q may hold only letters, digits, '_' and '-'", c.DeviceID)
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if c.RosterFile != "" {
		if fi, err := os.Stat(c.RosterFile); err != nil {
			bad("roster_file", "%v", err)
		} else if fi.IsDir() {
			bad("roster_file", "%s is a directory, not a roster JSON file", c.RosterFile)
		}
	}
	if loc, err := time.LoadLocation(c.Timezone); err != nil || c.Timezone == "" {
		bad("timezone", "%q is not an IANA time zone such as \"Europe/Amsterdam\"", c.Timezone)
	} else {
		c.Location = loc
	}
	if b := c.MQTT.Broker; b != "" {
		u, err := url.Parse(b)
		switch {
		case err != nil:
			bad("mqtt.broker", "%q is not a URL like tcp://host:1883", redactURL(b))
		case u.User != nil:
			bad("mqtt.broker", "%s carries a user or password: give them as mqtt.username and mqtt.password", u.Redacted())
		case u.Scheme != "tcp" && u.Scheme != "ssl":
			bad("mqtt.broker", "%q must start with tcp:// or ssl:// (or be empty for offline)", u.Redacted())
		case u.Hostname() == "":
			bad("mqtt.broker", "%q names no host", u.Redacted())
		}
	}
	c.validateTLSFiles(bad)
	if p := c.MQTT.TopicPrefix; p == "" || strings.ContainsAny(p, "#+") || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		bad("mqtt.topic_prefix", "%q must be non-empty, without '#', '+' or a leading or trailing '/'", p)
	}
	c.validateReaders(&errs)
	pins := map[string]string{}
	for _, p := range c.Feedback.Pins() {
		switch {
		case p.Name == "":
		case !pinRE.MatchString(p.Name):
			bad(p.Key, "%q is not a GPIO name like \"GPIO17\" (or another periph pin name such as \"P1_11\")", p.Name)
		case pins[p.Name] != "":
			bad(p.Key, "%q is already used by %s", p.Name, pins[p.Name])
		default:
			pins[p.Name] = p.Key
		}
	}
	if v := c.Delivery.Confirm; v != ConfirmBroker && v != ConfirmConnector {
		bad("delivery.confirm", "%q must be \"broker\" or \"connector\"", v)
	}
	if d := c.Delivery.ResendUnconfirmed.Duration; d < time.Minute || d > 7*24*time.Hour {
		bad("delivery.resend_unconfirmed", "%v must be between 1m and 7d", d)
	}
	if d := c.Storage.Retention.Duration; d < time.Hour || d > 3*365*24*time.Hour {
		bad("storage.retention", "%v must be between 1h and 1095d", d)
	}
	if n := c.Storage.MaxDataMB; n < 4 || n > 1<<20 {
		bad("storage.max_data_mb", "%d must be between 4 and 1048576", n)
	}
	if n := c.Storage.MaxRosterMB; n < 1 || n > 1024 {
		bad("storage.max_roster_mb", "%d must be between 1 and 1024", n)
	}
	for _, p := range []struct{ key, v string }{{"pairing.double_in", c.Pairing.DoubleIn}, {"pairing.double_out", c.Pairing.DoubleOut}} {
		if p.v != PolicyDeny && p.v != PolicyCloseAndReopen {
			bad(p.key, "%q must be \"deny\" or \"close_and_reopen\"", p.v)
		}
	}
	if d := c.Pairing.MaxShift.Duration; d < MinMaxShift || d > MaxMaxShift {
		bad("pairing.max_shift", "%v must be between %v and %v", d, MinMaxShift, MaxMaxShift)
	}
	if d := c.Pairing.MinShift.Duration; d < 0 || d >= c.Pairing.MaxShift.Duration {
		bad("pairing.min_shift", "%v must be at least 0 and less than max_shift (%v)", d, c.Pairing.MaxShift.Duration)
	}
	c.HTTP.validate(bad)
	c.Display.validate(bad)
	if v := c.Clock.Source; v != ClockKernel && v != ClockTrusted && v != ClockFloor {
		bad("clock.source", "%q must be \"kernel\", \"trusted\" or \"floor\"", v)
	}
	if t, err := time.Parse("2006-01-02", c.Clock.Floor); err != nil {
		bad("clock.floor", "%q is not a date like \"2026-01-01\"", c.Clock.Floor)
	} else {
		c.Clock.FloorTime = t
	}
	if v := c.NewReaderState; v != NewReadersEnabled && v != NewReadersSuspended {
		bad("new_readers", "%q must be \"enabled\" or \"suspended\"", v)
	}
	if c.Feedback.Relay != "" && !slices.ContainsFunc(c.Readers, func(r Reader) bool { return r.Role == RoleAccess || r.Role == RoleBoth }) {
		bad("feedback.relay", "%s: no reader is a door (role = \"access\" or \"both\"), so the relay would never open; give the door's reader a role", c.Feedback.Relay)
	}
	if d := c.Feedback.RelayPulse.Duration; d < 0 || d > MaxRelayPulse {
		bad("feedback.relay_pulse", "%v must be between 0 and %v", d, MaxRelayPulse)
	}
	c.validateRemote(bad)
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// redactURL hides whatever stands between "://" and "@" in a string that
// did not parse as a URL: it may be a password.
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		return scheme + "://xxxxx@" + rest[i+1:]
	}
	return s
}
