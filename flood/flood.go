// Package flood keeps reads of unknown credentials from filling the disk.
// A card emulator can cycle card ids at a reader's frame rate, and a card
// left on a reader repeats itself ten times a second; each unknown read
// would otherwise become a stored and sent event. Unknown cards must
// still be kept and sent (admins enrol cards from them), and every read
// must still be accounted for.
//
// A Limiter folds repeats of one value at one reader within a window into
// the event of the first, and records at most a token bucket's worth of
// distinct unknown values per reader; the reads it holds back come out as
// Summaries, each with the number of reads it stands for. Every read
// given to Admit is counted exactly once: in the Count of a Verdict that
// says Record, or in the Count of one Summary.
//
// The agent uses it like this, for each read the roster does not know:
//
//	if v := lim.Admit(reader, typ, value, now); v.Record {
//		// store an event for this read, standing for v.Count reads
//	}
//
// and on a ticker (and with Drain when it stops) stores one event per
// Summary that Flush returns. A Limiter is pure: it starts no goroutine,
// reads no clock (now is passed in), and is not safe for concurrent use
// (the agent decides one read at a time).
package flood

import (
	"cmp"
	"slices"
	"time"
)

// Options tune a Limiter; zero fields take the defaults.
type Options struct {
	// Window: repeats of the same value at the same reader within Window
	// of the read that was recorded are folded into it. Default 60s.
	Window time.Duration
	// PerMinute distinct unknown values are recorded per reader per
	// minute at most, with bursts of Burst: a token bucket. Defaults 20
	// and 10.
	PerMinute int
	Burst     int
	// MaxTracked bounds the values remembered across all readers. When
	// it is reached, the value recorded longest ago is forgotten; its
	// folded reads are kept in a per-reader count. Besides, a Limiter
	// keeps a few counters per reader and credential type. Default 1024.
	MaxTracked int
}

func (o Options) withDefaults() Options {
	if o.Window <= 0 {
		o.Window = 60 * time.Second
	}
	if o.PerMinute <= 0 {
		o.PerMinute = 20
	}
	if o.Burst <= 0 {
		o.Burst = 10
	}
	if o.MaxTracked <= 0 {
		o.MaxTracked = 1024
	}
	return o
}

// Verdict says what to do with one read.
type Verdict struct {
	// Record: store an event for this read. Otherwise the read was
	// folded, and a later Verdict or Summary counts it.
	Record bool
	// Count is the number of reads the event stands for: 1, or more when
	// it also stands for folded repeats of the same value before it.
	Count int
	// First is the time of the earliest read counted (the read's own
	// time when Count is 1).
	First time.Time
}

// Summary stands for reads that no recorded Verdict counted.
type Summary struct {
	Reader, CredType string
	// Value is the credential value whose repeats were folded, as given
	// to Admit: treat it like the read's own value (punch.Decide sends
	// only a card's, never a PIN). It is empty when the summary covers
	// several values: reads rate-limited at the reader (RateLimited), or
	// folded repeats of values forgotten to bound memory.
	Value       string
	Count       int
	First, Last time.Time // of the reads counted
	RateLimited bool
}

type key struct{ reader, typ, value string }

// entry is a value recorded within the last window (or whose folded
// reads are not yet reported), in a list ordered by when it was recorded.
type entry struct {
	key
	start       time.Time // the recorded read that opened the window
	folded      int       // reads since, not yet counted
	first, last time.Time // of the folded reads
	prev, next  *entry
}

// tally counts reads of several values at one reader.
type tally struct {
	count       int
	first, last time.Time
}

func (t *tally) add(n int, first, last time.Time) {
	if t.count == 0 || first.Before(t.first) {
		t.first = first
	}
	if t.count == 0 || last.After(t.last) {
		t.last = last
	}
	t.count += n
}

type tallyKey struct {
	reader, typ string
	limited     bool // rate-limited; otherwise forgotten entries' folds
}

type bucket struct {
	tokens float64
	at     time.Time
}

// Limiter decides which unknown reads to record. Create it with New.
type Limiter struct {
	opts       Options
	perNano    float64 // tokens per nanosecond
	entries    map[key]*entry
	head, tail *entry
	tallies    map[tallyKey]*tally
	buckets    map[string]*bucket
}

// New returns a Limiter with opts (zero fields take the defaults).
func New(opts Options) *Limiter {
	opts = opts.withDefaults()
	return &Limiter{
		opts:    opts,
		perNano: float64(opts.PerMinute) / float64(time.Minute),
		entries: make(map[key]*entry),
		tallies: make(map[tallyKey]*tally),
		buckets: make(map[string]*bucket),
	}
}

// open reports whether a window opened at start is open at now. A clock
// set back closes it, so that a wrong clock cannot hold reads back.
func (l *Limiter) open(start, now time.Time) bool {
	d := now.Sub(start)
	return d >= 0 && d < l.opts.Window
}

// Admit decides about one read of an unknown credential at now.
func (l *Limiter) Admit(reader, credType, value string, now time.Time) Verdict {
	k := key{reader, credType, value}
	if e := l.entries[k]; e != nil {
		if !l.open(e.start, now) && l.take(reader, now) {
			v := Verdict{Record: true, Count: 1 + e.folded, First: now}
			if e.folded > 0 {
				v.First = e.first
			}
			e.start, e.folded = now, 0
			l.unlink(e)
			l.push(e)
			return v
		}
		// A repeat within the window, or after it while the reader is
		// rate-limited: Flush reports it with its value.
		if e.folded == 0 {
			e.first = now
		}
		e.folded++
		e.last = now
		return Verdict{}
	}
	if !l.take(reader, now) {
		l.tally(tallyKey{reader, credType, true}, 1, now, now)
		return Verdict{}
	}
	if len(l.entries) >= l.opts.MaxTracked {
		l.forget(l.head)
	}
	e := &entry{key: k, start: now}
	l.entries[k] = e
	l.push(e)
	return Verdict{Record: true, Count: 1, First: now}
}

// Flush returns a Summary for every value whose window has closed with
// folded reads not yet counted, and for the reads rate-limited or
// forgotten at a reader in a window that has closed (each window opens
// at the first read it counts). Each read is in at most one Summary.
// Summaries come oldest first.
func (l *Limiter) Flush(now time.Time) []Summary {
	var out []Summary
	for e := l.head; e != nil; {
		next := e.next
		if !l.open(e.start, now) && (e.folded == 0 || !l.open(e.first, now)) {
			if e.folded > 0 {
				out = append(out, Summary{Reader: e.reader, CredType: e.typ, Value: e.value, Count: e.folded, First: e.first, Last: e.last})
			}
			l.remove(e)
		}
		e = next
	}
	for tk, t := range l.tallies {
		if !l.open(t.first, now) {
			out = append(out, Summary{Reader: tk.reader, CredType: tk.typ, Count: t.count, First: t.first, Last: t.last, RateLimited: tk.limited})
			delete(l.tallies, tk)
		}
	}
	for name, b := range l.buckets {
		if l.refill(b, now) >= float64(l.opts.Burst) {
			delete(l.buckets, name) // a new bucket is full too
		}
	}
	sortSummaries(out)
	return out
}

// Drain returns a Summary for every read not yet counted, whatever the
// windows, and forgets everything: for when the agent stops.
func (l *Limiter) Drain() []Summary {
	var out []Summary
	for e := l.head; e != nil; e = e.next {
		if e.folded > 0 {
			out = append(out, Summary{Reader: e.reader, CredType: e.typ, Value: e.value, Count: e.folded, First: e.first, Last: e.last})
		}
	}
	for tk, t := range l.tallies {
		out = append(out, Summary{Reader: tk.reader, CredType: tk.typ, Count: t.count, First: t.first, Last: t.last, RateLimited: tk.limited})
	}
	clear(l.entries)
	clear(l.tallies)
	clear(l.buckets)
	l.head, l.tail = nil, nil
	sortSummaries(out)
	return out
}

func sortSummaries(s []Summary) {
	slices.SortFunc(s, func(a, b Summary) int {
		return cmp.Or(a.First.Compare(b.First), cmp.Compare(a.Reader, b.Reader), cmp.Compare(a.CredType, b.CredType),
			cmp.Compare(a.Value, b.Value), cmp.Compare(b2i(a.RateLimited), b2i(b.RateLimited)))
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// take spends one of the reader's tokens, if it has one.
func (l *Limiter) take(reader string, now time.Time) bool {
	b := l.buckets[reader]
	if b == nil {
		b = &bucket{tokens: float64(l.opts.Burst), at: now}
		l.buckets[reader] = b
	}
	if l.refill(b, now) < 1 {
		return false
	}
	b.tokens--
	return true
}

// refill adds the tokens earned since the bucket was last looked at. A
// clock set back earns nothing.
func (l *Limiter) refill(b *bucket, now time.Time) float64 {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(float64(l.opts.Burst), b.tokens+float64(d)*l.perNano)
	}
	b.at = now
	return b.tokens
}

func (l *Limiter) tally(tk tallyKey, n int, first, last time.Time) {
	t := l.tallies[tk]
	if t == nil {
		t = &tally{}
		l.tallies[tk] = t
	}
	t.add(n, first, last)
}

// forget drops e to make room, keeping its folded reads in its reader's
// count.
func (l *Limiter) forget(e *entry) {
	if e.folded > 0 {
		l.tally(tallyKey{e.reader, e.typ, false}, e.folded, e.first, e.last)
	}
	l.remove(e)
}

func (l *Limiter) remove(e *entry) {
	l.unlink(e)
	delete(l.entries, e.key)
}

func (l *Limiter) push(e *entry) {
	e.prev, e.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = e
	} else {
		l.head = e
	}
	l.tail = e
}

func (l *Limiter) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
}
