package pin

import (
	"fmt"
	"testing"
	"time"
)

// lstep is a call at t0+at: "check" (want its result), "wrong", "right",
// or "pin"/"bad": what the agent does for a right or wrong PIN (Check,
// then Right or Wrong unless locked), wanting Check's result.
type lstep struct {
	at     time.Duration
	op     string
	locked bool
	reader string // "" is "front"
}

func s(n float64) time.Duration { return time.Duration(n * float64(time.Second)) }

func wrongs(ats ...float64) []lstep {
	var out []lstep
	for _, a := range ats {
		out = append(out, lstep{at: s(a), op: "bad"})
	}
	return out
}

func lseq(parts ...any) []lstep {
	var out []lstep
	for _, p := range parts {
		switch p := p.(type) {
		case lstep:
			out = append(out, p)
		case []lstep:
			out = append(out, p...)
		}
	}
	return out
}

var lockoutCases = []struct {
	name  string
	l     *Lockout
	steps []lstep
}{
	{"the fifth wrong PIN is unknown, the sixth within 30 s locked even if right", nil, lseq(
		wrongs(0, 10, 20, 30),
		lstep{at: s(40), op: "bad", locked: false}, // the fifth: Check says no, reported unknown
		lstep{at: s(40), op: "check", locked: true},
		lstep{at: s(45), op: "pin", locked: true}, // right, and denied locked_out
		lstep{at: s(50), op: "bad", locked: true},
		lstep{at: s(69.999), op: "pin", locked: true},
		lstep{at: s(70), op: "pin", locked: false},
	)},
	{"a right PIN after four wrong resets the count", nil, lseq(
		wrongs(0, 1, 2, 3),
		lstep{at: s(4), op: "pin"},
		wrongs(5, 6, 7, 8),
		lstep{at: s(9), op: "pin"},
		wrongs(10, 11, 12, 13, 14),
		lstep{at: s(14), op: "check", locked: true},
	)},
	{"four wrong then right, then one wrong: not locked", nil, lseq(
		wrongs(0, 1, 2, 3),
		lstep{at: s(4), op: "pin"},
		wrongs(5),
		lstep{at: s(6), op: "pin"},
	)},
	{"the window slides", nil, lseq(
		wrongs(0, 20, 40, 50),
		lstep{at: s(60), op: "bad"}, // 0 has left the window: four in it
		lstep{at: s(60), op: "check"},
		lstep{at: s(61), op: "bad"}, // 20, 40, 50, 60, 61
		lstep{at: s(61), op: "check", locked: true},
	)},
	{"five wrong within 59.999 s lock", nil, lseq(
		wrongs(0, 15, 30, 45, 59.999),
		lstep{at: s(60), op: "check", locked: true},
	)},
	{"five wrong across exactly 60 s do not", nil, lseq(
		wrongs(0, 15, 30, 45, 60),
		lstep{at: s(60), op: "check"},
	)},
	{"after the lock the count starts from zero", nil, lseq(
		wrongs(0, 1, 2, 3, 4),
		lstep{at: s(33.9), op: "check", locked: true},
		lstep{at: s(34), op: "check"},
		wrongs(35, 36, 37, 38),
		lstep{at: s(39), op: "check"},
		wrongs(39),
		lstep{at: s(39), op: "check", locked: true},
	)},
	{"calls during the lock change nothing", nil, lseq(
		wrongs(0, 1, 2, 3, 4),
		lstep{at: s(10), op: "wrong"},
		lstep{at: s(20), op: "right"},
		lstep{at: s(33), op: "wrong"},
		lstep{at: s(33.5), op: "check", locked: true},
		lstep{at: s(34), op: "check"},
		wrongs(35, 36, 37, 38),
		lstep{at: s(39), op: "check"},
	)},
	{"readers apart", nil, lseq(
		wrongs(0, 1, 2, 3),
		lstep{at: s(4), op: "bad", reader: "back"},
		lstep{at: s(5), op: "check"},
		wrongs(6),
		lstep{at: s(7), op: "check", locked: true},
		lstep{at: s(7), op: "check", reader: "back"},
	)},
	{"a clock set back does not hold a lock", nil, lseq(
		wrongs(100, 101, 102, 103, 104),
		lstep{at: s(105), op: "check", locked: true},
		lstep{at: s(50), op: "check"},
	)},
	{"fields: 3 wrong within 10 s lock for 5 s", &Lockout{MaxWrong: 3, Window: 10 * time.Second, LockFor: 5 * time.Second}, lseq(
		wrongs(0, 5, 10), // 0 has left the window
		lstep{at: s(10), op: "check"},
		wrongs(11),
		lstep{at: s(11), op: "check", locked: true},
		lstep{at: s(15.9), op: "check", locked: true},
		lstep{at: s(16), op: "check"},
	)},
}

func TestLockout(t *testing.T) {
	for _, tc := range lockoutCases {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.l
			if l == nil {
				l = NewLockout()
			}
			for i, st := range tc.steps {
				r := cmpOr(st.reader, "front")
				now := t0.Add(st.at)
				where := fmt.Sprintf("step %d (%s at +%v at %s)", i, st.op, st.at, r)
				switch st.op {
				case "check", "pin", "bad":
					got := l.Check(r, now)
					if got != st.locked {
						t.Fatalf("%s: Check = %v, want %v", where, got, st.locked)
					}
					switch {
					case got:
					case st.op == "pin":
						l.Right(r, now)
					case st.op == "bad":
						l.Wrong(r, now)
					}
				case "wrong":
					l.Wrong(r, now)
				case "right":
					l.Right(r, now)
				default:
					t.Fatalf("%s: no such op", where)
				}
			}
		})
	}
}

func TestLockoutZeroValueAndDefaults(t *testing.T) {
	var l Lockout
	for i := range DefaultMaxWrong {
		if l.Check("front", t0) {
			t.Fatalf("locked before wrong PIN %d", i+1)
		}
		l.Wrong("front", t0)
	}
	if !l.Check("front", t0.Add(DefaultLockFor-1)) || l.Check("front", t0.Add(DefaultLockFor)) {
		t.Fatal("the zero Lockout does not lock for DefaultLockFor")
	}
	if n := NewLockout(); n.MaxWrong != 5 || n.Window != 60*time.Second || n.LockFor != 30*time.Second {
		t.Fatalf("NewLockout = %+v", n)
	}
}

func TestLockoutMemory(t *testing.T) {
	l := NewLockout()
	// A wrong PIN every 5 s for an hour keeps at most MaxWrong times.
	now := t0
	for range 720 {
		if !l.Check("front", now) {
			l.Wrong("front", now)
		}
		if s := l.readers["front"]; s != nil && len(s.wrong) >= l.MaxWrong {
			t.Fatalf("%d wrong PINs kept", len(s.wrong))
		}
		now = now.Add(5 * time.Second)
	}
	// Readers whose wrong PINs have aged out, whose lock has ended, or
	// who were given a right PIN are forgotten.
	l.Wrong("back", t0)
	l.Right("front", now)
	l.Check("front", now.Add(time.Minute))
	l.Check("back", t0.Add(time.Minute))
	l.Right("side", t0)
	if len(l.readers) != 0 {
		t.Fatalf("%d readers kept", len(l.readers))
	}
}
