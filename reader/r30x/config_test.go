package r30x_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/r30x"
)

func TestConfigDefaults(t *testing.T) {
	c := r30x.Driver.NewConfig().(*r30x.Config)
	want := r30x.Config{Baud: 57600, Address: "FFFFFFFF", Password: "00000000", MinScore: 50}
	if *c != want {
		t.Fatalf("defaults %+v, want %+v", *c, want)
	}
	var ke *reader.KeyError
	if err := c.Validate(); !errors.As(err, &ke) || ke.Key != "port" || !errors.Is(err, reader.ErrConfig) {
		t.Fatalf("Validate without port = %v", err)
	}
	c.Port = "/dev/serial0"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.Claims(); !slices.Equal(got, []string{"/dev/serial0"}) {
		t.Errorf("Claims = %v", got)
	}
}

func TestConfigBadKeys(t *testing.T) {
	c := &r30x.Config{Port: "/dev/ttyAMA0", Baud: 57601, Address: "FFFF", Password: "0000000G", MinScore: -1}
	err := c.Validate()
	var keys []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ke *reader.KeyError
		if !errors.As(e, &ke) {
			t.Fatalf("%v is not a *KeyError", e)
		}
		keys = append(keys, ke.Key)
	}
	if want := []string{"baud", "address", "password", "min_score"}; !slices.Equal(keys, want) {
		t.Errorf("bad keys %v, want %v (%v)", keys, want, err)
	}
	c = &r30x.Config{Port: "/dev/ttyAMA0", Baud: 9600, Address: "00000000", Password: "00000000"}
	if err := c.Validate(); err == nil {
		t.Error("address 00000000 accepted")
	}
	if _, err := c.New(reader.Env{Name: "x"}); err == nil {
		t.Error("New accepted a bad config")
	}
}

// The path the agent and the simulator take: Config.Twin on a real
// pseudo-terminal, Config.New on the same port with every default
// (address, password, polling pace, timeouts).
func TestConfigRoundTrip(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyAMA0")
	c := r30x.Driver.NewConfig().(*r30x.Config)
	c.Port, c.Address, c.Password, c.MinScore = link, "0000ABCD", "00C0FFEE", 0
	twin, err := c.Twin(reader.TwinEnv{Name: "door", Serial: simSerial})
	if err != nil {
		t.Fatal(err)
	}
	defer twin.Close()
	if twin.Path() != link {
		t.Errorf("Path = %s", twin.Path())
	}
	rd, err := c.New(reader.Env{Name: "door", Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	out := make(chan reader.Read, 4)
	done := make(chan error, 1)
	go func() { done <- rd.Run(ctx, out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	do := func(cmd string, args ...string) {
		t.Helper()
		if _, err := twin.Do(t.Context(), cmd, args); err != nil {
			t.Fatal(err)
		}
	}
	do("store", "7")
	// min_score = 0: even a score of 1 is a match.
	do("finger", "7", "score", "1")
	select {
	case got := <-out:
		if got.Value != "7" || got.Score != 1 || got.Type != reader.TypeFingerprint || got.Reader != "door" {
			t.Fatalf("read %+v", got)
		}
	case <-time.After(within):
		t.Fatal("no read")
	}
	if st := rd.(reader.Stater).State(); st != reader.StateOnline {
		t.Errorf("State = %s", st)
	}
	if s := rd.(reader.StatsReader).Stats(); s.Reads != 1 || s.Timeouts != 0 {
		t.Errorf("stats %+v", s)
	}
	if _, ok := rd.(reader.Enroller); !ok {
		t.Error("not an Enroller")
	}
}
