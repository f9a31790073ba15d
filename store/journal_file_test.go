package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/punchclock/punchclock/internal/testdisk"
)

// scriptIO fails the calls its script says: each WriteAt or Datasync
// takes the next entry, nil meaning the real call; past the script every
// call is real.
type scriptIO struct {
	real  fileIO
	calls []error
}

var _ fileIO = (*scriptIO)(nil)

func (s *scriptIO) next() error {
	if len(s.calls) == 0 {
		return nil
	}
	err := s.calls[0]
	s.calls = s.calls[1:]
	return err
}

func (s *scriptIO) WriteAt(b []byte, off int64) (int, error) {
	if err := s.next(); err != nil {
		return 0, err
	}
	return s.real.WriteAt(b, off)
}

func (s *scriptIO) Datasync() error {
	if err := s.next(); err != nil {
		return err
	}
	return s.real.Datasync()
}

func openJP(t *testing.T, dir string, applied uint64, readOnly bool) (*journalPair, journalState) {
	t.Helper()
	jp, st, err := openJournals(dir, applied, readOnly, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jp.close() })
	return jp, st
}

func body(seq int) []byte {
	return []byte(fmt.Sprintf(`[{"n":%d,"pad":"%s"}]`, seq, bytes.Repeat([]byte("x"), 40)))
}

func mustAppend(t *testing.T, jp *journalPair, payload []byte) uint64 {
	t.Helper()
	seq, err := jp.append(payload)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func seqsOf(recs []journalRecord) []uint64 {
	var s []uint64
	for _, r := range recs {
		s = append(s, r.seq)
	}
	return s
}

func TestJournalRecordLayout(t *testing.T) {
	rec := appendRecord(nil, recBatch, 0x0102030405060708, []byte("[]"))
	want := []byte{
		2, 0, 0, 0, // payload length
		0, 0, 0, 0, // record CRC, checked below
		8, 7, 6, 5, 4, 3, 2, 1, // seq
		1, 0, 0, 0, // type batch, zero padding
		0, 0, 0, 0, // header CRC, checked below
		'[', ']',
	}
	if len(rec) != len(want) {
		t.Fatalf("record is %d bytes, want %d", len(rec), len(want))
	}
	for i, b := range want {
		if (i < 4 || i >= 8) && (i < 20 || i >= 24) && rec[i] != b {
			t.Fatalf("byte %d = %#x, want %#x", i, rec[i], b)
		}
	}
	r, ok := recordAt(rec, 0)
	if !ok || r.seq != 0x0102030405060708 || string(r.payload) != "[]" || r.end != int64(len(rec)) {
		t.Fatalf("recordAt = %+v, %v", r, ok)
	}
	for i := range rec {
		bad := slices.Clone(rec)
		bad[i] ^= 1
		if _, ok := recordAt(bad, 0); ok {
			t.Fatalf("record with byte %d flipped verifies", i)
		}
	}
}

// A power cut tears the last write at any byte: every whole record before
// it is recovered, nothing is reported as corruption, the torn record's
// seq (once its header is whole) is not reused, and a later open finds no
// gap.
func TestJournalTornAtEveryByte(t *testing.T) {
	src := t.TempDir()
	jp, _ := openJP(t, src, 0, false)
	mustAppend(t, jp, body(1))
	mustAppend(t, jp, body(2))
	off := jp.files[0].off
	mustAppend(t, jp, body(3))
	end := jp.files[0].off
	jp.close()
	whole, err := os.ReadFile(filepath.Join(src, journalPrefix+"a"))
	if err != nil {
		t.Fatal(err)
	}
	for k := int64(0); k < end-off; k++ {
		for _, rest := range []byte{0, 0xff} {
			t.Run(fmt.Sprintf("byte%d-rest%#x", k, rest), func(t *testing.T) {
				dir := t.TempDir()
				data := slices.Clone(whole)
				for i := off + k; i < end+journalHeader; i++ {
					data[i] = rest
				}
				if err := os.WriteFile(filepath.Join(dir, journalPrefix+"a"), data, 0o640); err != nil {
					t.Fatal(err)
				}
				jp, st, err := openJournals(dir, 0, false, true)
				if err != nil {
					t.Fatal(err)
				}
				defer jp.close()
				if got := seqsOf(st.Records); !slices.Equal(got, []uint64{1, 2}) {
					t.Fatalf("records %v, want 1 2", got)
				}
				if st.Corrupt() {
					t.Fatalf("torn tail reported as corruption: %v", st.Damage)
				}
				tornHeader := !allZero(data[off : off+min(k, journalHeader)])
				if tornHeader && (len(st.Damage) != 1 || st.Damage[0].Kind != damageTorn || st.Damage[0].Offset != off) {
					t.Fatalf("damage %v, want a torn tail at %d", st.Damage, off)
				}
				wantLast := uint64(2)
				if _, ok := parseHeader(data, off); ok { // whole, or the rest matched
					wantLast = 3
				}
				if st.Last != wantLast {
					t.Fatalf("last = %d, want %d", st.Last, wantLast)
				}
				seq, err := jp.append(body(4))
				if err != nil || seq <= wantLast {
					t.Fatalf("append = %d, %v; want a seq above %d", seq, err, wantLast)
				}
				jp.close()
				jp, st, err = openJournals(dir, 0, true, true)
				if err != nil {
					t.Fatal(err)
				}
				defer jp.close()
				if got := seqsOf(st.Records); !slices.Equal(got, []uint64{1, 2, seq}) || len(st.Damage) != 0 {
					t.Fatalf("after the next append: records %v, damage %v", got, st.Damage)
				}
			})
		}
	}
}

func TestJournalCorruptMiddle(t *testing.T) {
	for _, where := range []struct {
		name string
		at   int64 // offset in the third record
	}{{"length", 0}, {"crc", 5}, {"seq", 9}, {"type", 16}, {"header crc", 21}, {"payload", journalHeader + 3}} {
		t.Run(where.name, func(t *testing.T) {
			dir := t.TempDir()
			jp, _ := openJP(t, dir, 0, false)
			var offs []int64
			for i := range 5 {
				offs = append(offs, jp.files[0].off)
				mustAppend(t, jp, body(i+1))
			}
			jp.close()
			path := filepath.Join(dir, journalPrefix+"a")
			flipBit(t, path, offs[2]+where.at)
			jp, st := openJP(t, dir, 0, false)
			if got := seqsOf(st.Records); !slices.Equal(got, []uint64{1, 2, 4, 5}) {
				t.Fatalf("records %v, want 1 2 4 5", got)
			}
			if !st.Corrupt() || len(st.Damage) != 1 {
				t.Fatalf("damage %v, want one corruption", st.Damage)
			}
			d := st.Damage[0]
			if d.File != path || d.Offset != offs[2] || d.Len != offs[3]-offs[2] || d.After != 2 || d.Before != 4 {
				t.Fatalf("damage %+v, want %s at %d, %d bytes, between 2 and 4", d, path, offs[2], offs[3]-offs[2])
			}
			if st.Last != 5 {
				t.Fatalf("last = %d", st.Last)
			}
			if seq := mustAppend(t, jp, body(6)); seq <= 5 {
				t.Fatalf("next seq %d, want above 5", seq)
			}
			// Applied past it, the damage is history.
			jp.close()
			_, st = openJP(t, dir, 5, true)
			if len(st.Damage) != 0 || len(st.Records) != 1 {
				t.Fatalf("applied through 5: records %v, damage %v", seqsOf(st.Records), st.Damage)
			}
		})
	}
}

// A record lost at the end of one file shows only as a seq the other
// file skips: corruption too.
func TestJournalGapAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	jp, _ := openJP(t, dir, 0, false)
	mustAppend(t, jp, body(1))
	off := jp.files[0].off
	mustAppend(t, jp, body(2))
	if !jp.turn() {
		t.Fatal("no turn")
	}
	mustAppend(t, jp, body(3))
	jp.close()
	path := filepath.Join(dir, journalPrefix+"a")
	data, _ := os.ReadFile(path)
	clear(data[off : off+journalHeader+int64(len(body(2)))])
	os.WriteFile(path, data, 0o640)
	_, st := openJP(t, dir, 0, true)
	if got := seqsOf(st.Records); !slices.Equal(got, []uint64{1, 3}) {
		t.Fatalf("records %v", got)
	}
	if len(st.Damage) != 1 || st.Damage[0].Kind != damageCorrupt || st.Damage[0].Offset != -1 || st.Damage[0].After != 1 || st.Damage[0].Before != 3 {
		t.Fatalf("damage %v, want seq 2 missing", st.Damage)
	}
}

// Both files hold older generations after their newest records: those
// are neither returned nor reported.
func TestJournalOlderGenerations(t *testing.T) {
	dir := t.TempDir()
	jp, _ := openJP(t, dir, 0, false)
	big := func(i int) []byte { return bytes.Repeat([]byte{'a' + byte(i%26)}, 1500+i) }
	for i := 1; i <= 8; i++ { // a: 1..8
		mustAppend(t, jp, big(i))
	}
	jp.turn()
	for i := 9; i <= 14; i++ { // b: 9..14
		mustAppend(t, jp, big(i))
	}
	jp.applied(false) // a is in bbolt
	jp.turn()
	mustAppend(t, jp, big(15)) // a: 15 over 1..8
	mustAppend(t, jp, big(16))
	jp.applied(false) // b is in bbolt
	jp.turn()
	mustAppend(t, jp, big(17)) // b: 17 over 9..14
	jp.close()

	for _, applied := range []uint64{14, 15, 17} {
		_, st := openJP(t, dir, applied, true)
		var want []uint64
		for s := applied + 1; s <= 17; s++ {
			want = append(want, s)
		}
		if got := seqsOf(st.Records); !slices.Equal(got, want) || len(st.Damage) != 0 || st.Last != 17 {
			t.Fatalf("applied %d: records %v, damage %v, last %d", applied, got, st.Damage, st.Last)
		}
		for _, r := range st.Records {
			if !bytes.Equal(r.payload, big(int(r.seq))) {
				t.Fatalf("record %d has the wrong payload", r.seq)
			}
		}
	}
	// Appends continue after the newest record (17, in b) and the older
	// generations in both files are still neither returned nor reported.
	jp, st := openJP(t, dir, 14, false)
	if jp.cur != 1 || !jp.dirty[0] || !jp.dirty[1] {
		t.Fatalf("cur %d, dirty %v", jp.cur, jp.dirty)
	}
	if seq := mustAppend(t, jp, big(18)); seq != 18 || len(st.Records) != 3 {
		t.Fatalf("seq %d, %d records", seq, len(st.Records))
	}
	jp.close()
	_, st = openJP(t, dir, 14, true)
	if got := seqsOf(st.Records); !slices.Equal(got, []uint64{15, 16, 17, 18}) || len(st.Damage) != 0 {
		t.Fatalf("records %v, damage %v", got, st.Damage)
	}
}

// A failed append is void after a restart: by the tombstone over its
// header, or, when that fails too, by the void record the next append
// writes first (here in the other file).
func TestJournalVoidAfterFailedSync(t *testing.T) {
	boom := errors.New("injected EIO")
	for _, tc := range []struct {
		name   string
		script []error // record write, its sync, tombstone write, its sync
		turn   bool
	}{
		{"tombstone", []error{nil, boom}, false},
		{"void record", []error{nil, boom, boom, boom}, false},
		{"void record in the other file", []error{nil, boom, boom, boom}, true},
		{"write fails", []error{boom, boom}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			jp, _ := openJP(t, dir, 0, false)
			mustAppend(t, jp, body(1))
			j := jp.files[0]
			j.io = &scriptIO{real: j.io, calls: tc.script}
			if _, err := jp.append(body(2)); !errors.Is(err, boom) {
				t.Fatalf("append = %v, want the injected error", err)
			}
			if tc.name == "tombstone" {
				// A restart now: the tombstone keeps it out.
				_, st := openJP(t, dir, 0, true)
				if got := seqsOf(st.Records); !slices.Equal(got, []uint64{1}) || st.Last != 2 || len(st.Damage) != 0 {
					t.Fatalf("records %v, last %d, damage %v", got, st.Last, st.Damage)
				}
			}
			if tc.turn {
				jp.applied(false)
				jp.turn()
			}
			seq := mustAppend(t, jp, body(3))
			if seq <= 2 {
				t.Fatalf("seq %d reused", seq)
			}
			jp.close()
			_, st := openJP(t, dir, 0, true)
			if got := seqsOf(st.Records); !slices.Equal(got, []uint64{1, seq}) || len(st.Damage) != 0 {
				t.Fatalf("records %v, damage %v; want 1 %d", got, st.Damage, seq)
			}
			for _, r := range st.Records {
				if r.seq == seq && !bytes.Equal(r.payload, body(3)) {
					t.Fatal("wrong payload")
				}
			}
		})
	}
}

func TestJournalReadOnly(t *testing.T) {
	dir := t.TempDir()
	jp, st := openJP(t, dir, 0, true)
	if len(st.Records) != 0 || st.Last != 0 {
		t.Fatalf("state %+v", st)
	}
	if _, err := jp.append(body(1)); !errors.Is(err, errJournalReadOnly) {
		t.Fatalf("append = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("read-only open created %d files", len(ents))
	}
	jp, _ = openJP(t, dir, 0, false)
	mustAppend(t, jp, body(1))
	mustAppend(t, jp, body(2))
	jp.close()
	path := filepath.Join(dir, journalPrefix+"a")
	before, _ := os.ReadFile(path)
	_, st = openJP(t, dir, 1, true)
	if got := seqsOf(st.Records); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("records %v", got)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("read-only open changed the file")
	}
}

// On a full disk, appends that fit the preallocated files still succeed;
// one that must grow a file fails with ENOSPC and is void; once space is
// freed the next append succeeds, and a restart returns exactly what was
// synced.
func TestJournalENOSPC(t *testing.T) {
	// Synced, appends use O_DIRECT (ext4 has it); noSync, the page cache.
	for _, noSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("noSync=%v", noSync), func(t *testing.T) { testENOSPC(t, noSync) })
	}
}

func testENOSPC(t *testing.T, noSync bool) {
	mnt := testdisk.Mount(t, 8)
	dir := filepath.Join(mnt, "data")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	jp, _, err := openJournals(dir, 0, false, noSync)
	if err != nil {
		t.Fatal(err)
	}
	defer jp.close()
	if direct := jp.files[0].direct != nil; direct == noSync {
		t.Fatalf("direct I/O %v with noSync %v", direct, noSync)
	}
	s1 := mustAppend(t, jp, body(1))
	filler := filepath.Join(mnt, "filler")
	testdisk.Fill(t, filler)
	s2 := mustAppend(t, jp, body(2)) // inside the preallocation
	huge := bytes.Repeat([]byte("h"), 2*journalPrealloc)
	_, err = jp.append(huge)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk = %v, want ENOSPC", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s3 := mustAppend(t, jp, huge)
	s4 := mustAppend(t, jp, body(4))
	if err := jp.close(); err != nil {
		t.Fatal(err)
	}
	_, st := openJP(t, dir, 0, true)
	if got := seqsOf(st.Records); !slices.Equal(got, []uint64{s1, s2, s3, s4}) || len(st.Damage) != 0 {
		t.Fatalf("records %v, damage %v; want %d %d %d %d", got, st.Damage, s1, s2, s3, s4)
	}
	if !bytes.Equal(st.Records[2].payload, huge) || !bytes.Equal(st.Records[3].payload, body(4)) {
		t.Fatal("wrong payloads")
	}
}

// Where the file system has direct I/O, appends use it, aligned as it
// says.
func TestJournalDirectIO(t *testing.T) {
	dir := t.TempDir()
	jp, _ := openJP(t, dir, 0, false)
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, filepath.Join(dir, journalPrefix+"a"), 0, unix.STATX_DIOALIGN, &stx); err != nil {
		t.Fatal(err)
	}
	j := jp.files[0]
	if stx.Mask&unix.STATX_DIOALIGN != 0 && stx.Dio_offset_align != 0 {
		if j.direct == nil || j.unit != int(stx.Dio_offset_align) {
			t.Fatalf("direct %v, unit %d; the file system aligns direct I/O to %d", j.direct != nil, j.unit, stx.Dio_offset_align)
		}
	} else if j.direct != nil || j.unit != journalPage {
		t.Fatalf("direct I/O without support, unit %d", j.unit)
	}
	// Appends across units read back whole.
	var want [][]byte
	for i := range 20 {
		p := bytes.Repeat([]byte{byte('a' + i)}, 100+97*i)
		want = append(want, p)
		mustAppend(t, jp, p)
	}
	jp.close()
	_, st := openJP(t, dir, 0, true)
	if len(st.Records) != len(want) {
		t.Fatalf("%d records", len(st.Records))
	}
	for i, r := range st.Records {
		if !bytes.Equal(r.payload, want[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
}
