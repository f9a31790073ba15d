package sim

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader/serialport"
)

func newSerial(t *testing.T, link string) *Serial {
	t.Helper()
	s, err := NewSerial(link)
	if err != nil {
		t.Fatalf("NewSerial(%q): %v", link, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openDevice opens path as a plain file (not through serialport, which
// sets its own termios), so the test sees the simulator's raw mode.
func openDevice(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// readFull reads len(want) bytes from r within a few seconds, tolerating
// (0, io.EOF) read timeouts, and compares.
func readFull(t *testing.T, r io.Reader, want []byte) {
	t.Helper()
	if f, ok := r.(*os.File); ok {
		f.SetReadDeadline(time.Now().Add(5 * time.Second))
	}
	deadline := time.Now().Add(5 * time.Second)
	var got []byte
	buf := make([]byte, 512)
	for len(got) < len(want) && time.Now().Before(deadline) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("read %q: %v", got, err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read\n%q\nwant\n%q", got, want)
	}
}

func TestSerialIsRaw(t *testing.T) {
	s := newSerial(t, filepath.Join(t.TempDir(), "ttyS9"))
	dev := openDevice(t, s.Link())
	// Bytes a cooked terminal would translate, swallow or act on: CR,
	// LF, STX, ETX (^C), ^D, ^S, ^Q, DEL, then every value.
	want := []byte{0x0D, 0x0A, 0x02, 0x03, 0x04, 0x13, 0x11, 0x7F, 0x0D}
	for b := range 256 {
		want = append(want, byte(b))
	}
	if _, err := s.Write(want); err != nil {
		t.Fatal(err)
	}
	readFull(t, dev, want)

	// Nothing echoed back to the master.
	s.master.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := s.master.Read(make([]byte, 16))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("master read %d bytes, err %v: the slave echoes", n, err)
	}
}

// The agent closes and reopens its port after failures; the simulator
// must keep working across that.
func TestSerialSurvivesAgentReopen(t *testing.T) {
	s := newSerial(t, filepath.Join(t.TempDir(), "ttyS9"))
	for i := range 3 {
		port, err := serialport.Open(s.Link(), 9600)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		msg := []byte{0x02, '0' + byte(i), 0x0D, 0x0A, 0x03}
		if _, err := s.Write(msg); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		readFull(t, port, msg)
		port.Close()
	}
	// Written while nobody has the device open: kept for the next open.
	if _, err := s.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	readFull(t, openDevice(t, s.Link()), []byte("late"))
}

func TestSerialLinkLifecycle(t *testing.T) {
	link := filepath.Join(t.TempDir(), "dev", "serial", "front")
	s := newSerial(t, link) // creates dev/serial
	target, err := os.Readlink(link)
	if err != nil || target != s.Path() {
		t.Fatalf("Readlink = %q, %v; want %q", target, err, s.Path())
	}
	if s.Link() != link {
		t.Errorf("Link = %q", s.Link())
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("link still there after Close: %v", err)
	}
	if _, err := s.Write([]byte{1}); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
}

func TestSerialWithoutLink(t *testing.T) {
	s := newSerial(t, "")
	dev := openDevice(t, s.Path())
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	readFull(t, dev, []byte("x"))
}

func TestSerialRefusesRegularFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ttyAMA0")
	if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewSerial(path); !errors.Is(err, ErrPathInUse) {
		t.Fatalf("NewSerial over a file = %v, want ErrPathInUse", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Errorf("file changed to %q", b)
	}
}

func TestSerialRefusesLinkToOtherDevice(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "ttyAMA0")
	if err := os.WriteFile(real, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "serial0")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := NewSerial(link); !errors.Is(err, ErrPathInUse) {
		t.Fatalf("NewSerial over a live link = %v, want ErrPathInUse", err)
	}
	if got, _ := os.Readlink(link); got != real {
		t.Errorf("link changed to %q", got)
	}
}

func TestSerialReplacesStaleLink(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyS9")
	if err := os.Symlink("/dev/pts/does-not-exist", link); err != nil {
		t.Fatal(err)
	}
	s := newSerial(t, link)
	if got, _ := os.Readlink(link); got != s.Path() {
		t.Errorf("link = %q, want %q", got, s.Path())
	}
}

// A second simulator takes over a link to a live pty; closing the first
// then leaves the second's link alone.
func TestSerialTakesOverPTYLink(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyS9")
	first := newSerial(t, link)
	second := newSerial(t, link)
	if got, _ := os.Readlink(link); got != second.Path() {
		t.Fatalf("link = %q, want %q", got, second.Path())
	}
	first.Close()
	if got, _ := os.Readlink(link); got != second.Path() {
		t.Errorf("after closing the first, link = %q, want %q", got, second.Path())
	}
}

// When the simulator goes away the agent's open device is hung up: its
// reads return (0, EOF) without blocking, which the rdm6300 driver
// detects as a failed port.
func TestCloseHangsUpDevice(t *testing.T) {
	s := newSerial(t, filepath.Join(t.TempDir(), "ttyS9"))
	port, err := serialport.Open(s.Link(), 9600)
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	s.Close()
	start := time.Now()
	for range 10 {
		n, err := port.Read(make([]byte, 14))
		if n != 0 || (err != nil && !errors.Is(err, io.EOF)) {
			t.Fatalf("Read after hang-up = %d, %v", n, err)
		}
	}
	if d := time.Since(start); d > serialport.ReadTimeout {
		t.Errorf("10 reads took %v: a hung-up device should not block", d)
	}
}

// Nobody reads the device: once the pty's buffer is full, Write gives up
// after the write timeout instead of hanging the simulator.
func TestSerialWriteTimesOut(t *testing.T) {
	s := newSerial(t, "")
	s.writeTimeout = 50 * time.Millisecond
	_, err := s.Write(make([]byte, 1<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write of 1 MiB nobody reads = %v, want deadline exceeded", err)
	}
}
