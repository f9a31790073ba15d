package osdp

import (
	"bytes"
	"runtime"
	"slices"
	"testing"
	"time"

	"go.bug.st/serial"
)

// fakeSerial records the order of the calls rtsPort makes.
type fakeSerial struct {
	serial.Port // the methods rtsPort does not use panic
	calls       []string
}

func (f *fakeSerial) SetRTS(on bool) error {
	if on {
		f.calls = append(f.calls, "rts on")
	} else {
		f.calls = append(f.calls, "rts off")
	}
	return nil
}

func (f *fakeSerial) Write(p []byte) (int, error) {
	f.calls = append(f.calls, "write")
	return len(p), nil
}

func (f *fakeSerial) Drain() error {
	f.calls = append(f.calls, "drain")
	return nil
}

// With rts_direction, RTS is high from before the first bit until the
// last one has left the UART.
func TestRTSDirection(t *testing.T) {
	f := &fakeSerial{}
	p := &rtsPort{Port: f, sending: true}
	if n, err := p.Write([]byte{SOM, 1, 8, 0, 4, CmdPOLL, 0, 0}); n != 8 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if want := []string{"rts on", "write", "drain", "rts off"}; !slices.Equal(f.calls, want) {
		t.Errorf("calls %q, want %q", f.calls, want)
	}
	// rts_invert: dropped while sending, asserted again after.
	f = &fakeSerial{}
	p = &rtsPort{Port: f, sending: false}
	_, _ = p.Write([]byte{0})
	if want := []string{"rts off", "write", "drain", "rts on"}; !slices.Equal(f.calls, want) {
		t.Errorf("inverted: calls %q, want %q", f.calls, want)
	}
	for _, tc := range []struct {
		c    Config
		want RTSMode
	}{
		{Config{}, RTSOff},
		{Config{RTSDirection: true}, RTSAssert},
		{Config{RTSDirection: true, RTSInvert: true}, RTSDrop},
	} {
		if got := tc.c.RTSMode(); got != tc.want {
			t.Errorf("%+v: mode %v, want %v", tc.c, got, tc.want)
		}
	}
	if err := (&Config{Port: "p", Baud: 9600, Address: 1, RTSInvert: true}).Validate(); !containsKey(err, "rts_invert") {
		t.Errorf("rts_invert alone: %v", err)
	}
}

// osdp_BUSY: the PD cannot answer now; the CP sends the same packet,
// same sequence number, again.
func TestBusyRepeats(t *testing.T) {
	c := newCP(1, nil, counter())
	c.state = stOnline
	c.sqn = 1
	p, _ := c.next()
	busy, _ := (&Frame{Addr: 1, Reply: true, SQN: 2, UseCRC: true, Code: ReplyBUSY}).Encode()
	if items, err := c.handle(decodeOne(t, busy)); err != nil || items != nil {
		t.Fatalf("BUSY: %v, %v", items, err)
	}
	p2, _ := c.next()
	if !bytes.Equal(p, p2) {
		t.Fatalf("after BUSY % X, want % X again", p2, p)
	}
}

// Nothing is left running once the readers and twins are gone.
func TestNoGoroutineLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		g := newRig(t, []byte{1, 2}, "", nil)
		g.do(1, "card", "5:5")
		g.expect(1, "card", "wiegand26", "5:5")
		g.close()
		for _, tw := range g.twins {
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}()
	deadline := time.Now().Add(within)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A pty has no modem lines: with rts_direction the driver warns and runs
// without direction control, so the simulator takes the production
// config.
func TestRTSDirectionOnPTY(t *testing.T) {
	g := newRig(t, []byte{1}, "", func(o *Options) { o.RTS = RTSAssert })
	g.do(1, "card", "8:8")
	g.expect(1, "card", "wiegand26", "8:8")
}
