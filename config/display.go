package config

import "time"

// Display configures a display at the door (docs/display.md).
type Display struct {
	// Driver is "ssd1306" (OLED) or "hd44780" (LCD on an I2C PCF8574
	// backpack); empty: no display.
	Driver string `toml:"driver"`
	// Bus is the I2C bus; default /dev/i2c-1.
	Bus string `toml:"bus"`
	// Address on the bus; 0: 0x3C (ssd1306) or 0x27 (hd44780).
	Address int `toml:"address"`
	// Width and Height in pixels (ssd1306): 128 by 64 or 128 by 32.
	Width  int `toml:"width"`
	Height int `toml:"height"`
	// Cols and Rows in characters (hd44780): 16 by 2, 20 by 4 or 16 by 4.
	Cols int `toml:"cols"`
	Rows int `toml:"rows"`
	// Hold is how long a punch's text stays before the idle screen.
	Hold Duration `toml:"hold"`
}

// DefaultDisplayHold is how long a punch's text stays unless told.
const DefaultDisplayHold = 4 * time.Second

func (d *Display) validate(bad func(key, format string, args ...any)) {
	switch d.Driver {
	case "":
		return
	case "ssd1306":
		if d.Width == 0 {
			d.Width, d.Height = 128, 64
		}
		if d.Width != 128 || d.Height != 64 && d.Height != 32 {
			bad("display.width", "%dx%d: the SSD1306 panels are 128x64 or 128x32", d.Width, d.Height)
		}
	case "hd44780":
		if d.Cols == 0 {
			d.Cols, d.Rows = 16, 2
		}
		if !(d.Cols == 16 && (d.Rows == 2 || d.Rows == 4) || d.Cols == 20 && d.Rows == 4) {
			bad("display.cols", "%dx%d: the LCDs are 16x2, 16x4 or 20x4", d.Cols, d.Rows)
		}
	default:
		bad("display.driver", "%q must be \"ssd1306\" or \"hd44780\" (or empty: no display)", d.Driver)
		return
	}
	if d.Address != 0 && (d.Address < 0x03 || d.Address > 0x77) {
		bad("display.address", "%#x is not a 7-bit I2C address (0x03 to 0x77)", d.Address)
	}
	if d.Hold.Duration == 0 {
		d.Hold.Duration = DefaultDisplayHold
	}
	if h := d.Hold.Duration; h < time.Second || h > time.Minute {
		bad("display.hold", "%v must be between 1s and 1m", h)
	}
}
