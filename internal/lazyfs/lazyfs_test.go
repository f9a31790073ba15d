package lazyfs

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mounted is a lazy mount in a test: backing and mountpoint in a
// temporary directory, unmounted at the end.
type mounted struct {
	t       *testing.T
	backing string
	dir     string
	opts    Options
	fs      *FS
}

func mount(t *testing.T, opts Options) *mounted {
	t.Helper()
	base := t.TempDir()
	m := &mounted{t: t, backing: filepath.Join(base, "disk"), dir: filepath.Join(base, "mnt"), opts: opts}
	for _, d := range []string{m.backing, m.dir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m.mount()
	t.Cleanup(func() {
		if err := m.fs.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
			// Leave no mount behind a failed test.
			unix.Unmount(m.dir, unix.MNT_DETACH)
		}
	})
	return m
}

func (m *mounted) mount() {
	m.t.Helper()
	f, err := Mount(m.backing, m.dir, m.opts)
	if err != nil {
		m.t.Fatalf("mount (FUSE must work here; run as root): %v", err)
	}
	m.fs = f
}

// cut cuts the power, unmounts and mounts again.
func (m *mounted) cut() {
	m.t.Helper()
	if err := m.fs.Cut(); err != nil {
		m.t.Fatalf("cut: %v", err)
	}
	if err := m.fs.Unmount(); err != nil {
		m.t.Fatalf("unmount: %v", err)
	}
	m.mount()
}

func (m *mounted) path(name string) string { return filepath.Join(m.dir, name) }

// syncDir fsyncs a directory of the mount ("" is its root).
func (m *mounted) syncDir(name string) {
	m.t.Helper()
	d, err := os.Open(m.path(name))
	if err != nil {
		m.t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		m.t.Fatalf("fsync dir %q: %v", name, err)
	}
}

// durable writes a file, fsyncs it and its directory.
func (m *mounted) durable(name string, data []byte) {
	m.t.Helper()
	f, err := os.Create(m.path(name))
	if err != nil {
		m.t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		m.t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		m.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		m.t.Fatal(err)
	}
	m.syncDir(filepath.Dir(name))
}

func (m *mounted) read(name string) []byte {
	m.t.Helper()
	b, err := os.ReadFile(m.path(name))
	if err != nil {
		m.t.Fatal(err)
	}
	return b
}

func (m *mounted) open(name string) *os.File {
	m.t.Helper()
	f, err := os.OpenFile(m.path(name), os.O_RDWR, 0)
	if err != nil {
		m.t.Fatal(err)
	}
	return f
}

func mustWriteAt(t *testing.T, f *os.File, b []byte, off int64) {
	t.Helper()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func fdatasync(t *testing.T, f *os.File) {
	t.Helper()
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		t.Fatalf("fdatasync: %v", err)
	}
}

func TestUnsyncedWriteLostAtCut(t *testing.T) {
	m := mount(t, Options{})
	m.durable("f", []byte("synced"))
	f := m.open("f")
	mustWriteAt(t, f, []byte("SYNCED and more"), 0)
	if got := m.read("f"); string(got) != "SYNCED and more" {
		t.Fatalf("before the cut, read %q", got)
	}
	if st := m.fs.Stats(); st.HeldBytes != 15 || st.HeldFiles != 1 {
		t.Fatalf("stats before the cut = %+v, want 15 bytes in 1 file", st)
	}
	f.Close() // close makes nothing durable
	m.cut()
	if got := m.read("f"); string(got) != "synced" {
		t.Fatalf("after the cut, read %q, want the synced %q", got, "synced")
	}
	// The backing file never saw the unsynced bytes.
	if b, _ := os.ReadFile(filepath.Join(m.backing, "f")); string(b) != "synced" {
		t.Fatalf("backing holds %q", b)
	}
}

func TestFdatasyncKeepsData(t *testing.T) {
	m := mount(t, Options{})
	m.durable("f", nil)
	f := m.open("f")
	mustWriteAt(t, f, []byte("hello"), 0)
	fdatasync(t, f)
	mustWriteAt(t, f, []byte("world"), 5)
	f.Close()
	if st := m.fs.Stats(); st.Syncs < 2 || st.HeldBytes != 5 {
		t.Fatalf("stats = %+v, want at least 2 syncs and the 5 later bytes held", st)
	}
	m.cut()
	if got := m.read("f"); string(got) != "hello" {
		t.Fatalf("after the cut, read %q, want %q", got, "hello")
	}
}

func TestFallocate(t *testing.T) {
	m := mount(t, Options{})
	m.durable("j", nil)
	f := m.open("j")
	if err := unix.Fallocate(int(f.Fd()), 0, 0, 64<<10); err != nil {
		t.Fatalf("fallocate: %v", err)
	}
	if fi, _ := f.Stat(); fi.Size() != 64<<10 {
		t.Fatalf("size after fallocate = %d", fi.Size())
	}
	f.Close()
	m.cut() // the allocation was not synced
	if fi, err := os.Stat(m.path("j")); err != nil || fi.Size() != 0 {
		t.Fatalf("after a cut without sync: %v, size %v; want 0", err, fi.Size())
	}

	f = m.open("j")
	if err := unix.Fallocate(int(f.Fd()), 0, 0, 64<<10); err != nil {
		t.Fatalf("fallocate: %v", err)
	}
	fdatasync(t, f)
	mustWriteAt(t, f, []byte("record"), 100)
	fdatasync(t, f)
	mustWriteAt(t, f, []byte("lost"), 200)
	f.Close()
	m.cut()
	got := m.read("j")
	want := make([]byte, 64<<10)
	copy(want[100:], "record")
	if !bytes.Equal(got, want) {
		t.Fatalf("after the cut: %d bytes, record %q, at 200 %q", len(got), got[100:106], got[200:204])
	}
	// Modes other than plain allocation (and KEEP_SIZE) are refused.
	f = m.open("j")
	defer f.Close()
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 4096)
	if !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Fatalf("punch hole: %v, want EOPNOTSUPP", err)
	}
}

func TestTruncate(t *testing.T) {
	m := mount(t, Options{})
	m.durable("t", bytes.Repeat([]byte("a"), 8192))
	f := m.open("t")
	if err := f.Truncate(1024); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(4096); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte("a"), 1024), make([]byte, 3072)...)
	if got := m.read("t"); !bytes.Equal(got, want) {
		t.Fatalf("after truncate down and up: %d bytes, want 1024 a's and zeros", len(got))
	}
	f.Close()
	m.cut()
	if got := m.read("t"); !bytes.Equal(got, bytes.Repeat([]byte("a"), 8192)) {
		t.Fatalf("after a cut, %d bytes; want the synced 8192 a's", len(got))
	}

	f = m.open("t")
	if err := f.Truncate(1024); err != nil {
		t.Fatal(err)
	}
	mustWriteAt(t, f, []byte("zz"), 3000) // extends, leaving a gap of zeros
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	m.cut()
	want = append(bytes.Repeat([]byte("a"), 1024), make([]byte, 3002-1024)...)
	copy(want[3000:], "zz")
	if got := m.read("t"); !bytes.Equal(got, want) {
		t.Fatalf("after truncate, write, sync and a cut: %d bytes, want %d", len(got), len(want))
	}
}

func TestDirectoryEntries(t *testing.T) {
	m := mount(t, Options{})
	// Created and fsynced, but the directory never was: gone.
	f, err := os.Create(m.path("new"))
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("x"))
	f.Sync()
	f.Close()
	if st := m.fs.Stats(); st.PendingEntries != 1 {
		t.Fatalf("pending entries = %d, want 1", st.PendingEntries)
	}
	m.cut()
	if _, err := os.Stat(m.path("new")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file whose directory was never fsynced: %v, want it gone", err)
	}

	// In a new directory: durable once both directories were fsynced.
	if err := os.Mkdir(m.path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	m.syncDir("")
	m.durable("d/a", []byte("A"))
	m.cut()
	if got := m.read("d/a"); string(got) != "A" {
		t.Fatalf("d/a = %q", got)
	}

	// A rename is durable only with its directory's fsync.
	if err := os.Rename(m.path("d/a"), m.path("d/b")); err != nil {
		t.Fatal(err)
	}
	m.cut()
	if got := m.read("d/a"); string(got) != "A" {
		t.Fatalf("after a rename not synced, d/a = %q", got)
	}
	if _, err := os.Stat(m.path("d/b")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("d/b: %v, want it gone", err)
	}
	os.Rename(m.path("d/a"), m.path("d/b"))
	m.syncDir("d")
	m.cut()
	if got := m.read("d/b"); string(got) != "A" {
		t.Fatalf("after a synced rename, d/b = %q", got)
	}

	// The atomic replace: write a temporary file, fsync, rename over.
	m.durable("d/tmp", []byte("B"))
	if err := os.Rename(m.path("d/tmp"), m.path("d/b")); err != nil {
		t.Fatal(err)
	}
	if got := m.read("d/b"); string(got) != "B" {
		t.Fatalf("before the cut d/b = %q", got)
	}
	m.cut()
	if got := m.read("d/b"); string(got) != "A" {
		t.Fatalf("a replacing rename not synced: d/b = %q, want the old %q", got, "A")
	}
	if got := m.read("d/tmp"); string(got) != "B" {
		t.Fatalf("d/tmp = %q", got)
	}

	// An unlink not synced is undone.
	if err := os.Remove(m.path("d/b")); err != nil {
		t.Fatal(err)
	}
	m.cut()
	if got := m.read("d/b"); string(got) != "A" {
		t.Fatalf("after an unlink not synced, d/b = %q", got)
	}
	if err := os.Remove(m.path("d/b")); err != nil {
		t.Fatal(err)
	}
	m.syncDir("d")
	m.cut()
	if _, err := os.Stat(m.path("d/b")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after a synced unlink: %v", err)
	}
}

func TestEntriesWithData(t *testing.T) {
	m := mount(t, Options{EntriesWithData: true})
	f, err := os.Create(m.path("new"))
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("x"))
	f.Sync()
	f.Close()
	m.cut()
	if got := m.read("new"); string(got) != "x" {
		t.Fatalf("with EntriesWithData, a fsynced new file reads %q", got)
	}
}

func TestCleanUnmountKeepsEverything(t *testing.T) {
	m := mount(t, Options{})
	if err := os.WriteFile(m.path("f"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.fs.Unmount(); err != nil {
		t.Fatal(err)
	}
	if err := m.fs.Unmount(); err != nil {
		t.Fatalf("second unmount: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(m.backing, "f")); err != nil || string(b) != "kept" {
		t.Fatalf("backing after a clean unmount: %q, %v", b, err)
	}
	m.mount()
}

func TestFlock(t *testing.T) {
	m := mount(t, Options{})
	m.durable("lock", nil)
	a, b := m.open("lock"), m.open("lock")
	defer a.Close()
	defer b.Close()
	if err := unix.Flock(int(a.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("first flock: %v", err)
	}
	if err := unix.Flock(int(b.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("second flock: %v, want EWOULDBLOCK", err)
	}
	unix.Flock(int(a.Fd()), unix.LOCK_UN)
	if err := unix.Flock(int(b.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("flock after unlock: %v", err)
	}
}

func TestHeldBytesBounded(t *testing.T) {
	m := mount(t, Options{MaxHeld: 8192})
	m.durable("f", nil)
	f := m.open("f")
	defer f.Close()
	mustWriteAt(t, f, make([]byte, 8192), 0)
	// Overwriting held bytes holds nothing more.
	mustWriteAt(t, f, make([]byte, 4096), 0)
	if _, err := f.WriteAt([]byte{1}, 8192); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a write past the cap: %v, want ENOSPC", err)
	}
	fdatasync(t, f)
	mustWriteAt(t, f, []byte{1}, 8192)
}

func TestCutStopsTheMount(t *testing.T) {
	m := mount(t, Options{})
	m.durable("f", []byte("x"))
	f := m.open("f")
	defer f.Close()
	if err := m.fs.Cut(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("y"), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write after the cut: %v, want EIO", err)
	}
	if err := m.fs.Cut(); !errors.Is(err, ErrCut) {
		t.Fatalf("second cut: %v, want ErrCut", err)
	}
	f.Close()
	if err := m.fs.Unmount(); err != nil {
		t.Fatal(err)
	}
	m.mount()
}

func TestCutPartial(t *testing.T) {
	m := mount(t, Options{})
	const size = 64 << 10
	m.durable("f", make([]byte, size))
	f := m.open("f")
	mustWriteAt(t, f, bytes.Repeat([]byte{0xFF}, size+8192), 0) // also past the durable size
	f.Close()
	if err := m.fs.CutPartial(rand.New(rand.NewPCG(7, 7))); err != nil {
		t.Fatal(err)
	}
	if err := m.fs.Unmount(); err != nil {
		t.Fatal(err)
	}
	m.mount()
	got := m.read("f")
	if len(got) != size {
		t.Fatalf("size %d after a partial cut, want the durable %d", len(got), size)
	}
	kept := 0
	for s := 0; s < size; s += 512 {
		sector := got[s : s+512]
		switch {
		case bytes.Equal(sector, bytes.Repeat([]byte{0xFF}, 512)):
			kept++
		case !bytes.Equal(sector, make([]byte, 512)):
			t.Fatalf("sector at %d is mixed", s)
		}
	}
	if kept == 0 || kept == size/512 {
		t.Fatalf("%d of %d sectors kept: want some kept and some lost", kept, size/512)
	}
}

func TestAttributesOfAnOpenUnlinkedFile(t *testing.T) {
	m := mount(t, Options{})
	m.durable("f", []byte("abc"))
	f := m.open("f")
	defer f.Close()
	if err := os.Remove(m.path("f")); err != nil {
		t.Fatal(err)
	}
	// Through the descriptor: the file, not the backing directory's root.
	if err := f.Chmod(0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1); err != nil {
		t.Fatal(err)
	}
	if fi, err := f.Stat(); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 1 {
		t.Fatalf("stat = %v, %v; want mode 0600 and size 1", fi, err)
	}
	if fi, _ := os.Stat(m.backing); fi.Mode().Perm() != 0o755 {
		t.Fatalf("the backing directory's mode changed to %v", fi.Mode().Perm())
	}
	now := time.Unix(1700000000, 0)
	if err := os.Chtimes(m.path(""), now, now); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(m.path("")); !fi.ModTime().Equal(now) {
		t.Fatalf("directory mtime %v, want %v", fi.ModTime(), now)
	}
}
