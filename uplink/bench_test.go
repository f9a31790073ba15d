package uplink

import (
	"context"
	"fmt"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/punchclock/punchclock/internal/testbroker"
)

// benchRows is how many shifts one benchmark operation drains.
const benchRows = 2000

// shiftPayload is a shift record of about 300 bytes, like the agent's.
func shiftPayload(seq int) []byte {
	return fmt.Appendf(nil, `{"id":"door-1-%08d","device_id":"door-1","employee_id":"E%05d",`+
		`"credential":{"type":"card","value":"0A1B2C3D4E"},"in":"2026-11-25T08:00:00+01:00",`+
		`"out":"2026-11-25T16:30:00+01:00","minutes":480,"break_minutes":30,"reader":"front",`+
		`"clock_synced":true,"flags":[],"contract":"standard","roster_version":42,"v":1}`, seq, seq%500)
}

var benchWindows = []int{1, DefaultWindow}

// BenchmarkDrain measures the uplink draining benchRows shifts from an
// in-memory outbox to a local mosquitto, PUBACKs and removals included.
func BenchmarkDrain(b *testing.B) {
	br := testbroker.Start(b)
	for _, w := range benchWindows {
		b.Run(fmt.Sprintf("window=%d", w), func(b *testing.B) {
			ob := newMemOutbox()
			u, err := New(Config{
				Broker: br.URL(), TopicPrefix: prefix, DeviceID: device,
				ClientID: fmt.Sprintf("bench-drain-%d", w), Outbox: ob, Window: w,
			})
			if err != nil {
				b.Fatal(err)
			}
			if err := u.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer u.Close()
			for deadline := time.Now().Add(5 * time.Second); !u.Connected(); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatal("not connected")
				}
			}
			payloads := make([][]byte, benchRows)
			for i := range payloads {
				payloads[i] = shiftPayload(i)
			}
			b.SetBytes(int64(benchRows * len(payloads[0])))
			var busy time.Duration
			for b.Loop() {
				b.StopTimer()
				for _, p := range payloads {
					ob.add(KindShifts, p)
				}
				b.StartTimer()
				began := time.Now()
				u.Notify()
				for {
					changed, n := ob.wait()
					if n == 0 {
						break
					}
					<-changed
				}
				busy += time.Since(began)
			}
			b.ReportMetric(float64(benchRows*b.N)/busy.Seconds(), "msgs/s")
		})
	}
}

// BenchmarkBarePaho publishes the same shifts with a bare paho client and
// the same window, waiting for every PUBACK: the ceiling for the uplink.
func BenchmarkBarePaho(b *testing.B) {
	br := testbroker.Start(b)
	for _, w := range benchWindows {
		b.Run(fmt.Sprintf("window=%d", w), func(b *testing.B) {
			c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(br.URL()).
				SetClientID(fmt.Sprintf("bench-bare-%d", w)).SetCleanSession(false))
			if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				b.Fatalf("connect: %v", tok.Error())
			}
			defer c.Disconnect(250)
			payloads := make([][]byte, benchRows)
			for i := range payloads {
				payloads[i] = shiftPayload(i)
			}
			b.SetBytes(int64(benchRows * len(payloads[0])))
			topic := base + KindShifts
			wait := func(t mqtt.Token) {
				if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
					b.Fatalf("publish: %v", t.Error())
				}
			}
			queue := make([]mqtt.Token, 0, w)
			for b.Loop() {
				for _, p := range payloads {
					if len(queue) == w {
						wait(queue[0])
						queue = queue[1:]
					}
					queue = append(queue, c.Publish(topic, 1, false, p))
				}
				for _, t := range queue {
					wait(t)
				}
				queue = queue[:0]
			}
			b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
