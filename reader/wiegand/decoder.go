package wiegand

import (
	"time"

	"github.com/punchclock/punchclock/reader/gpioline"
)

// Wiegand timing, as readers send it: D0 and D1 idle high; a pulse to low
// on D0 is a 0 bit, on D1 a 1 bit; pulses are 20–200 µs wide (50–100 µs
// typically) and start 1–2 ms apart (no reader leaves more than a few ms
// between the bits of a frame); a frame ends with silence.
const (
	// FrameGap is the silence that ends a frame.
	FrameGap = 25 * time.Millisecond
	// MinPulse: a pulse shorter than this is a glitch (a spike coupled
	// onto the cable), not a bit.
	MinPulse = 2 * time.Microsecond
	// MaxBits bounds a frame; longer ones are rejected whole.
	MaxBits = 128
)

// Lines of a Decoder's edges: Edge.Line is D0 or D1.
const (
	D0 = 0
	D1 = 1
)

// A Frame is the bits between two silences, first bit first. Bits is nil
// when Len > MaxBits; it is the Decoder's, valid until emit returns.
type Frame struct {
	Len  int
	Bits []bool
}

// A Decoder turns the edges of D0 and D1 into frames. It is pure: no
// I/O, no clock, no goroutines; time is the edges' timestamps, and the
// caller says when silence has lasted FrameGap (Flush), since no edge
// comes to say so.
//
// A bit is counted when its pulse ends (the rising edge), so that a
// glitch can be told from a bit: a pulse shorter than MinPulse, or one
// during which the other line was low too (both lines low at once
// happens only with noise), is discarded and counted as garbage, as are
// edges that contradict the line's level (a rise without a fall: the
// decoder started mid-pulse, or an edge was lost). A frame that lost a
// bit that way is shorter or fails its parity, and is rejected later:
// never a wrong card.
//
// The zero value is ready to use. A Decoder is not safe for concurrent
// use.
type Decoder struct {
	bits [MaxBits]bool
	n    int

	low    [2]bool
	fell   [2]time.Duration
	spoilt [2]bool
	last   time.Duration
	any    bool

	garbage uint64
}

// Garbage returns the number of edges discarded as glitches or as
// contradicting the lines' levels.
func (d *Decoder) Garbage() uint64 { return d.garbage }

// Edge consumes one edge; a frame that it shows to have ended (the edge
// came FrameGap or more after the last one, or its time went backwards,
// as a reopened chip's clock may) is passed to emit first.
func (d *Decoder) Edge(e gpioline.Edge, emit func(Frame)) {
	if e.Line != D0 && e.Line != D1 {
		d.garbage++
		return
	}
	if d.any && (e.At < d.last || e.At-d.last >= FrameGap) {
		d.Flush(emit)
	}
	d.last, d.any = e.At, true
	l, o := e.Line, 1-e.Line
	if !e.Rising {
		if d.low[l] {
			d.garbage++ // a fall without a rise: that pulse is lost
		}
		d.low[l], d.fell[l] = true, e.At
		d.spoilt[l] = d.low[o]
		if d.low[o] {
			d.spoilt[o] = true
		}
		return
	}
	if !d.low[l] {
		d.garbage++
		return
	}
	d.low[l] = false
	if d.spoilt[l] || e.At-d.fell[l] < MinPulse {
		d.garbage++
		return
	}
	if d.n < MaxBits {
		d.bits[d.n] = l == D1
	}
	if d.n <= MaxBits {
		d.n++
	}
}

// Flush ends the frame in progress, if any bit was received, and passes
// it to emit. Call it when no edge has come for FrameGap. A pulse still
// in progress is not a bit of the next frame.
func (d *Decoder) Flush(emit func(Frame)) {
	d.spoilt = [2]bool{d.low[0], d.low[1]}
	if d.n == 0 {
		return
	}
	f := Frame{Len: d.n}
	if d.n > MaxBits {
		f.Len = MaxBits + 1
	} else {
		f.Bits = d.bits[:d.n:d.n]
	}
	d.n = 0
	emit(f)
}

// Reset forgets everything but the counters: a new chip, new lines.
func (d *Decoder) Reset() {
	g := d.garbage
	*d = Decoder{garbage: g}
}
