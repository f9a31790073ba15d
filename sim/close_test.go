package sim

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Bytes a script wrote just before it ended reach the agent: punchsim
// serve without -hold closes every Serial as soon as the script's last
// line ran, and closing the master hangs up the device, discarding what
// its reader has not read yet. Close waits for the reader to take them.
func TestCloseWaitsForUnreadBytes(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyR")
	s, err := NewSerial(link)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := os.OpenFile(link, os.O_RDONLY|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	want := []byte("\x020A001234567A\x03")
	if _, err := s.Write(want); err != nil {
		t.Fatal(err)
	}
	// The script ends here; serve's deferred Close runs at once, while the
	// agent is busy for a moment before its next read.
	type result struct {
		got []byte
		err error
	}
	read := make(chan result, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		got := make([]byte, 64)
		n, err := dev.Read(got)
		read <- result{got[:n], err}
	}()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := <-read
	if string(r.got) != string(want) {
		t.Fatalf("agent read %q (err %v) after Close, want the frame written before Close %q", r.got, r.err, want)
	}
}
