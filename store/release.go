package store

import (
	"os"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// releaseMapped lets the kernel take back the pages of the database's
// mapping that hold b, a value read in tx, once the caller has copied
// what it needs: the roster's chunks are read whole at start and when a
// roster is applied, then used only from memory, yet would stay resident
// (1.7 MiB for 10,000 employees, 17 MiB for 100,000) and count in the
// agent's RSS.
//
// It is safe with bbolt: the database is mapped shared and read-only
// (PROT_READ, MAP_SHARED), so no page of the mapping is private or
// dirty, and dropping the page-table entries loses nothing; the next
// access to such a page, by any goroutine, faults it back in from the
// page cache or the file. tx must be a read transaction: it holds bbolt's
// mmap lock, so the mapping cannot be moved or shrunk meanwhile, and its
// values are slices of the mapping itself (a write transaction's may be
// Go memory). Pages partly outside b are released too: they are pages of
// the same mapping, and fault back in the same way. A b that is not
// wholly within the mapping, up to tx's size, is left alone: Go memory is
// never handed to madvise.
func releaseMapped(tx *bolt.Tx, b []byte) {
	if tx.Writable() || len(b) == 0 {
		return
	}
	info := tx.DB().Info()
	if info == nil || info.Data == 0 {
		return
	}
	pg := uintptr(os.Getpagesize()) // madvise takes whole pages
	lo, hi := info.Data, info.Data+uintptr(tx.Size())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	end := start + uintptr(len(b))
	if start < lo || end > hi {
		return
	}
	start &^= pg - 1
	end = min((end+pg-1)&^(pg-1), (hi+pg-1)&^(pg-1))
	if end <= start {
		return
	}
	dontNeed(start, end-start)
}
