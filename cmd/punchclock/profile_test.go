package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The profiling hook writes what the environment asks for, and nothing
// when it asks for nothing.
func TestStartProfiles(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{
		envTrace:      filepath.Join(dir, "run.trace"),
		envCPUProfile: filepath.Join(dir, "cpu.prof"),
	}
	stop, err := startProfiles(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(env[envTrace]); err != nil || !bytes.HasPrefix(b, []byte("go 1.")) {
		t.Errorf("trace file: %v, starts %q; want an execution trace", err, b[:min(len(b), 16)])
	}
	// A CPU profile is gzipped protobuf.
	if b, err := os.ReadFile(env[envCPUProfile]); err != nil || !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Errorf("CPU profile: %v, %d bytes; want a gzipped profile", err, len(b))
	}

	stop, err = startProfiles(func(string) string { return "" })
	if err != nil || stop() != nil {
		t.Fatalf("nothing asked: %v", err)
	}
	if _, err := startProfiles(func(k string) string { return filepath.Join(dir, "missing", k) }); err == nil {
		t.Error("a trace file in a missing directory gave no error")
	}
}
