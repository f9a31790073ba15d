// Package agentbin builds the punchclock agent binary for tests that run
// it as a process (end-to-end tests, the demo's and the bench's tests).
package agentbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Package is the agent's main package.
const Package = "github.com/punchclock/punchclock/cmd/punchclock"

// Build compiles the agent into a new temporary directory, with the race
// detector when race is set, and returns its path and a function that
// removes it.
func Build(race bool) (path string, remove func(), err error) {
	dir, err := os.MkdirTemp("", "punchclock-bin")
	if err != nil {
		return "", nil, fmt.Errorf("agentbin: %w", err)
	}
	remove = func() { os.RemoveAll(dir) }
	path = filepath.Join(dir, "punchclock")
	args := []string{"build", "-o", path}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, Package)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		remove()
		return "", nil, fmt.Errorf("agentbin: go build %s: %w", Package, err)
	}
	return path, remove, nil
}
