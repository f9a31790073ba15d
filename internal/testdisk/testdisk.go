// Package testdisk gives tests a small real file system, for disk-full
// tests that see a real ENOSPC (not a quota): a fresh ext4 image mounted
// on a loop device, and a way to fill it. It needs root and loop devices,
// as CI has; a test that cannot mount fails, it never skips.
package testdisk

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Mount mounts a fresh ext4 file system of mib MiB (no blocks reserved
// for root) at a new directory and returns it. It is unmounted and its
// loop device detached when the test ends.
func Mount(t testing.TB, mib int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("testdisk: this test mounts a loop ext4 file system and must run as root (CI does)")
	}
	base := t.TempDir()
	img, mnt := filepath.Join(base, "disk.img"), filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"truncate", "-s", fmt.Sprintf("%dM", mib), img},
		{"mkfs.ext4", "-q", "-F", "-m", "0", img},
		{"mount", "-o", "loop", img, mnt},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("testdisk: %v: %v\n%s", c, err, out)
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-d", mnt).CombinedOutput(); err != nil {
			t.Errorf("testdisk: umount %s: %v\n%s", mnt, err, out)
		}
	})
	return mnt
}

// Fill writes the file at path until the file system is full, down to
// its last block, and syncs it.
func Fill(t testing.TB, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for n := len(chunk); n > 0; n /= 2 {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	f.Sync()
}
