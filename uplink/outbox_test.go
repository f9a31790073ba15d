package uplink

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// memOutbox is an in-memory Outbox for tests, safe for concurrent use.
type memOutbox struct {
	mu      sync.Mutex
	rows    []Message // ascending Seq
	next    uint64
	removed []uint64 // every Seq reported Sent, in that order
	calls   int      // Sent calls
	changed chan struct{}

	rejected  map[uint64]string // dead letters: seq -> reason
	rejectErr error             // if set, Reject fails with it (and keeps the row)
	rejectTry int               // Reject calls
}

var _ Outbox = (*memOutbox)(nil)

func newMemOutbox() *memOutbox { return &memOutbox{changed: make(chan struct{})} }

// add appends a row and returns its Seq.
func (o *memOutbox) add(kind string, payload []byte) uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.next++
	o.rows = append(o.rows, Message{Seq: o.next, Kind: kind, Payload: payload})
	o.signal()
	return o.next
}

// redue puts m back into the outbox at its Seq, as an outbox does with a
// row that was PUBACKed but never confirmed.
func (o *memOutbox) redue(m Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	i, _ := slices.BinarySearchFunc(o.rows, m.Seq, func(r Message, seq uint64) int { return cmp.Compare(r.Seq, seq) })
	o.rows = slices.Insert(o.rows, i, m)
	o.signal()
}

// addN appends n rows alternating events and shifts, with JSON payloads
// that carry their Seq.
func (o *memOutbox) addN(n int) {
	for range n {
		o.mu.Lock()
		seq := o.next + 1
		kind := KindEvents
		if seq%2 == 0 {
			kind = KindShifts
		}
		o.mu.Unlock()
		o.add(kind, fmt.Appendf(nil, `{"seq":%d,"kind":%q}`, seq, kind))
	}
}

func (o *memOutbox) Peek(after uint64, max int) ([]Message, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	i, _ := slices.BinarySearchFunc(o.rows, after+1, func(m Message, seq uint64) int {
		switch {
		case m.Seq < seq:
			return -1
		case m.Seq > seq:
			return 1
		}
		return 0
	})
	end := min(len(o.rows), i+max)
	return slices.Clone(o.rows[i:end]), nil
}

func (o *memOutbox) Sent(seqs []uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	o.removed = append(o.removed, seqs...)
	gone := make(map[uint64]bool, len(seqs))
	for _, s := range seqs {
		gone[s] = true
	}
	o.rows = slices.DeleteFunc(o.rows, func(m Message) bool { return gone[m.Seq] })
	o.signal()
	return nil
}

func (o *memOutbox) Reject(seq uint64, reason string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rejectTry++
	if o.rejectErr != nil {
		return o.rejectErr
	}
	i := slices.IndexFunc(o.rows, func(m Message) bool { return m.Seq == seq })
	if i < 0 {
		return nil
	}
	o.rows = slices.Delete(o.rows, i, i+1)
	if o.rejected == nil {
		o.rejected = make(map[uint64]string)
	}
	o.rejected[seq] = reason
	o.signal()
	return nil
}

func (o *memOutbox) Pending() (int, error) { return o.len(), nil }

// setRejectErr makes Reject fail with err (nil: succeed).
func (o *memOutbox) setRejectErr(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rejectErr = err
}

// rejections returns the dead letters so far and the number of Reject calls.
func (o *memOutbox) rejections() (map[uint64]string, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.rejected), o.rejectTry
}

// signal wakes waiters; o.mu is held.
func (o *memOutbox) signal() {
	close(o.changed)
	o.changed = make(chan struct{})
}

func (o *memOutbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.rows)
}

// wait returns a channel closed at the next change, and the current length.
func (o *memOutbox) wait() (<-chan struct{}, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.changed, len(o.rows)
}

func (o *memOutbox) removedSeqs() []uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.removed)
}
