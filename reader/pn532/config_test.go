package pn532

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/serialport"
)

func TestDriverDefaults(t *testing.T) {
	if Driver.Name != "pn532" || Driver.Doc == "" {
		t.Errorf("Driver = %+v", Driver)
	}
	c, ok := Driver.NewConfig().(*Config)
	if !ok || c.Baud != 115200 || c.Port != "" {
		t.Fatalf("NewConfig = %#v", c)
	}
	// Only port is required.
	var ke *reader.KeyError
	if err := c.Validate(); !errors.As(err, &ke) || ke.Key != "port" || !errors.Is(err, reader.ErrConfig) {
		t.Errorf("Validate without port = %v", err)
	}
	c.Port = "/dev/ttyAMA0"
	if err := c.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
	if got := c.Claims(); !slices.Equal(got, []string{"/dev/ttyAMA0"}) {
		t.Errorf("Claims = %v", got)
	}
}

func TestValidateBaud(t *testing.T) {
	for _, baud := range Bauds {
		c := &Config{Port: "/dev/serial0", Baud: baud}
		if err := c.Validate(); err != nil {
			t.Errorf("baud %d: %v", baud, err)
		}
	}
	for _, baud := range []int{0, 4800, 230400, 921600, -1} {
		c := &Config{Port: "/dev/serial0", Baud: baud}
		var ke *reader.KeyError
		if err := c.Validate(); !errors.As(err, &ke) || ke.Key != "baud" {
			t.Errorf("baud %d: %v, want a baud KeyError", baud, err)
		}
	}
	// Both keys wrong: both reported.
	err := (&Config{Baud: 7}).Validate()
	if err == nil || !strings.Contains(err.Error(), "key port") || !strings.Contains(err.Error(), "key baud") {
		t.Errorf("Validate = %v, want both keys", err)
	}
}

// The Config's own Twin and New, wired as the simulator and the agent
// wire them: a read comes through at the default pace.
func TestConfigTwinAndNew(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyNFC")
	c := &Config{Port: link, Baud: DefaultBaud}
	tw, err := c.Twin(reader.TwinEnv{Name: "door", Serial: simSerial})
	if err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	if tw.Path() != link {
		t.Errorf("Path = %q", tw.Path())
	}
	rd, err := c.New(reader.Env{Name: "door", RepeatWindow: 500 * time.Millisecond, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	if rd.Name() != "door" {
		t.Errorf("Name = %q", rd.Name())
	}
	if _, ok := rd.(reader.Stater); !ok {
		t.Error("not a reader.Stater")
	}
	out := make(chan reader.Read, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- rd.Run(ctx, out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	if _, err := tw.Do(t.Context(), "card", []string{"04a1b2c3d4e5f6", "hold", "400ms"}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-out:
		if r.Value != "04A1B2C3D4E5F6" || r.Format != reader.FormatUID {
			t.Errorf("read %+v", r)
		}
	case <-time.After(within):
		t.Fatal("no read")
	}
	if _, err := (&Config{Port: ""}).New(reader.Env{Name: "x"}); !errors.Is(err, reader.ErrConfig) {
		t.Errorf("New with a bad config = %v", err)
	}
}

func TestTwinCommandErrors(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyNFC")
	tw := NewTwin(link, simSerial)
	if _, err := tw.Do(t.Context(), "garbage", []string{"3"}); err == nil {
		t.Error("garbage on an unplugged twin succeeded")
	}
	if err := tw.Unplug(); err == nil {
		t.Error("Unplug of an unplugged twin succeeded")
	}
	if err := tw.Replug(); err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	for _, tc := range []struct {
		cmd  string
		args []string
	}{
		{"card", nil},
		{"card", []string{"0102"}},
		{"card", []string{"DEADBEEF", "hold"}},
		{"card", []string{"DEADBEEF", "for", "1s"}},
		{"card", []string{"DEADBEEF", "hold", "forever"}},
		{"card", []string{"DEADBEEF", "hold", "2h"}},
		{"garbage", nil},
		{"garbage", []string{"0"}},
		{"garbage", []string{"99999"}},
		{"raw", nil},
		{"raw", []string{"0G"}},
		{"reset", []string{"now"}},
		{"silent", nil},
		{"silent", []string{"soon"}},
		{"sing", nil},
	} {
		if echo, err := tw.Do(t.Context(), tc.cmd, tc.args); err == nil {
			t.Errorf("%s %v = %q, want an error", tc.cmd, tc.args, echo)
		}
	}
	for _, tc := range []struct {
		cmd  string
		args []string
		echo string
	}{
		{"garbage", []string{"3"}, "garbage 3"},
		{"raw", []string{"00 00 FF 00 FF 00"}, "raw 00 00 FF 00 FF 00"},
		{"reset", nil, "reset"},
		{"silent", []string{"10ms"}, "silent 10ms"},
		{"card", []string{"deadbeef", "hold", "10ms"}, "card DEADBEEF hold 10ms"},
	} {
		if echo, err := tw.Do(t.Context(), tc.cmd, tc.args); err != nil || echo != tc.echo {
			t.Errorf("%s %v = %q, %v; want %q", tc.cmd, tc.args, echo, err, tc.echo)
		}
	}
	// A card held longer than the caller waits: Do returns ctx's error.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := tw.Do(ctx, "card", []string{"DEADBEEF", "hold", "1m"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("card past ctx = %v", err)
	}
}

func TestOptionsErrors(t *testing.T) {
	open := func(int) (Port, error) { return nil, errors.New("no") }
	for _, tc := range []struct {
		name string
		opt  Options
	}{
		{"no name", Options{Open: open}},
		{"no open", Options{Name: "door"}},
		{"negative window", Options{Name: "door", Open: open, RepeatWindow: -1}},
		{"backoff range", Options{Name: "door", Open: open, MinBackoff: time.Second, MaxBackoff: time.Millisecond}},
		{"negative timeout", Options{Name: "door", Open: open, AckTimeout: -1}},
		{"not an HSU rate", Options{Name: "door", Open: open, Baud: 4800}},
	} {
		if err := New(tc.opt).Run(t.Context(), make(chan reader.Read)); !errors.Is(err, ErrConfig) || !errors.Is(err, reader.ErrConfig) {
			t.Errorf("%s: Run = %v, want ErrConfig", tc.name, err)
		}
	}
}

// Open keeps failing: the waits back off, doubling to the maximum; the
// reader is offline once OfflineAfter has passed.
func TestOpenBackoff(t *testing.T) {
	var waits []time.Duration
	clock := &offsetClock{}
	ctx, cancel := context.WithCancel(t.Context())
	r := New(Options{
		Name: "door",
		Open: func(int) (Port, error) { return nil, errors.New("no such device") },
		Now:  clock.Now,
		Wait: func(ctx context.Context, d time.Duration) error {
			waits = append(waits, d)
			if len(waits) == 8 {
				cancel()
			}
			return ctx.Err()
		},
	})
	if r.State() != reader.StateOffline {
		t.Errorf("State before Run = %s", r.State())
	}
	if err := r.Run(ctx, make(chan reader.Read)); err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5000 * ms, 5000 * ms}
	if !slices.Equal(waits, want) {
		t.Errorf("waits = %v, want %v", waits, want)
	}
	if r.State() != reader.StateOffline {
		t.Errorf("State after Run = %s", r.State())
	}
}

// The twin on the wire, without the driver: the host's bytes in, the
// module's bytes out, as UM0701-02 gives them.
func TestTwinOnTheWire(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyNFC")
	tw := NewTwin(link, simSerial)
	if err := tw.Replug(); err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	host, err := serialport.Open(link, DefaultBaud)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	var f Framer
	var got []Frame
	expect := func(what string, want ...Frame) {
		t.Helper()
		deadline := time.Now().Add(within)
		buf := make([]byte, 256)
		for len(got) < len(want) && time.Now().Before(deadline) {
			n, _ := host.Read(buf) // (0, EOF) after serialport's read timeout
			f.Feed(buf[:n], func(fr Frame) { got = append(got, fr) })
		}
		if !framesEqual(got, want) {
			t.Fatalf("%s: got %+v, want %+v", what, got, want)
		}
		got = nil
	}
	send := func(s string) {
		t.Helper()
		if _, err := host.Write(h(s)); err != nil {
			t.Fatal(err)
		}
	}
	ack := Frame{Kind: KindACK}
	// Asleep: a command without the wake-up preamble is ignored...
	send(vGetFirmwareCmd)
	time.Sleep(50 * time.Millisecond)
	expect("asleep")
	// ...one after it is answered.
	send("55 55 00 00 00 00 00 00 00 00 00 00 00 00 00 00" + vGetFirmwareCmd)
	expect("GetFirmwareVersion", ack, info(0xD5, "03 32 01 06 07"))
	// Not configured yet: the error frame.
	send(vInListCmd)
	expect("before SAMConfiguration", ack, Frame{Kind: KindError})
	send(vSAMCmd)
	expect("SAMConfiguration", ack, info(0xD5, "15"))
	// NACK: the last response again.
	send(vNACK)
	expect("NACK", info(0xD5, "15"))
	// Finite retries: no card is answered at once.
	send("00 00 FF 06 FA D4 32 05 FF 01 01 F4 00")
	expect("RFConfiguration", ack, info(0xD5, "33"))
	send(vInListCmd)
	expect("no card", ack, info(0xD5, "4B 00"))
	// Retries forever: acknowledged, answered when the card comes.
	send(vRFCmd)
	expect("RFConfiguration", ack, info(0xD5, "33"))
	send(vInListCmd)
	expect("listening", ack)
	if _, err := tw.Do(t.Context(), "card", []string{"04A1B2C3D4E5F6", "hold", "10ms"}); err != nil {
		t.Fatal(err)
	}
	expect("card", info(0xD5, "4B 01 01 00 44 00 07 04 A1 B2 C3 D4 E5 F6"))
	// A command with a bad checksum is ignored; an unknown one gets the
	// error frame.
	send("00 00 FF 02 FE D4 02 2B 00")
	send("00 00 FF 02 FE D4 40 EC 00") // InDataExchange, not simulated
	expect("bad and unknown", ack, Frame{Kind: KindError})
}
