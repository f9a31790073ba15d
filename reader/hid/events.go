package hid

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"time"
)

// Event types and codes of linux/input-event-codes.h that the decoder
// and the twin use.
const (
	evSyn = 0x00
	evKey = 0x01
	evMsc = 0x04
	evMax = 0x1f

	synReport  = 0
	synDropped = 3 // the kernel's buffer overflowed: events were lost

	mscScan = 4 // the HID usage of the key that follows

	keyMax = 0x2ff

	// Key event values.
	keyUp     = 0
	keyDown   = 1
	keyRepeat = 2
)

// Key codes (linux/input-event-codes.h). They name key positions on a
// US keyboard, whatever layout the host has configured.
const (
	keyEsc        = 1
	key1          = 2 // KEY_1..KEY_9 are 2..10
	key0          = 11
	keyE          = 18
	keyEnter      = 28
	keyLeftCtrl   = 29
	keyA          = 30
	keyD          = 32
	keyF          = 33
	keyLeftShift  = 42
	keyC          = 46
	keyB          = 48
	keyRightShift = 54
	keyNumLock    = 69
	keyKP7        = 71
	keyKP8        = 72
	keyKP9        = 73
	keyKP4        = 75
	keyKP5        = 76
	keyKP6        = 77
	keyKP1        = 79
	keyKP2        = 80
	keyKP3        = 81
	keyKP0        = 82
	keyKPEnter    = 96
)

// keyChar maps the key codes a wedge reader types to the character they
// stand for; letters are lower case (upper case with shift held).
var keyChar = [128]byte{
	key1: '1', key1 + 1: '2', key1 + 2: '3', key1 + 3: '4', key1 + 4: '5',
	key1 + 5: '6', key1 + 6: '7', key1 + 7: '8', key1 + 8: '9', key0: '0',
	keyKP1: '1', keyKP2: '2', keyKP3: '3', keyKP4: '4', keyKP5: '5',
	keyKP6: '6', keyKP7: '7', keyKP8: '8', keyKP9: '9', keyKP0: '0',
	keyA: 'a', keyB: 'b', keyC: 'c', keyD: 'd', keyE: 'e', keyF: 'f',
}

// A Layout is the size in bytes of one struct input_event as a process
// reads it from an evdev node: a struct timeval of two C longs, then u16
// type, u16 code and s32 value.
type Layout int

// The two layouts Linux has.
const (
	// Layout64: 64-bit processes (arm64, amd64): 8-byte seconds and
	// microseconds, 24 bytes in all.
	Layout64 Layout = 24
	// Layout32: 32-bit processes (armhf/armel: Pi OS 32-bit, Pi Zero
	// and Pi 1 builds with GOARCH=arm): 4-byte seconds and
	// microseconds, 16 bytes in all. It stays 16 bytes with a 64-bit
	// time_t userland, since the kernel's input_event holds the time as
	// two __kernel_ulong_t.
	Layout32 Layout = 16
)

// NativeLayout is the layout this build reads. The kernel writes events
// in the layout of the reading process, not its own: a 32-bit process
// on a 64-bit kernel (armhf Pi OS on a Pi 4's arm64 kernel) gets the
// 16-byte compat layout. So the word size of the build decides; Go's
// bits.UintSize is that word size (64 on arm64 and amd64, 32 on arm and
// 386).
const NativeLayout = Layout(8 + 2*bits.UintSize/8)

// bytes returns the size of a record of l; any layout but Layout32 and
// Layout64 (the zero Layout included) is NativeLayout.
func (l Layout) bytes() int {
	switch l {
	case Layout32, Layout64:
		return int(l)
	}
	return int(NativeLayout)
}

// An event is one decoded struct input_event.
type event struct {
	sec, usec uint64
	typ, code uint16
	value     int32
}

// parseEvent decodes one record of len(rec) bytes (16 or 24), in the
// byte order of the machine, as the kernel writes it.
func parseEvent(rec []byte) event {
	w := (len(rec) - 8) / 2
	var e event
	if w == 8 {
		e.sec = binary.NativeEndian.Uint64(rec[0:])
		e.usec = binary.NativeEndian.Uint64(rec[8:])
	} else {
		e.sec = uint64(binary.NativeEndian.Uint32(rec[0:]))
		e.usec = uint64(binary.NativeEndian.Uint32(rec[4:]))
	}
	e.typ = binary.NativeEndian.Uint16(rec[2*w:])
	e.code = binary.NativeEndian.Uint16(rec[2*w+2:])
	e.value = int32(binary.NativeEndian.Uint32(rec[2*w+4:]))
	return e
}

// appendEvent appends e in layout l.
func appendEvent(b []byte, l Layout, e event) []byte {
	if l.bytes() == int(Layout64) {
		b = binary.NativeEndian.AppendUint64(b, e.sec)
		b = binary.NativeEndian.AppendUint64(b, e.usec)
	} else {
		b = binary.NativeEndian.AppendUint32(b, uint32(e.sec))
		b = binary.NativeEndian.AppendUint32(b, uint32(e.usec))
	}
	b = binary.NativeEndian.AppendUint16(b, e.typ)
	b = binary.NativeEndian.AppendUint16(b, e.code)
	return binary.NativeEndian.AppendUint32(b, uint32(e.value))
}

// usage is the USB HID usage (page 7, keyboard) of the keys the twin
// types, which a real keyboard reports as MSC_SCAN before each key event.
var usage = map[uint16]int32{
	key0: 0x27, keyEnter: 0x28, keyLeftShift: 0xE1,
	keyA: 0x04, keyB: 0x05, keyC: 0x06, keyD: 0x07, keyE: 0x08, keyF: 0x09,
	keyKP0: 0x62, keyKPEnter: 0x58,
	keyKP1: 0x59, keyKP2: 0x5A, keyKP3: 0x5B, keyKP4: 0x5C, keyKP5: 0x5D,
	keyKP6: 0x5E, keyKP7: 0x5F, keyKP8: 0x60, keyKP9: 0x61,
	key1: 0x1E, key1 + 1: 0x1F, key1 + 2: 0x20, key1 + 3: 0x21, key1 + 4: 0x22,
	key1 + 5: 0x23, key1 + 6: 0x24, key1 + 7: 0x25, key1 + 8: 0x26,
}

// A typist appends the events a USB keyboard sends, stamped with a clock
// that advances a little per event.
type typist struct {
	l Layout
	t time.Time
}

func (ty *typist) add(b []byte, typ, code uint16, value int32) []byte {
	us := ty.t.UnixMicro()
	b = appendEvent(b, ty.l, event{sec: uint64(us / 1e6), usec: uint64(us % 1e6), typ: typ, code: code, value: value})
	ty.t = ty.t.Add(100 * time.Microsecond)
	return b
}

// key appends one key event as a USB keyboard reports it: MSC_SCAN with
// the key's HID usage (when it has one), the key event, SYN_REPORT.
func (ty *typist) key(b []byte, code uint16, value int32) []byte {
	if u, ok := usage[code]; ok {
		b = ty.add(b, evMsc, mscScan, 0x70000|u)
	}
	b = ty.add(b, evKey, code, value)
	return ty.add(b, evSyn, synReport, 0)
}

// press appends a key going down and up.
func (ty *typist) press(b []byte, code uint16) []byte {
	b = ty.key(b, code, keyDown)
	return ty.key(b, code, keyUp)
}

// typeValue appends the events of a wedge reader typing value then
// Enter: digits on the top row (or on the keypad, then KP Enter), hex
// letters with left shift held for upper case.
func (ty *typist) typeValue(b []byte, value string, keypad bool) ([]byte, error) {
	if len(value) == 0 || len(value) > MaxValueLen {
		return nil, fmt.Errorf("%w: %q: want 1 to %d characters", ErrBadValue, value, MaxValueLen)
	}
	for _, c := range []byte(value) {
		code, shift, ok := codeFor(c, keypad)
		if !ok {
			return nil, fmt.Errorf("%w: %q: %q cannot be typed", ErrBadValue, value, c)
		}
		if shift {
			b = ty.key(b, keyLeftShift, keyDown)
		}
		b = ty.press(b, code)
		if shift {
			b = ty.key(b, keyLeftShift, keyUp)
		}
	}
	enter := uint16(keyEnter)
	if keypad {
		enter = keyKPEnter
	}
	return ty.press(b, enter), nil
}

// codeFor returns the key that types c, and whether shift is needed.
func codeFor(c byte, keypad bool) (code uint16, shift, ok bool) {
	lower := c
	if 'A' <= c && c <= 'F' {
		lower, shift = c-'A'+'a', true
	}
	for k, ch := range keyChar {
		isKP := k >= keyKP7 && k <= keyKP0
		if ch == lower && ch != 0 && (isKP == keypad || lower >= 'a') {
			return uint16(k), shift, true
		}
	}
	return 0, false, false
}
