package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"

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
// once every record in it is in bbolt.
//
// Record layout, little endian:
//
//	u32 payload length
//	u32 CRC-32C of seq and payload
//	u64 seq, strictly increasing across the journal's life
//	payload (JSON of a batch)
//
// Once every batch is in bbolt (its seq is stored there as
// journal_applied), the journal is written again from offset 0. Reading
// stops at the first record that is torn, fails its CRC, or has a seq not
// above the one before it: that is where the newest write ended, and what
// follows is an older generation.

const (
	journalPrefix = "punchclock.wal."
	journalHeader = 16
	// journalPrealloc is allocated (fallocate) when the journal is
	// created, so that appends go to allocated blocks and fdatasync has
	// no size change to record. It is not written with zeros: one large
	// write leaves the file in the page cache as large folios, and every
	// small append would then dirty, and write back, a whole folio
	// (256 KiB per punch, measured).
	journalPrealloc = 256 << 10
	// maxRecord bounds one record, against a corrupt length.
	maxRecord = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type journal struct {
	f      *os.File
	off    int64 // where the next record goes
	grown  int64 // the largest offset written since the last cut
	noSync bool
	buf    []byte
}

// openJournal opens or creates the journal and returns the records found
// in it, oldest first.
func openJournal(path string, readOnly, noSync bool) (*journal, []journalRecord, error) {
	flag := os.O_RDWR | os.O_CREATE
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0o640)
	if readOnly && errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("store: journal: %w", err)
	}
	j := &journal{f: f, noSync: noSync}
	recs, err := j.readAll()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !readOnly {
		if err := j.preallocate(); err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	return j, recs, nil
}

type journalRecord struct {
	seq     uint64
	payload []byte
}

func (j *journal) readAll() ([]journalRecord, error) {
	data, err := io.ReadAll(j.f)
	if err != nil {
		return nil, fmt.Errorf("store: journal: %w", err)
	}
	var recs []journalRecord
	var last uint64
	for off := 0; off+journalHeader <= len(data); {
		n := binary.LittleEndian.Uint32(data[off:])
		sum := binary.LittleEndian.Uint32(data[off+4:])
		seq := binary.LittleEndian.Uint64(data[off+8:])
		end := off + journalHeader + int(n)
		if n == 0 || n > maxRecord || end > len(data) || seq <= last {
			break
		}
		if crc32.Checksum(data[off+8:end], castagnoli) != sum {
			break
		}
		recs = append(recs, journalRecord{seq: seq, payload: data[off+journalHeader : end]})
		last = seq
		off = end
	}
	return recs, nil
}

func (j *journal) preallocate() error {
	fi, err := j.f.Stat()
	if err != nil {
		return fmt.Errorf("store: journal: %w", err)
	}
	if fi.Size() >= journalPrealloc {
		return nil
	}
	err = unix.Fallocate(int(j.f.Fd()), 0, 0, journalPrealloc)
	if errors.Is(err, unix.EOPNOTSUPP) {
		return nil // the file system cannot: appends extend the file
	}
	if err != nil {
		return fmt.Errorf("store: journal: fallocate: %w", err)
	}
	return j.sync()
}

// append writes one record at the current offset and makes it durable.
func (j *journal) append(seq uint64, payload []byte) error {
	need := journalHeader + len(payload)
	if cap(j.buf) < need {
		j.buf = make([]byte, need)
	}
	b := j.buf[:need]
	binary.LittleEndian.PutUint32(b, uint32(len(payload)))
	binary.LittleEndian.PutUint64(b[8:], seq)
	copy(b[journalHeader:], payload)
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
	if _, err := j.f.WriteAt(b, j.off); err != nil {
		return fmt.Errorf("store: journal: %w", err)
	}
	if err := j.sync(); err != nil {
		return err
	}
	j.off += int64(need)
	j.grown = max(j.grown, j.off)
	return nil
}

func (j *journal) sync() error {
	if j.noSync {
		return nil
	}
	if err := unix.Fdatasync(int(j.f.Fd())); err != nil {
		return fmt.Errorf("store: journal: fdatasync: %w", err)
	}
	return nil
}

// rewind makes the next record go to offset 0; every record written so
// far must be in bbolt. A file that grew far past its preallocation
// (bbolt could not take punches for a while) is cut back to it, so that
// the space counts against max_data_mb no longer than needed.
func (j *journal) rewind() {
	j.off = 0
	if j.grown > 4*journalPrealloc {
		if err := j.f.Truncate(journalPrealloc); err == nil {
			j.grown = journalPrealloc
		}
	}
}

// journalPair is the two journal files.
type journalPair struct {
	files [2]*journal
	cur   int // the file appended to
	// dirty marks a file holding records not yet in bbolt.
	dirty [2]bool
}

// openJournals opens both files and returns their records in seq order.
func openJournals(dir string, readOnly, noSync bool) (*journalPair, []journalRecord, error) {
	jp := &journalPair{}
	var all []journalRecord
	for i, name := range []string{"a", "b"} {
		j, recs, err := openJournal(filepath.Join(dir, journalPrefix+name), readOnly, noSync)
		if err != nil {
			jp.close()
			return nil, nil, err
		}
		jp.files[i] = j
		all = append(all, recs...)
	}
	sort.Slice(all, func(i, k int) bool { return all[i].seq < all[k].seq })
	return jp, all, nil
}

func (jp *journalPair) append(seq uint64, payload []byte) error {
	if err := jp.files[jp.cur].append(seq, payload); err != nil {
		return err
	}
	jp.dirty[jp.cur] = true
	return nil
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
		jp.files[jp.cur].rewind()
	}
}

func (jp *journalPair) close() error {
	if jp == nil {
		return nil
	}
	var err error
	for _, j := range jp.files {
		if j == nil {
			continue
		}
		if cerr := j.close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

func (j *journal) close() error {
	if j == nil || j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
