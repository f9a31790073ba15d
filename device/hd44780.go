package device

import (
	"fmt"
	"strings"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/devices/v3/hd44780"
	"periph.io/x/devices/v3/pcf857x"
)

// The PCF8574 backpack's wiring to the LCD, as on the common "LCM1602
// IIC" boards: P0 RS, P1 RW, P2 E, P3 backlight, P4 to P7 D4 to D7.
const (
	bpRS        = 0
	bpRW        = 1
	bpE         = 2
	bpBacklight = 3
	bpD4        = 4
)

// An LCD is an HD44780 character LCD behind a PCF8574 I²C backpack, driven
// by periph's hd44780 driver (4-bit mode) through periph's pcf857x pins.
// Each pin change is one I²C write, so a character costs about a dozen
// writes (1 to 2 ms at 100 kHz): Show rewrites only the rows that changed.
//
// periph's hd44780 (v3.7.4) leaves the controller in one-line mode (its
// initialisation sends 0x14, a cursor shift, where the function set 0x28
// for two lines belongs) and addresses only rows 0 and 1 (row*0x40).
// NewLCD therefore repeats the datasheet's initialisation by instruction
// (HD44780U datasheet, figure 24) with the function set for two lines
// after periph's, and reaches rows 2 and 3 of a 20x4 or 16x4 panel as the
// continuation of rows 0 and 1 (DDRAM 0x00+cols and 0x40+cols).
type LCD struct {
	dev   *hd44780.Dev
	rs, e gpio.PinOut
	light gpio.PinOut
	data  []gpio.PinOut
	size  Size
	shown []string // the rows on the panel, padded to Cols
}

var _ Screen = (*LCD)(nil)

// NewLCD initialises the LCD of cols by rows characters (16x2, 20x4) behind
// the PCF8574 at addr (0x27, or 0x20 to 0x27 by its jumpers; 0x3F for a
// PCF8574A) on bus, with the backlight on, and clears it. It waits the
// few milliseconds the controller's initialisation needs.
func NewLCD(bus i2c.Bus, addr uint16, cols, rows int) (*LCD, error) {
	if cols < 8 || cols > 40 || rows < 1 || rows > 4 || cols*rows > 80 {
		return nil, fmt.Errorf("device: hd44780: %dx%d is not an HD44780 panel (8 to 40 columns, 1 to 4 rows, at most 80 characters)", cols, rows)
	}
	pcf, err := pcf857x.New(bus, addr, pcf857x.PCF8574)
	if err != nil {
		return nil, fmt.Errorf("device: hd44780: PCF8574 at %#x: %w", addr, err)
	}
	p := pcf.Pins
	if err := p[bpRW].Out(gpio.Low); err != nil { // write only
		return nil, fmt.Errorf("device: hd44780: PCF8574 at %#x: %w", addr, err)
	}
	if err := p[bpBacklight].Out(gpio.High); err != nil {
		return nil, fmt.Errorf("device: hd44780: PCF8574 at %#x: %w", addr, err)
	}
	l := &LCD{rs: p[bpRS], e: p[bpE], light: p[bpBacklight], data: []gpio.PinOut{p[bpD4], p[bpD4+1], p[bpD4+2], p[bpD4+3]}, size: Size{Cols: cols, Rows: rows}}
	if l.dev, err = hd44780.New(l.data, l.rs, l.e); err != nil {
		return nil, fmt.Errorf("device: hd44780 at %#x: %w", addr, err)
	}
	if err := l.init(); err != nil {
		return nil, fmt.Errorf("device: hd44780 at %#x: %w", addr, err)
	}
	l.shown = make([]string, rows)
	for i := range l.shown {
		l.shown[i] = strings.Repeat(" ", cols) // cleared by init
	}
	return l, nil
}

// Size is the panel's size in characters.
func (l *LCD) Size() Size { return l.size }

// Show writes lines, one per row, padded with spaces, to the rows that
// changed. Characters outside printable ASCII are written as "?" (see
// Fold): the controller's ROM has no accented capitals.
func (l *LCD) Show(lines []string) error {
	for row := range l.size.Rows {
		line := ""
		if row < len(lines) {
			line = Fold(lines[row])
		}
		line = truncate(line+strings.Repeat(" ", l.size.Cols), l.size.Cols)
		if line == l.shown[row] {
			continue
		}
		// Rows 2 and 3 continue rows 0 and 1 in DDRAM.
		if err := l.dev.SetCursor(uint8(row%2), uint8(row/2*l.size.Cols)); err != nil {
			l.shown[row] = "" // unknown now
			return fmt.Errorf("device: hd44780: row %d: %w", row, err)
		}
		if err := l.dev.Print(line); err != nil {
			l.shown[row] = ""
			return fmt.Errorf("device: hd44780: row %d: %w", row, err)
		}
		l.shown[row] = line
	}
	return nil
}

// Close clears the panel and turns the backlight off.
func (l *LCD) Close() error {
	if err := l.dev.Halt(); err != nil {
		return fmt.Errorf("device: hd44780: %w", err)
	}
	if err := l.light.Out(gpio.Low); err != nil {
		return fmt.Errorf("device: hd44780: backlight: %w", err)
	}
	return nil
}

// init is the datasheet's initialisation by instruction for a 4-bit
// interface: three 0x3 nibbles (8-bit mode, whatever state the controller
// was in), 0x2 (4-bit), then function set 4-bit two lines 5x8 (0x28),
// display on without cursor (0x0C), entry mode increment (0x06) and clear
// (0x01).
func (l *LCD) init() error {
	steps := []struct {
		nibble bool
		b      byte
		wait   time.Duration
	}{
		{true, 0x3, 4100 * time.Microsecond},
		{true, 0x3, 100 * time.Microsecond},
		{true, 0x3, 100 * time.Microsecond},
		{true, 0x2, 100 * time.Microsecond},
		{false, 0x28, 0},
		{false, 0x0C, 0},
		{false, 0x06, 0},
		{false, 0x01, 2 * time.Millisecond},
	}
	if err := l.rs.Out(gpio.Low); err != nil {
		return err
	}
	for _, s := range steps {
		if !s.nibble {
			if err := l.nibble(s.b >> 4); err != nil {
				return err
			}
		}
		if err := l.nibble(s.b & 0xF); err != nil {
			return err
		}
		// The controller's execution times (the I²C writes alone take
		// longer than the 37 µs of most instructions).
		time.Sleep(s.wait)
	}
	return nil
}

// nibble puts n on D4 to D7 and pulses E: the controller latches on E's
// falling edge.
func (l *LCD) nibble(n byte) error {
	for i, p := range l.data {
		if err := p.Out(gpio.Level(n&(1<<i) != 0)); err != nil {
			return err
		}
	}
	if err := l.e.Out(gpio.High); err != nil {
		return err
	}
	return l.e.Out(gpio.Low)
}
