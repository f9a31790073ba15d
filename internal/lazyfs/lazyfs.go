// Package lazyfs is a FUSE file system for power-cut tests, after LazyFS:
// it passes a backing directory through, but holds every write that has
// not been fsynced (or fdatasynced) in memory, where reads see it, and
// writes it to the backing file only when the file is synced. A simulated
// power cut (Cut) throws away everything not yet synced, as the page
// cache is lost when the power goes; a kill -9 does not test that, since
// the page cache survives the process.
//
// Directory entries are modelled too: a create, mkdir, unlink, rename or
// link is durable only once a directory it touched has been fsynced.
// Until then it is logged with its undo, and Cut undoes the log from its
// newest end. A directory fsync makes durable every change up to the last
// one that touched that directory, in order, as a journaling file system
// (ext4, xfs) commits its metadata. Options.EntriesWithData relaxes this.
//
// The layer keeps the kernel's page cache coherent (no direct_io, writes
// go through to it), so that shared read-only mmap, as bbolt reads its
// file, sees data written through the mount. File locks (flock, fcntl)
// are not forwarded: the kernel keeps them for the mount, which is
// enough when every process using the files runs on this machine.
//
// It is test machinery: metadata changes other than size (mode, owner,
// times, xattrs) go straight to the backing file.
package lazyfs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Sentinel errors.
var (
	// ErrCut: the file system had a simulated power cut; unmount it and
	// mount the backing directory again.
	ErrCut = errors.New("lazyfs: power was cut")
	// ErrUnmounted: the file system is not mounted any more.
	ErrUnmounted = errors.New("lazyfs: not mounted")
)

// DefaultMaxHeld bounds the unsynced bytes held when Options.MaxHeld is 0.
const DefaultMaxHeld = 256 << 20

// Options configure Mount.
type Options struct {
	// MaxHeld bounds the bytes of unsynced writes held in memory, over
	// every file; a write beyond it fails with ENOSPC. 0 means
	// DefaultMaxHeld.
	MaxHeld int64
	// EntriesWithData makes a file's fsync also make durable every
	// directory change before it, as ext4 and xfs do in practice. By
	// default only a directory fsync does, which is all POSIX promises:
	// a file created and fsynced whose directory was never fsynced
	// vanishes at a cut.
	EntriesWithData bool
	// SyncDelay makes every fsync of a file wait this long before it
	// writes anything, as a slow disk does, so that a cut falls between
	// writes and their sync more often.
	SyncDelay time.Duration
	// Debug logs every FUSE request.
	Debug bool
}

// Stats are counters of a mounted FS.
type Stats struct {
	HeldBytes      int64 // unsynced bytes held now
	HeldFiles      int   // files with unsynced data or size
	PendingEntries int   // directory changes not yet durable
	Writes         int64 // write requests
	Syncs          int64 // fsync and fdatasync of files
	DirSyncs       int64 // fsync of directories
}

// FS is a mounted lazy file system.
type FS struct {
	backing    string
	mountpoint string
	trash      string // where unlinked entries wait until durable
	opts       Options
	server     *fuse.Server

	mu        sync.Mutex
	cut       bool
	unmounted bool
	held      int64
	dirty     map[*node]struct{}
	log       []entryOp
	trashSeq  int
	stats     Stats
	unmountMu sync.Mutex
}

// Mount mounts a lazy view of backing at mountpoint. Both must be
// directories; the caller must be allowed to mount FUSE (root).
func Mount(backing, mountpoint string, opts Options) (*FS, error) {
	if opts.MaxHeld <= 0 {
		opts.MaxHeld = DefaultMaxHeld
	}
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: %w", err)
	}
	var bst syscall.Stat_t
	if err := syscall.Stat(backing, &bst); err != nil {
		return nil, fmt.Errorf("lazyfs: backing: %w", &os.PathError{Op: "stat", Path: backing, Err: err})
	}
	// The trash must be on the backing file system, for rename; beside
	// the backing directory, not in it, so that the mount does not show it.
	trash, err := os.MkdirTemp(filepath.Dir(backing), ".lazyfs-trash-")
	if err != nil {
		return nil, fmt.Errorf("lazyfs: trash: %w", err)
	}
	var tst syscall.Stat_t
	if err := syscall.Stat(trash, &tst); err != nil || tst.Dev != bst.Dev {
		os.Remove(trash)
		return nil, fmt.Errorf("lazyfs: %s is a mount point: the trash beside it is on another file system", backing)
	}
	f := &FS{
		backing: backing, mountpoint: mountpoint, trash: trash, opts: opts,
		dirty: map[*node]struct{}{},
	}
	sec := time.Second
	root := &node{lfs: f}
	server, err := fs.Mount(mountpoint, root, &fs.Options{
		EntryTimeout: &sec,
		AttrTimeout:  &sec,
		MountOptions: fuse.MountOptions{
			FsName:      "lazyfs:" + backing,
			Name:        "lazyfs",
			DirectMount: true,
			Debug:       opts.Debug,
		},
	})
	if err != nil {
		os.Remove(trash)
		return nil, fmt.Errorf("lazyfs: mount %s: %w", mountpoint, err)
	}
	f.server = server
	return f, nil
}

// Backing is the backing directory.
func (f *FS) Backing() string { return f.backing }

// Mountpoint is where the file system is mounted.
func (f *FS) Mountpoint() string { return f.mountpoint }

// Stats returns the counters.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.stats
	st.HeldBytes = f.held
	st.HeldFiles = len(f.dirty)
	st.PendingEntries = len(f.log)
	return st
}

// Cut simulates a power cut: every write, size change and directory
// change not yet synced is thrown away, and the backing directory is left
// as the disk would be found after the cut. Every later request on the
// mount fails with EIO; unmount it (Unmount drops the kernel's caches of
// it) and mount again to see what survived. The processes using the
// mount must have been killed first.
func (f *FS) Cut() error { return f.cutKeeping(nil) }

// CutPartial is a cut after the kernel had written back part of the
// unsynced data, as it may at any time: each 4 KiB page of unsynced
// writes inside the file's durable size is kept with probability one
// half, and one kept page in four is torn (only its first sectors, a
// random number of 512-byte ones, reach the disk). Sizes and directory
// changes not synced are lost as with Cut.
func (f *FS) CutPartial(rng *rand.Rand) error { return f.cutKeeping(rng) }

const (
	pageSize   = 4096
	sectorSize = 512
)

func (f *FS) cutKeeping(rng *rand.Rand) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unmounted {
		return ErrUnmounted
	}
	if f.cut {
		return ErrCut
	}
	f.cut = true
	var errs []error
	for n := range f.dirty {
		if rng != nil {
			if err := writeBack(n, rng); err != nil {
				errs = append(errs, err)
			}
		}
		n.pend = nil
	}
	clear(f.dirty)
	f.held = 0
	for i := len(f.log) - 1; i >= 0; i-- {
		if err := f.log[i].undo(); err != nil {
			errs = append(errs, err)
		}
	}
	f.log = nil
	if len(errs) > 0 {
		return fmt.Errorf("lazyfs: cut: %w", errors.Join(errs...))
	}
	return nil
}

// writeBack writes a random part of n's unsynced pages to its backing
// file, within the size the backing file has.
func writeBack(n *node, rng *rand.Rand) error {
	if _, parent := n.Parent(); parent == nil {
		return nil // unlinked: nothing of it can be found after the cut
	}
	fd, err := syscall.Open(n.backingPath(), syscall.O_RDWR|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return err
	}
	for _, e := range n.pend.ext {
		for page := e.off / pageSize * pageSize; page < min(e.end(), st.Size); page += pageSize {
			if rng.IntN(2) == 0 {
				continue
			}
			end := min(page+pageSize, e.end(), st.Size)
			if rng.IntN(4) == 0 {
				end = min(end, page+int64(rng.IntN(pageSize/sectorSize))*sectorSize)
			}
			start := max(page, e.off)
			if start >= end {
				continue
			}
			if err := pwriteFull(fd, e.data[start-e.off:end-e.off], start); err != nil {
				return err
			}
		}
	}
	return nil
}

// Sync makes everything durable, as sync(2) and a clean shutdown do.
func (f *FS) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return ErrCut
	}
	if f.unmounted {
		return ErrUnmounted
	}
	var errs []error
	for n := range f.dirty {
		if errno := f.flushUnowned(n); errno != 0 {
			errs = append(errs, fmt.Errorf("%s: %w", n.Path(nil), errno))
		}
	}
	if err := f.commit(len(f.log)); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("lazyfs: sync: %w", errors.Join(errs...))
	}
	return nil
}

// flushUnowned writes n's pending data through a descriptor of its own:
// a sync not asked for by a process.
func (f *FS) flushUnowned(n *node) syscall.Errno {
	if h := n.anyOpen(); h != nil {
		return f.syncFile(n, h.fd, true)
	}
	if n.orphan() {
		// Unlinked and closed: nobody can see its data any more.
		f.held -= n.pend.held()
		n.pend = nil
		delete(f.dirty, n)
		return 0
	}
	fd, err := syscall.Open(n.backingPath(), syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fs.ToErrno(err)
	}
	defer syscall.Close(fd)
	return f.syncFile(n, fd, true)
}

// Unmount unmounts the file system. Without a Cut before it, it first
// makes everything durable, as a clean shutdown does; after a Cut,
// nothing. It is safe to call twice.
func (f *FS) Unmount() error {
	f.unmountMu.Lock()
	defer f.unmountMu.Unlock()
	f.mu.Lock()
	done, cut := f.unmounted, f.cut
	f.mu.Unlock()
	if done {
		return nil
	}
	var serr error
	if !cut {
		serr = f.Sync()
	}
	if err := f.server.Unmount(); err != nil {
		return fmt.Errorf("lazyfs: unmount %s: %w", f.mountpoint, err)
	}
	f.server.Wait()
	f.mu.Lock()
	f.unmounted = true
	f.mu.Unlock()
	if err := os.RemoveAll(f.trash); err != nil && serr == nil {
		serr = fmt.Errorf("lazyfs: %w", err)
	}
	return serr
}
