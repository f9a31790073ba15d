package pn532

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
)

// A scripted module answers the host's frames over an in-memory pipe as
// respond says: for each command (code and parameters) the raw bytes to
// send back. It is for behaviour the twin does not show: error frames,
// missing ACKs, another chip, nonsense answers, HSU rates (it ignores a
// host that opened the pipe at another rate than its own, and takes up
// the rate SetSerialBaudRate asked for at the host's next ACK).
type scripted struct {
	t       *testing.T
	respond func(n int, cmd byte) []byte // n counts commands of that code, from 1

	mu      sync.Mutex
	counts  map[byte]int
	rate    int // 0: PowerUpBaud
	pending int // rate to take at the next ACK
	opens   []int
}

// reset puts the module back at its power-up rate.
func (m *scripted) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rate, m.pending = 0, 0
}

func (m *scripted) openRates() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int(nil), m.opens...)
}

func (m *scripted) count(cmd byte) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[cmd]
}

// open returns the host's end of a new pipe at baud, serving the
// module's end.
func (m *scripted) open(baud int) (Port, error) {
	host, mod := net.Pipe()
	m.mu.Lock()
	m.opens = append(m.opens, baud)
	m.mu.Unlock()
	go func() {
		var f Framer
		buf := make([]byte, 256)
		for {
			n, err := mod.Read(buf)
			if err != nil {
				return
			}
			m.mu.Lock()
			rate := cmp.Or(m.rate, PowerUpBaud)
			m.mu.Unlock()
			if baud != rate {
				continue // garbled: nothing the module understands
			}
			var outs [][]byte
			f.Feed(buf[:n], func(fr Frame) {
				m.mu.Lock()
				defer m.mu.Unlock()
				if fr.Kind == KindACK && m.pending != 0 {
					m.rate, m.pending = m.pending, 0
				}
				if fr.Kind != KindInfo || len(fr.Data) == 0 {
					return
				}
				if m.counts == nil {
					m.counts = make(map[byte]int)
				}
				m.counts[fr.Data[0]]++
				if fr.Data[0] == CmdSetSerialBaudRate && len(fr.Data) == 2 {
					for b, code := range BaudCode {
						if code == fr.Data[1] {
							m.pending = b
						}
					}
				}
				outs = append(outs, m.respond(m.counts[fr.Data[0]], fr.Data[0]))
			})
			for _, o := range outs {
				if len(o) > 0 {
					if _, err := mod.Write(o); err != nil {
						return
					}
				}
			}
		}
	}()
	return host, nil
}

func frameOf(data ...byte) []byte {
	fr, err := Encode(TFIPN532, data)
	if err != nil {
		panic(err)
	}
	return fr
}

// goodModule answers like a PN532 with no card, ACK first.
func goodModule(_ int, cmd byte) []byte {
	switch cmd {
	case CmdGetFirmwareVersion:
		return append(append([]byte(nil), ACK...), frameOf(0x03, 0x32, 0x01, 0x06, 0x07)...)
	case CmdInListPassiveTarget:
		return append(append([]byte(nil), ACK...), frameOf(0x4B, 0x00)...)
	}
	return append(append([]byte(nil), ACK...), frameOf(cmd+1)...)
}

func runScripted(t *testing.T, m *scripted) (*Reader, chan reader.Read) {
	t.Helper()
	m.t = t
	out := make(chan reader.Read, 4)
	r := New(Options{
		Name:            "door",
		Open:            m.open,
		RepeatWindow:    testWindow,
		PollInterval:    10 * time.Millisecond,
		AckTimeout:      time.Second,
		ResponseTimeout: time.Second,
		RetryInterval:   10 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(within):
			t.Error("Run did not return")
		}
	})
	return r, out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// After an error frame in answer to a poll (a module that lost its
// configuration), the driver initialises it again.
func TestErrorFrameReinitialises(t *testing.T) {
	m := &scripted{respond: func(n int, cmd byte) []byte {
		if cmd == CmdInListPassiveTarget && n == 2 {
			return append(append([]byte(nil), ACK...), ErrorFrame...)
		}
		return goodModule(n, cmd)
	}}
	r, _ := runScripted(t, m)
	waitFor(t, "re-initialised", func() bool { return m.count(CmdSAMConfiguration) >= 2 && m.count(CmdInListPassiveTarget) >= 3 })
	if st := r.Stats(); st.Timeouts != 0 {
		t.Errorf("stats %+v: an error frame is not a timeout", st)
	}
}

// A response whose ACK was lost is taken; a response with the 10-byte
// UID is a Read.
func TestResponseWithoutACK(t *testing.T) {
	uid := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	m := &scripted{respond: func(n int, cmd byte) []byte {
		if cmd == CmdInListPassiveTarget {
			return frameOf(InListAnswer(uid)...)
		}
		return goodModule(n, cmd)
	}}
	r, out := runScripted(t, m)
	select {
	case rd := <-out:
		if rd.Value != "0102030405060708090A" {
			t.Errorf("read %+v", rd)
		}
	case <-time.After(within):
		t.Fatalf("no read; stats %+v", r.Stats())
	}
}

// An answer that frames well but makes no sense is a bad frame, not a
// card and not a reason to re-initialise.
func TestNonsenseAnswer(t *testing.T) {
	m := &scripted{respond: func(n int, cmd byte) []byte {
		if cmd == CmdInListPassiveTarget {
			// NFCID length 5: no ISO 14443A UID has it.
			return append(append([]byte(nil), ACK...), frameOf(0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x05, 1, 2, 3, 4, 5)...)
		}
		return goodModule(n, cmd)
	}}
	r, out := runScripted(t, m)
	waitFor(t, "polled", func() bool { return m.count(CmdInListPassiveTarget) >= 5 })
	if st := r.Stats(); st.BadFrames < 3 || st.Reads != 0 || st.Timeouts != 0 {
		t.Errorf("stats %+v", st)
	}
	if n := m.count(CmdSAMConfiguration); n != 1 {
		t.Errorf("initialised %d times", n)
	}
	select {
	case rd := <-out:
		t.Errorf("read %+v from nonsense", rd)
	default:
	}
}

// Another chip answers GetFirmwareVersion (a PN533: IC 33): the driver
// does not poll it and says why, retrying.
func TestNotAPN532(t *testing.T) {
	m := &scripted{respond: func(n int, cmd byte) []byte {
		if cmd == CmdGetFirmwareVersion {
			return append(append([]byte(nil), ACK...), frameOf(0x03, 0x33, 0x02, 0x07, 0x07)...)
		}
		return goodModule(n, cmd)
	}}
	r, _ := runScripted(t, m)
	waitFor(t, "retried", func() bool { return m.count(CmdGetFirmwareVersion) >= 3 })
	if n := m.count(CmdInListPassiveTarget); n != 0 {
		t.Errorf("polled a PN533 %d times", n)
	}
	if _, ok := r.Firmware(); ok {
		t.Error("Firmware set for another chip")
	}
	// The chip answers, so the reader is online even so.
	if r.State() != reader.StateOnline {
		t.Errorf("State = %s", r.State())
	}
}

// The session's exchange on its own: a module that ACKs but never
// answers times out after ACK, which is counted, and the driver aborts
// the command with an ACK of its own.
func TestExchangeTimeoutAfterACK(t *testing.T) {
	host, mod := net.Pipe()
	defer host.Close()
	defer mod.Close()
	r := New(Options{Name: "door", Open: func(int) (Port, error) { return host, nil }, AckTimeout: 200 * time.Millisecond, ResponseTimeout: 20 * time.Millisecond})
	s := &session{r: r, port: host, frames: make(chan Frame, 8), pumpErr: make(chan error, 1)}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var data atomic.Bool
	wg.Go(func() { _ = s.pump(ctx, ctx.Done(), &data) })
	got := make(chan []byte, 2)
	wg.Go(func() {
		buf := make([]byte, 64)
		n, _ := mod.Read(buf) // the command
		got <- append([]byte(nil), buf[:n]...)
		_, _ = mod.Write(ACK)
		n, _ = mod.Read(buf) // the abort
		got <- append([]byte(nil), buf[:n]...)
		mod.Close()
	})
	_, err := s.exchange(ctx, GetFirmwareVersion, CmdGetFirmwareVersion, 0)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("exchange = %v, want ErrTimeout", err)
	}
	if cmd := <-got; string(cmd) != string(GetFirmwareVersion) {
		t.Errorf("sent % X", cmd)
	}
	if abort := <-got; string(abort) != string(ACK) {
		t.Errorf("abort % X, want ACK", abort)
	}
	if st := r.Stats(); st.Timeouts != 1 {
		t.Errorf("stats %+v", st)
	}
}

// At 57600 baud the driver wakes the module at 115200, switches it and
// reopens at 57600. When the module resets (back at 115200), the driver
// finds no answer at 57600, goes back to 115200 and switches again.
func TestBaudSwitch(t *testing.T) {
	m := &scripted{respond: goodModule}
	m.t = t
	out := make(chan reader.Read, 4)
	r := New(Options{
		Name:            "door",
		Open:            m.open,
		Baud:            57600,
		Logger:          testLogger(t),
		PollInterval:    10 * time.Millisecond,
		AckTimeout:      100 * time.Millisecond,
		ResponseTimeout: time.Second,
		RetryInterval:   10 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	polls := func() int { return m.count(CmdInListPassiveTarget) }
	waitFor(t, "polling at 57600", func() bool { return polls() >= 3 })
	if got := m.openRates(); !slices.Equal(got, []int{115200, 57600}) {
		t.Fatalf("opened at %v, want [115200 57600]", got)
	}
	m.reset()
	n := polls()
	waitFor(t, "polling again", func() bool { return polls() >= n+3 })
	if got := m.openRates(); !slices.Equal(got, []int{115200, 57600, 115200, 57600}) {
		t.Fatalf("opened at %v, want [115200 57600 115200 57600]", got)
	}
	if n := m.count(CmdSetSerialBaudRate); n != 2 {
		t.Errorf("SetSerialBaudRate sent %d times, want 2", n)
	}
	if st := r.Stats(); st.Reopens != 0 || st.Timeouts < initRateTries {
		t.Errorf("stats %+v: rate changes are no reopens; the unanswered polls and inits are timeouts", st)
	}
}

// A module left at 57600 by an earlier run (it kept its power): the
// driver finds no answer at 115200 and tries 57600.
func TestBaudModuleAlreadySwitched(t *testing.T) {
	m := &scripted{respond: goodModule, rate: 57600}
	m.t = t
	r := New(Options{
		Name:          "door",
		Open:          m.open,
		Baud:          57600,
		PollInterval:  10 * time.Millisecond,
		AckTimeout:    50 * time.Millisecond,
		RetryInterval: 10 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, make(chan reader.Read)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	waitFor(t, "polling", func() bool { return m.count(CmdInListPassiveTarget) >= 2 })
	if got := m.openRates(); !slices.Equal(got, []int{115200, 57600}) {
		t.Fatalf("opened at %v, want [115200 57600]", got)
	}
	if n := m.count(CmdSetSerialBaudRate); n != 0 {
		t.Errorf("SetSerialBaudRate sent %d times to a switched module", n)
	}
}

// testLogger logs to t with -v, and nowhere otherwise.
func testLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
