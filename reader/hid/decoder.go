package hid

import (
	"errors"

	"github.com/punchclock/punchclock/reader"
)

// MaxValueLen bounds what one presentation may type. A longer run of
// keys without Enter is not a card: it is discarded up to the next Enter.
const MaxValueLen = 64

// ErrBadValue is wrapped by the twin's errors for a value a wedge reader
// cannot type.
var ErrBadValue = errors.New("hid: bad value")

// A Decoder turns the byte stream of an evdev node (struct input_event
// records) into the values a keyboard-wedge reader types. It is pure: no
// I/O, no clock, no goroutines. Bytes may be fed split at any position.
//
// Key-down events of the digit keys (top row and keypad) and of A…F
// append a character (letters upper case while a shift key is down;
// digits ignore shift, as readers set up for an AZERTY host hold shift to
// type them); Enter or keypad Enter ends the value. Key-up and autorepeat
// events, EV_SYN, EV_MSC and every other event type carry nothing; Num
// Lock is ignored. A value is discarded, and everything up to the next
// Enter with it, when
//   - an unknown key goes down (a reader typing something other than a
//     card number, or a keyboard),
//   - it grows past MaxValueLen,
//   - the kernel reports SYN_DROPPED (its buffer overflowed and events,
//     perhaps an Enter, were lost), or
//   - a record is implausible (see plausible: microseconds ≥ 10⁶, a type
//     past EV_MAX, a key value other than 0, 1, 2, ...): the stream is
//     not aligned on records, as a FIFO fed odd lengths can be; the
//     decoder then slides one byte at a time until records are
//     plausible again.
//
// So a value is never emitted unless every key of it was seen, in order,
// between two Enters.
//
// The zero value decodes NativeLayout. A Decoder is not safe for
// concurrent use.
type Decoder struct {
	// Layout is the record size; zero means NativeLayout. Set it before
	// the first Feed.
	Layout Layout

	rec [Layout64]byte // a partial record
	n   int

	val        [MaxValueLen]byte
	vn         int
	discarding bool // until the next Enter
	lshift     bool
	rshift     bool

	frames, bad, garbage uint64
}

// Feed consumes p and calls emit, synchronously and in order, with each
// value as its Enter is decoded.
func (d *Decoder) Feed(p []byte, emit func(value string)) {
	size := d.Layout.bytes()
	for len(p) > 0 {
		k := copy(d.rec[d.n:size], p)
		d.n += k
		p = p[k:]
		if d.n < size {
			return
		}
		e := parseEvent(d.rec[:size])
		if !plausible(e, d.Layout) {
			d.lose()
			d.garbage++
			copy(d.rec[:], d.rec[1:size])
			d.n = size - 1
			continue
		}
		d.n = 0
		d.event(e, emit)
	}
}

// plausible reports whether e can be an event the kernel wrote. The
// kernel writes whole records, so this only matters for a stream that
// lost its alignment; the tests are cheap and catch nearly every
// misaligned window: microseconds below 10⁶; seconds below 2⁴⁰ where they
// have 64 bits; a known type; SYN codes 0…3 with value 0 or 1 (1 marks a
// sync after autorepeat); MSC codes 0…7; key codes up to KEY_MAX with
// value up, down or repeat.
func plausible(e event, l Layout) bool {
	if e.usec >= 1_000_000 || l.bytes() == int(Layout64) && e.sec >= 1<<40 {
		return false
	}
	switch e.typ {
	case evSyn:
		return e.code <= synDropped && (e.value == 0 || e.value == 1)
	case evKey:
		return e.code <= keyMax && e.value >= keyUp && e.value <= keyRepeat
	case evMsc:
		return e.code <= 7
	}
	return e.typ <= evMax
}

func (d *Decoder) event(e event, emit func(string)) {
	switch e.typ {
	case evSyn:
		if e.code == synDropped {
			// The shift keys may have been released unseen too.
			d.lose()
			d.lshift, d.rshift = false, false
		}
		return
	case evKey:
	default:
		return
	}
	switch e.value {
	case keyDown:
		d.press(e.code, emit)
	case keyUp:
		switch e.code {
		case keyLeftShift:
			d.lshift = false
		case keyRightShift:
			d.rshift = false
		}
	}
}

func (d *Decoder) press(code uint16, emit func(string)) {
	switch code {
	case keyLeftShift:
		d.lshift = true
		return
	case keyRightShift:
		d.rshift = true
		return
	case keyNumLock:
		return
	case keyEnter, keyKPEnter:
		if d.discarding {
			d.discarding = false
			return
		}
		if d.vn > 0 {
			v := string(d.val[:d.vn])
			d.vn = 0
			d.frames++
			emit(v)
		}
		return
	}
	if d.discarding {
		d.garbage++
		return
	}
	var c byte
	if int(code) < len(keyChar) {
		c = keyChar[code]
	}
	if c == 0 || d.vn == MaxValueLen {
		d.lose()
		d.garbage++
		return
	}
	if c >= 'a' && (d.lshift || d.rshift) {
		c -= 'a' - 'A'
	}
	d.val[d.vn] = c
	d.vn++
}

// lose discards the value being typed, counting it as bad and its keys
// as garbage, and ignores keys until the next Enter.
func (d *Decoder) lose() {
	if d.discarding {
		return
	}
	d.bad++
	d.garbage += uint64(d.vn)
	d.vn = 0
	d.discarding = true
}

// Reset forgets everything pending (a partial record, a partial value,
// the shift keys), counting a partial value or record as bad. The driver
// calls it when the device is reopened: a fresh open starts at a record
// boundary with no key down.
func (d *Decoder) Reset() {
	if d.n > 0 || d.vn > 0 {
		d.bad++
		d.garbage += uint64(d.vn)
	}
	d.n, d.vn = 0, 0
	d.discarding, d.lshift, d.rshift = false, false, false
}

// Stats returns the decoder's counters: Frames (values decoded),
// BadFrames (values discarded) and Garbage (key presses discarded with
// them or while waiting for Enter, and bytes skipped to realign records).
func (d *Decoder) Stats() reader.Stats {
	return reader.Stats{Frames: d.frames, BadFrames: d.bad, Garbage: d.garbage}
}
