package lazyfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hanwen/go-fuse/v2/fs"
)

// entryOp is a directory change already made in the backing directory
// but not yet durable: undo reverts it at a cut, done finishes it once it
// is durable (an unlinked entry waiting in the trash is removed).
type entryOp struct {
	dirs []*fs.Inode // the directories whose entries it changed
	undo func() error
	done func() error
}

// logEntry records a change to the entries of dirs.
func (f *FS) logEntry(op entryOp) { f.log = append(f.log, op) }

// dirSynced makes durable every change up to the last one that touched
// dir.
func (f *FS) dirSynced(dir *fs.Inode) error {
	last := -1
	for i, op := range f.log {
		for _, d := range op.dirs {
			if d == dir {
				last = i
			}
		}
	}
	return f.commit(last + 1)
}

// commit makes the first k changes of the log durable.
func (f *FS) commit(k int) error {
	var errs []error
	for _, op := range f.log[:k] {
		if op.done != nil {
			if err := op.done(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	f.log = append(f.log[:0], f.log[k:]...)
	if len(errs) > 0 {
		return fmt.Errorf("lazyfs: %w", errors.Join(errs...))
	}
	return nil
}

// toTrash moves path to the trash and returns where it went.
func (f *FS) toTrash(path string) (string, error) {
	f.trashSeq++
	t := filepath.Join(f.trash, strconv.Itoa(f.trashSeq))
	if err := os.Rename(path, t); err != nil {
		return "", err
	}
	return t, nil
}

// linkToTrash gives the file at path a second name in the trash, so that
// it survives being replaced.
func (f *FS) linkToTrash(path string) (string, error) {
	f.trashSeq++
	t := filepath.Join(f.trash, strconv.Itoa(f.trashSeq))
	if err := os.Link(path, t); err != nil {
		return "", err
	}
	return t, nil
}

func removeOp(path string) func() error {
	return func() error { return os.RemoveAll(path) }
}

func renameOp(from, to string) func() error {
	return func() error { return os.Rename(from, to) }
}
