package keypad

import (
	"slices"
	"testing"
	"time"
)

const ms = time.Millisecond

type sample struct {
	at   time.Duration
	down uint64
}

// run feeds scripted samples and returns the keys pressed.
func run(d *Debouncer, samples []sample) []int {
	var got []int
	for _, s := range samples {
		d.Sample(s.at, s.down, func(k int) { got = append(got, k) })
	}
	return got
}

// every returns samples every step from from to to (exclusive) of down.
func every(from, to, step time.Duration, down uint64) []sample {
	var s []sample
	for at := from; at < to; at += step {
		s = append(s, sample{at, down})
	}
	return s
}

func TestDebouncer(t *testing.T) {
	cases := []struct {
		name    string
		samples []sample
		want    []int
		bounces uint64
	}{
		{"nothing pressed", every(0, 200*ms, 5*ms, 0), nil, 0},
		{"a clean press held 80 ms is one press", slices.Concat(every(0, 80*ms, 5*ms, 1<<4), every(80*ms, 200*ms, 5*ms, 0)), []int{4}, 0},
		{
			// Bouncing at press and release (1 ms samples toggling for
			// 5 ms), held in between: one press, ten bounces.
			"bounce at press and release",
			slices.Concat(
				[]sample{{0, 1 << 2}, {1 * ms, 0}, {2 * ms, 1 << 2}, {3 * ms, 0}, {4 * ms, 1 << 2}},
				every(5*ms, 80*ms, 5*ms, 1<<2),
				[]sample{{80 * ms, 0}, {81 * ms, 1 << 2}, {82 * ms, 0}, {83 * ms, 1 << 2}, {84 * ms, 0}},
				every(85*ms, 200*ms, 5*ms, 0),
			),
			[]int{2}, 4,
		},
		{"a blip shorter than Debounce is no press", slices.Concat(every(0, 15*ms, 5*ms, 1), every(15*ms, 100*ms, 5*ms, 0)), nil, 1},
		{"down exactly Debounce is a press", []sample{{0, 1}, {Debounce, 1}}, []int{0}, 0},
		{"down just under Debounce is not", []sample{{0, 1}, {Debounce - 1, 1}, {Debounce, 0}}, nil, 1},
		{
			"held long: still one press; pressed again after release: two",
			slices.Concat(every(0, 2000*ms, 5*ms, 1<<7), every(2000*ms, 2050*ms, 5*ms, 0), every(2050*ms, 2100*ms, 5*ms, 1<<7)),
			[]int{7, 7}, 0,
		},
		{
			"released too briefly (a bounce mid-press) is still one press",
			slices.Concat(every(0, 50*ms, 5*ms, 1), every(50*ms, 60*ms, 5*ms, 0), every(60*ms, 120*ms, 5*ms, 1)),
			[]int{0}, 1,
		},
		{
			"two keys rolled over: each once, in the order they settled",
			slices.Concat(every(0, 30*ms, 5*ms, 1<<3), every(30*ms, 90*ms, 5*ms, 1<<3|1<<9), every(90*ms, 150*ms, 5*ms, 1<<9)),
			[]int{3, 9}, 0,
		},
		{"two keys at once: key order", every(0, 40*ms, 5*ms, 1<<11|1<<1), []int{1, 11}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var d Debouncer
			if got := run(&d, tc.samples); !slices.Equal(got, tc.want) {
				t.Fatalf("pressed %v, want %v", got, tc.want)
			}
			if d.Bounces() != tc.bounces {
				t.Fatalf("bounces %d, want %d", d.Bounces(), tc.bounces)
			}
		})
	}
}

func TestDebouncerBusy(t *testing.T) {
	var d Debouncer
	if d.Busy() {
		t.Fatal("busy at rest")
	}
	d.Sample(0, 1, func(int) {})
	if !d.Busy() {
		t.Fatal("not busy with a key changing")
	}
	d.Sample(25*ms, 1, func(int) {})
	d.Sample(30*ms, 0, func(int) {})
	if !d.Busy() {
		t.Fatal("not busy with a key still held (debounced down)")
	}
	d.Sample(60*ms, 0, func(int) {})
	if d.Busy() {
		t.Fatal("busy after release")
	}
	d.Sample(70*ms, 1, func(int) {})
	d.Reset()
	if d.Busy() || d.Bounces() != 0 {
		t.Fatal("Reset")
	}
}

// FuzzDebouncer: any samples. Never panics; a key is never pressed
// twice without a debounced release between; each press had its key
// down for Debounce.
func FuzzDebouncer(f *testing.F) {
	f.Add([]byte{0, 1, 0, 5, 1, 0, 20, 1, 0, 30, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Debouncer
		var at time.Duration
		held := uint64(0)
		lastDown := uint64(0)
		downSince := [MaxKeys]time.Duration{}
		for ; len(data) >= 3; data = data[3:] {
			at += time.Duration(data[0]) * ms
			down := uint64(data[1]) | uint64(data[2])<<8
			for k := range 16 {
				if down>>k&1 == 1 && lastDown>>k&1 == 0 {
					downSince[k] = at
				}
			}
			lastDown = down
			d.Sample(at, down, func(k int) {
				if held>>k&1 == 1 {
					t.Fatalf("key %d pressed twice without release", k)
				}
				if down>>k&1 == 0 || at-downSince[k] < Debounce {
					t.Fatalf("key %d pressed after %v down", k, at-downSince[k])
				}
				held |= 1 << k
			})
			held &= d.stable
		}
	})
}
