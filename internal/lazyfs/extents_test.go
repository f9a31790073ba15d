package lazyfs

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestPendingMatchesAFile applies random writes and truncates to pending
// over a backing file and to a plain byte slice, and compares every read.
func TestPendingMatchesAFile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		backing := bytes.Repeat([]byte{0xAA}, rng.IntN(5000))
		want := append([]byte(nil), backing...)
		p := newPending(int64(len(backing)))
		readBacking := func(b []byte, off int64) error {
			if off < int64(len(backing)) {
				copy(b, backing[off:])
			}
			return nil
		}
		for op := range 50 {
			switch rng.IntN(4) {
			case 0:
				sz := rng.IntN(8000)
				p.truncate(int64(sz))
				if sz < len(want) {
					want = want[:sz]
				} else {
					want = append(want, make([]byte, sz-len(want))...)
				}
			default:
				off, n := rng.IntN(8000), 1+rng.IntN(700)
				data := make([]byte, n)
				for i := range data {
					data[i] = byte(rng.IntN(255) + 1)
				}
				if g := p.growth(int64(off), int64(n)); g < 0 || g > int64(n) {
					t.Fatalf("growth %d of a %d-byte write", g, n)
				}
				before := p.held()
				grow := p.growth(int64(off), int64(n))
				p.write(data, int64(off))
				if p.held() != before+grow {
					t.Fatalf("held %d after a write, want %d+%d", p.held(), before, grow)
				}
				if end := off + n; end > len(want) {
					want = append(want, make([]byte, end-len(want))...)
				}
				copy(want[off:], data)
			}
			for i := 1; i < len(p.ext); i++ {
				if p.ext[i-1].end() > p.ext[i].off {
					t.Fatalf("round %d op %d: extents overlap", round, op)
				}
			}
			got := make([]byte, len(want)+100)
			n, err := p.read(got, 0, readBacking)
			if err != nil || !bytes.Equal(got[:n], want) {
				t.Fatalf("round %d op %d: read %d bytes, want %d (equal=%v)", round, op, n, len(want), bytes.Equal(got[:n], want))
			}
			if off := rng.IntN(len(want) + 1); true {
				part := make([]byte, 1+rng.IntN(300))
				n, _ := p.read(part, int64(off), readBacking)
				if !bytes.Equal(part[:n], want[off:min(len(want), off+len(part))]) {
					t.Fatalf("round %d op %d: partial read at %d differs", round, op, off)
				}
			}
		}
	}
}
