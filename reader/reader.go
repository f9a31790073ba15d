// Package reader defines what every credential reader driver delivers to
// the agent, and how a driver plugs in: a Read, one per presentation of a
// credential or per key press; a Driver, which owns its configuration
// keys, builds its Reader and its simulator twin. Drivers live in
// sub-packages (reader/rdm6300, reader/pn532, ...), one folder each, and
// are listed in one place (reader/drivers). Each keeps its wire framing
// in a pure function apart from the port I/O. Readers know nothing of
// decisions, storage or MQTT.
package reader

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"
)

// What a Read carries. The credential types match the "type" of roster
// credentials.
const (
	TypeCard        = "card"
	TypePIN         = "pin"
	TypeFingerprint = "fingerprint"
	// TypeKey is one key press on a keypad: Value is the key's label,
	// "0"…"9", "#", "*", or a function key "A"…"D" or "F1"…"F4". The
	// agent assembles PINs from key presses (digits, '#' ends, '*'
	// clears); drivers report every key as it is pressed.
	TypeKey = "key"
)

// Card formats: how a card Read's Value is spelled, so that the roster
// matches it (package credential defines the matching).
const (
	// FormatEM4100: ten upper-case hex digits, a version byte and four
	// ID bytes (RDM6300, ID-12/ID-20).
	FormatEM4100 = "em4100"
	// FormatUID: an ISO 14443A UID of 4, 7 or 10 bytes in upper-case
	// hex, e.g. "04A1B2C3D4E5F6" (PN532).
	FormatUID = "uid"
	// FormatWiegand26: an H10301 26-bit read as "facility:card" in
	// decimal, e.g. "123:45678", the form printed on the cards.
	FormatWiegand26 = "wiegand26"
	// FormatWiegand34 and FormatWiegand37 (H10304): "facility:card" in
	// decimal too (34-bit: 16-bit facility, 16-bit card; 37-bit H10304:
	// 16-bit facility, 19-bit card).
	FormatWiegand34 = "wiegand34"
	FormatWiegand37 = "wiegand37"
	// FormatRaw: card bits in no known format, as "bits:hex", e.g.
	// "32:0A1B2C3D" (an OSDP raw read or a Wiegand frame of another
	// length).
	FormatRaw = "raw"
	// FormatTyped: what a keyboard-wedge reader typed before Enter,
	// unchanged (most type an EM card's ten-digit decimal).
	FormatTyped = "typed"
)

// A Read is one presentation of one credential, or one key press, at one
// reader.
type Read struct {
	Reader string // configured reader name, e.g. "front"
	Type   string // TypeCard, TypeFingerprint, TypeKey (TypePIN: assembled by the agent)
	// Value is the canonical value: for cards as Format says, for a
	// fingerprint the sensor page that matched (decimal, "17"; empty for
	// no match), for a key its label.
	Value  string
	Format string // for cards: FormatEM4100, FormatUID, ...
	// Score is a fingerprint match's confidence as the sensor reports
	// it (0 for no match or for other types).
	Score int
	At    time.Time // when the last byte of the credential arrived
}

// A Reader delivers Reads until its context is cancelled. Run owns every
// goroutine it starts and returns only after they have stopped. A reader
// whose port fails keeps retrying (with backoff) rather than returning: Run
// returns nil when ctx is done, or an error only for a configuration that
// can never work.
type Reader interface {
	Name() string
	Run(ctx context.Context, out chan<- Read) error
}

// Stats are counters a driver keeps for technicians.
type Stats struct {
	Frames    uint64 `json:"frames"`     // good frames decoded
	Reads     uint64 `json:"reads"`      // presentations reported (repeats folded)
	BadFrames uint64 `json:"bad_frames"` // frames rejected (checksum, parity, wrong length)
	Garbage   uint64 `json:"garbage"`    // bytes (or edges) discarded while resynchronising
	Reopens   uint64 `json:"reopens"`    // times the port was (re)opened after a failure
	Timeouts  uint64 `json:"timeouts"`   // requests a polled reader did not answer in time
}

// A StatsReader is a Reader that keeps Stats. Every driver should.
type StatsReader interface {
	Stats() Stats
}

// Reader states, as status shows them.
const (
	StateOnline  = "online"
	StateOffline = "offline"
)

// OfflineAfter is how long a polled reader may go without answering
// before it is offline.
const OfflineAfter = 5 * time.Second

// A Stater is a Reader that knows whether its hardware answers: polled
// readers (PN532, fingerprint sensors, OSDP) report StateOffline when
// the reader has not answered for OfflineAfter, until it answers again.
// A reader that is not a Stater is shown online while its port is open.
type Stater interface {
	State() string
}

// A Signal is the outcome a reader with its own LED and buzzer (OSDP)
// shows for a decision.
type Signal struct {
	Accepted bool
}

// An Indicator is a Reader with its own LED and buzzer. Indicate must not
// block: the driver queues the signal and sends it on its own goroutine.
type Indicator interface {
	Indicate(Signal)
}

// An Enroller is a Reader that stores biometric templates in the sensor
// (R30x). Both calls go through the reader's own goroutine, so they may
// wait for a capture; they return when ctx is done.
type Enroller interface {
	// Enroll takes two captures of a finger, merges them and stores
	// the template at the lowest page that is free on the sensor and
	// not taken (pages the roster gives someone, say on another
	// sensor), which it returns. The captures are not Reads.
	Enroll(ctx context.Context, taken func(page int) bool) (page int, err error)
	// Erase deletes the templates at pages from the sensor.
	Erase(ctx context.Context, pages []int) error
}

// ErrBadFrame is wrapped by framing errors.
var ErrBadFrame = errors.New("reader: bad frame")

// ErrConfig is wrapped by the errors of a Config's Validate and New.
var ErrConfig = errors.New("reader: invalid config")

// A KeyError is a configuration error about one key of a reader's table;
// the config loader adds the file and line.
type KeyError struct {
	Key string // the TOML key, e.g. "baud"
	Msg string // what is wrong, e.g. "7 is not a supported rate"
}

func (e *KeyError) Error() string { return "key " + e.Key + ": " + e.Msg }

// Unwrap makes a KeyError match ErrConfig.
func (e *KeyError) Unwrap() error { return ErrConfig }

// BadKey returns a *KeyError for key.
func BadKey(key, format string, args ...any) error {
	return &KeyError{Key: key, Msg: sprintf(format, args...)}
}

// A Driver is one kind of reader. Its package exports one, and
// reader/drivers lists them all; nothing else names a driver.
type Driver struct {
	Name string // the `driver = "..."` of [[readers]]
	// Doc is one line for sample configs and error messages.
	Doc string
	// NewConfig returns a new configuration with the driver's defaults
	// set. The config loader decodes the reader's TOML table into it
	// (keys it does not know are errors; the common keys name, driver,
	// direction and repeat_window are the loader's), then calls
	// Validate.
	NewConfig func() Config
}

// Config is one reader's driver-specific configuration: a pointer to a
// struct with `toml` tags.
type Config interface {
	// Validate checks the keys; its errors are *KeyError (joined with
	// errors.Join when there are several).
	Validate() error
	// Claims names the resources the reader uses: device paths and GPIO
	// lines. Two readers claiming the same one are a config error,
	// unless both claim it as shared (an RS-485 bus: "shared:" prefix).
	// "agree:NAME=VALUE" says that every reader claiming NAME must
	// give the same VALUE (the baud rate of a shared bus).
	Claims() []string
	// New builds the reader, wired to real hardware through env.
	New(env Env) (Reader, error)
	// Twin builds the reader's simulator twin, which speaks the same
	// wire protocol (or edge timing) from the far end.
	Twin(env TwinEnv) (Twin, error)
}

// Env is what a driver is given to build its Reader.
type Env struct {
	Name string // configured reader name
	// RepeatWindow: a card held in the field is one presentation until
	// it has left the field for this long (the common key
	// repeat_window).
	RepeatWindow time.Duration
	Logger       *slog.Logger // carries reader= and driver=
	Now          func() time.Time
}

// A Twin is a driver's simulated reader: the far end of the wire that the
// real driver reads, driven by scenario commands.
type Twin interface {
	// Do runs one scenario command for this reader ("card", "finger",
	// "wiegand", "keys", "hid", "garbage", "raw", ...; each twin
	// documents its own) and returns the line to echo.
	Do(ctx context.Context, cmd string, args []string) (echo string, err error)
	// Path is what the agent opens: a pty link, a socket, a FIFO.
	Path() string
	// Unplug takes the device away as a pulled cable does; Replug brings
	// it back at the same Path.
	Unplug() error
	Replug() error
	Close() error
}

// TwinEnv is what the simulator gives a twin.
type TwinEnv struct {
	Name   string // configured reader name
	Logger *slog.Logger
	// Serial creates a raw pseudo-terminal linked at link (the reader's
	// configured port) and returns its master side; the real driver
	// opens link like a UART.
	Serial func(link string) (SerialEnd, error)
}

// SerialEnd is the simulator's side of a pseudo-terminal.
type SerialEnd interface {
	io.ReadWriteCloser
	// SetReadDeadline bounds the next Read, as on an os.File.
	SetReadDeadline(t time.Time) error
	// Path is the slave device the link points to, e.g. /dev/pts/3.
	Path() string
}
