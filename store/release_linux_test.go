package store

import (
	"encoding/binary"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/punchclock/punchclock/roster"
	bolt "go.etcd.io/bbolt"
)

// resident reports whether the page of the process's memory holding
// addr is mapped in its page tables (/proc/self/pagemap's present bit).
func resident(t *testing.T, addr uintptr) bool {
	t.Helper()
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var e [8]byte
	if _, err := f.ReadAt(e[:], int64(addr/uintptr(os.Getpagesize())*8)); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(e[:])&(1<<63) != 0
}

// Reading the stored roster leaves none of its chunks' pages resident in
// the mapping (the agent keeps the roster in memory), and reading it
// again faults them back in unchanged.
func TestRosterReleasesItsPages(t *testing.T) {
	db := open(t, t.TempDir())
	r := &roster.Roster{Version: 1}
	for i := range 6000 { // about 1 MiB of JSON: several chunks
		id := fmt.Sprintf("E%05d", i)
		r.Employees = append(r.Employees, roster.Employee{
			ID: id, Name: "Employee " + id + strings.Repeat(" x", 40), PayrollNo: "P" + id,
			Credentials: []roster.Credential{{Type: "card", Value: fmt.Sprintf("%010d", 1000000+i)}},
		})
	}
	if err := db.ReplaceRoster(r); err != nil {
		t.Fatal(err)
	}
	// One address inside each chunk, a page past its start (its leaf
	// page's header is read to find it), touched now: resident.
	var probes []uintptr
	var sum byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		m, rb := tx.Bucket(bMeta), tx.Bucket(bRoster)
		gen, n := getU64(m, kRosterGen), int(getU64(m, kRosterChunks))
		for i := range n {
			c := rb.Get(rosterKey(gen, i))
			if len(c) < 3*os.Getpagesize() {
				continue
			}
			for _, b := range c {
				sum += b
			}
			probes = append(probes, uintptr(unsafe.Pointer(&c[len(c)/2])))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("checksum of the chunks read: %d", sum)
	if len(probes) < 2 {
		t.Fatalf("%d chunks of over 3 pages; the test needs a larger roster", len(probes))
	}
	for i, p := range probes {
		if !resident(t, p) {
			t.Fatalf("chunk %d not resident after it was read: the probe cannot tell", i)
		}
	}
	for round := range 2 {
		got, err := db.Roster()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Employees, r.Employees) {
			t.Fatalf("round %d: the roster read back differs", round)
		}
		for i, p := range probes {
			if resident(t, p) {
				t.Errorf("round %d: chunk %d still resident after Roster()", round, i)
			}
		}
	}
}
