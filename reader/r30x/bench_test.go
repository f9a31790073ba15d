package r30x_test

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/r30x"
	"github.com/punchclock/punchclock/reader/serialport"
)

// BenchmarkReadLatency: the time from the last byte of the Search ack
// leaving the wire (the driver's Read of it returned) to the Read on out
// — framing, decision and delivery. The sensor is played in memory over
// net.Pipe, whose Write returns once the reader has taken every byte.
// Each op is one presentation: GenImg, Img2Tz, Search, then a GenImg
// that finds the finger lifted.
func BenchmarkReadLatency(b *testing.B) {
	drv, sensor := net.Pipe()
	r := r30x.NewReader(r30x.Options{
		Name:         "bench",
		Open:         func() (r30x.Port, error) { return drv, nil },
		PollInterval: time.Microsecond,
		MaxBackoff:   time.Hour, // one port only
		MinBackoff:   time.Hour,
	})
	ctx, cancel := context.WithCancel(b.Context())
	out := make(chan reader.Read, 1)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, out) }()
	defer func() {
		cancel()
		sensor.Close()
		<-done
	}()

	var fr r30x.Framer
	buf := make([]byte, 512)
	var pending []r30x.Packet
	next := func() byte {
		for len(pending) == 0 {
			n, err := sensor.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			fr.Feed(buf[:n], func(p r30x.Packet) { pending = append(pending, p) })
		}
		p := pending[0]
		pending = pending[1:]
		return p.Payload[0]
	}
	reply := func(payload ...byte) {
		wire, _ := r30x.Encode(r30x.DefaultAddress, r30x.PIDAck, payload)
		if _, err := sensor.Write(wire); err != nil {
			b.Fatal(err)
		}
	}
	// Answer until the driver is polling.
	for cmd := next(); cmd != r30x.CmdGenImg; cmd = next() {
		reply(r30x.ConfOK, 0, 0, 0, 0, 0x01, 0x2C, 0, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0, 2, 0, 6) // ReadSysPara: 300 pages
	}
	reply(r30x.ConfNoFinger)

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		for next() != r30x.CmdGenImg {
		}
		reply(r30x.ConfOK)
		if next() != r30x.CmdImg2Tz {
			b.Fatal("no Img2Tz")
		}
		reply(r30x.ConfOK)
		if next() != r30x.CmdSearch {
			b.Fatal("no Search")
		}
		reply(r30x.ConfOK, 0, 17, 0, 100)
		t0 := time.Now()
		rd := <-out
		lat = append(lat, time.Since(t0))
		if rd.Value != "17" {
			b.Fatalf("read %+v", rd)
		}
		for next() != r30x.CmdGenImg {
		}
		reply(r30x.ConfNoFinger) // lifted
	}
	b.StopTimer()
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	b.ReportMetric(float64(sum.Nanoseconds())/float64(len(lat)), "ns/read")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns/read")
	// The Search ack's own time on the wire at 57600 baud 8N1 (10
	// bits a byte): 14 bytes.
	b.ReportMetric(float64(14*10*time.Second/57600)/1e3, "wire-µs/ack")
}

// BenchmarkIdlePollCPU: the CPU an idle sensor costs the driver, polled
// at the default pace through a real pseudo-terminal and
// reader/serialport. The twin answers from a child process (this test
// binary, see TestTwinProcess), so the figure is the driver's alone.
// Each op is one GenImg poll (DefaultPollInterval apart): run it for
// 10 s with -benchtime 50x.
func BenchmarkIdlePollCPU(b *testing.B) {
	link := filepath.Join(b.TempDir(), "ttyFP")
	child := exec.Command(os.Args[0], "-test.run=^TestTwinProcess$")
	child.Env = append(os.Environ(), "R30X_TWIN_LINK="+link)
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close() // the child closes its twin and exits
		if err := child.Wait(); err != nil {
			b.Errorf("twin process: %v", err)
		}
	}()
	for {
		if _, err := os.Stat(link); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := r30x.NewReader(r30x.Options{
		Name: "idle",
		Open: func() (r30x.Port, error) {
			p, err := serialport.Open(link, r30x.DefaultBaud)
			if err != nil {
				return nil, err
			}
			return p.(r30x.Port), nil
		},
	})
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, make(chan reader.Read)) }()
	defer func() {
		cancel()
		<-done
	}()
	// Each poll is one good frame (the GenImg ack). The harness wakes
	// rarely, not to count its own wakeups as the driver's.
	waitFrames := func(n uint64) {
		for r.Stats().Frames < n {
			time.Sleep(500 * time.Millisecond)
		}
	}
	waitFrames(3)
	start := r.Stats().Frames
	cpu0, wall0 := cpuTime(b), time.Now()
	b.ResetTimer()
	waitFrames(start + uint64(b.N))
	b.StopTimer()
	cpu, wall := cpuTime(b)-cpu0, time.Since(wall0)
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%cpu")
	b.ReportMetric(float64(b.N)/wall.Seconds(), "polls/s")
	if s := r.Stats(); s.Timeouts != 0 || s.Reads != 0 {
		b.Errorf("stats %+v", s)
	}
}

// TestTwinProcess is BenchmarkIdlePollCPU's twin, run in a child process
// of the test binary; it does nothing in a normal test run.
func TestTwinProcess(t *testing.T) {
	link := os.Getenv("R30X_TWIN_LINK")
	if link == "" {
		return
	}
	twin, err := r30x.NewTwin(r30x.TwinOptions{Name: "idle", Link: link, Serial: simSerial})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it
	if err := twin.Close(); err != nil {
		t.Fatal(err)
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
