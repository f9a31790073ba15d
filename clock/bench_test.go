package clock

import (
	"testing"
	"time"
)

// BenchmarkNow measures a stamp on the decision path with the system's
// own sources: unsynced (the kernel asked once a second at most) and
// trusted (never asked).
func BenchmarkNow(b *testing.B) {
	for _, source := range []Source{SourceKernel, SourceTrusted} {
		b.Run(string(source), func(b *testing.B) {
			c, err := New(Options{Source: source})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				c.Now()
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		c, err := New(Options{Source: SourceTrusted})
		if err != nil {
			b.Fatal(err)
		}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Now()
			}
		})
	})
}

// BenchmarkNowUncached is the cost the cache saves: a Clock asked about
// sync on every stamp (the monotonic clock jumps a second each time).
func BenchmarkNowUncached(b *testing.B) {
	c, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	var mono time.Duration = 1
	c.mono = func() time.Duration { mono += time.Second; return mono }
	for b.Loop() {
		c.Now()
	}
}
