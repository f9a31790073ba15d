//go:build !linux

package agent

// lowerPriority does nothing where threads have no priority of their own.
func lowerPriority() error { return nil }
