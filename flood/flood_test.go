package flood

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// ledger counts what the agent would store: one event per recorded
// Verdict and per Summary, with the reads each stands for.
type ledger struct {
	admitted, counted map[[2]string]int // by reader and type
	perValue          map[key]int       // reads counted under their own value
	admittedValue     map[key]int
	records           int
	summaries         []Summary
}

func newLedger() *ledger {
	return &ledger{admitted: map[[2]string]int{}, counted: map[[2]string]int{}, perValue: map[key]int{}, admittedValue: map[key]int{}}
}

func (g *ledger) admit(t *testing.T, l *Limiter, reader, typ, value string, now time.Time) Verdict {
	t.Helper()
	v := l.Admit(reader, typ, value, now)
	g.admitted[[2]string{reader, typ}]++
	g.admittedValue[key{reader, typ, value}]++
	switch {
	case v.Record && v.Count < 1, !v.Record && v.Count != 0:
		t.Fatalf("Admit(%s, %s) = %+v", reader, value, v)
	case v.Record && v.Count == 1 && !v.First.Equal(now):
		t.Fatalf("Admit at %v = %+v", now, v)
	}
	if v.Record {
		g.records++
		g.counted[[2]string{reader, typ}] += v.Count
		g.perValue[key{reader, typ, value}] += v.Count
	}
	return v
}

func (g *ledger) add(t *testing.T, ss []Summary) {
	t.Helper()
	for _, s := range ss {
		if s.Count < 1 || s.Last.Before(s.First) {
			t.Fatalf("bad summary %+v", s)
		}
		if s.RateLimited && s.Value != "" {
			t.Fatalf("rate-limited summary names a value: %+v", s)
		}
		g.counted[[2]string{s.Reader, s.CredType}] += s.Count
		if s.Value != "" {
			g.perValue[key{s.Reader, s.CredType, s.Value}] += s.Count
		}
	}
	g.summaries = append(g.summaries, ss...)
}

// balanced checks that every read admitted was counted exactly once
// (after a Drain) or at most once (before).
func (g *ledger) check(t *testing.T, drained bool) {
	t.Helper()
	for rt, n := range g.admitted {
		if c := g.counted[rt]; c > n || drained && c != n {
			t.Fatalf("%v: %d reads admitted, %d counted", rt, n, c)
		}
	}
	for rt, c := range g.counted {
		if g.admitted[rt] == 0 {
			t.Fatalf("%v: %d counted, none admitted", rt, c)
		}
	}
	for k, c := range g.perValue {
		if c > g.admittedValue[k] {
			t.Fatalf("%v: %d reads admitted, %d counted under the value", k, g.admittedValue[k], c)
		}
	}
}

func TestSingleUnknownCard(t *testing.T) {
	l := New(Options{})
	g := newLedger()
	if v := g.admit(t, l, "front", "card", "0B0BADCAFE", t0); v != (Verdict{Record: true, Count: 1, First: t0}) {
		t.Fatalf("verdict %+v", v)
	}
	for _, at := range []time.Duration{time.Second, time.Minute, time.Hour} {
		if ss := l.Flush(t0.Add(at)); len(ss) != 0 {
			t.Fatalf("Flush after %v = %+v", at, ss)
		}
	}
	if ss := l.Drain(); len(ss) != 0 {
		t.Fatalf("Drain = %+v", ss)
	}
	g.check(t, true)
	if len(l.entries) != 0 || len(l.buckets) != 0 {
		t.Fatalf("state left: %d entries, %d buckets", len(l.entries), len(l.buckets))
	}
}

// A card left on the reader for 10 s, read ten times a second.
func TestCardHeld(t *testing.T) {
	const card = "0B0BADCAFE"
	hold := func(t *testing.T, l *Limiter, g *ledger, from time.Time, reads int) {
		for i := range reads {
			v := g.admit(t, l, "front", "card", card, from.Add(time.Duration(i)*100*time.Millisecond))
			if v.Record != (i == 0) {
				t.Fatalf("read %d: %+v", i, v)
			}
		}
	}
	t.Run("reported when the window closes", func(t *testing.T) {
		l, g := New(Options{}), newLedger()
		hold(t, l, g, t0, 100)
		for s := 10; s < 60; s++ {
			if ss := l.Flush(t0.Add(time.Duration(s) * time.Second)); len(ss) != 0 {
				t.Fatalf("Flush at %ds = %+v", s, ss)
			}
		}
		ss := l.Flush(t0.Add(60*time.Second + 100*time.Millisecond))
		want := Summary{Reader: "front", CredType: "card", Value: card, Count: 99, First: t0.Add(100 * time.Millisecond), Last: t0.Add(9900 * time.Millisecond)}
		if len(ss) != 1 || ss[0] != want {
			t.Fatalf("Flush = %+v, want %+v", ss, want)
		}
		g.add(t, ss)
		if ss := l.Flush(t0.Add(2 * time.Minute)); len(ss) != 0 {
			t.Fatalf("second Flush = %+v", ss)
		}
		g.add(t, l.Drain())
		g.check(t, true)
		if g.records != 1 {
			t.Fatalf("%d events recorded", g.records)
		}
	})
	t.Run("carried by the next read before a Flush", func(t *testing.T) {
		l, g := New(Options{}), newLedger()
		hold(t, l, g, t0, 100)
		v := g.admit(t, l, "front", "card", card, t0.Add(65*time.Second))
		if v != (Verdict{Record: true, Count: 100, First: t0.Add(100 * time.Millisecond)}) {
			t.Fatalf("verdict %+v", v)
		}
		g.add(t, l.Drain())
		g.check(t, true)
	})
	t.Run("held five minutes, flushed every second", func(t *testing.T) {
		l, g := New(Options{}), newLedger()
		for i := range 3000 {
			now := t0.Add(time.Duration(i) * 100 * time.Millisecond)
			if i%10 == 0 {
				g.add(t, l.Flush(now))
			}
			g.admit(t, l, "front", "card", card, now)
		}
		g.add(t, l.Drain())
		g.check(t, true)
		// One event a minute, each standing for the minute's reads.
		if g.records != 5 || len(g.summaries) != 1 {
			t.Fatalf("%d records, summaries %+v", g.records, g.summaries)
		}
	})
}

func TestReadersIndependent(t *testing.T) {
	l, g := New(Options{}), newLedger()
	for i, r := range []string{"front", "back"} {
		if v := g.admit(t, l, r, "card", "0B0BADCAFE", t0.Add(time.Duration(i)*time.Millisecond)); !v.Record {
			t.Fatalf("%s: %+v", r, v)
		}
	}
	// An emulator at the front spends the front's tokens only.
	for i := range 200 {
		g.admit(t, l, "front", "card", fmt.Sprintf("EE%08X", i), t0.Add(time.Second+time.Duration(i)*10*time.Millisecond))
	}
	for i := range 10 {
		if v := g.admit(t, l, "back", "card", fmt.Sprintf("0C%08X", i), t0.Add(4*time.Second)); !v.Record {
			t.Fatalf("back, card %d: %+v", i, v)
		}
	}
	if v := g.admit(t, l, "back", "card", "0D00000000", t0.Add(4*time.Second)); v.Record {
		t.Fatal("back's burst is not 10")
	}
	g.add(t, l.Drain())
	g.check(t, true)
}

// A card emulator cycling 1000 ids in 10 s: about burst + rate events,
// and summaries that count every other read.
func TestCyclingEmulator(t *testing.T) {
	l, g := New(Options{}), newLedger()
	var maxEntries int
	for i := range 1000 {
		now := t0.Add(time.Duration(i) * 10 * time.Millisecond)
		if i%100 == 0 {
			g.add(t, l.Flush(now))
		}
		g.admit(t, l, "front", "card", fmt.Sprintf("EE%08X", i), now)
		maxEntries = max(maxEntries, len(l.entries))
	}
	// Burst 10, then one token every 3 s: 10 + 3 in 10 s.
	if g.records != 13 {
		t.Fatalf("%d records, want 13", g.records)
	}
	if maxEntries > 13 {
		t.Fatalf("%d values tracked", maxEntries)
	}
	g.check(t, false)
	for s := 10; s <= 120; s++ {
		g.add(t, l.Flush(t0.Add(time.Duration(s)*time.Second)))
	}
	g.check(t, true) // without a Drain: the Flushes reported everything
	if len(g.summaries) != 1 || !g.summaries[0].RateLimited || g.summaries[0].Count != 987 ||
		!g.summaries[0].First.Equal(t0.Add(100*time.Millisecond)) || !g.summaries[0].Last.Equal(t0.Add(9990*time.Millisecond)) {
		t.Fatalf("summaries %+v", g.summaries)
	}
	if len(l.entries) != 0 || len(l.tallies) != 0 || len(l.buckets) != 0 {
		t.Fatalf("state left: %d entries, %d tallies, %d buckets", len(l.entries), len(l.tallies), len(l.buckets))
	}
}

// An emulator that runs for an hour: the events it causes grow with the
// rate limit, not with its frame rate.
func TestEmulatorForAnHour(t *testing.T) {
	l, g := New(Options{}), newLedger()
	for i := range 180_000 { // 50 ids a second
		now := t0.Add(time.Duration(i) * 20 * time.Millisecond)
		if i%50 == 0 {
			g.add(t, l.Flush(now))
		}
		g.admit(t, l, "front", "card", fmt.Sprintf("EE%08X", i), now)
	}
	g.add(t, l.Drain())
	g.check(t, true)
	// 10 + 20 a minute recorded, one rate-limited summary a minute.
	if g.records > 10+20*60 || len(g.summaries) > 61 {
		t.Fatalf("%d records, %d summaries", g.records, len(g.summaries))
	}
}

// 100k distinct values, each read twice, recorded as fast as they come
// (a huge rate): the tracked values stay within MaxTracked, and the
// folded reads of forgotten values are still counted.
func TestMemoryBound(t *testing.T) {
	for _, opts := range []Options{{}, {PerMinute: 60_000_000, MaxTracked: 500}} {
		t.Run(fmt.Sprint(opts.MaxTracked), func(t *testing.T) {
			l, g := New(opts), newLedger()
			limit := l.opts.MaxTracked
			for i := range 100_000 {
				now := t0.Add(time.Duration(i) * time.Millisecond)
				v := fmt.Sprintf("EE%08X", i)
				g.admit(t, l, "front", "card", v, now)
				g.admit(t, l, "front", "card", v, now)
				if len(l.entries) > limit {
					t.Fatalf("%d values tracked, limit %d", len(l.entries), limit)
				}
				if i%1000 == 0 {
					g.add(t, l.Flush(now))
				}
				if len(l.tallies) > 2 || len(l.buckets) > 1 {
					t.Fatalf("%d tallies, %d buckets", len(l.tallies), len(l.buckets))
				}
			}
			g.add(t, l.Drain())
			g.check(t, true)
			forgotten := 0
			for _, s := range g.summaries {
				if s.Value == "" && !s.RateLimited {
					forgotten += s.Count
				}
			}
			if opts.MaxTracked == 500 && forgotten == 0 {
				t.Fatal("no forgotten value's reads were counted: the bound was not exercised")
			}
		})
	}
}

func TestClockSetBack(t *testing.T) {
	l, g := New(Options{}), newLedger()
	g.admit(t, l, "front", "card", "0B0BADCAFE", t0)
	g.admit(t, l, "front", "card", "0B0BADCAFE", t0.Add(time.Second))
	// The clock is set back an hour: the window is closed, not held open
	// for an hour, and the bucket earns nothing.
	back := t0.Add(-time.Hour)
	if v := g.admit(t, l, "front", "card", "0B0BADCAFE", back); v != (Verdict{Record: true, Count: 2, First: t0.Add(time.Second)}) {
		t.Fatalf("verdict %+v", v)
	}
	for i := range 20 {
		g.admit(t, l, "front", "card", fmt.Sprintf("EE%08X", i), back)
	}
	if g.records != 10 {
		t.Fatalf("%d records after the clock went back, want the burst of 10", g.records)
	}
	g.add(t, l.Flush(back.Add(time.Minute)))
	g.add(t, l.Drain())
	g.check(t, true)
}

func TestFlushNothingTwice(t *testing.T) {
	l, g := New(Options{}), newLedger()
	for i := range 50 {
		g.admit(t, l, "front", "card", fmt.Sprintf("EE%08X", i%5), t0.Add(time.Duration(i)*time.Second))
		g.admit(t, l, "keypad", "pin", "1234", t0.Add(time.Duration(i)*time.Second))
	}
	for range 3 {
		g.add(t, l.Flush(t0.Add(2*time.Minute)))
	}
	g.add(t, l.Drain())
	g.add(t, l.Drain())
	g.check(t, true)
}

// ops drives a Limiter from bytes: two readers, two types, a few values
// that repeat and fresh ones, small and large time steps, the clock set
// back now and then, Flushes.
func ops(t *testing.T, data []byte) {
	l := New(Options{MaxTracked: 8, Burst: 3, PerMinute: 30, Window: 10 * time.Second})
	g := newLedger()
	now := t0
	// The times of each reader's records while the clock ran forward
	// (a new list after each time it was set back).
	type run struct {
		reader string
		epoch  int
	}
	epoch := 0
	records := map[run][]time.Time{}
	for i, b := range data {
		switch b >> 5 {
		case 0:
			now = now.Add(time.Duration(b&31) * 100 * time.Millisecond)
		case 1:
			now = now.Add(time.Duration(b&31) * time.Second)
		case 2:
			if b&31 == 0 {
				now = now.Add(-time.Minute)
				epoch++
			}
			g.add(t, l.Flush(now))
		default:
			reader := []string{"front", "back"}[b&1]
			typ := []string{"card", "pin"}[b>>1&1]
			value := fmt.Sprint(b >> 2 & 7)
			if b>>5 == 7 {
				value = fmt.Sprint("fresh", i)
			}
			if v := g.admit(t, l, reader, typ, value, now); v.Record {
				records[run{reader, epoch}] = append(records[run{reader, epoch}], now)
			}
		}
		if len(l.entries) > 8 {
			t.Fatalf("%d values tracked", len(l.entries))
		}
		if i%64 == 0 {
			g.check(t, false)
		}
	}
	g.add(t, l.Drain())
	g.check(t, true)
	// While the clock runs forward, a reader records at most burst +
	// rate × span in any span.
	for r, at := range records {
		for i := range at {
			for j := i; j < len(at); j++ {
				if n, span := j-i+1, at[j].Sub(at[i]); float64(n) > 3+30*span.Minutes()+1e-9 {
					t.Fatalf("%s: %d records in %v", r.reader, n, span)
				}
			}
		}
	}
}

func TestAccountingRandom(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 99))
		data := make([]byte, 500)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		ops(t, data)
	}
}

func FuzzAccounting(f *testing.F) {
	f.Add([]byte{0xe0, 0xe0, 0xe0, 0x01, 0xe0, 0x40})
	f.Add([]byte{0xff, 0xfe, 0xfd, 0xfc, 0x3f, 0x41, 0xff, 0x40, 0x1f, 0x60})
	f.Fuzz(func(t *testing.T, data []byte) { ops(t, data) })
}

func BenchmarkAdmit(b *testing.B) {
	l := New(Options{})
	vals := make([]string, 4096)
	for i := range vals {
		vals[i] = fmt.Sprintf("EE%08X", i)
	}
	now := t0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		now = now.Add(10 * time.Millisecond)
		l.Admit("front", "card", vals[i%len(vals)], now)
		if i%100 == 0 {
			l.Flush(now)
		}
		i++
	}
}
