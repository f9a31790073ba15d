package config_test

import (
	"errors"
	"github.com/punchclock/punchclock/reader/rdm6300"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/config"
)

func TestSample(t *testing.T) {
	c, err := config.Parse("sample.toml", config.Sample)
	if err != nil {
		t.Fatalf("the embedded sample does not load: %v", err)
	}
	check := func(key string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
	check("device_id", c.DeviceID, "door-1")
	check("data_dir", c.DataDir, "/var/lib/punchclock")
	check("timezone", c.Timezone, "Europe/Amsterdam")
	check("location", c.Location.String(), "Europe/Amsterdam")
	check("roster_file", c.RosterFile, "")
	check("mqtt.broker", c.MQTT.Broker, "tcp://127.0.0.1:1883")
	check("mqtt.topic_prefix", c.MQTT.TopicPrefix, "punchclock")
	check("mqtt.client_id", c.MQTT.ClientID, "punchclock-door-1")
	if len(c.Readers) != 1 {
		t.Fatalf("%d readers, want 1", len(c.Readers))
	}
	r := c.Readers[0]
	check("readers[0].name", r.Name, "front")
	check("readers[0].driver", r.Driver, "rdm6300")
	rs := r.Settings.(*rdm6300.Settings)
	check("readers[0].port", rs.Port, "/dev/ttyAMA0")
	check("readers[0].baud", rs.Baud, 9600)
	check("readers[0] line", r.Line, 34)
	check("readers[0].direction", r.Direction, config.DirToggle)
	check("readers[0].repeat_window", r.RepeatWindow.Duration, 500*time.Millisecond)
	// The sample leaves every pin empty so it runs without GPIO.
	check("feedback.wired", c.Feedback.Wired(), false)
	check("feedback.relay_pulse", c.Feedback.RelayPulse.Duration, 3*time.Second)
	check("feedback.active_low", c.Feedback.ActiveLow, false)
	check("path", c.Path, "sample.toml")
}

const minimal = `device_id = "d1"
[[readers]]
name = "front"
driver = "rdm6300"
port = "/dev/ttyAMA0"
`

func TestDefaults(t *testing.T) {
	c, err := config.Parse("min.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Readers[0]
	if r.Settings.(*rdm6300.Settings).Baud != 9600 || r.Direction != "toggle" || r.RepeatWindow.Duration != 500*time.Millisecond {
		t.Errorf("reader defaults: baud %d, direction %q, repeat_window %v", r.Settings.(*rdm6300.Settings).Baud, r.Direction, r.RepeatWindow)
	}
	if c.MQTT.ClientID != "punchclock-d1" {
		t.Errorf("client_id %q, want punchclock-d1", c.MQTT.ClientID)
	}
	if c.DataDir != config.DefaultDataDir || c.Timezone != "UTC" || c.Location != time.UTC || c.MQTT.TopicPrefix != "punchclock" {
		t.Errorf("top-level defaults: %+v", c)
	}
	if c.MQTT.Broker != "" {
		t.Errorf("broker %q, want empty (offline)", c.MQTT.Broker)
	}
	if c.Feedback.Wired() || c.Feedback.RelayPulse.Duration != 3*time.Second || c.Feedback.ActiveLow {
		t.Errorf("feedback defaults: %+v", c.Feedback)
	}
	if r.Role != config.RoleAttendance || r.Enabled != nil || r.JobCode || r.Feedback != nil ||
		r.InKey != "F1" || r.OutKey != "F2" || r.KeyTimeout.Duration != 5*time.Second || r.PINTimeout.Duration != 10*time.Second {
		t.Errorf("reader defaults of issue 13: %+v", r)
	}
	p := c.Pairing
	if p.DoubleIn != "deny" || p.DoubleOut != "deny" || p.MaxShift.Duration != 16*time.Hour || p.MinShift.Duration != 0 || c.NewReaderState != "enabled" {
		t.Errorf("pairing defaults: %+v, new_readers %q", p, c.NewReaderState)
	}
	if c.Clock.Source != "kernel" || !c.Clock.FloorTime.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("clock defaults: %+v", c.Clock)
	}
}

func TestReaderRolesAndOwnFeedback(t *testing.T) {
	c, err := config.Parse("roles.toml", []byte(`device_id = "d1"
new_readers = "suspended"
[pairing]
double_in = "close_and_reopen"
max_shift = "12h"
min_shift = "5m"
[[readers]]
name = "door"
driver = "rdm6300"
port = "/dev/ttyAMA0"
role = "access"
enabled = false
[readers.feedback]
relay = "GPIO23"
green = "GPIO24"
[[readers]]
name = "gate"
driver = "rdm6300"
port = "/dev/ttyUSB1"
role = "both"
feedback = { relay = "GPIO25", relay_pulse = "0s" }
[[readers]]
name = "clock"
driver = "rdm6300"
port = "/dev/ttyUSB0"
direction = "key"
in_key = "A"
out_key = "B"
job_code = true
`))
	if err != nil {
		t.Fatal(err)
	}
	door, gate, clk := c.Readers[0], c.Readers[1], c.Readers[2]
	if gate.Feedback == nil || gate.Feedback.Relay != "GPIO25" || gate.Feedback.RelayPulse.Duration != 0 {
		t.Errorf("gate's own feedback: %+v (an explicit 0s must stay 0)", gate.Feedback)
	}
	if door.Role != "access" || door.Enabled == nil || *door.Enabled || door.Feedback == nil ||
		door.Feedback.Relay != "GPIO23" || door.Feedback.Green != "GPIO24" || door.Feedback.RelayPulse.Duration != 3*time.Second {
		t.Errorf("door: %+v (feedback %+v)", door, door.Feedback)
	}
	if clk.Role != "attendance" || clk.Enabled != nil || !clk.JobCode || clk.Direction != "key" || clk.InKey != "A" || clk.OutKey != "B" || clk.Feedback != nil {
		t.Errorf("clock reader: %+v", clk)
	}
	if c.NewReaderState != "suspended" || c.Pairing.DoubleIn != "close_and_reopen" || c.Pairing.DoubleOut != "deny" ||
		c.Pairing.MaxShift.Duration != 12*time.Hour || c.Pairing.MinShift.Duration != 5*time.Minute {
		t.Errorf("top level: new_readers %q, pairing %+v", c.NewReaderState, c.Pairing)
	}
}

func TestFeedback(t *testing.T) {
	c, err := config.Parse("fb.toml", []byte(minimal+`role = "access"
[feedback]
green = "GPIO17"
red = "P1_13"
relay = "23"
relay_pulse = "0s"
active_low = true
`))
	if err != nil {
		t.Fatal(err)
	}
	f := c.Feedback
	if f.Green != "GPIO17" || f.Red != "P1_13" || f.Buzzer != "" || f.Relay != "23" || !f.ActiveLow || !f.Wired() {
		t.Errorf("feedback %+v", f)
	}
	if f.RelayPulse.Duration != 0 {
		t.Errorf("relay_pulse %v: an explicit 0s must stay 0 (never pulse)", f.RelayPulse)
	}
	pins := f.Pins()
	if len(pins) != 4 || pins[3].Key != "feedback.relay" || pins[3].Name != "23" || pins[2].Name != "" {
		t.Errorf("Pins() = %+v", pins)
	}
}

func TestErrors(t *testing.T) {
	reader := func(extra string) string {
		return "device_id = \"d1\"\n[[readers]]\nname = \"front\"\ndriver = \"rdm6300\"\nport = \"/dev/ttyAMA0\"\n" + extra
	}
	for _, c := range []struct {
		name string
		toml string
		want []string // substrings of the error, besides the file name
	}{
		{"unknown key", "device_id = \"d1\"\nbrokr = \"x\"\n", []string{"unknown.toml:2:1", `unknown key "brokr"`}},
		{"unknown nested key", reader("[mqtt]\nbrokr = \"x\"\n"), []string{":7:1", `"mqtt.brokr"`}},
		{"missing device_id", "[mqtt]\n", []string{`key "device_id"`, "required"}},
		{"bad device_id", `device_id = "door 1"`, []string{`key "device_id"`, `"door 1"`}},
		{"missing roster_file", `device_id = "d1"` + "\nroster_file = \"/nonexistent/roster.json\"\n", []string{`key "roster_file"`, "/nonexistent/roster.json"}},
		{"bad zone", `device_id = "d1"` + "\ntimezone = \"Mars/Olympus\"\n", []string{`key "timezone"`, "Mars/Olympus"}},
		{"password in broker URL", `device_id = "d1"` + "\n[mqtt]\nbroker = \"ssl://joe:s3cret@mq.example:8883\"\n", []string{`key "mqtt.broker"`, "mqtt.password", "xxxxx"}},
		{"bad broker scheme", `device_id = "d1"` + "\n[mqtt]\nbroker = \"http://x:1883\"\n", []string{`key "mqtt.broker"`, "tcp://"}},
		{"bad topic prefix", `device_id = "d1"` + "\n[mqtt]\ntopic_prefix = \"a/#\"\n", []string{`key "mqtt.topic_prefix"`}},
		{"duplicate reader name", reader("[[readers]]\nname = \"front\"\ndriver = \"rdm6300\"\nport = \"/dev/ttyUSB0\"\n"),
			[]string{`key "readers[1].name"`, `"front" is used by another reader`}},
		{"duplicate reader port", reader("[[readers]]\nname = \"back\"\ndriver = \"rdm6300\"\nport = \"/dev/ttyAMA0\"\n"),
			[]string{`:6: key "readers[1]"`, `/dev/ttyAMA0 is also used by reader "front"`}},
		{"bad driver", "device_id = \"d1\"\n[[readers]]\nname = \"front\"\ndriver = \"rdm630\"\nport = \"/dev/ttyAMA0\"\n",
			[]string{`:4: key "readers[0].driver"`, `"rdm630" is not one of rdm6300`}},
		{"missing port", "device_id = \"d1\"\n[[readers]]\nname = \"front\"\ndriver = \"rdm6300\"\n", []string{`:2: key "readers[0].port"`, "required"}},
		{"bad baud", reader("baud = 9601\n"), []string{`:6: key "readers[0].baud"`, "9601"}},
		{"baud not a number", reader("baud = \"fast\"\n"), []string{`:6: key "readers[0].baud"`, "cannot decode TOML string"}},
		{"unknown driver key", reader("pins = 3\n"), []string{`:6: key "readers[0].pins"`, "unknown key for driver rdm6300"}},
		{"second reader's bad key", reader("[[readers]]\nname = \"back\"\ndriver = \"rdm6300\"\nport = \"/dev/ttyUSB0\"\nbaud = 7\n"),
			[]string{`:10: key "readers[1].baud"`, "7 is not"}},
		{"bad direction", reader("direction = \"sideways\"\n"), []string{`:6: key "readers[0].direction"`, "sideways"}},
		{"bad repeat_window", reader("repeat_window = \"11s\"\n"), []string{`key "readers[0].repeat_window"`, "11s"}},
		{"unparsable repeat_window", reader("repeat_window = \"soon\"\n"), []string{":6:", `"readers[0].repeat_window"`, "soon"}},
		{"bad feedback pin", reader("[feedback]\nrelay = \"gpio17\"\n"), []string{`key "feedback.relay"`, `"gpio17"`, "GPIO17"}},
		{"bad feedback pin chars", reader("[feedback]\ngreen = \"GPIO 17\"\n"), []string{`key "feedback.green"`, `"GPIO 17"`}},
		{"feedback pin used twice", reader("[feedback]\ngreen = \"GPIO17\"\nbuzzer = \"GPIO17\"\n"),
			[]string{`key "feedback.buzzer"`, `"GPIO17" is already used by feedback.green`}},
		{"feedback pulse too long", reader("[feedback]\nrelay_pulse = \"31s\"\n"), []string{`key "feedback.relay_pulse"`, "31s", "30s"}},
		{"feedback pulse negative", reader("[feedback]\nrelay_pulse = \"-1s\"\n"), []string{`key "feedback.relay_pulse"`, "-1s"}},
		{"feedback unknown key", reader("[feedback]\nbeeper = \"GPIO22\"\n"), []string{":7:1", `unknown key "feedback.beeper"`}},
		{"bad role", reader("role = \"gate\"\n"), []string{`:6: key "readers[0].role"`, `"gate" must be attendance, access or both`}},
		{"relay at an attendance reader", reader("[readers.feedback]\nrelay = \"GPIO23\"\n"),
			[]string{`key "readers[0].feedback.relay"`, "opens no door", `role = "access"`}},
		{"reader relay on the shared relay's pin", reader("role = \"access\"\n[readers.feedback]\nrelay = \"GPIO23\"\n[feedback]\nrelay = \"GPIO23\"\n"),
			[]string{`key "readers[0].feedback.relay"`, "GPIO23 is also used by feedback.relay"}},
		{"two readers' relays on one pin", reader("role = \"access\"\nfeedback = { relay = \"GPIO23\" }\n[[readers]]\nname = \"back\"\ndriver = \"rdm6300\"\nport = \"/dev/ttyUSB0\"\nrole = \"both\"\nfeedback = { relay = \"23\" }\n"),
			[]string{`key "readers[1].feedback.relay"`, "is also used by readers[0].feedback.relay"}},
		{"reader feedback unknown key", reader("[readers.feedback]\nbeeper = \"GPIO22\"\n"), []string{`readers[0].feedback.beeper`, "unknown key"}},
		{"key direction, same keys", reader("direction = \"key\"\nin_key = \"F1\"\nout_key = \"F1\"\n"), []string{`key "readers[0].out_key"`, `"F1" is in_key too`}},
		{"key direction, bad key", reader("direction = \"key\"\nin_key = \"7\"\n"), []string{`key "readers[0].in_key"`, `"7" must be one of F1`}},
		{"pin_timeout too short", reader("pin_timeout = \"1s\"\n"), []string{`key "readers[0].pin_timeout"`, "1s"}},
		{"bad pairing policy", reader("[pairing]\ndouble_in = \"merge\"\n"), []string{`key "pairing.double_in"`, `"merge"`, "close_and_reopen"}},
		{"max_shift too short", reader("[pairing]\nmax_shift = \"5s\"\n"), []string{`key "pairing.max_shift"`, "5s", "10s", "168h"}},
		{"max_shift too long", reader("[pairing]\nmax_shift = \"169h\"\n"), []string{`key "pairing.max_shift"`, "169h"}},
		{"min_shift over max_shift", reader("[pairing]\nmax_shift = \"1h\"\nmin_shift = \"2h\"\n"), []string{`key "pairing.min_shift"`, "2h0m0s"}},
		{"keypad not a reader", reader("keypad = \"pad\"\n"), []string{`key "readers[0].keypad"`, `"pad" is not a reader`}},
		{"shared relay without a door", reader("[feedback]\nrelay = \"GPIO23\"\n"), []string{`key "feedback.relay"`, "no reader is a door"}},
		{"bad display driver", reader("[display]\ndriver = \"st7735\"\n"), []string{`key "display.driver"`, `"st7735"`}},
		{"bad display size", reader("[display]\ndriver = \"hd44780\"\ncols = 40\nrows = 2\n"), []string{`key "display.cols"`, "40x2"}},
		{"bad display address", reader("[display]\ndriver = \"ssd1306\"\naddress = 0x80\n"), []string{`key "display.address"`, "0x80"}},
		{"bad http listen", reader("[http]\nlisten = \"8080\"\n"), []string{`key "http.listen"`, "host:port"}},
		{"bad clock source", reader("[clock]\nsource = \"ntp\"\n"), []string{`key "clock.source"`, `"ntp"`, "trusted"}},
		{"bad clock floor", reader("[clock]\nfloor = \"2026-13-01\"\n"), []string{`key "clock.floor"`, "2026-13-01"}},
		{"bad new_readers", "new_readers = \"off\"\n" + reader(""), []string{`key "new_readers"`, `"off"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := strings.ReplaceAll(c.name, " ", "_") + ".toml"
			if strings.HasPrefix(c.name, "unknown key") {
				file = "unknown.toml"
			}
			_, err := config.Parse(file, []byte(c.toml))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Errorf("%v does not wrap ErrInvalid", err)
			}
			for _, want := range append([]string{file}, c.want...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "punchclock.toml")
	if err := os.WriteFile(path, config.Sample, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != path {
		t.Errorf("Path %q, want %q", c.Path, path)
	}
	_, err = config.Load(filepath.Join(t.TempDir(), "missing.toml"))
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

// A password written into the broker URL is never shown back, whether
// the URL parses or not.
func TestBrokerPasswordNeverShown(t *testing.T) {
	for _, broker := range []string{"ssl://joe:s3cret@mq.example:8883", "http://joe:s3cret@mq.example", "tcp://joe:s3cret@mq example:%zz"} {
		_, err := config.Parse("pw.toml", []byte("device_id = \"d1\"\n[mqtt]\nbroker = \""+broker+"\"\n"))
		if err == nil {
			t.Fatalf("broker %q accepted", broker)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("error shows the password: %v", err)
		}
	}
}

// mqtt.ca_file, cert_file and key_file must be readable files, the client
// certificate and key come together, and only with an ssl:// broker.
func TestMQTTTLSFiles(t *testing.T) {
	dir := t.TempDir()
	pemFile := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca, cert, key := pemFile("ca.pem"), pemFile("client.pem"), pemFile("client.key")
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	doc := func(broker string, kv ...string) []byte {
		s := "device_id = \"d1\"\n[mqtt]\nbroker = \"" + broker + "\"\npassword = \"s3cret\"\n"
		for i := 0; i < len(kv); i += 2 {
			s += kv[i] + " = \"" + kv[i+1] + "\"\n"
		}
		return []byte(s)
	}
	c, err := config.Parse("tls.toml", doc("ssl://mq.example:8883", "ca_file", ca, "cert_file", cert, "key_file", key))
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.CAFile != ca || c.MQTT.CertFile != cert || c.MQTT.KeyFile != key {
		t.Fatalf("mqtt TLS files %+v", c.MQTT)
	}
	if _, err := config.Parse("tls.toml", doc("", "ca_file", ca)); err != nil {
		t.Fatalf("offline with a CA file: %v", err)
	}
	for name, tc := range map[string]struct {
		doc  []byte
		want []string
	}{
		"missing ca":     {doc("ssl://mq:8883", "ca_file", ca+".none"), []string{`key "mqtt.ca_file"`, ca + ".none"}},
		"directory cert": {doc("ssl://mq:8883", "cert_file", dir, "key_file", key), []string{`key "mqtt.cert_file"`, dir}},
		"empty key":      {doc("ssl://mq:8883", "cert_file", cert, "key_file", empty), []string{`key "mqtt.key_file"`, "empty.pem is empty"}},
		"cert alone":     {doc("ssl://mq:8883", "cert_file", cert), []string{`key "mqtt.key_file"`, "required with mqtt.cert_file"}},
		"key alone":      {doc("ssl://mq:8883", "key_file", key), []string{`key "mqtt.cert_file"`, "required with mqtt.key_file"}},
		"not ssl":        {doc("tcp://mq:1883", "ca_file", ca), []string{`key "mqtt.broker"`, "not ssl://"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Parse("tls.toml", tc.doc)
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("Parse: %v, want ErrInvalid", err)
			}
			for _, w := range append([]string{"tls.toml"}, tc.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// A reader's secrets are never echoed by a config error, even malformed.
func TestReaderSecretsNotEchoed(t *testing.T) {
	for _, tc := range []struct{ table, secret string }{
		{"driver = \"r30x\"\nport = \"/dev/ttyS1\"\npassword = \"s3cr3tpw\"\n", "s3cr3tpw"},
		{"driver = \"osdp\"\nport = \"/dev/ttyS1\"\naddress = 1\nscbk = \"0011223344556677889900112233445\"\n", "0011223344556677889900112233445"},
	} {
		_, err := config.Parse("s.toml", []byte("device_id = \"d\"\n[[readers]]\nname = \"r\"\n"+tc.table))
		if err == nil {
			t.Fatalf("%s: no error", tc.table)
		}
		if strings.Contains(err.Error(), tc.secret) {
			t.Errorf("error %q shows the secret", err)
		}
	}
}

// Readers written as inline tables, as configs before driver-owned keys
// could, still load.
func TestInlineReaderTables(t *testing.T) {
	c, err := config.Parse("inline.toml", []byte("device_id = \"d\"\nreaders = [{name = \"a\", driver = \"rdm6300\", port = \"/dev/ttyS0\"}, {name = \"b\", driver = \"hid\", device = \"/dev/input/x\"}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Readers) != 2 || c.Readers[0].Settings.(*rdm6300.Settings).Port != "/dev/ttyS0" || c.Readers[1].Driver != "hid" {
		t.Fatalf("readers %+v", c.Readers)
	}
	_, err = config.Parse("inline.toml", []byte("device_id = \"d\"\nreaders = [{name = \"a\", driver = \"rdm6300\", port = \"/dev/ttyS0\", baud = 7}]\n"))
	if err == nil || !strings.Contains(err.Error(), `"readers[0].baud"`) {
		t.Errorf("bad key in an inline table: %v", err)
	}
}

// One GPIO line or one OSDP address is one reader's, whatever its
// spelling, and a feedback output's line is no reader's.
func TestClaimsConflicts(t *testing.T) {
	for _, tc := range []struct{ name, toml, want string }{
		{"wiegand on a feedback pin", "[[readers]]\nname = \"g\"\ndriver = \"wiegand\"\nd0_pin = \"GPIO17\"\nd1_pin = \"GPIO27\"\n[feedback]\ngreen = \"GPIO17\"\n",
			"/dev/gpiochip0:GPIO17 is also used by feedback.green"},
		{"17 and GPIO17", "[[readers]]\nname = \"g\"\ndriver = \"wiegand\"\nd0_pin = \"17\"\nd1_pin = \"GPIO27\"\n[[readers]]\nname = \"p\"\ndriver = \"keypad\"\nrows = [\"GPIO17\", \"GPIO5\", \"GPIO6\", \"GPIO13\"]\ncols = [\"GPIO19\", \"GPIO26\", \"GPIO21\"]\n",
			`/dev/gpiochip0:GPIO17 is also used by reader "g"`},
		{"one OSDP bus at two rates", "[[readers]]\nname = \"a\"\ndriver = \"osdp\"\nport = \"/dev/ttyS1\"\naddress = 3\n[[readers]]\nname = \"b\"\ndriver = \"osdp\"\nport = \"/dev/ttyS1\"\naddress = 4\nbaud = 19200\n",
			`/dev/ttyS1 settings: baud 19200, rts_direction false, rts_invert false, but reader "a" has baud 9600`},
		{"one OSDP address twice", "[[readers]]\nname = \"a\"\ndriver = \"osdp\"\nport = \"/dev/ttyS1\"\naddress = 3\n[[readers]]\nname = \"b\"\ndriver = \"osdp\"\nport = \"/dev/ttyS1\"\naddress = 3\n",
			`/dev/ttyS1 address 3 is also used by reader "a"`},
	} {
		_, err := config.Parse("c.toml", []byte("device_id = \"d\"\n"+tc.toml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// Two OSDP readers at different addresses share a bus.
	if _, err := config.Parse("c.toml", []byte("device_id = \"d\"\n[[readers]]\nname = \"a\"\ndriver = \"osdp\"\nport = \"/dev/ttyS1\"\naddress = 3\n[[readers]]\nname = \"b\"\ndriver = \"osdp\"\nport = \"/dev/ttyS1\"\naddress = 4\n")); err != nil {
		t.Errorf("two addresses on one bus: %v", err)
	}
}
