package roster

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseSample(t *testing.T) {
	b, err := os.ReadFile("testdata/roster.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 3 || len(r.Employees) != 3 {
		t.Fatalf("got version %d with %d employees", r.Version, len(r.Employees))
	}
	if got := r.Employees[0].Credentials[0].Value; got != "0A00123456" {
		t.Errorf("card value = %q", got)
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"syntax", `{"version": 3, "employees": [}`, "at byte"},
		{"unknown field", `{"version": 3, "employes": []}`, `unknown field "employes"`},
		{"no version", `{"employees": []}`, "version must be a positive"},
		{"no id", `{"version":1,"employees":[{"name":"x"}]}`, "employees[0].id is required"},
		{"dup id", `{"version":1,"employees":[{"id":"a"},{"id":"a"}]}`, `employees[1] (id "a"): duplicate id`},
		{"bad date", `{"version":1,"employees":[{"id":"a","valid_from":"01-01-2025"}]}`, `valid_from: "01-01-2025" is not a date`},
		{"until before from", `{"version":1,"employees":[{"id":"a","valid_from":"2025-02-01","valid_until":"2025-01-01"}]}`, "is before valid_from"},
		{"bad card", `{"version":1,"employees":[{"id":"a","credentials":[{"type":"card","value":"XYZ"}]}]}`, `credentials[0]: card value "XYZ"`},
		{"bad pin", `{"version":1,"employees":[{"id":"a","credentials":[{"type":"pin","value":"12"}]}]}`, "pin must be 4 to 12 digits"},
		{"bad type", `{"version":1,"employees":[{"id":"a","credentials":[{"type":"iris","value":"1"}]}]}`, `type "iris"`},
		{"shared card", `{"version":1,"employees":[{"id":"a","credentials":[{"type":"card","value":"0a00123456"}]},{"id":"b","credentials":[{"type":"card","value":"0A00123456"}]}]}`, `also held by employee "a"`},
		{"trailing", `{"version":1,"employees":[]} {}`, "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestNormalizeCard(t *testing.T) {
	for in, want := range map[string]string{
		"0a00123456": "0A00123456",
		"0001193046": "0001193046", // printed decimal, kept; CardKeys matches it
		"1193046":    "0001193046", // shorter decimal is padded
	} {
		got, err := Normalize(Card, in)
		if err != nil || got != want {
			t.Errorf("Normalize(card, %q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Normalize(Card, "99999999999"); err == nil {
		t.Error("eleven digits accepted")
	}
}

func TestCardKeys(t *testing.T) {
	got := CardKeys("0a00123456")
	want := []string{"card:0A00123456", "card:0001193046"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("CardKeys = %v, want %v", got, want)
	}
}

func TestValidOn(t *testing.T) {
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	e := Employee{ValidFrom: "2025-01-01", ValidUntil: "2025-06-30"}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{time.Date(2024, 12, 31, 23, 59, 0, 0, ams), false},
		{time.Date(2025, 1, 1, 0, 0, 0, 0, ams), true},
		// 2024-12-31 23:30 UTC is already 2025-01-01 in Amsterdam.
		{time.Date(2024, 12, 31, 23, 30, 0, 0, time.UTC).In(ams), true},
		{time.Date(2025, 6, 30, 23, 59, 59, 0, ams), true},
		{time.Date(2025, 7, 1, 0, 0, 0, 0, ams), false},
	} {
		if got := e.ValidOn(tc.at); got != tc.want {
			t.Errorf("ValidOn(%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
	if !(&Employee{}).ValidOn(time.Now()) {
		t.Error("open-ended contract not valid")
	}
}
