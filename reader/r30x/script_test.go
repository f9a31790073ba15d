package r30x_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/r30x"
)

// A scripted sensor answers over net.Pipe with what a test's handler
// says, for cases the twin does not play: poor images, failed searches,
// late acks.
type scripted struct {
	t      *testing.T
	r      *r30x.Reader
	out    chan reader.Read
	mu     sync.Mutex
	counts map[byte]int
}

// A handler returns the ack payload for the n-th (from 1) command with
// this instruction code, or nil for no answer, and a delay before it.
type handler func(cmd byte, n int) (payload []byte, delay time.Duration)

var sysPara = []byte{r30x.ConfOK, 0, 0, 0, 0, 0x01, 0x2C, 0, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0, 2, 0, 6} // 300 pages

func newScripted(t *testing.T, opt r30x.Options, h handler) *scripted {
	t.Helper()
	drv, sensor := net.Pipe()
	opened := false
	opt.Name = "door"
	opt.Open = func() (r30x.Port, error) {
		if opened {
			return nil, net.ErrClosed
		}
		opened = true
		return drv, nil
	}
	opt.PollInterval = time.Millisecond
	opt.MinBackoff, opt.MaxBackoff = time.Hour, time.Hour
	s := &scripted{t: t, r: r30x.NewReader(opt), out: make(chan reader.Read, 8), counts: map[byte]int{}}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	done := make(chan error, 1)
	go func() { done <- s.r.Run(ctx, s.out) }()
	wg.Go(func() {
		var fr r30x.Framer
		buf := make([]byte, 256)
		var cmds []r30x.Packet
		for {
			n, err := sensor.Read(buf)
			if err != nil {
				return
			}
			fr.Feed(buf[:n], func(p r30x.Packet) { cmds = append(cmds, p) })
			for _, p := range cmds {
				cmd := p.Payload[0]
				s.mu.Lock()
				s.counts[cmd]++
				k := s.counts[cmd]
				s.mu.Unlock()
				pl, delay := h(cmd, k)
				if pl == nil {
					continue
				}
				wire, _ := r30x.Encode(r30x.DefaultAddress, r30x.PIDAck, pl)
				if delay > 0 {
					// Late: answered while the driver has moved on.
					wg.Go(func() {
						time.Sleep(delay)
						_, _ = sensor.Write(wire)
					})
					continue
				}
				if _, err := sensor.Write(wire); err != nil {
					return
				}
			}
			cmds = cmds[:0]
		}
	})
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		sensor.Close()
		wg.Wait()
	})
	return s
}

func (s *scripted) count(cmd byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[cmd]
}

func (s *scripted) expect(value string, score int) {
	s.t.Helper()
	select {
	case rd := <-s.out:
		if rd.Value != value || rd.Score != score {
			s.t.Fatalf("read %+v, want %q score %d", rd, value, score)
		}
	case <-time.After(within):
		s.t.Fatalf("no read; stats %+v", s.r.Stats())
	}
}

// A poor image (Img2Tz 0x07) is captured again, not reported.
func TestPoorImageCapturedAgain(t *testing.T) {
	s := newScripted(t, r30x.Options{}, func(cmd byte, n int) ([]byte, time.Duration) {
		switch cmd {
		case r30x.CmdReadSysPara:
			return sysPara, 0
		case r30x.CmdGenImg:
			return []byte{r30x.ConfOK}, 0 // a finger stays
		case r30x.CmdImg2Tz:
			if n == 1 {
				return []byte{r30x.ConfTooFew}, 0
			}
			return []byte{r30x.ConfOK}, 0
		case r30x.CmdSearch:
			return []byte{r30x.ConfOK, 0, 5, 0, 60}, 0
		}
		return []byte{r30x.ConfRecvError}, 0
	})
	s.expect("5", 60)
	time.Sleep(50 * time.Millisecond) // many polls of the same finger
	if n := s.count(r30x.CmdSearch); n != 1 {
		t.Errorf("%d searches, want 1", n)
	}
	if n := s.count(r30x.CmdImg2Tz); n != 2 {
		t.Errorf("%d Img2Tz, want 2", n)
	}
}

// A search that fails (a short 0x01 ack) reports nothing; the finger
// still there is searched again.
func TestFailedSearchSearchedAgain(t *testing.T) {
	s := newScripted(t, r30x.Options{}, func(cmd byte, n int) ([]byte, time.Duration) {
		switch cmd {
		case r30x.CmdReadSysPara:
			return sysPara, 0
		case r30x.CmdGenImg, r30x.CmdImg2Tz:
			return []byte{r30x.ConfOK}, 0
		case r30x.CmdSearch:
			if n == 1 {
				return []byte{r30x.ConfRecvError}, 0
			}
			return []byte{r30x.ConfNoMatch, 0, 0, 0, 0}, 0
		}
		return []byte{r30x.ConfRecvError}, 0
	})
	s.expect("", 0)
	if st := s.r.Stats(); st.Reads != 1 || st.Timeouts != 0 {
		t.Errorf("stats %+v", st)
	}
}

// An ack that comes after its command timed out is not taken for the
// next command's: a late "no finger" would otherwise pass for a failed
// ReadSysPara.
func TestLateAckNotTakenForTheNext(t *testing.T) {
	s := newScripted(t, r30x.Options{AckTimeout: 100 * time.Millisecond}, func(cmd byte, n int) ([]byte, time.Duration) {
		switch cmd {
		case r30x.CmdReadSysPara:
			if n == 2 {
				// Slow, but in time: the late GenImg ack would come
				// first.
				return sysPara, 60 * time.Millisecond
			}
			return sysPara, 0
		case r30x.CmdGenImg:
			switch {
			case n == 1:
				return []byte{r30x.ConfNoFinger}, 130 * time.Millisecond // late
			case n < 5:
				return []byte{r30x.ConfNoFinger}, 0
			}
			return []byte{r30x.ConfOK}, 0
		case r30x.CmdImg2Tz:
			return []byte{r30x.ConfOK}, 0
		case r30x.CmdSearch:
			return []byte{r30x.ConfOK, 0, 9, 0, 99}, 0
		}
		return []byte{r30x.ConfRecvError}, 0
	})
	s.expect("9", 99)
	if n := s.count(r30x.CmdReadSysPara); n != 2 {
		t.Errorf("%d ReadSysPara, want 2 (start, and once after the timeout)", n)
	}
	if st := s.r.Stats(); st.Timeouts != 1 {
		t.Errorf("stats %+v, want 1 timeout", st)
	}
}

// The consumer not reading does not stop polling: reads queue up.
func TestSlowConsumerDoesNotBlockPolling(t *testing.T) {
	var mu sync.Mutex
	finger := true
	s := newScripted(t, r30x.Options{}, func(cmd byte, n int) ([]byte, time.Duration) {
		switch cmd {
		case r30x.CmdReadSysPara:
			return sysPara, 0
		case r30x.CmdGenImg:
			mu.Lock()
			defer mu.Unlock()
			finger = !finger // on, off, on, off: a presentation every other poll
			if finger {
				return []byte{r30x.ConfOK}, 0
			}
			return []byte{r30x.ConfNoFinger}, 0
		case r30x.CmdImg2Tz:
			return []byte{r30x.ConfOK}, 0
		case r30x.CmdSearch:
			return []byte{r30x.ConfOK, 0, 1, 0, 70}, 0
		}
		return []byte{r30x.ConfRecvError}, 0
	})
	// Nobody reads out (capacity 8) while 20 presentations happen.
	deadline := time.Now().Add(within)
	for s.r.Stats().Reads < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("polling stalled: %+v", s.r.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range 20 {
		s.expect("1", 70)
	}
}
