package sim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

const frameA = "\x02" + "0A00123456" + "7A" + "\x03"

// recorder is a fake reader device that keeps each Write apart.
type recorder struct{ writes []string }

func (r *recorder) Write(p []byte) (int, error) {
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("device gone") }

type fixture struct {
	s      *Script
	front  *recorder
	back   *recorder
	out    bytes.Buffer
	errs   bytes.Buffer
	sleeps []time.Duration
}

func newFixture() *fixture {
	f := &fixture{front: &recorder{}, back: &recorder{}}
	f.s = &Script{
		Readers: map[string]io.Writer{"front": f.front, "back": f.back, "broken": failing{}},
		Out:     &f.out,
		Sleep: func(ctx context.Context, d time.Duration) error {
			f.sleeps = append(f.sleeps, d)
			return ctx.Err()
		},
		Rand: rand.New(rand.NewPCG(1, 2)),
	}
	return f
}

func TestScriptCommands(t *testing.T) {
	f := newFixture()
	script := `# a morning at the door

card front 0a00123456
card back 1A2B3C4D5E x1   # quick tap
  sleep 250ms
raw front 02 30 41
raw back 0d0a
garbage front 64
`
	if err := f.s.Run(t.Context(), strings.NewReader(script)); err != nil {
		t.Fatal(err)
	}
	wantOut := `sim: card front 0A00123456 x3
sim: card back 1A2B3C4D5E x1
sim: sleep 250ms
sim: raw front 02 30 41
sim: raw back 0D 0A
sim: garbage front 64
`
	if f.out.String() != wantOut {
		t.Errorf("out =\n%s\nwant\n%s", f.out.String(), wantOut)
	}
	// Three frames as the module sends them, 30ms apart.
	frameB := "\x02" + "1A2B3C4D5E" + "1E" + "\x03"
	if got := f.front.writes[:4]; !slices.Equal(got, []string{frameA, frameA, frameA, "\x020A"}) {
		t.Errorf("front writes = %q", got)
	}
	if got := f.back.writes; !slices.Equal(got, []string{frameB, "\r\n"}) {
		t.Errorf("back writes = %q", got)
	}
	ms := time.Millisecond
	if want := []time.Duration{30 * ms, 30 * ms, 250 * ms}; !slices.Equal(f.sleeps, want) {
		t.Errorf("sleeps = %v, want %v", f.sleeps, want)
	}
	g := f.front.writes[4]
	if len(g) != 64 || strings.IndexByte(g, 0x02) >= 0 {
		t.Errorf("garbage = %q: want 64 bytes without STX", g)
	}
}

func TestScriptRepeatSettings(t *testing.T) {
	f := newFixture()
	f.s.Repeats, f.s.RepeatInterval = 5, 60*time.Millisecond
	if err := f.s.Run(t.Context(), strings.NewReader("card front 0A00123456\n")); err != nil {
		t.Fatal(err)
	}
	if len(f.front.writes) != 5 || len(f.sleeps) != 4 || f.sleeps[0] != 60*time.Millisecond {
		t.Errorf("%d writes, sleeps %v; want 5 writes 60ms apart", len(f.front.writes), f.sleeps)
	}
}

func TestGarbageNeverHoldsSTX(t *testing.T) {
	f := newFixture()
	if err := f.s.Run(t.Context(), strings.NewReader("garbage front 4096\n")); err != nil {
		t.Fatal(err)
	}
	g := f.front.writes[0]
	if strings.IndexByte(g, 0x02) >= 0 {
		t.Error("garbage holds STX")
	}
	seen := map[byte]bool{}
	for _, c := range []byte(g) {
		seen[c] = true
	}
	if len(seen) != 255 {
		t.Errorf("4096 garbage bytes took %d distinct values, want all 255 but STX", len(seen))
	}
}

func TestScriptErrors(t *testing.T) {
	for _, tc := range []struct {
		line string
		want string
	}{
		{"crad front 0A00123456", `unknown command "crad"`},
		{"card side 0A00123456", `unknown reader "side" (have back, broken, front)`},
		{"card front 0A0012345", `"0A0012345" is not ten hex digits`},
		{"card front 0A0012345G", `"0A0012345G" is not ten hex digits`},
		{"card front", "usage: card"},
		{"card front 0A00123456 3", `repeat count "3"`},
		{"card front 0A00123456 x0", `repeat count "x0"`},
		{"card broken 0A00123456", "card broken: device gone"},
		{"garbage front", "usage: garbage"},
		{"garbage front -1", `count "-1"`},
		{"garbage front 99999", `count "99999"`},
		{"garbage nowhere 3", `unknown reader "nowhere"`},
		{"raw front", "usage: raw"},
		{"raw front 0G", `"0G" is not hex bytes`},
		{"raw front 023", `"023" is not hex bytes`},
		{"sleep", "usage: sleep"},
		{"sleep soon", `"soon" is not a duration`},
		{"sleep -1s", `"-1s" is not a duration`},
	} {
		f := newFixture()
		script := "# header\ncard front 0A00123456 x1\n\n" + tc.line + "\ncard front 0A00123456\n"
		err := f.s.Run(t.Context(), strings.NewReader(script))
		if !errors.Is(err, ErrScript) {
			t.Errorf("%q: error %v does not wrap ErrScript", tc.line, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "line 4: ") || !strings.Contains(msg, tc.want) {
			t.Errorf("%q: error %q, want line 4 and %q", tc.line, msg, tc.want)
		}
		if n := len(f.front.writes); n != 1 {
			t.Errorf("%q: %d writes to front, want 1: Run must stop at the bad line", tc.line, n)
		}
	}
}

// With Errs set (serve mode), a bad line is reported and the script goes
// on.
func TestScriptContinuesPastErrors(t *testing.T) {
	f := newFixture()
	f.s.Errs = &f.errs
	script := "card front 0A00123456 x1\nbogus\ncard side 0A00123456\ncard front 0A00123456 x1\n"
	err := f.s.Run(t.Context(), strings.NewReader(script))
	if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), "2 bad lines") {
		t.Errorf("Run = %v, want ErrScript counting 2 bad lines", err)
	}
	wantErrs := "sim: script: line 2: \"bogus\" names no reader (want <command> <reader> <args...>, sleep, unplug or replug)\n" +
		"sim: script: line 3: card: unknown reader \"side\" (have back, broken, front)\n"
	if f.errs.String() != wantErrs {
		t.Errorf("errs =\n%s\nwant\n%s", f.errs.String(), wantErrs)
	}
	if n := len(f.front.writes); n != 2 {
		t.Errorf("%d writes to front, want 2", n)
	}
	if got := strings.Count(f.out.String(), "\n"); got != 2 {
		t.Errorf("echoed %d lines, want 2:\n%s", got, f.out.String())
	}
}

func TestScriptStopsOnCancel(t *testing.T) {
	f := newFixture()
	f.s.Sleep = nil // the real timer
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	err := f.s.Run(ctx, strings.NewReader("sleep 1h\ncard front 0A00123456\n"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v after cancel", d)
	}
	if len(f.front.writes) != 0 {
		t.Error("card written after cancel")
	}
}

func TestRunHelper(t *testing.T) {
	var dev recorder
	var out bytes.Buffer
	err := Run(t.Context(), strings.NewReader("raw door 0203\n"), map[string]io.Writer{"door": &dev}, &out)
	if err != nil || out.String() != "sim: raw door 02 03\n" || !slices.Equal(dev.writes, []string{"\x02\x03"}) {
		t.Errorf("Run = %v, out %q, writes %q", err, out.String(), dev.writes)
	}
}

func TestStripComment(t *testing.T) {
	for in, want := range map[string]string{
		"# a comment":                  "",
		"  #indented":                  "",
		"#pause":                       "",
		"card front 0A00123456 # Anna": "card front 0A00123456 ",
		"keys pad 4821#":               "keys pad 4821#",
		"keys pad 4821# # Anna's PIN":  "keys pad 4821# ",
		"keys pad 4821# \t":            "keys pad 4821#",
		"keys pad 12*34#":              "keys pad 12*34#",
		"keys pad #":                   "keys pad #",
		"keys pad # ":                  "keys pad #",
		"sleep 1s\t# pause":            "sleep 1s\t",
	} {
		if got := stripComment(in); got != want {
			t.Errorf("stripComment(%q) = %q, want %q", in, got, want)
		}
	}
}
