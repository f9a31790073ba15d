package store

import "syscall"

// dontNeed drops the page-table entries of [addr, addr+n) of the
// database's mapping (releaseMapped). A failure changes nothing that was
// correct: the pages just stay resident.
func dontNeed(addr, n uintptr) {
	syscall.Syscall(syscall.SYS_MADVISE, addr, n, syscall.MADV_DONTNEED)
}
