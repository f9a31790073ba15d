package store

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// procWriteBytes is this process's write_bytes: what it caused to be
// written to storage (counted when pages are dirtied, so a large folio
// counts whole).
func procWriteBytes(b *testing.B) int64 {
	b.Helper()
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no write_bytes in /proc/self/io")
	return 0
}

// benchAppend appends batch-sized records as the agent does: to a
// journal reopened after a first life (its files read back at open),
// starting over every 256 records (DefaultMaxPending). It returns the
// number of records appended.
func benchAppend(b *testing.B, dir string, each func()) {
	payload := bytes.Repeat([]byte("x"), 450) // one punch's entry, about
	jp, _, err := openJournals(dir, 0, false, false)
	if err != nil {
		b.Fatal(err)
	}
	for range 300 {
		if _, err := jp.append(payload); err != nil {
			b.Fatal(err)
		}
	}
	jp.close()
	jp, st, err := openJournals(dir, 0, false, false)
	if err != nil {
		b.Fatal(err)
	}
	defer jp.close()
	_ = st
	jp.applied(true)
	each()
	b.ResetTimer()
	for i := range b.N {
		if i%DefaultMaxPending == DefaultMaxPending-1 {
			jp.turn()
			jp.applied(false)
		}
		if _, err := jp.append(payload); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	each()
}

// BenchmarkAppend reports the bytes one append writes on the file system
// of the test's temporary directory (this machine's ext4).
func BenchmarkAppend(b *testing.B) {
	var w []int64
	benchAppend(b, b.TempDir(), func() { w = append(w, procWriteBytes(b)) })
	b.ReportMetric(float64(w[1]-w[0])/float64(b.N), "B-written/op")
}

// BenchmarkAppendDevice reports what reaches the device per append, file
// system metadata (the ext4 journal) included, on a 64 MiB ext4 with
// 4 KiB blocks on a loop device of its own. It must run as root.
func BenchmarkAppendDevice(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("mounts a loop ext4: run as root")
	}
	base := b.TempDir()
	img, mnt := filepath.Join(base, "img"), filepath.Join(base, "mnt")
	run := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	run("truncate", "-s", "64M", img)
	run("mkfs.ext4", "-q", "-F", "-b", "4096", img)
	os.Mkdir(mnt, 0o750)
	run("mount", "-o", "loop", img, mnt)
	defer run("umount", "-d", mnt)
	dev := filepath.Base(strings.TrimSpace(strings.SplitN(run("losetup", "-j", img), ":", 2)[0]))
	sectors := func() int64 {
		data, err := os.ReadFile("/sys/block/" + dev + "/stat")
		if err != nil {
			b.Fatal(err)
		}
		n, err := strconv.ParseInt(strings.Fields(string(data))[6], 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	var s, w []int64
	benchAppend(b, mnt, func() {
		run("sync", "-f", mnt) // what was written settles: commits, write-back
		s = append(s, sectors())
		w = append(w, procWriteBytes(b))
	})
	b.ReportMetric(float64(w[1]-w[0])/float64(b.N), "B-written/op")
	b.ReportMetric(float64(s[1]-s[0])*512/float64(b.N), "B-device/op")
}
