package roster

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func sampleIndex(t *testing.T) (*Roster, *Index) {
	t.Helper()
	b, err := os.ReadFile("testdata/roster.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return r, NewIndex(r)
}

func TestIndexLookup(t *testing.T) {
	_, x := sampleIndex(t)
	if x.Version() != 3 || x.Len() != 3 {
		t.Fatalf("Version %d, Len %d", x.Version(), x.Len())
	}
	for _, tc := range []struct{ typ, value, want string }{
		{Card, "0A00123456", "E100"},
		{Card, "0a00123456", "E100"},        // as CardKeys: either case
		{Card, "0B00123456", ""},            // E100's card is hex only
		{Card, "0000123457", "E101"},        // 0x123457 = 1193047, E101's printed number
		{Card, "FF00123457", "E101"},        // whatever the first byte
		{Card, "0001193047", "E101"},        // its digits as a read match it too (CardKeys)
		{Card, "1F00ABCDEF", "E102"},        // found; the contract is punch's business
		{Card, "0A0012345", ""},             // nine digits
		{Card, "0A001234567", ""},           // eleven
		{Card, "ZZ00123457", ""},            // not hex
		{Card, "", ""},                      //
		{PIN, "4821", "E100"},               //
		{PIN, "0A00123456", ""},             // a card's value is not a PIN
		{Fingerprint, "4821", ""},           // nor a PIN a fingerprint
		{"iris", "4821", ""},                //
		{Card, "0A00123456" + "\x00", ""},   //
		{PIN, " 4821", ""},                  // readers send canonical values
		{Card, strings.Repeat("0", 10), ""}, //
	} {
		e := x.Lookup(tc.typ, tc.value)
		got := ""
		if e != nil {
			got = e.ID
		}
		if got != tc.want {
			t.Errorf("Lookup(%s, %q) = %q, want %q", tc.typ, tc.value, got, tc.want)
		}
	}
	if e := x.Employee("E101"); e == nil || e.PayrollNo != "1002" {
		t.Errorf("Employee(E101) = %+v", e)
	}
	if e := x.Employee("E999"); e != nil {
		t.Errorf("Employee(E999) = %+v", e)
	}
	if a, b := x.Lookup(Card, "0A00123456"), x.Employee("E100"); a != b {
		t.Error("Lookup and Employee return different copies")
	}
}

func TestIndexNil(t *testing.T) {
	var x *Index
	if NewIndex(nil) != nil {
		t.Fatal("NewIndex(nil) is not nil")
	}
	if x.Lookup(Card, "0A00123456") != nil || x.Lookup(PIN, "4821") != nil || x.Employee("E100") != nil ||
		x.Len() != 0 || x.Version() != 0 {
		t.Fatal("nil Index is not empty")
	}
}

func TestIndexEmptyRoster(t *testing.T) {
	r, err := Parse([]byte(`{"version": 7, "employees": [], "empty": true}`))
	if err != nil {
		t.Fatal(err)
	}
	x := NewIndex(r)
	if x == nil || x.Len() != 0 || x.Version() != 7 || x.Lookup(Card, "0A00123456") != nil {
		t.Fatalf("index of an empty roster: %+v", x)
	}
}

// The index keeps its own copy: the roster may be changed or reused.
func TestIndexIsACopy(t *testing.T) {
	r, x := sampleIndex(t)
	r.Employees[0].ID = "changed"
	r.Employees[0].Credentials[0].Value = "0B0BADCAFE"
	r.Employees[1] = Employee{}
	if e := x.Lookup(Card, "0A00123456"); e == nil || e.ID != "E100" || e.Credentials[0].Value != "0A00123456" {
		t.Fatalf("Lookup after the roster changed = %+v", e)
	}
	if x.Employee("E101") == nil || x.Lookup(Card, "0B0BADCAFE") != nil {
		t.Fatal("index follows the roster")
	}
	// Appending to one employee's credentials does not overwrite the next's.
	e := x.Employee("E100")
	_ = append(e.Credentials, Credential{Type: PIN, Value: "0000"})
	if c := x.Employee("E101").Credentials[0]; c.Value != "0001193047" {
		t.Fatalf("E101's credential = %+v", c)
	}
}

// The index finds every read's holder exactly as the definition
// (CardKeys) says, on the clash-prone rosters that Validate accepts.
func TestIndexMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	checked := 0
	for range 300 {
		in, held := clashProne(t, rng)
		r, err := Parse([]byte(in))
		if err != nil {
			continue
		}
		x := NewIndex(r)
		holders := naiveHolders(held)
		holders["0B0BADCAFE"] = nil
		for read, hs := range holders {
			for _, rd := range []string{read, strings.ToLower(read)} {
				e := x.Lookup(Card, rd)
				switch {
				case len(hs) == 0 && e != nil:
					t.Fatalf("roster %v: Lookup(%s) = %s, want nobody", held, rd, e.ID)
				case len(hs) == 1 && (e == nil || e.ID != fmt.Sprint("E", hs[0])):
					t.Fatalf("roster %v: Lookup(%s) = %v, want E%d", held, rd, e, hs[0])
				}
				checked++
			}
		}
	}
	if checked < 10000 {
		t.Fatalf("only %d reads checked", checked)
	}
}

// Readers on many goroutines share one index (run with -race).
func TestIndexConcurrentReaders(t *testing.T) {
	r, err := Parse(bigRoster(t, 3000))
	if err != nil {
		t.Fatal(err)
	}
	x := NewIndex(r)
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < 3000; i += 4 {
				read := fmt.Sprintf("0A%08X", i)
				if i%3 == 0 {
					read = fmt.Sprintf("07%08X", 0x10000000+i) // by its decimal form
				}
				if e := x.Lookup(Card, read); e == nil || e.ID != fmt.Sprintf("E%06d", i) {
					errs <- fmt.Sprintf("Lookup(%s) = %v", read, e)
					return
				}
				if e := x.Lookup(PIN, fmt.Sprintf("%06d", i)); e == nil || e != x.Employee(fmt.Sprintf("E%06d", i)) {
					errs <- fmt.Sprintf("PIN of %d = %v", i, e)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func BenchmarkNewIndex100k(b *testing.B) {
	r, err := Parse(bigRoster(b, 100_000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if x := NewIndex(r); x.Len() != 100_000 {
			b.Fatal(x.Len())
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	r, err := Parse(bigRoster(b, 100_000))
	if err != nil {
		b.Fatal(err)
	}
	x := NewIndex(r)
	for _, bc := range []struct{ name, typ, value string }{
		{"hex", Card, fmt.Sprintf("0A%08X", 50_002)},
		{"decimal", Card, fmt.Sprintf("0A%08X", 0x10000000+50_001)},
		{"unknown", Card, "0B0BADCAFE"},
		{"pin", PIN, "050001"},
	} {
		want := bc.name != "unknown"
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if e := x.Lookup(bc.typ, bc.value); (e != nil) != want {
					b.Fatal(e)
				}
			}
		})
	}
}

func TestIndexGroup(t *testing.T) {
	b, err := os.ReadFile("testdata/roster-access.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	x := NewIndex(r)
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	sat3 := time.Date(2026, 3, 7, 3, 0, 0, 0, ams) // Saturday 03:00: Friday's night
	for _, tc := range []struct {
		emp           string
		group         string // "" none
		reader        string
		allows, inWin bool
	}{
		{"E100", "staff", "front", true, false},
		{"E100", "staff", "gate", false, false},
		{"E101", "night", "back", true, true},
		{"E101", "night", "front", false, true},
		{"E102", "management", "gate", true, true}, // no readers, no windows
		{"E103", "", "gate", true, true},           // no group
	} {
		e := x.Employee(tc.emp)
		g := x.Group(e.AccessGroup)
		if (g == nil) != (tc.group == "") || g != nil && g.Name != tc.group {
			t.Fatalf("%s: Group(%q) = %+v", tc.emp, e.AccessGroup, g)
		}
		if got := g.AllowsReader(tc.reader); got != tc.allows {
			t.Errorf("%s: AllowsReader(%s) = %v", tc.emp, tc.reader, got)
		}
		if got := g.InWindow(sat3); got != tc.inWin {
			t.Errorf("%s: InWindow(%v) = %v", tc.emp, sat3, got)
		}
	}
	if x.Group("") != nil || x.Group("nobody") != nil || (*Index)(nil).Group("staff") != nil {
		t.Error("Group of no name, an unknown name or a nil index is not nil")
	}
	if e := x.Employee("E100"); !e.HasJobCode("1001") || !e.PinWithCard {
		t.Errorf("E100 = %+v", e)
	}

	// The index keeps its own copy: changing the roster changes nothing.
	r.AccessGroups[0].Readers[0] = "gate"
	r.AccessGroups[1].Windows[0].Days = "tue"
	r.AccessGroups[1].spans = nil
	r.AccessGroups[0].Name = "renamed"
	r.Employees[0].JobCodes[0] = "9999"
	if g := x.Group("staff"); g == nil || !g.AllowsReader("front") || g.AllowsReader("gate") {
		t.Errorf("staff changed with the roster: %+v", g)
	}
	if g := x.Group("night"); g.Windows[0].Days != "fri-mon" || !g.InWindow(sat3) {
		t.Errorf("night changed with the roster: %+v", g)
	}
	if e := x.Employee("E100"); !e.HasJobCode("1001") || e.HasJobCode("9999") {
		t.Errorf("job codes changed with the roster: %v", e.JobCodes)
	}
}

// The agent indexes the stored roster as decoded from the store, without
// Validate: NewIndex compiles the windows itself, and a group whose
// windows do not compile is closed, not open at all times.
func TestIndexGroupUnvalidated(t *testing.T) {
	var r Roster
	err := json.Unmarshal([]byte(`{"version":1,"access_groups":[
		{"name":"night","windows":[{"days":"fri","from":"22:00","to":"06:00"}]},
		{"name":"broken","windows":[{"days":"someday","from":"22:00","to":"06:00"}]}],
		"employees":[{"id":"a","access_group":"night"}]}`), &r)
	if err != nil {
		t.Fatal(err)
	}
	x := NewIndex(&r)
	sat3 := time.Date(2026, 3, 7, 3, 0, 0, 0, time.UTC)
	if !x.Group("night").InWindow(sat3) {
		t.Error("night: windows not compiled by NewIndex")
	}
	if x.Group("broken").InWindow(sat3) || x.Group("broken").InWindow(sat3.Add(20*time.Hour)) {
		t.Error("a group whose windows do not compile is open")
	}
}

func BenchmarkGroup(b *testing.B) {
	r, err := Parse([]byte(`{"version":1,"access_groups":[{"name":"staff","readers":["front","back"],
		"windows":[{"days":"mon-fri","from":"06:00","to":"22:00"},{"days":"fri-mon","from":"22:00","to":"06:00"}]}],
		"employees":[{"id":"a","access_group":"staff"}]}`))
	if err != nil {
		b.Fatal(err)
	}
	x := NewIndex(r)
	at := time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC) // Sunday noon: outside
	b.ReportAllocs()
	for b.Loop() {
		g := x.Group(x.Employee("a").AccessGroup)
		if !g.AllowsReader("back") || g.InWindow(at) {
			b.Fatal("wrong")
		}
	}
}
