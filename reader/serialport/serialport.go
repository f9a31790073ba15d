// Package serialport opens the UART a reader module is wired to. It is
// the only package that imports github.com/tarm/serial; drivers consume
// the io.ReadCloser it returns and know nothing of serial settings.
package serialport

import (
	"fmt"
	"io"
	"time"

	"github.com/tarm/serial"
)

// ReadTimeout bounds every Read: with no byte for this long Read returns
// (0, io.EOF). It is what lets Close take effect without waiting for the
// next byte from a silent reader.
const ReadTimeout = 100 * time.Millisecond

// Bauds are the rates the serial layer supports.
var Bauds = []int{1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200}

// Open opens the serial device name (a real UART or a pseudo-terminal) at
// baud, 8N1, raw. Its Read returns (0, io.EOF) when ReadTimeout passes
// without data; that is not an error.
func Open(name string, baud int) (io.ReadWriteCloser, error) {
	p, err := serial.OpenPort(&serial.Config{Name: name, Baud: baud, ReadTimeout: ReadTimeout})
	if err != nil {
		return nil, fmt.Errorf("serialport: open %s at %d baud: %w", name, baud, err)
	}
	return p, nil
}
