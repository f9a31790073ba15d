//go:build !linux

package sim

import (
	"errors"
	"os"
)

// makeRaw is implemented for Linux only, where the agent and its
// simulator run.
func makeRaw(*os.File) error {
	return errors.New("raw pseudo-terminals are supported on Linux only")
}

func pollable(f *os.File) (*os.File, error) { return f, nil }
