package pin

import (
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// step is one key press at a reader (or, with key "expire", a call of
// Expire) at t0+at.
type step struct {
	at     time.Duration
	reader string // "" is "front"
	key    string
	want   Result
	gone   []string // for "expire": the readers Expire reports
}

var (
	none = Result{}
	disc = Result{Kind: Discarded}
)

func pinR(p string) Result { return Result{Kind: PIN, PIN: p} }
func fnR(k string) Result  { return Result{Kind: Function, Key: k} }
func digits(s string, at time.Duration) []step {
	var out []step
	for _, c := range s {
		out = append(out, step{at: at, key: string(c), want: none})
	}
	return out
}

func seq(parts ...any) []step {
	var out []step
	for _, p := range parts {
		switch p := p.(type) {
		case step:
			out = append(out, p)
		case []step:
			out = append(out, p...)
		}
	}
	return out
}

var entryCases = []struct {
	name  string
	steps []step
}{
	{"four digits", seq(digits("1234", 0), step{key: "#", want: pinR("1234")})},
	{"twelve digits", seq(digits("123456789012", 0), step{key: "#", want: pinR("123456789012")})},
	{"leading zeros kept", seq(digits("0007", 0), step{key: "#", want: pinR("0007")})},
	{"empty #", seq(step{key: "#", want: disc})},
	{"three digits", seq(digits("123", 0), step{key: "#", want: disc}, step{key: "#", want: disc})},
	{"star clears", seq(digits("99", 0), step{key: "*", want: none}, digits("1234", 0), step{key: "#", want: pinR("1234")})},
	{"star then # is empty", seq(digits("12345", 0), step{key: "*", want: none}, step{key: "#", want: disc})},
	{"star on nothing", seq(step{key: "*", want: none}, digits("4321", 0), step{key: "#", want: pinR("4321")})},
	{"13th digit discards once, then ignored until #", seq(
		digits("123456789012", 0),
		step{key: "3", want: disc},
		step{key: "4", want: none},
		step{key: "#", want: none},
		digits("5555", 0), step{key: "#", want: pinR("5555")},
	)},
	{"13th digit, then * starts afresh", seq(
		digits("1234567890123", 0)[:12],
		step{key: "3", want: disc},
		step{key: "*", want: none},
		digits("2468", 0), step{key: "#", want: pinR("2468")},
	)},
	{"function keys between digits", seq(
		digits("12", 0),
		step{key: "A", want: fnR("A")},
		step{key: "3", want: none},
		step{key: "F4", want: fnR("F4")},
		step{key: "D", want: fnR("D")},
		step{key: "4", want: none},
		step{key: "#", want: pinR("1234")},
	)},
	{"function key alone", seq(step{key: "F1", want: fnR("F1")}, step{key: "#", want: disc})},
	{"unknown labels ignored", seq(
		digits("12", 0),
		step{key: "E", want: none}, step{key: "", want: none}, step{key: "12", want: none}, step{key: "F5", want: none}, step{key: "a", want: none},
		digits("34", 0), step{key: "#", want: pinR("1234")},
	)},
	{"readers apart", seq(
		digits("12", 0),
		step{reader: "back", key: "9", want: none},
		step{reader: "back", key: "#", want: disc},
		digits("34", 0),
		step{key: "#", want: pinR("1234")},
	)},
	{"timeout: 10 s after the last key", seq(
		digits("12", 0),
		step{at: 9 * time.Second, key: "3", want: none},
		step{at: 18_999 * time.Millisecond, key: "expire", gone: nil},
		step{at: 19 * time.Second, key: "expire", gone: []string{"front"}},
		step{at: 19 * time.Second, key: "4", want: none},
		step{at: 19 * time.Second, key: "#", want: disc},
	)},
	{"timeout seen by Key, silently", seq(
		digits("123", 0),
		step{at: 10 * time.Second, key: "4", want: none},
		step{at: 10 * time.Second, key: "#", want: disc},
		step{at: 10 * time.Second, key: "expire", gone: nil},
	)},
	{"keys 9.9 s apart never time out", seq(
		step{at: 0, key: "1", want: none},
		step{at: 9900 * time.Millisecond, key: "2", want: none},
		step{at: 19800 * time.Millisecond, key: "3", want: none},
		step{at: 29700 * time.Millisecond, key: "expire"},
		step{at: 29700 * time.Millisecond, key: "4", want: none},
		step{at: 39600 * time.Millisecond, key: "#", want: pinR("1234")},
	)},
	{"a function key restarts the timeout", seq(
		digits("12", 0),
		step{at: 8 * time.Second, key: "B", want: fnR("B")},
		step{at: 16 * time.Second, key: "expire"},
		digits("34", 16*time.Second),
		step{at: 16 * time.Second, key: "#", want: pinR("1234")},
	)},
	{"an overflowed entry times out unreported", seq(
		digits("123456789012", 0),
		step{key: "3", want: disc},
		step{at: 10 * time.Second, key: "expire", gone: nil},
		digits("1111", 10*time.Second),
		step{at: 10 * time.Second, key: "#", want: pinR("1111")},
	)},
	{"expire reports several readers, sorted", seq(
		step{reader: "front", key: "1", want: none},
		step{reader: "back", key: "1", want: none},
		step{reader: "side", at: 5 * time.Second, key: "1", want: none},
		step{at: 10 * time.Second, key: "expire", gone: []string{"back", "front"}},
		step{at: 15 * time.Second, key: "expire", gone: []string{"side"}},
	)},
	{"a time before the last key does not expire", seq(
		digits("12", 20*time.Second),
		step{at: 5 * time.Second, key: "expire"},
		digits("34", 20*time.Second),
		step{at: 20 * time.Second, key: "#", want: pinR("1234")},
	)},
}

func TestEntry(t *testing.T) {
	for _, tc := range entryCases {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEntry()
			for i, s := range tc.steps {
				r := cmpOr(s.reader, "front")
				if s.key == "expire" {
					if got := e.Expire(t0.Add(s.at)); !slices.Equal(got, s.gone) {
						t.Fatalf("step %d: Expire(+%v) = %q, want %q", i, s.at, got, s.gone)
					}
					continue
				}
				if got := e.Key(r, s.key, t0.Add(s.at)); got != s.want {
					t.Fatalf("step %d: Key(%s, %q, +%v) = %+v, want %+v", i, r, s.key, s.at, got, s.want)
				}
			}
			// Every case ends its entries: nothing is kept.
			if len(e.partial) != 0 {
				t.Fatalf("entries left for %d readers", len(e.partial))
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestEntryPending(t *testing.T) {
	e := &Entry{} // the zero Entry works, with the default timeout
	if e.Pending("front") {
		t.Fatal("pending before any key")
	}
	e.Key("front", "F1", t0)
	if e.Pending("front") {
		t.Fatal("a function key started an entry")
	}
	e.Key("front", "1", t0)
	if !e.Pending("front") || e.Pending("back") {
		t.Fatal("Pending wrong after a digit")
	}
	e.Key("front", "*", t0)
	if e.Pending("front") {
		t.Fatal("pending after *")
	}
	e.Key("front", "1", t0)
	e.Expire(t0.Add(DefaultEntryTimeout - 1))
	if !e.Pending("front") {
		t.Fatal("expired early")
	}
	e.Expire(t0.Add(DefaultEntryTimeout))
	if e.Pending("front") {
		t.Fatal("pending after the timeout")
	}
	for _, k := range strings.Split("1234567890123", "") {
		e.Key("front", k, t0)
	}
	if !e.Pending("front") {
		t.Fatal("an overflowed entry is not pending")
	}
	e.Key("front", "#", t0)
	if e.Pending("front") {
		t.Fatal("pending after #")
	}
}

func TestEntryTimeoutField(t *testing.T) {
	e := &Entry{EntryTimeout: 3 * time.Second}
	e.Key("front", "1", t0)
	if got := e.Expire(t0.Add(2999 * time.Millisecond)); got != nil {
		t.Fatalf("Expire before 3 s = %q", got)
	}
	if got := e.Expire(t0.Add(3 * time.Second)); !slices.Equal(got, []string{"front"}) {
		t.Fatalf("Expire at 3 s = %q", got)
	}
}

func TestEntryClearsDigits(t *testing.T) {
	// The digits of an ended entry do not stay in memory.
	e := NewEntry()
	for _, k := range []string{"9", "8", "7", "6"} {
		e.Key("front", k, t0)
	}
	p := e.partial["front"]
	e.Key("front", "#", t0)
	if p.digits != [MaxDigits]byte{} {
		t.Fatalf("digits left after #: %q", p.digits[:])
	}
}

// keys the fuzzer picks from: every label a keypad sends, and a few it
// should not.
var fuzzKeys = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "#", "*",
	"A", "B", "C", "D", "F1", "F2", "F3", "F4", "", "E", "F5", "##", "12", "expire"}

// model is the rules of Entry written out as plainly as possible.
type model struct {
	typed    string
	overflow bool
	last     time.Time
	active   bool
}

func (m *model) key(k string, at time.Time, timeout time.Duration) Result {
	if m.active && at.Sub(m.last) >= timeout {
		*m = model{}
	}
	isDigit := len(k) == 1 && k >= "0" && k <= "9"
	switch {
	case isDigit:
		m.active, m.last = true, at
		if m.overflow {
			return none
		}
		if len(m.typed) == 12 {
			m.typed, m.overflow = "", true
			return disc
		}
		m.typed += k
		return none
	case k == "#":
		typed, overflow := m.typed, m.overflow
		*m = model{}
		if overflow {
			return none
		}
		if len(typed) < 4 {
			return disc
		}
		return pinR(typed)
	case k == "*":
		*m = model{}
		return none
	case k == "A" || k == "B" || k == "C" || k == "D" || k == "F1" || k == "F2" || k == "F3" || k == "F4":
		if m.active {
			m.last = at
		}
		return fnR(k)
	}
	return none
}

func FuzzEntry(f *testing.F) {
	f.Add([]byte{1, 0, 2, 0, 3, 0, 4, 0, 10, 0}, uint8(10))
	f.Add([]byte{1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 10, 0}, uint8(0))
	f.Add([]byte{5, 0, 12, 0, 5, 99, 25, 0, 10, 0}, uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, timeoutSec uint8) {
		e := &Entry{EntryTimeout: time.Duration(timeoutSec) * time.Second}
		timeout := e.timeout()
		readers := []string{"front", "back"}
		models := map[string]*model{"front": {}, "back": {}}
		now := t0
		// Each pair of bytes: which key (and reader), then how many
		// tenths of a second pass before it.
		for i := 0; i+1 < len(data); i += 2 {
			k := fuzzKeys[int(data[i]&0x7f)%len(fuzzKeys)]
			r := readers[data[i]>>7]
			now = now.Add(time.Duration(data[i+1]) * 100 * time.Millisecond)
			if k == "expire" {
				got := e.Expire(now)
				var want []string
				for _, name := range readers {
					m := models[name]
					if m.active && now.Sub(m.last) >= timeout {
						if !m.overflow {
							want = append(want, name)
						}
						*m = model{}
					}
				}
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("byte %d: Expire = %q, want %q", i, got, want)
				}
				continue
			}
			got := e.Key(r, k, now)
			want := models[r].key(k, now, timeout)
			if got != want {
				t.Fatalf("byte %d: Key(%s, %q) = %+v, want %+v", i, r, k, got, want)
			}
			if got.Kind == PIN && !Valid(got.PIN) {
				t.Fatalf("yielded %q, not 4 to 12 digits", got.PIN)
			}
			if got.Kind != PIN && got.PIN != "" || got.Kind != Function && got.Key != "" {
				t.Fatalf("stray fields in %+v", got)
			}
			for _, name := range readers {
				if e.Pending(name) != models[name].active {
					t.Fatalf("byte %d: Pending(%s) = %v", i, name, e.Pending(name))
				}
			}
		}
		if len(e.partial) > len(readers) {
			t.Fatalf("%d entries kept", len(e.partial))
		}
	})
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{None: "none", PIN: "pin", Discarded: "discarded", Function: "function", 9: "pin.Kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}
