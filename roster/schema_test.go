package roster

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestSchema(t *testing.T) {
	const emps = `"employees":[{"id":"a"}]`
	for _, tc := range []struct {
		name, in string
		want     int    // the decoded Schema, when accepted
		err      string // else in the error
		newer    bool   // the error is ErrNewerSchema
	}{
		{"absent", `{"version":1,` + emps + `}`, 0, "", false},
		{"1", `{"schema":1,"version":1,` + emps + `}`, 1, "", false},
		{"2", `{"schema":2,"version":1,` + emps + `}`, 2, "", false},
		{"2 last", `{"version":1,` + emps + `,"schema": 2 }`, 2, "", false},
		{"3", `{"schema":3,"version":1,` + emps + `}`, 0,
			"roster schema 3 is newer than this agent knows (1–2): update the agent", true},
		// A newer roster's fields are not known here: the schema is
		// named, not the field.
		{"3 with an unknown field", `{"schema":3,"version":1,"sites":[{"id":"x"}],` + emps + `}`, 0,
			"roster schema 3 is newer than this agent knows", true},
		{"3 after an unknown field", `{"version":1,"sites":{"schema":1},` + emps + `,"schema":3}`, 0,
			"roster schema 3 is newer", true},
		{"3 with an unknown employee field", `{"version":1,"employees":[{"id":"a","badge_photo":"x.jpg"}],"schema":3}`, 0,
			"roster schema 3 is newer", true},
		{"3 with a malformed rest", `{"schema":3,"version":1,"employees":[{"id":"a"}]`, 0,
			"roster schema 3 is newer", true},
		{"beyond int64", `{"schema":99999999999999999999,"version":1,` + emps + `}`, 0,
			"roster schema 99999999999999999999 is newer", true},
		{"0", `{"schema":0,"version":1,` + emps + `}`, 0, "schema must be an integer from 1 to 2, got 0", false},
		{"negative", `{"schema":-1,"version":1,` + emps + `}`, 0, "schema must be an integer from 1 to 2, got -1", false},
		{"fraction", `{"schema":2.0,"version":1,` + emps + `}`, 0, "schema must be an integer written without fraction or exponent, got 2.0", false},
		{"exponent", `{"schema":1e0,"version":1,` + emps + `}`, 0, "without fraction or exponent, got 1e0", false},
		{"string", `{"schema":"2","version":1,` + emps + `}`, 0, "schema must be a JSON integer, not a JSON string", false},
		{"null", `{"schema":null,"version":1,` + emps + `}`, 0, "schema must be a JSON integer, got null", false},
		{"object", `{"schema":{"v":2},"version":1,` + emps + `}`, 0, "schema must be a JSON integer, not a JSON object", false},
		// Only the top level's "schema" is the roster's.
		{"nested key", `{"version":1,"employees":[{"id":"a","name":"schema","department":"\"schema\":9"}]}`, 0, "", false},
		{"in a nested object", `{"version":1,"access_groups":[{"name":"schema"}],` + emps + `}`, 0, "", false},
		{"in a string with escapes", `{"version":1,"employees":[{"id":"a\\\",\"schema\":9,\"x\":\""}]}`, 0, "", false},
		{"after escaped quotes", `{"version":1,"employees":[{"id":"a"}],"note":"\"","schema":3}`, 0,
			"roster schema 3 is newer", true},
		{"after an escaped backslash", `{"version":1,"employees":[{"id":"q\\","name":"schema"}],"schema":3}`, 0,
			"roster schema 3 is newer", true},
		{"space around", "{ \"schema\" :\t2 ,\n\"version\":1," + emps + "}", 2, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse([]byte(tc.in))
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if r.Schema != tc.want {
					t.Fatalf("Schema = %d, want %d", r.Schema, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v\nwant ErrInvalid containing %q", err, tc.err)
			}
			if errors.Is(err, ErrNewerSchema) != tc.newer {
				t.Errorf("errors.Is(err, ErrNewerSchema) = %v, want %v", !tc.newer, tc.newer)
			}
		})
	}
}

// Validate checks a roster made in Go, or decoded without Parse (a
// key spelled in another case reaches the field too).
func TestValidateSchema(t *testing.T) {
	for _, tc := range []struct {
		schema int
		newer  bool
		ok     bool
	}{{0, false, true}, {1, false, true}, {2, false, true}, {3, true, false}, {-1, false, false}} {
		r := &Roster{Schema: tc.schema, Version: 1, Employees: []Employee{{ID: "a"}}}
		err := r.Validate()
		if (err == nil) != tc.ok || errors.Is(err, ErrNewerSchema) != tc.newer {
			t.Errorf("schema %d: err = %v", tc.schema, err)
		}
	}
	_, err := Parse([]byte(`{"SCHEMA":3,"version":1,"employees":[{"id":"a"}]}`))
	if !errors.Is(err, ErrNewerSchema) {
		t.Errorf("SCHEMA 3: err = %v", err)
	}
}

// A roster valid before schema, access groups, job codes and
// pin_with_card parses as it did, and its canonical JSON (the store's
// digest of it) is byte for byte what it was: testdata/roster.canon.json
// was written by the roster package before these fields. Otherwise the
// retained roster, offered again after an upgrade, would look changed
// with the same version and be rejected as not newer.
func TestOldRosterUnchanged(t *testing.T) {
	b, err := os.ReadFile("testdata/roster.json")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/roster.canon.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.TrimSpace(want)) {
		t.Errorf("canonical JSON changed:\n got %s\nwant %s", got, want)
	}
	// The canonical form parses too (the store keeps it).
	if _, err := Parse(got); err != nil {
		t.Fatal(err)
	}
}

func TestParseAccessSample(t *testing.T) {
	b, err := os.ReadFile("testdata/roster-access.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Schema != 2 || len(r.AccessGroups) != 3 || len(r.Employees) != 4 {
		t.Fatalf("schema %d, %d groups, %d employees", r.Schema, len(r.AccessGroups), len(r.Employees))
	}
	anna := &r.Employees[0]
	if !anna.PinWithCard || !anna.HasJobCode("2002") || anna.HasJobCode("3003") || anna.AccessGroup != "staff" {
		t.Errorf("anna = %+v", anna)
	}
	// The canonical JSON keeps every new field, and parses to the same.
	canon, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"schema":2`, `"access_groups":[`, `"job_codes":["1001","2002"]`, `"pin_with_card":true`, `"windows":[{"days":"fri-mon","from":"22:00","to":"06:00"}]`} {
		if !bytes.Contains(canon, []byte(k)) {
			t.Errorf("canonical JSON lacks %s: %s", k, canon)
		}
	}
	again, err := Parse(canon)
	if err != nil {
		t.Fatal(err)
	}
	if canon2, _ := json.Marshal(again); !bytes.Equal(canon, canon2) {
		t.Errorf("canonical JSON not stable:\n%s\n%s", canon, canon2)
	}
}

func TestJobCodesAndTwoFactors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     string // "" accepted
		secrets  []string
	}{
		{"codes", `{"id":"a","job_codes":["1","12345678","0042","42"]}`, "", nil},
		{"no codes", `{"id":"a","job_codes":[]}`, "", nil},
		{"nine digits", `{"id":"E7","job_codes":["1001","123456789"]}`,
			`employees[0] (id "E7").job_codes[1]: a job code is 1 to 8 digits`, []string{"123456789"}},
		{"empty code", `{"id":"E7","job_codes":[""]}`, `employees[0] (id "E7").job_codes[0]: a job code is 1 to 8 digits`, nil},
		{"letters", `{"id":"E7","job_codes":["A100"]}`, `job_codes[0]: a job code is 1 to 8 digits`, []string{"A100"}},
		{"non-ASCII digits", `{"id":"E7","job_codes":["١٢٣"]}`, `job_codes[0]: a job code is 1 to 8 digits`, nil},
		{"space", `{"id":"E7","job_codes":[" 100"]}`, `job_codes[0]: a job code`, nil},
		{"twice", `{"id":"E7","job_codes":["1001","2002","1001"]}`,
			`employees[0] (id "E7").job_codes[2]: the same code as job_codes[0]`, []string{`"1001"`}},
		{"twice in a long list", `{"id":"E7","job_codes":["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17","5"]}`,
			`employees[0] (id "E7").job_codes[17]: the same code as job_codes[4]`, nil},
		{"not a list", `{"id":"E7","job_codes":"1001"}`, `job_codes must be a JSON array`, nil},
		{"pin with card", `{"id":"a","pin_with_card":true,"credentials":[{"type":"pin","value":"4821"},{"type":"card","value":"0A00123456"}]}`, "", nil},
		{"pin with card, false", `{"id":"a","pin_with_card":false}`, "", nil},
		{"pin with card, no pin", `{"id":"E7","pin_with_card":true,"credentials":[{"type":"card","value":"0A00123456"}]}`,
			`employees[0] (id "E7"): pin_with_card needs a pin among the credentials, and there is none`, []string{"0A00123456"}},
		{"pin with card, no card", `{"id":"E7","pin_with_card":true,"credentials":[{"type":"pin","value":"4821"},{"type":"fingerprint","value":"3"}]}`,
			`employees[0] (id "E7"): pin_with_card needs a card among the credentials, and there is none`, []string{"4821"}},
		{"pin with card, nothing", `{"id":"E7","pin_with_card":true}`,
			`pin_with_card needs a card and a pin among the credentials, and there is neither`, nil},
		{"biometric consent", `{"id":"a","biometric_consent":true,"credentials":[{"type":"fingerprint","value":"3"}]}`, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(`{"version":1,"employees":[` + tc.in + `]}`))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant ErrInvalid containing %q", err, tc.want)
			}
			for _, s := range tc.secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("err = %v names %q", err, s)
				}
			}
		})
	}
}

func TestHasJobCode(t *testing.T) {
	e := &Employee{JobCodes: []string{"1001", "0042"}}
	for code, want := range map[string]bool{"1001": true, "0042": true, "42": false, "": false, "10010": false} {
		if got := e.HasJobCode(code); got != want {
			t.Errorf("HasJobCode(%q) = %v, want %v", code, got, want)
		}
	}
	var none *Employee
	if none.HasJobCode("1001") || (&Employee{}).HasJobCode("") {
		t.Error("a job code without codes")
	}
}
