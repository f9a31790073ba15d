package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// floorFile is the size of the preallocated file the fdatasync floor
// writes into: as large as a journal file's preallocation, so that the
// writes land in the same kind of blocks.
const floorFile = 256 << 10

// fsyncFloor times RawCommits 4 KiB pwrites, each followed by fdatasync,
// into a file preallocated by writing zeros (and fsynced) on the work
// directory's file system: the least any durable decision can cost on
// this disk, as there is neither a size change nor an unwritten extent
// for fdatasync to commit. The writes go through O_DIRECT, as the
// journal's do: through the page cache, a 4 KiB write into a file written
// whole dirties the large folio holding it, and fdatasync writes all of it
// (256 KiB here). The same writes into blocks only reserved with
// fallocate (unwritten extents, whose first write costs a metadata
// commit) are timed for a note.
func (r *run) fsyncFloor(ctx context.Context) error {
	reserved, err := r.timePwrites(ctx, "floor-fallocated", true, 0)
	if err != nil {
		return err
	}
	written, err := r.timePwrites(ctx, "floor-written", false, 0)
	if err != nil {
		return err
	}
	r.floor = written
	how := "O_DIRECT"
	if !r.floorDirect {
		how = "buffered (O_DIRECT refused here)"
	}
	r.logf("4 KiB pwrite + fdatasync p50 %s p99 %s (into fallocated blocks: p50 %s p99 %s)",
		ms(written.pct(50)), ms(written.pct(99)), ms(reserved.pct(50)), ms(reserved.pct(99)))
	r.rep.note("raw 4 KiB pwrite (%s) + fdatasync into a %d KiB file preallocated with zeros (same file system): p50 %s, p99 %s over %d writes; "+
		"%s written per write; into blocks only reserved with fallocate (each first write converts an unwritten extent): p50 %s, p99 %s",
		how, floorFile>>10, ms(written.pct(50)), ms(written.pct(99)), len(written), kib(r.floorBytes), ms(reserved.pct(50)), ms(reserved.pct(99)))
	return nil
}

// timePwrites times RawCommits 4 KiB pwrite + fdatasync pairs into a new
// file of floorFile bytes, cycling through its pages, each pair gap after
// the previous one (0: back to back). With fallocate the file is
// reserved, not written, and a fresh one is made for each pass over its
// pages so that every write meets an unwritten extent.
func (r *run) timePwrites(ctx context.Context, name string, fallocate bool, gap time.Duration) (dist, error) {
	path := filepath.Join(r.dir, name)
	defer os.Remove(path)
	var f, w *os.File // w writes (O_DIRECT if it can), f syncs
	closeFiles := func() {
		if w != nil && w != f {
			w.Close()
		}
		if f != nil {
			f.Close()
		}
	}
	prepare := func() error {
		if f != nil {
			closeFiles()
			os.Remove(path)
		}
		var err error
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
		if err != nil {
			return err
		}
		w = f
		if fallocate {
			err = syscall.Fallocate(int(f.Fd()), 0, 0, floorFile)
		} else {
			_, err = f.WriteAt(make([]byte, floorFile), 0)
		}
		if err != nil {
			return fmt.Errorf("preallocate %s: %w", name, err)
		}
		if err := f.Sync(); err != nil {
			return err
		}
		if err := syncDirOf(path); err != nil {
			return err
		}
		if d, err := os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0); err == nil {
			w = d
		} else {
			// No direct I/O (tmpfs, some FUSE): write through the page
			// cache, from which the zeros are dropped first.
			_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		}
		r.floorDirect = w != f
		return nil
	}
	if err := prepare(); err != nil {
		return nil, err
	}
	defer func() { closeFiles() }()
	// O_DIRECT wants memory aligned to the device's; an anonymous mapping
	// is page-aligned.
	page, err := syscall.Mmap(-1, 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, err
	}
	defer syscall.Munmap(page)
	for i := range page {
		page[i] = byte(i)
	}
	const pages = floorFile / 4096
	for i := range 20 { // warm up
		if _, err := w.WriteAt(page, int64(i%pages)*4096); err != nil {
			return nil, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return nil, err
		}
	}
	if fallocate {
		if err := prepare(); err != nil {
			return nil, err
		}
	}
	w0, err := procIO("self")
	if err != nil {
		return nil, err
	}
	lat := make([]time.Duration, r.opts.RawCommits)
	for i := range lat {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if fallocate && i > 0 && i%pages == 0 {
			if err := prepare(); err != nil {
				return nil, err
			}
		}
		if gap > 0 {
			time.Sleep(gap)
		}
		off := int64(i%pages) * 4096
		t := time.Now()
		if _, err := w.WriteAt(page, off); err != nil {
			return nil, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return nil, err
		}
		lat[i] = time.Since(t)
	}
	w1, err := procIO("self")
	if err != nil {
		return nil, err
	}
	if !fallocate && gap == 0 {
		r.floorBytes = float64(w1-w0) / float64(len(lat))
	}
	return newDist(lat), nil
}

func syncDirOf(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
