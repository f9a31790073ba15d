// Package samples is a catalogue of one reader per driver, as the demo,
// the end-to-end tests and the benchmarks put them on a simulated
// terminal, and builds their twins from a config as punchsim serve does.
// (It is apart from package sim so that drivers' own tests may use sim.)
package samples

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/sim"
)

// A Sample is one reader of each driver, as the demo, the end-to-end
// tests and the benchmarks put it on a simulated terminal: its config
// table, scenario lines presenting a credential the roster knows, and
// how long that presentation takes on the wire.
type Sample struct {
	Name   string // reader name
	Driver string
	// Table is the reader's config keys below name (and repeat_window);
	// %[1]s stands for the terminal's directory.
	Table string
	// Present are scenario lines for the reader's twin that present
	// Credential once.
	Present []string
	// Credential is the roster credential they present, as JSON.
	Credential string
	// Wire is the presentation's own time on the wire: from its first
	// byte (or edge) to its last.
	Wire time.Duration
	// Polled: the driver polls its reader (its idle CPU matters).
	Polled bool
}

// Samples has one Sample per driver.
var Samples = []Sample{
	{
		Name: "rdm", Driver: "rdm6300",
		Table:      "driver = \"rdm6300\"\nport = \"%[1]s/dev/tty-rdm\"\n",
		Present:    []string{"card rdm 0A00BEEF01 x1"},
		Credential: `{"type": "card", "value": "0A00BEEF01"}`,
		Wire:       14 * 10 * time.Second / 9600, // 14 bytes, 8N1, 9600 baud
	},
	{
		Name: "nfc", Driver: "pn532",
		Table:      "driver = \"pn532\"\nport = \"%[1]s/dev/tty-nfc\"\n",
		Present:    []string{"card nfc 04A1B2C3D4E5F6 hold 60ms"},
		Credential: `{"type": "card", "value": "04A1B2C3D4E5F6"}`,
		// The ACK and the InListPassiveTarget response with a 7-byte
		// UID at 115200 baud.
		Wire:   (6 + 25) * 10 * time.Second / 115200,
		Polled: true,
	},
	{
		Name: "finger", Driver: "r30x",
		Table:      "driver = \"r30x\"\nport = \"%[1]s/dev/tty-finger\"\n",
		Present:    []string{"store finger 17", "finger finger 17 hold 150ms"}, // the template at page 17, then the finger
		Credential: `{"type": "fingerprint", "value": "17"}`,
		// The Search reply (16 bytes) at 57600 baud, after GenImg's and
		// Img2Tz's.
		Wire:   3 * 12 * 10 * time.Second / 57600,
		Polled: true,
	},
	{
		Name: "door", Driver: "osdp",
		// The secure channel: without it OSDP sends card numbers in
		// clear on the bus.
		Table:      "driver = \"osdp\"\nport = \"%[1]s/dev/tty-rs485\"\naddress = 5\nscbk = \"303132333435363738393A3B3C3D3E3F\"\n",
		Present:    []string{"card door 77:31337"},
		Credential: `{"type": "card", "value": "77:31337"}`,
		// An osdp_RAW reply of a 26-bit card with its MAC, at 9600 baud,
		// after the poll that fetched it.
		Wire:   32 * 10 * time.Second / 9600,
		Polled: true,
	},
	{
		Name: "gate", Driver: "wiegand",
		Table:      "driver = \"wiegand\"\nd0_pin = \"GPIO5\"\nd1_pin = \"GPIO6\"\nchip = \"sim:%[1]s/dev/gpio-gate.sock\"\n",
		Present:    []string{"wiegand gate 26 123 45678"},
		Credential: `{"type": "card", "value": "123:45678"}`,
		// 26 bits about 2 ms apart, then the 25 ms of silence that ends
		// a frame.
		Wire:   26*2*time.Millisecond + 25*time.Millisecond,
		Polled: false,
	},
	{
		Name: "pad", Driver: "keypad",
		Table:      "driver = \"keypad\"\nrows = [\"GPIO5\", \"GPIO6\", \"GPIO13\", \"GPIO19\"]\ncols = [\"GPIO12\", \"GPIO16\", \"GPIO20\"]\nchip = \"sim:%[1]s/dev/gpio-pad.sock\"\n",
		Present:    []string{"keys pad " + PIN + "#"},
		Credential: `{"type": "pin", "value": "` + PIN + `"}`,
		// Nine keys, each pressed about 80 ms and 80 ms apart.
		Wire:   9 * 160 * time.Millisecond,
		Polled: true, // scanned
	},
	{
		Name: "wedge", Driver: "hid",
		Table:      "driver = \"hid\"\ndevice = \"%[1]s/dev/input-wedge\"\n",
		Present:    []string{"hid wedge 0012648430"}, // the decimal of EM card 0B00C0FFEE
		Credential: `{"type": "card", "value": "0B00C0FFEE"}`,
		// A full-speed USB keyboard is polled every 8 ms or so and sends
		// a report per key down and up: 11 keys, 22 reports.
		Wire: 22 * 8 * time.Millisecond,
	},
}

// PIN is the keypad sample's PIN: tests check that no byte of a
// terminal's files, logs or output ever holds it.
const PIN = "73519046"

// SampleConfig is the [[readers]] tables of samples, for a terminal whose
// files are under dir.
func SampleConfig(dir string, samples []Sample, repeatWindow string) string {
	var b strings.Builder
	for _, s := range samples {
		fmt.Fprintf(&b, "\n[[readers]]\nname = %q\nrepeat_window = %q\n", s.Name, repeatWindow)
		fmt.Fprintf(&b, s.Table, dir)
	}
	return b.String()
}

// Twins builds the twin of every reader of cfg, as punchsim serve does.
// Close them when done.
func Twins(cfg *config.Config) (map[string]reader.Twin, error) {
	twins := map[string]reader.Twin{}
	for _, rc := range cfg.Readers {
		tw, err := rc.Settings.Twin(reader.TwinEnv{
			Name:   rc.Name,
			Logger: slog.New(slog.DiscardHandler),
			Serial: func(link string) (reader.SerialEnd, error) { return sim.NewSerial(link) },
		})
		if err != nil {
			Close(twins)
			return nil, fmt.Errorf("samples: twin of reader %q (driver %s): %w", rc.Name, rc.Driver, err)
		}
		twins[rc.Name] = tw
	}
	return twins, nil
}

// Close closes every twin.
func Close(twins map[string]reader.Twin) {
	for _, t := range twins {
		t.Close()
	}
}
