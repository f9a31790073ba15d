package lazyfs

// Whatever touches the mount through mmap runs in a child process: a
// page fault on a FUSE file blocks its thread outside any system call,
// and if the Go runtime stops the world for the collector meanwhile, the
// file system's own goroutines (in the same process) never answer it.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// children are the programs a child process can run on a directory of
// the mount; they print "done" when finished and may then wait to be
// killed.
var children = map[string]func(dir string) error{
	"mmap":      childMmap,
	"bolt":      childBolt,
	"boltcheck": childBoltCheck,
}

func TestMain(m *testing.M) {
	if name := os.Getenv("LAZYFS_CHILD"); name != "" {
		if err := children[name](os.Getenv("LAZYFS_DIR")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	removeAgent()
	os.Exit(code)
}

// child runs a child program and waits for its "done". With wait, it
// then waits for the child to exit and fails on an error; otherwise it
// returns the running child for the caller to kill.
func child(t *testing.T, name, dir string, wait bool) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LAZYFS_CHILD="+name, "LAZYFS_DIR="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "done" {
		cmd.Wait()
		t.Fatalf("child %s: %q\n%s", name, line, stderr.String())
	}
	if !wait {
		return cmd
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child %s: %v\n%s", name, err, stderr.String())
	}
	return nil
}

func TestMmapSeesUnsyncedWrites(t *testing.T) {
	m := mount(t, Options{})
	m.durable("m", make([]byte, 16384))
	child(t, "mmap", m.dir, true)
	if st := m.fs.Stats(); st.HeldBytes == 0 {
		t.Fatal("the child's writes were not held")
	}
}

func childMmap(dir string) error {
	path := filepath.Join(dir, "m")
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, 65536, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	defer unix.Munmap(mem)
	if mem[5000] != 0 {
		return errors.New("fresh file not zero")
	}
	w, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer w.Close()
	if _, err := w.WriteAt([]byte("page"), 5000); err != nil {
		return err
	}
	if string(mem[5000:5004]) != "page" {
		return fmt.Errorf("mmap shows %q after a write through another descriptor", mem[5000:5004])
	}
	// Grown as bbolt grows its file: truncate up, then write there.
	if err := w.Truncate(65536); err != nil {
		return err
	}
	if _, err := w.WriteAt([]byte("grown"), 40000); err != nil {
		return err
	}
	if string(mem[40000:40005]) != "grown" || mem[30000] != 0 {
		return fmt.Errorf("mmap after growing shows %q", mem[40000:40005])
	}
	fmt.Println("done")
	return nil
}

// put stores key k and 200 more values, enough to grow the file past its
// first mapping.
func put(db *bolt.DB, k string) error {
	return db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("b"))
		if err != nil {
			return err
		}
		for i := range 200 {
			if err := b.Put(fmt.Appendf(nil, "%s-%03d", k, i), bytes.Repeat([]byte(k), 500)); err != nil {
				return err
			}
		}
		return b.Put([]byte(k), []byte("v"+k))
	})
}

func childBolt(dir string) error {
	path := filepath.Join(dir, "bolt.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	// The file's directory entry: bbolt does not fsync the directory.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		return err
	}
	d.Close()
	if err := put(db, "synced"); err != nil {
		return err
	}
	// The file is locked: a second open times out.
	if _, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 50 * time.Millisecond}); !errors.Is(err, bolt.ErrTimeout) {
		return fmt.Errorf("second open: %v, want the flock to time out", err)
	}
	db.NoSync = true
	if err := put(db, "nosync"); err != nil {
		return err
	}
	err = db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte("b")).Get([]byte("nosync")); string(v) != "vnosync" {
			return fmt.Errorf("before the cut, nosync = %q", v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Println("done")
	select {} // until killed
}

func childBoltCheck(dir string) error {
	if err := checkBolt(filepath.Join(dir, "bolt.db")); err != nil {
		return err
	}
	fmt.Println("done")
	return nil
}

// checkBolt opens the database, checks that the synced update is there
// and the NoSync one is not, and runs bbolt's consistency check.
func checkBolt(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		if b == nil {
			return errors.New("bucket lost")
		}
		if v := b.Get([]byte("synced")); string(v) != "vsynced" {
			return fmt.Errorf("synced = %q", v)
		}
		if v := b.Get([]byte("nosync")); v != nil {
			return fmt.Errorf("the NoSync update survived the cut: %q", v)
		}
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

func TestBolt(t *testing.T) {
	m := mount(t, Options{})
	cmd := child(t, "bolt", m.dir, false)
	if st := m.fs.Stats(); st.HeldBytes == 0 || st.Syncs < 2 {
		t.Errorf("stats %+v: want the NoSync update held and bbolt's syncs counted", st)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if err := m.fs.Cut(); err != nil {
		t.Fatal(err)
	}
	if err := m.fs.Unmount(); err != nil {
		t.Fatal(err)
	}
	// What the disk holds after the cut, read without the layer.
	if err := checkBolt(filepath.Join(m.backing, "bolt.db")); err != nil {
		t.Fatalf("backing after the cut: %v", err)
	}
	// And through the mount again.
	m.mount()
	child(t, "boltcheck", m.dir, true)
}

// removeAgent is replaced by the power-cut test's cleanup.
var removeAgent = func() {}
