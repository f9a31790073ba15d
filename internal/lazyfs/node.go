package lazyfs

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is a file or directory of the mount. The data a file holds that
// its backing file does not is on the node, so that it follows the file
// through renames and is shared by all its open descriptors.
type node struct {
	fs.Inode
	lfs  *FS
	pend *pending // nil: the backing file is the whole truth
	// open are the node's open descriptors, for the requests that come
	// without one (fchmod does), and for a file whose names are gone.
	open map[*handle]struct{}
}

// The operations a node answers. Everything else (copy_file_range,
// O_TMPFILE, lseek's data and holes, statx) is left to the kernel's
// fallbacks, which go through these.
var (
	_ fs.NodeLookuper   = (*node)(nil)
	_ fs.NodeGetattrer  = (*node)(nil)
	_ fs.NodeSetattrer  = (*node)(nil)
	_ fs.NodeOpener     = (*node)(nil)
	_ fs.NodeCreater    = (*node)(nil)
	_ fs.NodeReader     = (*node)(nil)
	_ fs.NodeWriter     = (*node)(nil)
	_ fs.NodeFsyncer    = (*node)(nil)
	_ fs.NodeAllocater  = (*node)(nil)
	_ fs.NodeFlusher    = (*node)(nil)
	_ fs.NodeReleaser   = (*node)(nil)
	_ fs.NodeReaddirer  = (*node)(nil)
	_ fs.NodeMkdirer    = (*node)(nil)
	_ fs.NodeMknoder    = (*node)(nil)
	_ fs.NodeRmdirer    = (*node)(nil)
	_ fs.NodeUnlinker   = (*node)(nil)
	_ fs.NodeRenamer    = (*node)(nil)
	_ fs.NodeSymlinker  = (*node)(nil)
	_ fs.NodeLinker     = (*node)(nil)
	_ fs.NodeReadlinker = (*node)(nil)
	_ fs.NodeStatfser   = (*node)(nil)
)

// fsyncFdatasync is FUSE_FSYNC_FDATASYNC, the flag of an fdatasync.
const fsyncFdatasync = 1

// handle is an open file: a descriptor of the backing file.
type handle struct{ fd int }

func (n *node) backingPath() string {
	return filepath.Join(n.lfs.backing, n.Path(nil))
}

// orphan tells a node whose last name was removed: it has no path in the
// backing directory (its open descriptors still reach it).
func (n *node) orphan() bool {
	if n.IsRoot() {
		return false
	}
	_, parent := n.Parent()
	return parent == nil
}

func (n *node) child(name string) string { return filepath.Join(n.backingPath(), name) }

// stat returns the attributes of path and a generation telling apart
// files that had the same inode number (its birth time).
func stat(path string) (syscall.Stat_t, uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return st, 0, err
	}
	return st, birth(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW), nil
}

func fstat(fd int) (syscall.Stat_t, uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return st, 0, err
	}
	return st, birth(fd, "", unix.AT_EMPTY_PATH), nil
}

func birth(dirfd int, path string, flags int) uint64 {
	var sx unix.Statx_t
	if unix.Statx(dirfd, path, flags, unix.STATX_BTIME, &sx) != nil || sx.Mask&unix.STATX_BTIME == 0 {
		return 1
	}
	return uint64(sx.Btime.Sec)*1e9 + uint64(sx.Btime.Nsec)
}

// newChild returns the node of a backing entry, the one known already
// if the kernel still has it.
func (n *node) newChild(ctx context.Context, st *syscall.Stat_t, gen uint64) *fs.Inode {
	return n.NewInode(ctx, &node{lfs: n.lfs}, fs.StableAttr{Mode: st.Mode & syscall.S_IFMT, Ino: st.Ino, Gen: gen})
}

// attr fills out from st, with the size the file has in the mount.
func (n *node) attr(out *fuse.Attr, st *syscall.Stat_t) {
	out.FromStat(st)
	if n.pend != nil {
		out.Size = uint64(n.pend.size)
		out.Blocks = (out.Size + 511) / 512
	}
}

func childNode(in *fs.Inode) *node { return in.Operations().(*node) }

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	st, gen, err := stat(n.child(name))
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	ch := n.newChild(ctx, &st, gen)
	childNode(ch).attr(&out.Attr, &st)
	return ch, 0
}

func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	var st syscall.Stat_t
	var err error
	h, ok := f.(*handle)
	if !ok {
		h = n.anyOpen()
	}
	switch {
	case h != nil:
		err = syscall.Fstat(h.fd, &st)
	case n.orphan():
		return syscall.ENOENT
	default:
		err = syscall.Lstat(n.backingPath(), &st)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	n.attr(&out.Attr, &st)
	return 0
}

// withFd runs fn with a descriptor of the backing file: the handle's, or
// one opened for the call.
func (n *node) withFd(f fs.FileHandle, fn func(fd int) syscall.Errno) syscall.Errno {
	h, ok := f.(*handle)
	if !ok {
		h = n.anyOpen()
	}
	if h != nil {
		return fn(h.fd)
	}
	if n.orphan() {
		return syscall.ENOENT
	}
	fd, err := syscall.Open(n.backingPath(), syscall.O_RDWR|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fs.ToErrno(err)
	}
	defer syscall.Close(fd)
	return fn(fd)
}

// anyOpen returns one of n's open descriptors, or nil. f.mu is held.
func (n *node) anyOpen() *handle {
	for h := range n.open {
		return h
	}
	return nil
}

// opened records a new descriptor of n. f.mu is held.
func (n *node) opened(fd int) *handle {
	h := &handle{fd: fd}
	if n.open == nil {
		n.open = map[*handle]struct{}{}
	}
	n.open[h] = struct{}{}
	return h
}

// pendingOf returns n's pending state, starting it from the backing
// file's size. f.mu is held.
func (n *node) pendingOf(fd int) (*pending, syscall.Errno) {
	if n.pend != nil {
		return n.pend, 0
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	n.pend = newPending(st.Size)
	n.lfs.dirty[n] = struct{}{}
	return n.pend, 0
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	l := n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return syscall.EIO
	}
	if _, ok := f.(*handle); !ok && n.anyOpen() == nil {
		if n.orphan() {
			return syscall.ENOENT
		}
		if n.Mode()&syscall.S_IFMT != syscall.S_IFREG {
			return n.setattrPath(in, out)
		}
	}
	return n.withFd(f, func(fd int) syscall.Errno {
		if m, ok := in.GetMode(); ok {
			if err := syscall.Fchmod(fd, m); err != nil {
				return fs.ToErrno(err)
			}
		}
		if uid, gid, ok := owners(in); ok {
			if err := syscall.Fchown(fd, uid, gid); err != nil {
				return fs.ToErrno(err)
			}
		}
		if sz, ok := in.GetSize(); ok {
			pd, errno := n.pendingOf(fd)
			if errno != 0 {
				return errno
			}
			before := pd.held()
			pd.truncate(int64(sz))
			l.held -= before - pd.held()
		}
		if ts, ok := times(in); ok {
			if errno := futimens(fd, ts); errno != 0 {
				return errno
			}
		}
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			return fs.ToErrno(err)
		}
		n.attr(&out.Attr, &st)
		return 0
	})
}

// owners returns the owner and group a setattr asks for, -1 for the one
// it leaves, and whether it asks for either.
func owners(in *fuse.SetAttrIn) (uid, gid int, ok bool) {
	uid, gid = -1, -1
	if u, set := in.GetUID(); set {
		uid, ok = int(u), true
	}
	if g, set := in.GetGID(); set {
		gid, ok = int(g), true
	}
	return uid, gid, ok
}

// setattrPath sets the attributes of a directory or symlink, which have
// no data to hold.
func (n *node) setattrPath(in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	p := n.backingPath()
	if _, ok := in.GetSize(); ok {
		if n.IsDir() {
			return syscall.EISDIR
		}
		return syscall.EINVAL
	}
	if m, ok := in.GetMode(); ok {
		if err := syscall.Chmod(p, m); err != nil {
			return fs.ToErrno(err)
		}
	}
	if uid, gid, ok := owners(in); ok {
		if err := unix.Fchownat(unix.AT_FDCWD, p, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fs.ToErrno(err)
		}
	}
	if ts, ok := times(in); ok {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fs.ToErrno(err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return fs.ToErrno(err)
	}
	n.attr(&out.Attr, &st)
	return 0
}

// futimens sets the times of an open file (utimensat with a NULL path).
func futimens(fd int, ts []unix.Timespec) syscall.Errno {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	return errno
}

// times returns the access and modification times a setattr sets.
func times(in *fuse.SetAttrIn) ([]unix.Timespec, bool) {
	mtime, mok := in.GetMTime()
	atime, aok := in.GetATime()
	if !mok && !aok {
		return nil, false
	}
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
	if aok {
		ts[0] = unix.NsecToTimespec(atime.UnixNano())
	}
	if mok {
		ts[1] = unix.NsecToTimespec(mtime.UnixNano())
	}
	return ts, true
}

// openBacking opens the backing file for reading and writing whatever
// the caller asked: the layer reads to merge and writes to sync.
func openBacking(path string, extra int, mode uint32) (int, error) {
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CLOEXEC|syscall.O_NOFOLLOW|extra, mode)
	if err == syscall.EACCES || err == syscall.EROFS || err == syscall.ETXTBSY {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW|extra, mode)
	}
	return fd, err
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	l := n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return nil, 0, syscall.EIO
	}
	fd, err := openBacking(n.backingPath(), 0, 0)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	if flags&syscall.O_TRUNC != 0 {
		pd, errno := n.pendingOf(fd)
		if errno != 0 {
			syscall.Close(fd)
			return nil, 0, errno
		}
		l.held -= pd.held()
		pd.truncate(0)
	}
	return n.opened(fd), 0, 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	l := n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return nil, nil, 0, syscall.EIO
	}
	p := n.child(name)
	fd, err := openBacking(p, syscall.O_CREAT|syscall.O_EXCL, mode)
	created := err == nil
	if err == syscall.EEXIST && flags&syscall.O_EXCL == 0 {
		fd, err = openBacking(p, 0, 0)
	}
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	if created {
		l.logEntry(entryOp{dirs: []*fs.Inode{n.EmbeddedInode()}, undo: removeOp(p)})
	}
	st, gen, err := fstat(fd)
	if err != nil {
		syscall.Close(fd)
		return nil, nil, 0, fs.ToErrno(err)
	}
	ch := n.newChild(ctx, &st, gen)
	cn := childNode(ch)
	if !created && flags&syscall.O_TRUNC != 0 {
		pd, errno := cn.pendingOf(fd)
		if errno != 0 {
			syscall.Close(fd)
			return nil, nil, 0, errno
		}
		l.held -= pd.held()
		pd.truncate(0)
	}
	cn.attr(&out.Attr, &st)
	return ch, cn.opened(fd), 0, 0
}

func (n *node) Read(ctx context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	l := n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return nil, syscall.EIO
	}
	var got int
	errno := n.withFd(f, func(fd int) syscall.Errno {
		if n.pend == nil {
			nr, err := preadFull(fd, dest, off)
			got = nr
			return fs.ToErrno(err)
		}
		nr, err := n.pend.read(dest, off, func(b []byte, at int64) error {
			_, err := preadFull(fd, b, at)
			return err
		})
		got = nr
		return fs.ToErrno(err)
	})
	if errno != 0 {
		return nil, errno
	}
	return fuse.ReadResultData(dest[:got]), 0
}

// preadFull reads until buf is full or the file ends.
func preadFull(fd int, buf []byte, off int64) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := syscall.Pread(fd, buf[n:], off+int64(n))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

func pwriteFull(fd int, buf []byte, off int64) error {
	for len(buf) > 0 {
		m, err := syscall.Pwrite(fd, buf, off)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		buf, off = buf[m:], off+int64(m)
	}
	return nil
}

func (n *node) Write(ctx context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	l := n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return 0, syscall.EIO
	}
	errno := n.withFd(f, func(fd int) syscall.Errno {
		pd, errno := n.pendingOf(fd)
		if errno != 0 {
			return errno
		}
		grow := pd.growth(off, int64(len(data)))
		if l.held+grow > l.opts.MaxHeld {
			return syscall.ENOSPC
		}
		pd.write(data, off)
		l.held += grow
		return 0
	})
	if errno != 0 {
		return 0, errno
	}
	l.stats.Writes++
	return uint32(len(data)), 0
}

func (n *node) Allocate(ctx context.Context, f fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	l := n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return syscall.EIO
	}
	return n.withFd(f, func(fd int) syscall.Errno {
		switch mode {
		case unix.FALLOC_FL_KEEP_SIZE:
			// Blocks only: nothing a reader or a cut could tell.
			return fs.ToErrno(unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, int64(off), int64(size)))
		case 0:
			// The blocks are taken now (a full disk answers ENOSPC
			// now, as it would); the size is pending like a write.
			if err := unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, int64(off), int64(size)); err != nil {
				return fs.ToErrno(err)
			}
			pd, errno := n.pendingOf(fd)
			if errno != 0 {
				return errno
			}
			pd.size = max(pd.size, int64(off+size))
			return 0
		default:
			return syscall.EOPNOTSUPP
		}
	})
}

func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	l := n.lfs
	if d := l.opts.SyncDelay; d > 0 && !n.IsDir() {
		time.Sleep(d) // before the lock: a cut meanwhile wins
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return syscall.EIO
	}
	if n.IsDir() {
		l.stats.DirSyncs++
		return fs.ToErrno(l.dirSynced(n.EmbeddedInode()))
	}
	return n.withFd(f, func(fd int) syscall.Errno {
		return l.syncFile(n, fd, flags&fsyncFdatasync != 0)
	})
}

// syncFile writes n's pending state to its backing file and syncs it.
// f.mu is held.
func (f *FS) syncFile(n *node, fd int, datasync bool) syscall.Errno {
	if pd := n.pend; pd != nil {
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			return fs.ToErrno(err)
		}
		if pd.keep < st.Size {
			if err := syscall.Ftruncate(fd, pd.keep); err != nil {
				return fs.ToErrno(err)
			}
		}
		for _, e := range pd.ext {
			if err := pwriteFull(fd, e.data, e.off); err != nil {
				return fs.ToErrno(err)
			}
		}
		if err := syscall.Fstat(fd, &st); err != nil {
			return fs.ToErrno(err)
		}
		if st.Size != pd.size {
			if err := syscall.Ftruncate(fd, pd.size); err != nil {
				return fs.ToErrno(err)
			}
		}
	}
	var err error
	if datasync {
		err = syscall.Fdatasync(fd)
	} else {
		err = syscall.Fsync(fd)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	if n.pend != nil {
		f.held -= n.pend.held()
		n.pend = nil
		delete(f.dirty, n)
	}
	f.stats.Syncs++
	if f.opts.EntriesWithData {
		return fs.ToErrno(f.commit(len(f.log)))
	}
	return 0
}

// Flush is close(2): it makes nothing durable.
func (n *node) Flush(ctx context.Context, f fs.FileHandle) syscall.Errno { return 0 }

func (n *node) Release(ctx context.Context, f fs.FileHandle) syscall.Errno {
	h, ok := f.(*handle)
	if !ok {
		return 0
	}
	n.lfs.mu.Lock()
	delete(n.open, h)
	n.lfs.mu.Unlock()
	return fs.ToErrno(syscall.Close(h.fd))
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	return fs.NewLoopbackDirStream(n.backingPath())
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	s, err := os.Readlink(n.backingPath())
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return []byte(s), 0
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var s syscall.Statfs_t
	if err := syscall.Statfs(n.lfs.backing, &s); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStatfsT(&s)
	return 0
}

// created finishes an operation that made a new entry at p: it logs the
// entry and returns its node.
func (n *node) created(ctx context.Context, p string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	l := n.lfs
	l.logEntry(entryOp{dirs: []*fs.Inode{n.EmbeddedInode()}, undo: removeOp(p)})
	st, gen, err := stat(p)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	ch := n.newChild(ctx, &st, gen)
	childNode(ch).attr(&out.Attr, &st)
	return ch, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	if n.lfs.cut {
		return nil, syscall.EIO
	}
	p := n.child(name)
	if err := syscall.Mkdir(p, mode); err != nil {
		return nil, fs.ToErrno(err)
	}
	return n.created(ctx, p, out)
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	if n.lfs.cut {
		return nil, syscall.EIO
	}
	p := n.child(name)
	if err := syscall.Mknod(p, mode, int(rdev)); err != nil {
		return nil, fs.ToErrno(err)
	}
	return n.created(ctx, p, out)
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	if n.lfs.cut {
		return nil, syscall.EIO
	}
	p := n.child(name)
	if err := syscall.Symlink(target, p); err != nil {
		return nil, fs.ToErrno(err)
	}
	return n.created(ctx, p, out)
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	if n.lfs.cut {
		return nil, syscall.EIO
	}
	tn, ok := target.(*node)
	if !ok {
		return nil, syscall.EXDEV
	}
	if _, parent := tn.Parent(); parent == nil {
		return nil, syscall.ENOENT
	}
	p := n.child(name)
	if err := syscall.Link(tn.backingPath(), p); err != nil {
		return nil, fs.ToErrno(err)
	}
	return n.created(ctx, p, out)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.remove(name, false)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.remove(name, true)
}

// remove unlinks or removes a directory by moving the entry to the trash,
// from where a cut brings it back.
func (n *node) remove(name string, dir bool) syscall.Errno {
	l := n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return syscall.EIO
	}
	p := n.child(name)
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return fs.ToErrno(err)
	}
	isDir := st.Mode&syscall.S_IFMT == syscall.S_IFDIR
	switch {
	case dir && !isDir:
		return syscall.ENOTDIR
	case !dir && isDir:
		return syscall.EISDIR
	case dir:
		if errno := emptyDir(p); errno != 0 {
			return errno
		}
	}
	t, err := l.toTrash(p)
	if err != nil {
		return fs.ToErrno(err)
	}
	l.logEntry(entryOp{dirs: []*fs.Inode{n.EmbeddedInode()}, undo: renameOp(t, p), done: removeOp(t)})
	return 0
}

func emptyDir(p string) syscall.Errno {
	d, err := os.Open(p)
	if err != nil {
		return fs.ToErrno(err)
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if len(names) > 0 {
		return syscall.ENOTEMPTY
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fs.ToErrno(err)
	}
	return 0
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	l := n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return syscall.EIO
	}
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	from, to := n.child(name), np.child(newName)
	dirs := []*fs.Inode{n.EmbeddedInode(), np.EmbeddedInode()}
	switch flags {
	case unix.RENAME_NOREPLACE:
		if err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE); err != nil {
			return fs.ToErrno(err)
		}
		l.logEntry(entryOp{dirs: dirs, undo: renameOp(to, from)})
		return 0
	case unix.RENAME_EXCHANGE:
		if err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_EXCHANGE); err != nil {
			return fs.ToErrno(err)
		}
		l.logEntry(entryOp{dirs: dirs, undo: func() error {
			return unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_EXCHANGE)
		}})
		return 0
	case 0:
	default:
		return syscall.EINVAL
	}
	var fst, tst syscall.Stat_t
	if err := syscall.Lstat(from, &fst); err != nil {
		return fs.ToErrno(err)
	}
	if err := syscall.Lstat(to, &tst); err != nil {
		if err != syscall.ENOENT {
			return fs.ToErrno(err)
		}
		if err := syscall.Rename(from, to); err != nil {
			return fs.ToErrno(err)
		}
		l.logEntry(entryOp{dirs: dirs, undo: renameOp(to, from)})
		return 0
	}
	// The target exists and is replaced: keep it in the trash until the
	// rename is durable.
	fromDir := fst.Mode&syscall.S_IFMT == syscall.S_IFDIR
	toDir := tst.Mode&syscall.S_IFMT == syscall.S_IFDIR
	var saved string
	var err error
	switch {
	case fromDir && !toDir:
		return syscall.ENOTDIR
	case !fromDir && toDir:
		return syscall.EISDIR
	case toDir:
		if errno := emptyDir(to); errno != 0 {
			return errno
		}
		if saved, err = l.toTrash(to); err != nil {
			return fs.ToErrno(err)
		}
	default:
		if saved, err = l.linkToTrash(to); err != nil {
			return fs.ToErrno(err)
		}
	}
	if err := syscall.Rename(from, to); err != nil {
		if toDir {
			os.Rename(saved, to)
		} else {
			os.Remove(saved)
		}
		return fs.ToErrno(err)
	}
	l.logEntry(entryOp{dirs: dirs,
		undo: func() error {
			if err := os.Rename(to, from); err != nil {
				return err
			}
			return os.Rename(saved, to)
		},
		done: removeOp(saved)})
	return 0
}
