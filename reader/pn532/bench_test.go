package pn532

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/serialport"
)

// signalPort is a Port whose Write tells the benchmark that a command
// went out; it never reads (the benchmark feeds the framer itself).
type signalPort struct{ written chan struct{} }

func (p *signalPort) Read([]byte) (int, error) { select {} }
func (p *signalPort) Write(b []byte) (int, error) {
	p.written <- struct{}{}
	return len(b), nil
}
func (p *signalPort) Close() error { return nil }

// BenchmarkFrameToRead: the time from the last byte of an
// InListPassiveTarget response (7-byte UID) reaching the driver to the
// Read on its channel: framing, the hop to the poller, parsing, folding,
// the queue and the delivery goroutine, all the driver's real code. The
// wire itself takes longer: ACK and response are 28 bytes, 2.4 ms at
// 115200 baud (reported as wire-µs).
func BenchmarkFrameToRead(b *testing.B) {
	const n = 1024
	frames := make([][]byte, n)
	for i := range frames {
		uid := []byte{0x04, 0xA1, 0xB2, 0xC3, 0xD4, byte(i >> 8), byte(i)}
		fr, _ := Encode(TFIPN532, InListAnswer(uid))
		frames[i] = append(append([]byte(nil), ACK...), fr...)
	}
	port := &signalPort{written: make(chan struct{})}
	r := New(Options{
		Name:         "door",
		Open:         func(int) (Port, error) { return port, nil },
		RepeatWindow: time.Nanosecond,
		// Long enough that a starved benchmark never times out: an
		// abort's ACK would wait on written while the benchmark waits
		// for a Read.
		AckTimeout: time.Hour,
		PollWait:   time.Hour,
	})
	out := make(chan reader.Read)
	ctx, cancel := context.WithCancel(b.Context())
	var q reader.Queue
	s := &session{r: r, port: port, frames: make(chan Frame, 32), pumpErr: make(chan error, 1), emit: r.emitTo(&q)}
	var wg sync.WaitGroup
	wg.Go(func() { q.Deliver(ctx, out) })
	wg.Go(func() {
		for ctx.Err() == nil {
			_ = s.poll(ctx)
		}
	})
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		<-port.written
		r.fmu.Lock()
		r.framer.Feed(frames[i%n], s.onFrame)
		r.fmu.Unlock()
		<-out
	}
	b.StopTimer()
	cancel()
	go func() { // unblock a poller waiting to write
		for range port.written {
		}
	}()
	wg.Wait()
	close(port.written)
	b.ReportMetric(float64(len(frames[0])*10)/115200*1e6, "wire-µs")
}

// BenchmarkIdleCPU runs the real driver against its twin on a real pty,
// with no card, at the default pace (one poll per PollWait), for 10 s,
// and reports the polls per second and the CPU
// the driver's process used as a share of one core (cpu-%; sys-% is
// the kernel's part of it, mostly the tty layer). The twin
// runs in a child process (this test binary, see TestHelperTwin), so
// the figure is the driver's alone: the goal is under 1 %.
//
//	go test -run '^$' -bench IdleCPU -benchtime 1x ./reader/pn532
func BenchmarkIdleCPU(b *testing.B) {
	link := filepath.Join(b.TempDir(), "ttyNFC")
	child := exec.Command(os.Args[0], "-test.run=^TestHelperTwin$")
	child.Env = append(os.Environ(), helperEnv+"="+link)
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close() // the helper exits when its stdin closes
		if err := child.Wait(); err != nil {
			b.Errorf("twin process: %v", err)
		}
	}()
	polls := func() int {
		if _, err := fmt.Fprintln(stdin, "polls"); err != nil {
			b.Fatal(err)
		}
		var n int
		if _, err := fmt.Fscanln(stdout, &n); err != nil {
			b.Fatal(err)
		}
		return n
	}
	polls() // the twin is up

	r := New(Options{Name: "door", Open: func(baud int) (Port, error) { return serialport.Open(link, baud) }})
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, make(chan reader.Read)) }()
	defer func() {
		cancel()
		<-done
	}()
	deadline := time.Now().Add(within)
	for polls() == 0 {
		if time.Now().After(deadline) {
			b.Fatal("the driver never polled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	const span = 10 * time.Second
	b.ResetTimer()
	for range b.N {
		polls0 := polls()
		user0, sys0 := cpuTime(b)
		wall0 := time.Now()
		time.Sleep(span)
		user, sys := cpuTime(b)
		user, sys = user-user0, sys-sys0
		wall := time.Since(wall0)
		n := polls() - polls0
		b.ReportMetric(100*(user+sys).Seconds()/wall.Seconds(), "cpu-%")
		b.ReportMetric(100*sys.Seconds()/wall.Seconds(), "sys-%")
		b.ReportMetric(float64(n)/wall.Seconds(), "polls/s")
	}
	if st := r.Stats(); st.Reads != 0 || st.Timeouts != 0 {
		b.Logf("stats %+v", st)
	}
}

const helperEnv = "PN532_TWIN_LINK"

// TestHelperTwin is BenchmarkIdleCPU's twin process: with PN532_TWIN_LINK
// set it serves a twin at that link, answers each "polls" line on stdin
// with the number of polls so far, starts any other line as a scenario
// command ("card 04A1B2C3D4E5F6 hold 10s"), and returns when stdin
// closes and those have finished. Without it, it checks nothing and passes. It also serves a
// twin for a manual check with libnfc:
//
//	go test -c -o /tmp/pn532.test ./reader/pn532
//	PN532_TWIN_LINK=/tmp/ttyNFC /tmp/pn532.test -test.run '^TestHelperTwin$' < fifo
//	LIBNFC_DEVICE=pn532_uart:/tmp/ttyNFC:115200 nfc-list -v
//
// (go test itself does not pass its stdin on; see README.md.)
func TestHelperTwin(t *testing.T) {
	link := os.Getenv(helperEnv)
	if link == "" {
		return
	}
	twin := NewTwin(link, simSerial)
	if err := twin.Replug(); err != nil {
		t.Fatal(err)
	}
	defer twin.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 0:
		case f[0] == "polls":
			fmt.Println(twin.Commands(CmdInListPassiveTarget))
		default: // "card" waits for its hold: do not hold up the next line
			wg.Go(func() {
				echo, err := twin.Do(t.Context(), f[0], f[1:])
				fmt.Fprintln(os.Stderr, echo, err)
			})
		}
	}
}

// cpuTime returns the process's user and system CPU time so far.
func cpuTime(b *testing.B) (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}
