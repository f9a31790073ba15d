package device

import (
	"fmt"
	"image"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/devices/v3/max7219"
	"periph.io/x/devices/v3/ssd1306"
	"periph.io/x/devices/v3/ssd1306/image1bit"
)

// OLED glyphs: periph's 8x8 CP437 raster font (max7219.CP437Glyphs, rows
// top to bottom, bit 7 the leftmost pixel, the rightmost column blank as
// spacing), one character per 8 pixels across and one text row per 16
// pixels down, so that 4 rows on a 128x64 panel stay legible at arm's
// length. A 128x64 panel shows 16 columns by 4 rows; 128x32, 16 by 2.
const (
	glyphW   = 8
	glyphH   = 8
	rowPitch = 16
)

// An OLED is an SSD1306 panel on I²C, drawn by periph's ssd1306 driver.
type OLED struct {
	dev  *ssd1306.Dev
	img  *image1bit.VerticalLSB
	size Size
}

var _ Screen = (*OLED)(nil)

// NewOLED initialises the SSD1306 at addr (0x3C, or 0x3D with its address
// jumper) on bus, w by h pixels (128x64 or 128x32), and clears it.
func NewOLED(bus i2c.Bus, addr uint16, w, h int) (*OLED, error) {
	if addr != 0x3C && addr != 0x3D {
		return nil, fmt.Errorf("device: ssd1306: address %#x: an SSD1306 answers at 0x3c or 0x3d", addr)
	}
	if h < rowPitch {
		return nil, fmt.Errorf("device: ssd1306: height %d: at least %d pixels for one row of text", h, rowPitch)
	}
	// periph's NewI2C always talks to 0x3C; atAddr moves it to addr.
	dev, err := ssd1306.NewI2C(atAddr{bus, addr}, &ssd1306.Opts{W: w, H: h})
	if err != nil {
		return nil, fmt.Errorf("device: ssd1306 at %#x: %w", addr, err)
	}
	o := &OLED{dev: dev, img: image1bit.NewVerticalLSB(dev.Bounds()), size: Size{Cols: w / glyphW, Rows: h / rowPitch}}
	if err := o.Show(nil); err != nil {
		return nil, err
	}
	return o, nil
}

// Size is the panel's size in characters.
func (o *OLED) Size() Size { return o.size }

// Show draws lines, one per text row, and sends the rows that changed.
// Characters outside printable ASCII are drawn as "?" (see Fold).
func (o *OLED) Show(lines []string) error {
	clear(o.img.Pix)
	for row, line := range lines[:min(len(lines), o.size.Rows)] {
		y0 := row*rowPitch + (rowPitch-glyphH)/2
		for col, r := range Fold(line) {
			if col >= o.size.Cols {
				break
			}
			g := max7219.CP437Glyphs[byte(r)]
			for y, bits := range g {
				for x := range glyphW {
					if bits&(0x80>>x) != 0 {
						o.img.SetBit(col*glyphW+x, y0+y, image1bit.On)
					}
				}
			}
		}
	}
	if err := o.dev.Draw(o.img.Bounds(), o.img, image.Point{}); err != nil {
		return fmt.Errorf("device: ssd1306: %w", err)
	}
	return nil
}

// Close turns the panel off.
func (o *OLED) Close() error {
	if err := o.dev.Halt(); err != nil {
		return fmt.Errorf("device: ssd1306: %w", err)
	}
	return nil
}

// atAddr is a bus on which every transaction goes to one address.
type atAddr struct {
	i2c.Bus
	addr uint16
}

func (b atAddr) Tx(_ uint16, w, r []byte) error { return b.Bus.Tx(b.addr, w, r) }
