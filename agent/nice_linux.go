package agent

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// rosterNice is the nice value of the roster goroutine's thread: on a
// busy machine the kernel then gives the CPU to the threads deciding
// punches first, while a large roster is parsed and indexed.
const rosterNice = 10

// lowerPriority locks the calling goroutine to its thread, for good, and
// lowers that thread's priority. It returns an error only for the
// record: the goroutine runs on at the normal priority.
func lowerPriority() error {
	runtime.LockOSThread()
	return unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), rosterNice)
}
