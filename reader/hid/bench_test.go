package hid

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
)

// BenchmarkDecode: decoding what a reader sends for one ten-digit value
// (66 records: MSC_SCAN, key, SYN_REPORT per key down and up, and Enter).
func BenchmarkDecode(b *testing.B) {
	ty := typist{l: NativeLayout, t: t0}
	in, _ := ty.typeValue(nil, "0001193046", false)
	var d Decoder
	n := 0
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		d.Feed(in, func(string) { n++ })
	}
	if n == 0 {
		b.Fatal("nothing decoded")
	}
}

// BenchmarkEnterToRead: from the write of the Enter key's events into
// the twin's FIFO (the last bytes of a value on the wire) to the Read on
// the driver's out channel: decoder, repeat folding, queue and delivery,
// through the real FIFO and the real driver. Reports p50 and p99 besides
// the mean (ns/op).
func BenchmarkEnterToRead(b *testing.B) {
	cfg := &Config{Device: filepath.Join(b.TempDir(), "wedge")}
	tw, err := NewTwin("bench", cfg.Device, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tw.Close()
	rd, err := cfg.New(reader.Env{Name: "bench", RepeatWindow: time.Nanosecond})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	out := make(chan reader.Read)
	done := make(chan error, 1)
	go func() { done <- rd.Run(ctx, out) }()
	defer func() {
		cancel()
		<-done
	}()

	// Each value as keys, then its Enter separately.
	type value struct{ keys, enter []byte }
	var values []value
	for i := range 1000 {
		ty := typist{l: NativeLayout, t: t0}
		all, err := ty.typeValue(nil, fmt.Sprintf("%010d", i), false)
		if err != nil {
			b.Fatal(err)
		}
		ety := typist{l: NativeLayout, t: t0}
		enter := ety.press(nil, keyEnter)
		values = append(values, value{keys: all[:len(all)-len(enter)], enter: all[len(all)-len(enter):]})
	}
	write := func(p []byte) {
		if _, err := tw.w.Write(p); err != nil {
			b.Fatal(err)
		}
	}
	var lat []time.Duration
	i := 0
	for b.Loop() {
		v := values[i%len(values)]
		i++
		write(v.keys)
		start := time.Now()
		write(v.enter)
		<-out
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
