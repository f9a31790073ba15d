package roster

import (
	"encoding/json"
	"fmt"
	"testing"
)

// bigRoster returns the JSON of a roster of n employees, each with a card
// (every third in its printed decimal form) and a PIN, names and dates
// as the HR system sends them.
func bigRoster(tb testing.TB, n int) []byte {
	tb.Helper()
	r := Roster{Version: 20260301, Employees: make([]Employee, n)}
	for i := range r.Employees {
		card := fmt.Sprintf("0A%08X", i)
		if i%3 == 0 {
			card = fmt.Sprintf("%d", 0x10000000+i) // another ID range: no clash
		}
		r.Employees[i] = Employee{
			ID: fmt.Sprintf("E%06d", i), Name: fmt.Sprintf("Employee Nummer %d", i),
			PayrollNo: fmt.Sprint(100000 + i), Department: "Brugsestraat", ValidFrom: "2025-01-01",
			Credentials: []Credential{{Type: Card, Value: card}, {Type: PIN, Value: fmt.Sprintf("%06d", i)}},
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestBigRosterParses(t *testing.T) {
	r, err := Parse(bigRoster(t, 1000))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Employees) != 1000 || r.Employees[3].Credentials[0].Value != "0268435459" {
		t.Fatalf("got %d employees, employees[3] = %+v", len(r.Employees), r.Employees[3])
	}
}

func BenchmarkParse100k(b *testing.B) {
	doc := bigRoster(b, 100_000)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(doc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidate100k is Parse without the JSON decoding.
func BenchmarkValidate100k(b *testing.B) {
	var r Roster
	if err := json.Unmarshal(bigRoster(b, 100_000), &r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
