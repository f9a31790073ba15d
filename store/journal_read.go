package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sort"
)

// Reading the journal. Each file is scanned from offset 0 to its end;
// a record is taken wherever its header CRC and its record CRC both
// verify, so a bad spot in the middle loses only the records it covers:
// after one, the scan moves forward a byte at a time until the next place
// where a header verifies (a length in range, a known type, zero padding
// and a CRC-32C over the header) and the CRC-32C over its seq, type and
// payload verifies too. Bytes that are not a record pass both 32-bit CRCs
// by chance with probability about 2^-64 per offset, so a false record is
// not a practical concern, and the header CRC keeps the scan cheap: the
// record CRC is computed only where a header verified.
//
// What the scan finds is then judged across both files (classify):
//
//   - Records with a seq at or below applied are in bbolt already.
//   - A bad spot followed, in the same file, by a record whose seq is more
//     than one above both applied and the seq of the record before the
//     spot lost synced records: corruption in the middle (bytes written
//     over or rotted after the fact).
//   - A seq above applied that no file holds (and no void record lists) is
//     lost as well: corruption.
//   - A bad spot right after a file's newest record (or at offset 0 of a
//     file without records) whose header is not all zeros, with nothing
//     newer after it, is a torn tail: the write that was going on at a
//     power cut. Its fdatasync never returned, so nothing of it was shown.
//     (Files of the earlier journal format read this way too.)
//   - Anything else after a file's newest record is an older generation
//     (a file is rewritten from offset 0) or unused preallocated space.

// scanRec is a record found by the scan: a batch, a void record or a
// tombstone (whose header alone verifies).
type scanRec struct {
	off, end int64
	seq      uint64
	typ      byte
	payload  []byte
}

// badSpot is a stretch of a file where no record verifies.
type badSpot struct {
	off, end int64
	// hdrSeq is the seq of a header that verified although its record
	// did not (a torn or damaged body); 0 if none did.
	hdrSeq uint64
	// zero: the spot starts with a header of zeros, as unused space and
	// the padding after the newest record do.
	zero bool
}

// header is a record header that verified.
type header struct {
	n   int64
	sum uint32
	seq uint64
	typ byte
}

func parseHeader(data []byte, off int64) (header, bool) {
	if off+journalHeader > int64(len(data)) {
		return header{}, false
	}
	h := data[off : off+journalHeader]
	n := binary.LittleEndian.Uint32(h)
	typ := h[16]
	if n == 0 || n > maxRecord || typ < recBatch || typ > recTombstone || h[17]|h[18]|h[19] != 0 {
		return header{}, false
	}
	if crc32.Checksum(h[:20], castagnoli) != binary.LittleEndian.Uint32(h[20:]) {
		return header{}, false
	}
	return header{n: int64(n), sum: binary.LittleEndian.Uint32(h[4:]), seq: binary.LittleEndian.Uint64(h[8:]), typ: typ}, true
}

// recordAt returns the record at off if it verifies.
func recordAt(data []byte, off int64) (scanRec, bool) {
	h, ok := parseHeader(data, off)
	if !ok {
		return scanRec{}, false
	}
	end := off + journalHeader + h.n
	if h.typ == recTombstone {
		// Only the header was rewritten; the body is what it was.
		return scanRec{off: off, end: min(end, int64(len(data))), seq: h.seq, typ: h.typ}, true
	}
	if end > int64(len(data)) {
		return scanRec{}, false
	}
	body := data[off+journalHeader : end]
	sum := crc32.Update(crc32.Checksum(data[off+8:off+20], castagnoli), castagnoli, body)
	if sum != h.sum {
		return scanRec{}, false
	}
	return scanRec{off: off, end: end, seq: h.seq, typ: h.typ, payload: body}, true
}

// scanFile finds every record of one file, and the bad spots between
// them, in file order.
func scanFile(data []byte) (recs []scanRec, spots []badSpot) {
	size := int64(len(data))
	for off := int64(0); off < size; {
		if r, ok := recordAt(data, off); ok {
			recs = append(recs, r)
			off = r.end
			continue
		}
		s := badSpot{off: off, end: size, zero: allZero(data[off:min(off+journalHeader, size)])}
		if h, ok := parseHeader(data, off); ok {
			s.hdrSeq = h.seq
		}
		for next := off + 1; next+journalHeader <= size; next++ {
			if _, ok := recordAt(data, next); ok {
				s.end = next
				break
			}
		}
		spots = append(spots, s)
		off = s.end
	}
	return recs, spots
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// seqRange is the seqs lo..hi, both included.
type seqRange struct{ lo, hi uint64 }

func encodeRanges(rs []seqRange) []byte {
	b := make([]byte, 0, 16*len(rs))
	for _, r := range rs {
		b = binary.LittleEndian.AppendUint64(b, r.lo)
		b = binary.LittleEndian.AppendUint64(b, r.hi)
	}
	return b
}

func decodeRanges(b []byte) []seqRange {
	var rs []seqRange
	for ; len(b) >= 16; b = b[16:] {
		r := seqRange{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])}
		if r.lo <= r.hi {
			rs = append(rs, r)
		}
	}
	return rs
}

// addRange adds lo..hi to rs, merging it with the last range when they
// touch (seqs are voided in rising order).
func addRange(rs []seqRange, lo, hi uint64) []seqRange {
	if n := len(rs); n > 0 && rs[n-1].hi+1 >= lo && rs[n-1].lo <= lo {
		rs[n-1].hi = max(rs[n-1].hi, hi)
		return rs
	}
	return append(rs, seqRange{lo, hi})
}

func inRanges(rs []seqRange, seq uint64) bool {
	for _, r := range rs {
		if r.lo <= seq && seq <= r.hi {
			return true
		}
	}
	return false
}

// missing returns the seqs of lo..hi that are neither in have (sorted,
// unique) nor covered by any of cover.
func missing(lo, hi uint64, have []uint64, cover []seqRange) []seqRange {
	var out []seqRange
	if lo > hi {
		return nil
	}
	// The holes between what is had, then minus what covers them.
	next := lo
	var holes []seqRange
	for _, s := range have {
		if s < next {
			continue
		}
		if s > hi {
			break
		}
		if s > next {
			holes = append(holes, seqRange{next, s - 1})
		}
		next = s + 1
	}
	if next <= hi && next >= lo {
		holes = append(holes, seqRange{next, hi})
	}
	cover = append([]seqRange(nil), cover...)
	sort.Slice(cover, func(i, k int) bool { return cover[i].lo < cover[k].lo })
	for _, h := range holes {
		cur := h.lo
		for _, c := range cover {
			if c.hi < cur || c.lo > h.hi {
				continue
			}
			if c.lo > cur {
				out = append(out, seqRange{cur, c.lo - 1})
			}
			if c.hi >= h.hi {
				cur = h.hi + 1
				break
			}
			cur = c.hi + 1
		}
		if cur <= h.hi {
			out = append(out, seqRange{cur, h.hi})
		}
	}
	return out
}

// fileScan is what the scan of one file found.
type fileScan struct {
	path  string
	recs  []scanRec
	spots []badSpot
}

// classify judges what the scans of both files found (see the comment
// at the top of this file). It returns the state for the caller and the
// seqs above applied that are lost or were never completed, which the
// next append voids so that a later open does not count them as lost
// again.
func classify(files []fileScan, applied uint64) (st journalState, lost []seqRange) {
	st.Last = applied
	var voided []seqRange
	var have []uint64 // seqs above applied that some record (of any type) holds
	for _, f := range files {
		for _, r := range f.recs {
			st.Last = max(st.Last, r.seq)
			if r.seq > applied {
				have = append(have, r.seq)
			}
			if r.typ == recVoid {
				voided = append(voided, decodeRanges(r.payload)...)
			}
		}
		for _, s := range f.spots {
			st.Last = max(st.Last, s.hdrSeq)
		}
	}
	sort.Slice(have, func(i, k int) bool { return have[i] < have[k] })
	known := applied
	if len(have) > 0 {
		known = have[len(have)-1]
	}

	// Bad spots.
	var explained []seqRange // lost seqs a corrupt spot accounts for
	for _, f := range files {
		// The newest write of a file ends after its highest seq (or at
		// offset 0 if it holds no record).
		var newestEnd int64
		var newest uint64
		for _, r := range f.recs {
			if r.seq > newest {
				newest, newestEnd = r.seq, r.end
			}
		}
		for _, s := range f.spots {
			var before uint64 // seq of the record just before the spot
			var after uint64  // lowest seq above max(before, applied) after it
			for _, r := range f.recs {
				if r.off < s.off {
					before = r.seq
				} else if r.seq > max(before, applied) && (after == 0 || r.seq < after) {
					after = r.seq
				}
			}
			d := journalDamage{File: f.path, Offset: s.off, Len: s.end - s.off, After: before, Before: after}
			switch lo := max(before, applied); {
			case after > lo+1:
				// Seqs above applied were between: lost.
				d.Kind = damageCorrupt
				explained = append(explained, seqRange{lo + 1, after - 1})
			case after != 0:
				continue // nothing above applied was lost here
			case s.off == newestEnd && !s.zero:
				d.Kind = damageTorn
			default:
				continue // an older generation, or unused space
			}
			st.Damage = append(st.Damage, d)
		}
	}
	// Seqs above applied that nothing holds.
	for _, g := range missing(applied+1, known, have, append(append([]seqRange(nil), voided...), explained...)) {
		st.Damage = append(st.Damage, journalDamage{Kind: damageCorrupt, Offset: -1, After: g.lo - 1, Before: g.hi + 1})
	}
	lost = missing(applied+1, st.Last, have, voided)

	seen := map[uint64]bool{}
	for _, f := range files {
		for _, r := range f.recs {
			if r.typ != recBatch || r.seq <= applied || seen[r.seq] || inRanges(voided, r.seq) {
				continue
			}
			seen[r.seq] = true
			st.Records = append(st.Records, journalRecord{seq: r.seq, payload: r.payload})
		}
	}
	sort.Slice(st.Records, func(i, k int) bool { return st.Records[i].seq < st.Records[k].seq })
	return st, lost
}

// damageKind tells a torn tail from corruption.
type damageKind int

const (
	// damageTorn is the write a power cut interrupted: its fdatasync
	// never returned, so nothing of it was shown. Worth a warning.
	damageTorn damageKind = iota + 1
	// damageCorrupt is damage among records that were synced: some of
	// them, whose decisions may have been shown, are lost. An alarm.
	damageCorrupt
)

func (k damageKind) String() string {
	switch k {
	case damageTorn:
		return "torn tail"
	case damageCorrupt:
		return "corruption"
	}
	return "unknown"
}

// journalDamage is one place where the journal could not be read.
type journalDamage struct {
	Kind damageKind
	// File and Offset locate the unreadable bytes, Len bytes of them up
	// to the next record that verifies (or the end of the file). A loss
	// seen only as missing seqs, with no bad spot to show for it, has no
	// File and Offset -1.
	File   string
	Offset int64
	Len    int64
	// The lost records' seqs lie strictly between After and Before;
	// Before is 0 when no later record was found.
	After, Before uint64
}

func (d journalDamage) String() string {
	where := "seqs missing"
	if d.Offset >= 0 {
		where = fmt.Sprintf("%s at offset %d (%d bytes)", d.File, d.Offset, d.Len)
	}
	if d.Before == 0 {
		return fmt.Sprintf("journal %s: %s, after seq %d", d.Kind, where, d.After)
	}
	return fmt.Sprintf("journal %s: %s, between seqs %d and %d", d.Kind, where, d.After, d.Before)
}
