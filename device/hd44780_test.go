package device_test

import (
	"fmt"
	"slices"
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/punchclock/punchclock/device"
)

// latched decodes what a PCF8574 backpack (P0 RS, P1 RW, P2 E, P3
// backlight, P4 to P7 D4 to D7) made the HD44780 latch: one nibble on each
// falling edge of E, as "c3" (RS low: a command nibble) or "d4" (RS high:
// data). It also checks every write: one byte to addr, RW low, and the
// backlight on from the first write that set it.
func latched(t *testing.T, ops []i2ctest.IO, addr uint16, prev byte) ([]string, byte) {
	t.Helper()
	var out []string
	for i, op := range ops {
		if op.Addr != addr || len(op.W) != 1 || len(op.R) != 0 {
			t.Fatalf("write %d: %+v, want one byte to %#x", i, op, addr)
		}
		b := op.W[0]
		if b&0x02 != 0 {
			t.Fatalf("write %d: %#02x: RW high", i, b)
		}
		if b&0x08 == 0 && prev&0x08 != 0 {
			t.Fatalf("write %d: %#02x: backlight off", i, b)
		}
		if prev&0x04 != 0 && b&0x04 == 0 {
			kind := "c"
			if b&0x01 != 0 {
				kind = "d"
			}
			out = append(out, fmt.Sprintf("%s%x", kind, b>>4))
		}
		prev = b
	}
	return out, prev
}

// nibbles spells a command (kind "c") or data bytes ("d") as the two
// nibbles of each byte, high first.
func nibbles(kind string, bs ...byte) []string {
	var out []string
	for _, b := range bs {
		out = append(out, fmt.Sprintf("%s%x", kind, b>>4), fmt.Sprintf("%s%x", kind, b&0xF))
	}
	return out
}

func text(s string) []string { return nibbles("d", []byte(s)...) }

func TestLCDInitAndText(t *testing.T) {
	rec := &i2ctest.Record{}
	l, err := device.NewLCD(rec, 0x27, 16, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.Size(), (device.Size{Cols: 16, Rows: 2}); got != want {
		t.Errorf("size %v, want %v", got, want)
	}
	if rec.Ops[0].W[0] != 0x08 {
		t.Errorf("first write %#02x, want the backlight alone (0x08)", rec.Ops[0].W[0])
	}
	got, state := latched(t, rec.Ops, 0x27, 0)
	// periph's initialisation, then ours (HD44780U datasheet figure 24):
	// three 0x3 and a 0x2 nibble put it in 4-bit mode whatever it was in.
	want := []string{"c3", "c3", "c3", "c2"}
	want = append(want, nibbles("c", 0x14, 0x10, 0x01, 0x06, 0x0C, 0x01, 0x02)...) // periph v3.7.4
	want = append(want, "c3", "c3", "c3", "c2")
	want = append(want, nibbles("c",
		0x28, // function set: 4-bit, two lines, 5x8 dots
		0x0C, // display on, no cursor, no blink
		0x06, // entry mode: increment, no shift
		0x01, // clear
	)...)
	if !slices.Equal(got, want) {
		t.Fatalf("init latched\n%v\nwant\n%v", got, want)
	}

	show := func(lines ...string) []string {
		t.Helper()
		rec.Ops = nil
		if err := l.Show(lines); err != nil {
			t.Fatal(err)
		}
		var got []string
		got, state = latched(t, rec.Ops, 0x27, state)
		return got
	}
	got = show("Good morning", "Zoë IN 08:02")
	want = slices.Concat(nibbles("c", 0x80), text("Good morning    "), nibbles("c", 0xC0), text("Zoe IN 08:02    "))
	if !slices.Equal(got, want) {
		t.Errorf("text latched\n%v\nwant\n%v", got, want)
	}
	if got = show("Good morning", "Zoë IN 08:02"); len(got) != 0 || len(rec.Ops) != 0 {
		t.Errorf("the same lines again sent %d writes, latched %v", len(rec.Ops), got)
	}
	got = show("Good morning", "Bo IN 08:03 and a tail cut")
	if want = slices.Concat(nibbles("c", 0xC0), text("Bo IN 08:03 and ")); !slices.Equal(got, want) {
		t.Errorf("second row only\n%v\nwant\n%v", got, want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLCD20x4Rows: rows 2 and 3 of a 20x4 panel start at DDRAM 0x14 and
// 0x54 (set DDRAM address 0x94 and 0xD4), the continuation of rows 0 and 1.
func TestLCD20x4Rows(t *testing.T) {
	rec := &i2ctest.Record{}
	l, err := device.NewLCD(rec, 0x3F, 20, 4)
	if err != nil {
		t.Fatal(err)
	}
	_, state := latched(t, rec.Ops, 0x3F, 0)
	rec.Ops = nil
	if err := l.Show([]string{"", "", "row two", "row three"}); err != nil {
		t.Fatal(err)
	}
	got, _ := latched(t, rec.Ops, 0x3F, state)
	want := slices.Concat(nibbles("c", 0x94), text("row two             "), nibbles("c", 0xD4), text("row three           "))
	if !slices.Equal(got, want) {
		t.Errorf("latched\n%v\nwant\n%v", got, want)
	}
}

func TestLCDRejects(t *testing.T) {
	for _, s := range []device.Size{{Cols: 7, Rows: 2}, {Cols: 16, Rows: 5}, {Cols: 40, Rows: 4}} {
		if _, err := device.NewLCD(&i2ctest.Record{}, 0x27, s.Cols, s.Rows); err == nil {
			t.Errorf("%dx%d accepted", s.Cols, s.Rows)
		}
	}
	if _, err := device.NewLCD(&i2ctest.Playback{DontPanic: true}, 0x27, 16, 2); err == nil {
		t.Error("a bus that fails accepted")
	}
}
