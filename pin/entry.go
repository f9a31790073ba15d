package pin

import (
	"slices"
	"strconv"
	"time"
)

// DefaultEntryTimeout is how long a partial entry waits for its next key.
const DefaultEntryTimeout = 10 * time.Second

// Kind says what a key press completed.
type Kind int

const (
	// None: nothing to act on (a digit typed, '*' clearing, a key
	// ignored).
	None Kind = iota
	// PIN: '#' ended an entry of MinDigits to MaxDigits digits;
	// Result.PIN holds them.
	PIN
	// Discarded: an entry failed: '#' after fewer than MinDigits digits
	// (none included), or a digit past MaxDigits. The caller shows
	// "denied".
	Discarded
	// Function: a function key, "A"…"D" or "F1"…"F4", in Result.Key.
	Function
)

func (k Kind) String() string {
	switch k {
	case None:
		return "none"
	case PIN:
		return "pin"
	case Discarded:
		return "discarded"
	case Function:
		return "function"
	}
	return "pin.Kind(" + strconv.Itoa(int(k)) + ")"
}

// Result is what one key press completed.
type Result struct {
	Kind Kind
	PIN  string // for Kind PIN: hash it at once, never log it
	Key  string // for Kind Function: the key's label
}

// Entry assembles the key presses of each reader into PINs:
//
//   - digits accumulate;
//   - '#' ends the entry: a PIN if it has MinDigits to MaxDigits digits,
//     Discarded otherwise;
//   - '*' clears the entry;
//   - the digit after MaxDigits discards the entry (Discarded, once); the
//     keys after it are ignored until '#' or '*' starts afresh;
//   - EntryTimeout without a key discards what was typed (see Expire);
//   - function keys are returned as they are and leave the digits alone
//     (they are key presses, so they do restart the timeout);
//   - other labels are ignored.
//
// The zero Entry is ready to use, with EntryTimeout taken as
// DefaultEntryTimeout. It keeps one small record per reader with an entry
// under way, and none for others.
type Entry struct {
	// EntryTimeout: a partial entry with no key for this long is
	// discarded. Zero or less means DefaultEntryTimeout.
	EntryTimeout time.Duration

	partial map[string]*partial
}

// partial is one reader's entry under way.
type partial struct {
	digits   [MaxDigits]byte
	n        int
	overflow bool // a digit past MaxDigits was typed: ignore keys until '#' or '*'
	last     time.Time
}

// NewEntry returns an Entry with EntryTimeout set to its default.
func NewEntry() *Entry { return &Entry{EntryTimeout: DefaultEntryTimeout} }

func (e *Entry) timeout() time.Duration {
	if e.EntryTimeout <= 0 {
		return DefaultEntryTimeout
	}
	return e.EntryTimeout
}

// expired reports whether an entry whose last key came at last has timed
// out at now. A now before last (times from two sources, a little out of
// order) never expires an entry.
func (e *Entry) expired(p *partial, now time.Time) bool {
	return now.Sub(p.last) >= e.timeout()
}

// Key takes one key press at reader at time at. A partial entry that
// timed out before at is first discarded without being reported: call
// Expire before Key to have it reported.
func (e *Entry) Key(reader, key string, at time.Time) Result {
	p := e.partial[reader]
	if p != nil && e.expired(p, at) {
		e.drop(reader, p)
		p = nil
	}
	switch {
	case len(key) == 1 && key[0] >= '0' && key[0] <= '9':
		if p == nil {
			p = e.start(reader)
		}
		p.last = at
		switch {
		case p.overflow:
			return Result{}
		case p.n == MaxDigits:
			clear(p.digits[:])
			p.n, p.overflow = 0, true
			return Result{Kind: Discarded}
		}
		p.digits[p.n] = key[0]
		p.n++
		return Result{}
	case key == "#":
		if p == nil {
			return Result{Kind: Discarded}
		}
		overflow, n := p.overflow, p.n
		pin := string(p.digits[:n])
		e.drop(reader, p)
		switch {
		case overflow:
			return Result{} // reported at the digit that overflowed it
		case n < MinDigits:
			return Result{Kind: Discarded}
		}
		return Result{Kind: PIN, PIN: pin}
	case key == "*":
		if p != nil {
			e.drop(reader, p)
		}
		return Result{}
	case isFunction(key):
		if p != nil {
			p.last = at
		}
		return Result{Kind: Function, Key: key}
	}
	return Result{}
}

func isFunction(key string) bool {
	switch key {
	case "A", "B", "C", "D", "F1", "F2", "F3", "F4":
		return true
	}
	return false
}

func (e *Entry) start(reader string) *partial {
	if e.partial == nil {
		e.partial = make(map[string]*partial)
	}
	p := &partial{}
	e.partial[reader] = p
	return p
}

// drop forgets reader's entry, clearing its digits first.
func (e *Entry) drop(reader string, p *partial) {
	clear(p.digits[:])
	delete(e.partial, reader)
}

// Expire discards the partial entries that have had no key for
// EntryTimeout at now, and returns the readers (sorted) whose entries
// held digits; an entry already reported Discarded for its length is
// discarded silently. Call it on a ticker, and before Key to have every
// timeout reported.
func (e *Entry) Expire(now time.Time) []string {
	var out []string
	for reader, p := range e.partial {
		if !e.expired(p, now) {
			continue
		}
		if !p.overflow {
			out = append(out, reader)
		}
		e.drop(reader, p)
	}
	slices.Sort(out)
	return out
}

// Pending reports whether reader has an entry under way: digits typed,
// or an overflowed entry whose keys are being ignored, that neither '#',
// '*' nor a timeout (seen by Expire or Key) has ended.
func (e *Entry) Pending(reader string) bool {
	return e.partial[reader] != nil
}
