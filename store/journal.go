package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The journal is the durability point of a punch. A batch of decided
// punches is appended to it as one record and fdatasynced before the
// decisions are shown; the batch reaches the bbolt file later, together
// with the batches that followed (see apply.go). A punch thus costs one
// small synchronous write instead of a bbolt commit, which rewrites
// every page on the paths from the root to the leaves it touched.
//
// There are two journal files, used in turn: while the batches of one are
// being applied to bbolt, new batches go to the other, so the writer never
// waits for a bbolt commit. A file is written again from offset 0 only
// once every record in it is in bbolt; what follows the newest record in
// a file is then an older generation of records (lower seqs).
//
// The journal owns the seqs: append assigns one above the highest ever
// seen (in either file, in a damaged record's header that verified, or
// applied as the caller passed it to openJournals), so a seq is never
// handed out twice while any trace of it is on disk.
//
// Record layout, little endian (this is format 2; files written by the
// earlier format, a 16-byte header without type and header CRC, do not
// verify and read as empty):
//
//	off len
//	  0   4  n, payload length (1..maxRecord)
//	  4   4  CRC-32C of bytes 8..24 and the payload (record CRC)
//	  8   8  seq
//	 16   1  type: 1 batch (payload: JSON of entries), 2 void (payload:
//	         pairs of u64 lo, hi: seqs lo..hi are void), 3 tombstone
//	 17   3  zero
//	 20   4  CRC-32C of bytes 0..20 (header CRC)
//	 24   n  payload
//
// A tombstone is the header of a record whose write or fdatasync failed,
// rewritten in place with type 3 (the body is left as it was): the person
// was shown an error, so the record must not come back at a restart. Only
// its header CRC is checked. As the tombstone itself may not reach the
// disk, the next successful append first writes a void record listing
// every seq whose write failed (and those found lost at open).
//
// Each append writes whole units, from the start of the unit holding the
// end of the previous record (kept in memory) to the end of the unit
// after the new record, zero-padded: the zeros are a header of zeros that
// marks where the newest write ended. Where the file system can, the
// journal writes with O_DIRECT and a unit is the direct-I/O alignment
// (512 bytes on this project's ext4 and SD cards): an append then writes
// the sectors it touches, about 1 KiB, where through the page cache it
// dirties, and write-back writes, at least one 4 KiB page. Otherwise (and
// with noSync, where a direct write would make every append wait for the
// device) a unit is a 4 KiB page, written whole so that the kernel never
// reads a page in first. See openJournal for the preallocation and the
// page cache.

const (
	journalPrefix = "punchclock.wal."
	journalHeader = 24
	journalPage   = 4096
	// journalPrealloc is written with zeros when a journal file is
	// created, so that appends overwrite blocks that are allocated and
	// written: fdatasync has neither a size change nor an unwritten
	// extent to convert (fallocate leaves unwritten extents, and the
	// first write into each block then costs a metadata commit).
	journalPrealloc = 256 << 10
	// maxRecord bounds one record, against a corrupt length.
	maxRecord = 64 << 20
)

// Record types.
const (
	recBatch     byte = 1
	recVoid      byte = 2
	recTombstone byte = 3
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errJournalReadOnly = errors.New("store: journal is open read-only")

// appendRecord appends one encoded record to b.
func appendRecord(b []byte, typ byte, seq uint64, payload []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, journalHeader)...)
	b = append(b, payload...)
	h := b[start : start+journalHeader]
	binary.LittleEndian.PutUint32(h, uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:], seq)
	h[16] = typ
	sum := crc32.Update(crc32.Checksum(h[8:20], castagnoli), castagnoli, payload)
	binary.LittleEndian.PutUint32(h[4:], sum)
	binary.LittleEndian.PutUint32(h[20:], crc32.Checksum(h[:20], castagnoli))
	return b
}

// tombstone returns the header hdr rewritten as a tombstone.
func tombstone(hdr []byte) []byte {
	t := make([]byte, journalHeader)
	copy(t, hdr[:16])
	binary.LittleEndian.PutUint32(t[4:], 0)
	t[16] = recTombstone
	binary.LittleEndian.PutUint32(t[20:], crc32.Checksum(t[:20], castagnoli))
	return t
}

// fileIO is what the journal does to a file that can fail: tests put
// failures in through it.
type fileIO interface {
	WriteAt(b []byte, off int64) (int, error)
	Datasync() error
}

// osFile writes through w (opened with O_DIRECT, or f) and syncs f.
type osFile struct{ w, f *os.File }

func (o osFile) WriteAt(b []byte, off int64) (int, error) { return o.w.WriteAt(b, off) }
func (o osFile) Datasync() error                          { return unix.Fdatasync(int(o.f.Fd())) }

// journal is one of the two files.
type journal struct {
	path   string
	f      *os.File
	direct *os.File // f opened again with O_DIRECT; nil if not used
	io     fileIO
	noSync bool
	// unit is what a write is aligned to and a multiple of; memAlign is
	// the alignment of the buffer written (direct I/O needs both).
	unit, memAlign int
	off            int64  // where the next record goes
	tail           []byte // the bytes of the unit holding off, before off
	buf            []byte
	grown          int64 // the largest offset written since the last cut
}

// openJournal opens or creates one file and returns its content. A file
// that does not exist is nil when read-only. Writable, a file shorter
// than journalPrealloc is extended with zeros, written a page at a time
// and then dropped from the page cache (as is what was read): a large
// write or a read-ahead leaves large folios in the page cache, and each
// small append would then dirty, and write back, a whole folio (256 KiB
// per append was measured). Pages the appends write are single pages.
func openJournal(path string, readOnly, noSync bool) (j *journal, data []byte, err error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if errors.Is(err, os.ErrNotExist) {
		if readOnly {
			return nil, nil, nil
		}
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("store: journal: %w", err)
	}
	j = &journal{path: path, f: f, io: osFile{f, f}, noSync: noSync, unit: journalPage, memAlign: 1}
	if data, err = io.ReadAll(f); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("store: journal: read %s: %w", path, err)
	}
	if readOnly {
		return j, data, nil
	}
	if err := j.zeroFill(int64(len(data))); err != nil {
		f.Close()
		return nil, nil, err
	}
	// Drop the clean pages: later appends fault in single pages.
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	if !noSync {
		j.openDirect()
	}
	return j, data, nil
}

// openDirect opens the file again with O_DIRECT for appends, if the file
// system supports direct I/O at an offset alignment of at most a page (and
// a memory alignment of at most that: the tombstones of a failed write are
// written from inside its buffer).
func (j *journal) openDirect() {
	var stx unix.Statx_t
	if err := unix.Statx(int(j.f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &stx); err != nil {
		return
	}
	unit, mem := int(stx.Dio_offset_align), int(stx.Dio_mem_align)
	if stx.Mask&unix.STATX_DIOALIGN == 0 || unit == 0 || mem == 0 ||
		unit > journalPage || mem > unit || unit&(unit-1) != 0 || mem&(mem-1) != 0 {
		return
	}
	d, err := os.OpenFile(j.path, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return
	}
	j.direct, j.io, j.unit, j.memAlign = d, osFile{d, j.f}, unit, mem
}

// aligned returns a zeroed buffer of n bytes whose first byte is aligned
// to align (a power of two), as direct I/O needs. The Go heap does not
// move objects, so the alignment holds.
func aligned(n, align int) []byte {
	b := make([]byte, n+align)
	skip := (align - int(uintptr(unsafe.Pointer(&b[0]))&uintptr(align-1))) & (align - 1)
	return b[skip : skip+n : skip+n]
}

// zeroFill writes zeros from size up to journalPrealloc. A full disk
// is not an error: the journal then grows as it is appended to.
func (j *journal) zeroFill(size int64) error {
	if size >= journalPrealloc {
		return nil
	}
	zero := make([]byte, journalPage)
	for off := size; off < journalPrealloc; {
		n := journalPage - off%journalPage
		if _, err := j.io.WriteAt(zero[:n], off); errors.Is(err, unix.ENOSPC) {
			break
		} else if err != nil {
			return fmt.Errorf("store: journal: preallocate %s: %w", j.path, err)
		}
		off += n
	}
	if err := j.sync(); err != nil && !errors.Is(err, unix.ENOSPC) {
		return err
	}
	return nil
}

// startAt makes the next record go to off of a file whose content is
// data.
func (j *journal) startAt(off int64, data []byte) {
	j.off = off
	us := off &^ int64(j.unit-1)
	j.tail = make([]byte, off-us)
	if us < int64(len(data)) {
		copy(j.tail, data[us:min(off, int64(len(data)))])
	}
}

// write writes the encoded records rec at the current offset and makes
// them durable; starts are the offsets of the records in rec. If that
// fails, it turns the records into tombstones as far as it can.
func (j *journal) write(rec []byte, starts []int) error {
	us := j.off - int64(len(j.tail))
	used := len(j.tail) + len(rec)
	total := (used + journalHeader + j.unit - 1) &^ (j.unit - 1)
	if cap(j.buf) < total {
		j.buf = aligned(max(total, 2*cap(j.buf)), j.memAlign)
	}
	w := j.buf[:total]
	copy(w, j.tail)
	copy(w[len(j.tail):], rec)
	clear(w[used:])
	_, err := j.io.WriteAt(w, us)
	if err == nil {
		err = j.sync()
	} else {
		err = fmt.Errorf("store: journal: write %s: %w", j.path, err)
	}
	if err != nil {
		// Best effort: the void record covers them anyway.
		for _, s := range starts {
			h := len(j.tail) + s
			copy(w[h:], tombstone(w[h:]))
			from, to := h&^(j.unit-1), (h+journalHeader+j.unit-1)&^(j.unit-1)
			j.io.WriteAt(w[from:to], us+int64(from))
		}
		j.sync()
		return err
	}
	end := j.off + int64(len(rec))
	j.tail = append(j.tail[:0], w[end&^int64(j.unit-1)-us:end-us]...)
	j.off = end
	return nil
}

func (j *journal) sync() error {
	if j.noSync {
		return nil
	}
	if err := j.io.Datasync(); err != nil {
		return fmt.Errorf("store: journal: fdatasync %s: %w", j.path, err)
	}
	return nil
}

// rewind makes the next record go to offset 0; every record written so
// far must be in bbolt. A file that grew far past its preallocation
// (bbolt could not take punches for a while) is cut back to it, so that
// the space counts against max_data_mb no longer than needed.
func (j *journal) rewind() {
	j.grown = max(j.grown, j.off)
	j.off = 0
	j.tail = j.tail[:0]
	if j.grown > 4*journalPrealloc && j.f != nil {
		if err := j.f.Truncate(journalPrealloc); err == nil {
			j.grown = 0
		}
	}
}

func (j *journal) close() error {
	if j == nil || j.f == nil {
		return nil
	}
	err := j.f.Close()
	if j.direct != nil {
		if derr := j.direct.Close(); derr != nil && err == nil {
			err = derr
		}
	}
	j.f, j.direct = nil, nil
	return err
}

// journalRecord is a batch found in the journal.
type journalRecord struct {
	seq     uint64
	payload []byte
}

// journalState is what openJournals found.
type journalState struct {
	// Records are the batches above applied, ascending by seq, without
	// the void ones: the caller applies them.
	Records []journalRecord
	// Last is the highest seq seen, and at least applied; the next
	// append takes a higher one.
	Last uint64
	// Damage lists the places that could not be read, each a torn tail
	// (a warning) or corruption (an alarm: records that were synced, and
	// whose decisions may have been shown, are lost). Opening succeeds
	// either way; after any damage the caller should move its own record
	// sequences ahead by a safety margin, since a lost batch may have
	// used ids that were shown or sent.
	Damage []journalDamage
}

// Corrupt reports whether any damage is corruption.
func (s journalState) Corrupt() bool {
	for _, d := range s.Damage {
		if d.Kind == damageCorrupt {
			return true
		}
	}
	return false
}

// journalPair is the two journal files.
type journalPair struct {
	files    [2]*journal // nil if read-only and the file does not exist
	cur      int         // the file appended to
	readOnly bool
	// dirty marks a file holding records not yet in bbolt.
	dirty [2]bool
	// last is the highest seq seen or assigned.
	last uint64
	// voided are seqs that must never be applied: writes that failed,
	// and seqs found lost or torn at open. The next append writes them
	// in a void record.
	voided []seqRange
	rec    []byte
}

// openJournals opens (creating if needed) both journal files in dir and
// reads them. applied is the highest seq the caller has in bbolt: records
// up to it are ignored. Damage is returned in the state, not as an error:
// err is only for files that cannot be opened, read or preallocated.
//
// The caller must apply state.Records (and record the highest of their
// seqs as applied) before it calls applied(true) or turn, which let
// appends overwrite them. Writable, openJournals fsyncs dir, which makes
// durable the directory entries of the journal files and of any file
// created in dir before it (the store's database file).
func openJournals(dir string, applied uint64, readOnly, noSync bool) (*journalPair, journalState, error) {
	jp := &journalPair{readOnly: readOnly}
	var scans []fileScan
	var contents [2][]byte
	for i, name := range []string{"a", "b"} {
		path := filepath.Join(dir, journalPrefix+name)
		j, data, err := openJournal(path, readOnly, noSync)
		if err != nil {
			jp.close()
			return nil, journalState{}, err
		}
		jp.files[i] = j
		contents[i] = data
		recs, spots := scanFile(data)
		scans = append(scans, fileScan{path: path, recs: recs, spots: spots})
	}
	if !readOnly && !noSync {
		if err := syncDir(dir); err != nil {
			jp.close()
			return nil, journalState{}, err
		}
	}
	st, lost := classify(scans, applied)
	jp.last, jp.voided = st.Last, lost

	// Appends continue after the newest record.
	var newest uint64
	var at int64
	for i, s := range scans {
		for _, r := range s.recs {
			if r.seq > newest {
				newest, jp.cur, at = r.seq, i, r.end
			}
			if r.typ == recBatch && r.seq > applied && !inRanges(lost, r.seq) {
				jp.dirty[i] = true
			}
		}
	}
	if j := jp.files[jp.cur]; j != nil {
		j.startAt(at, contents[jp.cur])
	}
	return jp, st, nil
}

// append writes payload as one record, with the next seq, and makes it
// durable (fdatasync) before it returns the seq. On an error the record
// is void: a later open does not return it even if its bytes reached the
// disk, and its seq is not handed out again. A full disk gives an error
// matching syscall.ENOSPC; the journal stays usable.
func (jp *journalPair) append(payload []byte) (uint64, error) {
	if jp.readOnly {
		return 0, errJournalReadOnly
	}
	if len(payload) == 0 || len(payload) > maxRecord {
		return 0, fmt.Errorf("store: journal: record of %d bytes", len(payload))
	}
	first := jp.last + 1
	rec := jp.rec[:0]
	var starts []int
	if len(jp.voided) > 0 {
		starts = append(starts, len(rec))
		jp.last++
		rec = appendRecord(rec, recVoid, jp.last, encodeRanges(jp.voided))
	}
	starts = append(starts, len(rec))
	jp.last++
	rec = appendRecord(rec, recBatch, jp.last, payload)
	jp.rec = rec
	if err := jp.files[jp.cur].write(rec, starts); err != nil {
		jp.voided = addRange(jp.voided, first, jp.last)
		return 0, err
	}
	jp.voided = nil
	jp.dirty[jp.cur] = true
	return jp.last, nil
}

// turn starts writing the other file, from its beginning, if all of its
// records are in bbolt. It reports whether it did.
func (jp *journalPair) turn() bool {
	other := 1 - jp.cur
	if jp.dirty[other] {
		return false
	}
	jp.cur = other
	jp.files[other].rewind()
	return true
}

// applied records that every record up to the last turn is in bbolt:
// the file not being appended to is clean. With everything applied,
// both are.
func (jp *journalPair) applied(all bool) {
	jp.dirty[1-jp.cur] = false
	if all {
		jp.dirty[jp.cur] = false
		if j := jp.files[jp.cur]; j != nil {
			j.rewind()
		}
	}
}

func (jp *journalPair) close() error {
	if jp == nil {
		return nil
	}
	var err error
	for _, j := range jp.files {
		if cerr := j.close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}
