package serialport_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/punchclock/punchclock/reader/serialport"
)

// openPTY returns the master of a fresh pseudo-terminal and its slave's
// path. The slave fd pty.Open returns is kept open for the test so the
// pty does not hang up between opens.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatalf("pty.Open: %v", err)
	}
	t.Cleanup(func() {
		master.Close()
		slave.Close()
	})
	return master, slave.Name()
}

// readN reads n bytes, treating (0, io.EOF) as the read timeout it is.
func readN(t *testing.T, r io.Reader, n int) []byte {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var got []byte
	buf := make([]byte, 64)
	for len(got) < n {
		if time.Now().After(deadline) {
			t.Fatalf("read %q, want %d bytes", got, n)
		}
		k, err := r.Read(buf)
		got = append(got, buf[:k]...)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("Read: %v", err)
		}
	}
	return got
}

func TestReadFrameFromPTY(t *testing.T) {
	master, path := openPTY(t)
	port, err := serialport.Open(path, 9600)
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	// An RDM6300 frame, with CR, LF and every byte value after it: the
	// port is raw, nothing is translated.
	want := []byte("\x02" + "0A00123456" + "7A" + "\x03\r\n")
	for b := range 256 {
		want = append(want, byte(b))
	}
	if _, err := master.Write(want); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, port, len(want)); !bytes.Equal(got, want) {
		t.Errorf("read\n%q\nwant\n%q", got, want)
	}
}

func TestReadTimesOutWithEOF(t *testing.T) {
	_, path := openPTY(t)
	port, err := serialport.Open(path, 9600)
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	start := time.Now()
	n, err := port.Read(make([]byte, 14))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("Read on a silent port = %d, %v; want 0, EOF", n, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Read took %v, want about %v", d, serialport.ReadTimeout)
	}
}

func TestCloseDoesNotHangOnPendingRead(t *testing.T) {
	_, path := openPTY(t)
	port, err := serialport.Open(path, 9600)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 14)
		for {
			if _, err := port.Read(buf); err != nil && !errors.Is(err, io.EOF) {
				return // closed
			}
		}
	}()
	// Most likely the reader is inside a Read by now; if not, the test
	// still checks that Close ends the loop.
	time.Sleep(50 * time.Millisecond)
	if err := port.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Read still running 5s after Close")
	}
}

func TestReopen(t *testing.T) {
	master, path := openPTY(t)
	for i := range 3 {
		port, err := serialport.Open(path, 9600)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		if _, err := master.Write([]byte{0x02, byte('0' + i), 0x03}); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, port, 3); !bytes.Equal(got, []byte{0x02, byte('0' + i), 0x03}) {
			t.Errorf("open %d: read %q", i, got)
		}
		port.Close()
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := serialport.Open(t.TempDir()+"/nope", 9600); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want ErrNotExist", err)
	}
	_, path := openPTY(t)
	if _, err := serialport.Open(path, 12345); err == nil {
		t.Error("Open at 12345 baud succeeded")
	}
}
