// Package syncbuf is a bytes.Buffer that one goroutine may write (a
// child process's output, copied by os/exec) while another reads it: the
// tests that watch an agent's log use it.
package syncbuf

import (
	"bytes"
	"sync"
)

// A Buffer is safe for concurrent Write and String. The zero value is an
// empty buffer ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
