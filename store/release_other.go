//go:build !linux

package store

// dontNeed does nothing where the agent does not run: the pages stay.
func dontNeed(addr, n uintptr) {}
