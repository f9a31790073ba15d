package device_test

import (
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/punchclock/punchclock/device"
)

// ssd1306Init is what NewOLED sends to a 128x64 panel: one I²C write of
// control byte 0x00 (a stream of commands) and periph's initialisation
// (SSD1306 datasheet, "Software initialization" and the command table).
func ssd1306Init(addr uint16) i2ctest.IO {
	return i2ctest.IO{Addr: addr, W: []byte{
		0x00,       // control byte: commands follow
		0xAE,       // display off
		0xD3, 0x00, // display offset 0
		0x40,       // start line 0
		0xA1,       // segment remap: column 127 is SEG0
		0xC8,       // COM scan from COM[N-1] to COM0
		0xDA, 0x12, // COM pins: alternative, no left/right remap
		0x81, 0xFF, // contrast 255
		0xA4,       // show the RAM's content
		0xA6,       // normal (not inverted)
		0xD5, 0xF0, // oscillator frequency highest, divide ratio 1
		0x8D, 0x14, // charge pump on
		0xD9, 0xF1, // pre-charge phases 1 and 15 clocks
		0xDB, 0x40, // VCOMH deselect level
		0x2E,     // scrolling off
		0xA8, 63, // multiplex ratio: 64 lines
		0x20, 0x00, // horizontal addressing
		0x21, 0, 127, // columns 0 to 127
		0x22, 0, 7, // pages 0 to 7
		0xAF, // display on
	}}
}

// page is the command that starts writing at column col of page p, and
// the data write that follows it (control byte 0x40).
func page(addr uint16, p, col byte, data ...byte) []i2ctest.IO {
	return []i2ctest.IO{
		{Addr: addr, W: []byte{0x00, 0xB0 | p, col & 0x0F, 0x10 | col>>4}},
		{Addr: addr, W: append([]byte{0x40}, data...)},
	}
}

// TestOLEDInitAndText plays back the whole conversation: the init, the
// first (full, blank) frame, then "A" on the first row. The glyph's bytes
// are worked out by hand from periph's CP437 'A' (rows 0x38 0x6C 0xC6 0xC6
// 0xFE 0xC6 0xC6 0x00, bit 7 leftmost) drawn at y 4 to 11: its rows 0 to 3
// fall in bits 4 to 7 of page 0, rows 4 to 7 in bits 0 to 3 of page 1;
// only the 7 columns the glyph lights are sent.
func TestOLEDInitAndText(t *testing.T) {
	for _, addr := range []uint16{0x3C, 0x3D} {
		ops := []i2ctest.IO{ssd1306Init(addr)}
		for p := range byte(8) {
			ops = append(ops, page(addr, p, 0, make([]byte, 128)...)...)
		}
		top := []byte{0xC0, 0xE0, 0x30, 0x10, 0x30, 0xE0, 0xC0}
		bottom := []byte{0x07, 0x07, 0x01, 0x01, 0x01, 0x07, 0x07}
		ops = append(ops, page(addr, 0, 0, top...)...)
		ops = append(ops, page(addr, 1, 0, bottom...)...)
		// "A" one cell on: columns 0 to 7 cleared, the same bytes at
		// columns 8 to 14.
		blank := make([]byte, 8)
		ops = append(ops, page(addr, 0, 0, append(blank, top...)...)...)
		ops = append(ops, page(addr, 1, 0, append(blank, bottom...)...)...)
		bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
		o, err := device.NewOLED(bus, addr, 128, 64)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := o.Size(), (device.Size{Cols: 16, Rows: 4}); got != want {
			t.Errorf("size %v, want %v", got, want)
		}
		if err := o.Show([]string{"A"}); err != nil {
			t.Fatal(err)
		}
		if err := o.Show([]string{"A"}); err != nil { // unchanged: nothing sent
			t.Fatal(err)
		}
		if err := o.Show([]string{" A", "", "", "", "a fifth row is ignored"}); err != nil {
			t.Fatal(err)
		}
		if err := bus.Close(); err != nil {
			t.Fatalf("at %#x: %v", addr, err)
		}
	}
}

// TestOLEDText records a punch's four rows and checks each row's band of
// pixels is lit where its text is and dark elsewhere.
func TestOLEDText(t *testing.T) {
	rec := &i2ctest.Record{}
	o, err := device.NewOLED(rec, 0x3C, 128, 64)
	if err != nil {
		t.Fatal(err)
	}
	rec.Ops = nil
	lines := []string{"Good morning", "Zoë", "", "IN 08:02"}
	if err := o.Show(lines); err != nil {
		t.Fatal(err)
	}
	// Rebuild the frame from the page writes.
	var fb [8][128]byte
	var p, col int
	for _, op := range rec.Ops {
		switch op.W[0] {
		case 0x00:
			p, col = int(op.W[1]&0x07), int(op.W[2]&0x0F|op.W[3]<<4)
		case 0x40:
			copy(fb[p][col:], op.W[1:])
		}
	}
	lit := func(row, c int) bool { // any pixel of the text cell
		for x := c * 8; x < c*8+8; x++ {
			for y := row*16 + 4; y < row*16+12; y++ {
				if fb[y/8][x]&(1<<(y%8)) != 0 {
					return true
				}
			}
		}
		return false
	}
	for row, l := range []string{"Good morning", "Zoe", "", "IN 08:02"} {
		for c := range 16 {
			want := c < len(l) && l[c] != ' '
			if lit(row, c) != want {
				t.Errorf("row %d column %d (%q): lit %v", row, c, l, !want)
			}
		}
	}
	for y := range 64 {
		if y%16 >= 4 && y%16 < 12 {
			continue
		}
		for x := range 128 {
			if fb[y/8][x]&(1<<(y%8)) != 0 {
				t.Fatalf("pixel %d,%d between rows is lit", x, y)
			}
		}
	}
}

func TestOLEDRejects(t *testing.T) {
	if _, err := device.NewOLED(&i2ctest.Record{}, 0x27, 128, 64); err == nil {
		t.Error("address 0x27 accepted")
	}
	if _, err := device.NewOLED(&i2ctest.Record{}, 0x3C, 128, 8); err == nil {
		t.Error("8 pixels high accepted")
	}
	bus := &i2ctest.Playback{DontPanic: true} // no device answers
	if _, err := device.NewOLED(bus, 0x3C, 128, 64); err == nil {
		t.Error("a bus that fails accepted")
	}
}
