package osdp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
)

// memPort is an in-memory bus with one simulated PD: each command
// written is answered at once, and Read hands out the reply. It notes
// when the last byte of a card reply was handed to the driver.
type memPort struct {
	mu      sync.Mutex
	pd      *pdSim
	replies chan []byte
	closed  chan struct{}
	once    sync.Once
	framer  Framer
	lastAt  time.Time // when the last card reply's last byte was read
}

func newMemPort(pd *pdSim) *memPort {
	return &memPort{pd: pd, replies: make(chan []byte, 4), closed: make(chan struct{})}
}

func (p *memPort) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.framer.Feed(b, func(f Frame) {
		if r := p.pd.handle(f); r != nil {
			p.replies <- r
		}
	})
	return len(b), nil
}

func (p *memPort) Read(b []byte) (int, error) {
	select {
	case r := <-p.replies:
		n := copy(b, r)
		if len(r) > 5 && r[5] == ReplyRAW {
			p.mu.Lock()
			p.lastAt = time.Now()
			p.mu.Unlock()
		}
		return n, nil
	case <-p.closed:
		return 0, context.Canceled
	}
}

func (p *memPort) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

func (p *memPort) queue(f Frame) {
	p.mu.Lock()
	p.pd.queue(f)
	p.mu.Unlock()
}

func (p *memPort) last() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastAt
}

// BenchmarkLastByteToRead: the time from the last byte of an osdp_RAW
// reply leaving the port's Read to the Read arriving on out (framing,
// the PD conversation, repeat folding, the queue and the hand-over).
// The bus polls without pause here, so each op also waits for a poll.
func BenchmarkLastByteToRead(b *testing.B) {
	port := newMemPort(newPDSim(1, nil, counter(), time.Now))
	r, err := New(Options{Name: "bench", Port: fmt.Sprintf("mem-%p", port), Address: 1,
		RepeatWindow: time.Nanosecond, PollInterval: time.Nanosecond,
		Open: func(string, int, RTSMode) (Port, error) { return port, nil }})
	if err != nil {
		b.Fatal(err)
	}
	out := make(chan reader.Read)
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, out) }()
	defer func() { cancel(); <-done }()
	ev, _, _ := cardReply([]string{"123:45678"})
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		port.queue(ev)
		<-out
		total += time.Since(port.last())
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns-last-byte-to-read")
}

// BenchmarkFramer: framing one osdp_RAW reply and decoding its card.
func BenchmarkFramer(b *testing.B) {
	reply := hx(b, "53 80 10 00 07 50 00 01 1A 00 BD D9 37 40 BF 5B")
	var f Framer
	b.SetBytes(int64(len(reply)))
	for b.Loop() {
		f.Feed(reply, func(fr Frame) {
			if _, err := DecodeRAW(fr.Data); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestTwinProcess is not a test: BenchmarkIdleCPU runs the test binary
// again with OSDP_TWIN_LINK set, so that this function serves a twin PD
// at address 1 in a process of its own until its stdin closes. Without
// the variable it returns at once.
func TestTwinProcess(t *testing.T) {
	link := os.Getenv("OSDP_TWIN_LINK")
	if link == "" {
		return
	}
	tw, err := NewTwin(link, 1, nil, ptySerial, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// BenchmarkIdleCPU: the CPU an idle reader costs, polling its PD every
// DefaultPollInterval over a real pty, as a percentage of one core (user
// and system time from getrusage). The twin runs in a process of its
// own, so the figure is the driver's (and this process's test harness).
// Each op is one second of idle polling; run it with -benchtime=10x.
func BenchmarkIdleCPU(b *testing.B) {
	link := filepath.Join(b.TempDir(), "ttyIDLE")
	cmd := exec.Command(os.Args[0], "-test.run=^TestTwinProcess$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), "OSDP_TWIN_LINK="+link)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		b.Fatalf("twin process: %q, %v", line, err)
	}
	r, err := New(Options{Name: "idle", Port: link, Address: 1})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, make(chan reader.Read)) }()
	defer func() { cancel(); <-done }()
	for r.Stats().Frames < 3 { // past POLL/ID/CAP
		time.Sleep(10 * time.Millisecond)
	}
	polls0 := r.Stats().Frames
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for range b.N {
		time.Sleep(time.Second)
	}
	wall, cpu := time.Since(start), cpuTime()-cpu0
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%cpu")
	b.ReportMetric(float64(r.Stats().Frames-polls0)/wall.Seconds(), "polls/s")
	if s := r.Stats(); s.Timeouts != 0 || s.BadFrames != 0 {
		b.Errorf("stats %+v", s)
	}
}
