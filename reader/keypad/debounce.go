package keypad

import (
	"math/bits"
	"time"
)

// Debounce is how long a key must read the same before its new state
// counts. Membrane and dome keypads bounce for 1–10 ms.
const Debounce = 20 * time.Millisecond

// MaxKeys bounds a matrix: a 4×4 pad has 16 keys; the state is a bit set.
const MaxKeys = 64

// A Debouncer turns raw samples of a key matrix into presses: a key is
// reported once when it has read down for Debounce, and can be reported
// again only after it has read up for Debounce. It is pure: no I/O, no
// clock (the samples carry their time), no goroutines.
//
// The zero value is ready to use. A Debouncer is not safe for
// concurrent use.
type Debouncer struct {
	raw, stable uint64
	since       [MaxKeys]time.Duration // when each key's raw state last changed
	bounces     uint64
}

// Sample takes the keys that read down at time at (bit k set: key k is
// down) and calls press, in key order, for each key whose press has now
// lasted Debounce. Times must not go backwards.
func (d *Debouncer) Sample(at time.Duration, down uint64, press func(key int)) {
	for changed := d.raw ^ down; changed != 0; changed &= changed - 1 {
		k := bits.TrailingZeros64(changed)
		if (d.raw^d.stable)>>k&1 == 1 {
			d.bounces++ // a change that had not lasted: a bounce
		}
		d.since[k] = at
	}
	d.raw = down
	for pending := d.raw ^ d.stable; pending != 0; pending &= pending - 1 {
		k := bits.TrailingZeros64(pending)
		if at-d.since[k] < Debounce {
			continue
		}
		d.stable ^= 1 << k
		if d.stable>>k&1 == 1 {
			press(k)
		}
	}
}

// Busy reports whether any key is down or changing: the scan must then
// look at every row, not only whether any column is low.
func (d *Debouncer) Busy() bool { return d.raw|d.stable != 0 }

// Bounces returns the number of raw changes that did not last Debounce.
func (d *Debouncer) Bounces() uint64 { return d.bounces }

// Reset forgets the keys' states, keeping the counter.
func (d *Debouncer) Reset() { *d = Debouncer{bounces: d.bounces} }

// Layouts: the labels of 4×3 and 4×4 pads, row by row, as printed on the
// common membrane keypads.
var (
	Layout4x3 = []string{"123", "456", "789", "*0#"}
	Layout4x4 = []string{"123A", "456B", "789C", "*0#D"}
)

// validLabels are the labels a layout may use: the key labels of
// reader.TypeKey that are one character.
const validLabels = "0123456789*#ABCD"
