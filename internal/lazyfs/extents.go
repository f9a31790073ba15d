package lazyfs

import "sort"

// extent is a run of bytes written at off and not yet synced.
type extent struct {
	off  int64
	data []byte
}

func (e extent) end() int64 { return e.off + int64(len(e.data)) }

// pending is what a file holds that its backing file does not: the
// writes since its last sync, as sorted, non-overlapping extents, and its
// size. Bytes of the backing file at or beyond keep are not the file's
// any more (a truncate cut them off since the last sync): they read as
// zeros unless an extent covers them.
type pending struct {
	size int64
	keep int64
	ext  []extent
}

func newPending(backingSize int64) *pending {
	return &pending{size: backingSize, keep: backingSize}
}

// held is the number of bytes the extents hold.
func (p *pending) held() int64 {
	var n int64
	for _, e := range p.ext {
		n += int64(len(e.data))
	}
	return n
}

// growth is how many bytes p would hold more after a write of n bytes at
// off (overlapped bytes are replaced, not added).
func (p *pending) growth(off, n int64) int64 {
	end := off + n
	var covered int64
	for i := p.first(off); i < len(p.ext) && p.ext[i].off < end; i++ {
		covered += min(end, p.ext[i].end()) - max(off, p.ext[i].off)
	}
	return n - covered
}

// first is the index of the first extent that ends after off.
func (p *pending) first(off int64) int {
	return sort.Search(len(p.ext), func(i int) bool { return p.ext[i].end() > off })
}

// write records data at off.
func (p *pending) write(data []byte, off int64) {
	if len(data) == 0 {
		return
	}
	end := off + int64(len(data))
	p.size = max(p.size, end)
	i := p.first(off)
	// Appending right after the last extent, the common case of a log,
	// extends it in place.
	if i == len(p.ext) && i > 0 && p.ext[i-1].end() == off {
		p.ext[i-1].data = append(p.ext[i-1].data, data...)
		return
	}
	j := i
	for j < len(p.ext) && p.ext[j].off < end {
		j++
	}
	if i == j {
		p.ext = append(p.ext, extent{})
		copy(p.ext[i+1:], p.ext[i:])
		p.ext[i] = extent{off: off, data: append([]byte(nil), data...)}
		return
	}
	// Merge the overlapped extents [i, j) with the new bytes on top.
	start := min(off, p.ext[i].off)
	stop := max(end, p.ext[j-1].end())
	buf := make([]byte, stop-start)
	for _, e := range p.ext[i:j] {
		copy(buf[e.off-start:], e.data)
	}
	copy(buf[off-start:], data)
	p.ext[i] = extent{off: start, data: buf}
	p.ext = append(p.ext[:i+1], p.ext[j:]...)
}

// truncate sets the size; bytes past it are gone, extended bytes read as
// zeros.
func (p *pending) truncate(size int64) {
	p.size = size
	p.keep = min(p.keep, size)
	i := p.first(size)
	if i < len(p.ext) && p.ext[i].off < size {
		e := &p.ext[i]
		e.data = e.data[: size-e.off : size-e.off]
		i++
	}
	p.ext = p.ext[:i]
}

// read fills buf with the file's bytes at off and returns how many there
// are (short at the end of the file). readBacking reads the backing file
// into a buffer from an offset, leaving bytes it does not have untouched.
func (p *pending) read(buf []byte, off int64, readBacking func([]byte, int64) error) (int, error) {
	if off >= p.size {
		return 0, nil
	}
	n := int(min(int64(len(buf)), p.size-off))
	b := buf[:n]
	clear(b)
	if lim := min(off+int64(n), p.keep); lim > off {
		if err := readBacking(b[:lim-off], off); err != nil {
			return 0, err
		}
	}
	end := off + int64(n)
	for i := p.first(off); i < len(p.ext) && p.ext[i].off < end; i++ {
		e := p.ext[i]
		s := max(off, e.off)
		copy(b[s-off:], e.data[s-e.off:min(end, e.end())-e.off])
	}
	return n, nil
}
