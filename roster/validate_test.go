package roster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// emp is one employee in JSON with the given credentials ("card:X",
// "pin:Y").
func emp(id string, creds ...string) string {
	var cs []string
	for _, c := range creds {
		typ, v, _ := strings.Cut(c, ":")
		cs = append(cs, fmt.Sprintf(`{"type":%q,"value":%q}`, typ, v))
	}
	return fmt.Sprintf(`{"id":%q,"credentials":[%s]}`, id, strings.Join(cs, ","))
}

// doc is a roster of version 1 with the given employees.
func doc(emps ...string) string {
	return `{"version":1,"employees":[` + strings.Join(emps, ",") + `]}`
}

func TestParseRejects(t *testing.T) {
	badUTF8 := `{"version":1,"employees":[{"id":"E` + "\xff" + `1"}]}`
	for _, tc := range []struct {
		name, in string
		want     []string // each must be in the error
		secrets  []string // none may be in the error
	}{
		// Decoding.
		{"syntax", `{"version": 3, "employees": [}`, []string{"malformed JSON at byte 30"}, nil},
		{"unknown field", `{"version": 3, "employes": []}`, []string{`unknown field "employes"`}, nil},
		{"trailing", `{"version":1,"employees":[],"empty":true} {}`, []string{"trailing data"}, nil},
		{"empty document", ``, []string{"empty document"}, nil},
		{"truncated", `{"version":1,"employees":[`, []string{"ends in the middle"}, nil},
		{"not an object", `[]`, []string{"the roster must be a JSON object, not a JSON array"}, nil},
		{"unquoted card", `{"version":1,"employees":[{"id":"a","credentials":[{"type":"card","value":0A00123456}]}]}`,
			[]string{"malformed JSON at byte 76", "unexpected letter or digit after object key:value pair"}, []string{"0A00123456", "'A'"}},
		{"pin as number", `{"version":1,"employees":[{"id":"a","credentials":[{"type":"pin","value":4821}]}]}`,
			[]string{"employees.credentials.value must be a JSON string, not a JSON number"}, []string{"4821"}},
		// Versions.
		{"no version", `{"employees": [], "empty": true}`, []string{"version must be a positive integer", "got 0"}, nil},
		{"negative version", `{"version": -3, "employees": [], "empty": true}`, []string{"version must be a positive integer", "got -3"}, nil},
		{"version over 2^53-1", `{"version": 9007199254740992, "employees": [], "empty": true}`, []string{"up to 2^53-1 (9007199254740991)"}, nil},
		{"exponent version", `{"version": 9e15, "employees": [], "empty": true}`, []string{"version must be an integer", "without fraction or exponent", "got 9e15"}, nil},
		{"fraction version", `{"version": 3.0, "employees": [], "empty": true}`, []string{"without fraction or exponent", "got 3.0"}, nil},
		{"huge version", `{"version": 123456789012345678901234567890, "employees": []}`, []string{"without fraction or exponent"}, nil},
		{"string version", `{"version": "3", "employees": [], "empty": true}`, []string{"version must be a JSON number, not a JSON string"}, nil},
		// a. Missing and empty employee lists.
		{"employees null", `{"version":1,"employees":null}`, []string{"employees is missing or null"}, nil},
		{"employees missing", `{"version":1}`, []string{"employees is missing or null"}, nil},
		{"employees missing but empty", `{"version":1,"empty":true}`, []string{"employees is missing or null"}, nil},
		{"employees empty without flag", `{"version":1,"employees":[]}`, []string{`a roster without employees must say "empty": true`}, nil},
		{"empty flag with employees", `{"version":1,"empty":true,"employees":[{"id":"a"}]}`, []string{`"empty": true but employees lists 1`}, nil},
		// b. Encoding.
		{"invalid UTF-8", badUTF8, []string{fmt.Sprintf("invalid UTF-8 at byte %d", strings.IndexByte(badUTF8, 0xff))}, nil},
		{"invalid UTF-8 in a card", `{"version":1,"employees":[{"id":"a","credentials":[{"type":"card","value":"0A0012` + "\xc0\xaf" + `"}]}]}`,
			[]string{"invalid UTF-8 at byte 81"}, []string{"0A0012"}},
		{"UTF-8 of a surrogate", `{"version":1,"employees":[{"id":"` + "\xed\xa0\x80" + `"}]}`, []string{"invalid UTF-8 at byte 33"}, nil},
		{"escaped lone high surrogate", `{"version":1,"employees":[{"id":"E\ud800"}]}`, []string{"at byte 34: a \\u escape of a lone UTF-16 surrogate"}, nil},
		{"escaped lone low surrogate", `{"version":1,"employees":[{"id":"\udc00E"}]}`, []string{"at byte 33: a \\u escape of a lone UTF-16 surrogate"}, nil},
		{"escaped high surrogate then letter", `{"version":1,"employees":[{"id":"\ud83d\u0041"}]}`, []string{"at byte 33"}, nil},
		// Employees.
		{"no id", `{"version":1,"employees":[{"name":"x"}]}`, []string{"employees[0].id is required"}, nil},
		{"dup id", `{"version":1,"employees":[{"id":"a"},{"id":"a"}]}`, []string{`employees[1] (id "a"): duplicate id (also employees[0])`}, nil},
		{"bad date", `{"version":1,"employees":[{"id":"a","valid_from":"01-01-2025"}]}`, []string{`valid_from: "01-01-2025" is not a date`}, nil},
		{"until before from", `{"version":1,"employees":[{"id":"a","valid_from":"2025-02-01","valid_until":"2025-01-01"}]}`, []string{"is before valid_from"}, nil},
		// Credential values.
		{"bad card", doc(emp("a", "card:XYZ")), []string{`employees[0] (id "a").credentials[0]: card value must be ten hex digits`}, []string{"XYZ"}},
		{"eleven digits", doc(emp("a", "pin:1234", "card:12345678901")), []string{`employees[0] (id "a").credentials[1]: card value`}, []string{"12345678901"}},
		{"nine hex digits", doc(emp("a", "card:0A0012345")), []string{"card value"}, []string{"0A0012345"}},
		{"bad pin", doc(emp("a", "pin:12")), []string{`employees[0] (id "a").credentials[0]: pin must be 4 to 12 digits`}, nil},
		{"pin with letters", doc(emp("a", "pin:48x21")), []string{"pin must be 4 to 12 digits"}, []string{"48x21"}},
		{"bad type", doc(emp("a", "iris:1")), []string{`type "iris" is not card`}, nil},
		{"value in the type field", doc(emp("a", "4821:pin")), []string{"type is not card, pin or fingerprint"}, []string{"4821"}},
		// c. One card, hex to one employee and decimal to another.
		{"hex then padded decimal", doc(emp("A", "card:0A00123456"), emp("B", "card:0001193046")),
			[]string{`employees[1] (id "B").credentials[0]: this decimal card number is the last four bytes of the card of employees[0] (id "A").credentials[0]`},
			[]string{"0A00123456", "0001193046", "1193046", "123456"}},
		{"hex then short decimal", doc(emp("A", "card:0a00123456"), emp("B", "pin:7777", "card:1193046")),
			[]string{`employees[1] (id "B").credentials[1]: this decimal card number is the last four bytes of the card of employees[0] (id "A").credentials[0]`},
			[]string{"0A00123456", "0a00123456", "1193046", "7777"}},
		{"decimal then hex", doc(emp("B", "card:1193046"), emp("A", "card:0A00123456")),
			[]string{`employees[1] (id "A").credentials[0]: the last four bytes of this card are the decimal card number of employees[0] (id "B").credentials[0]`},
			[]string{"0A00123456", "1193046"}},
		// d. Ten decimal digits that are also someone's hex read.
		{"same string", doc(emp("A", "card:0001193046"), emp("B", "card:0001193046")),
			[]string{`employees[1] (id "B").credentials[0]: this card is also held by employees[0] (id "A").credentials[0]`}, []string{"0001193046"}},
		{"same card in two cases", doc(emp("a", "card:0a00123456"), emp("b", "card:0A00123456")),
			[]string{`employees[1] (id "b").credentials[0]: this card is also held by employees[0] (id "a")`}, []string{"0A00123456", "0a00123456"}},
		// B's read 0000123456 ends in 0x00123456 = 1193046, A's decimal.
		{"decimal matches a hex read", doc(emp("A", "card:0001193046"), emp("B", "card:0000123456")),
			[]string{`employees[1] (id "B").credentials[0]: the last four bytes of this card are the decimal card number of employees[0] (id "A")`},
			[]string{"0001193046", "0000123456"}},
		{"hex read matched by a later decimal", doc(emp("B", "card:FF00123456"), emp("C", "card:0B00000001"), emp("A", "card:0001193046")),
			[]string{`employees[2] (id "A").credentials[0]: this decimal card number is the last four bytes of the card of employees[0] (id "B")`}, nil},
		// 9999999999 is above 2^32: only hex; its last four bytes are
		// 0x99999999 = 2576980377.
		{"hex-only ten digits", doc(emp("A", "card:9999999999"), emp("B", "card:2576980377")),
			[]string{`employees[1] (id "B").credentials[0]: this decimal card number is the last four bytes of the card of employees[0] (id "A")`}, nil},
		// Two different employees hold cards with the same last four bytes
		// (legitimate); a third's decimal form matches both.
		{"decimal after two hex", doc(emp("A", "card:0A00123456"), emp("B", "card:0B00123456"), emp("A2", "card:0001193046")),
			[]string{`employees[2] (id "A2").credentials[0]: this decimal card number is the last four bytes of the card of employees[0] (id "A")`}, nil},
		// Other credential types.
		{"shared pin", doc(emp("a", "pin:4821"), emp("b", "pin:4821")),
			[]string{`employees[1] (id "b").credentials[0]: this pin is also another employee's (not named`}, []string{"4821", `id "a"`}},
		{"shared fingerprint", doc(emp("a", "fingerprint:17"), emp("b", "fingerprint:17")),
			[]string{`this fingerprint is also held by employees[0] (id "a")`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
			for _, s := range tc.secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("err = %v\nnames the value %q", err, s)
				}
			}
		})
	}
}

// The error of every rejected credential lacks the value, whatever it
// was: a generated sample of bad cards and PINs.
func TestParseErrorsNameNoValue(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// No four of these in a row occur in an error's own words.
	const alphabet = "0123456789abcdefABCDEF-"
	for range 500 {
		n := 4 + rng.IntN(10)
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		v := string(b)
		for _, typ := range []string{Card, PIN} {
			_, err := Parse([]byte(doc(emp("a", typ+":"+v))))
			if err == nil {
				continue
			}
			if strings.Contains(err.Error(), v) {
				t.Fatalf("%s %q: error %q names the value", typ, v, err)
			}
		}
	}
}

func TestParseAccepts(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		check    func(t *testing.T, r *Roster)
	}{
		{"empty on purpose", `{"version":1,"employees":[],"empty":true}`, func(t *testing.T, r *Roster) {
			if !r.Empty || len(r.Employees) != 0 {
				t.Fatalf("roster = %+v", r)
			}
		}},
		{"reset", `{"version":1,"reset":true,"employees":[{"id":"a"}]}`, func(t *testing.T, r *Roster) {
			if !r.Reset {
				t.Fatal("reset not decoded")
			}
		}},
		{"highest version", `{"version":9007199254740991,"employees":[{"id":"a"}]}`, nil},
		{"non-ASCII names", `{"version":1,"employees":[{"id":"Ë1","name":"Zoë Çelik 😀 \ud83d\ude00 \\ud800"}]}`, func(t *testing.T, r *Roster) {
			if r.Employees[0].ID != "Ë1" || r.Employees[0].Name != `Zoë Çelik 😀 😀 \ud800` {
				t.Fatalf("employee = %+v", r.Employees[0])
			}
		}},
		// Same last four bytes, different first byte, both hex only:
		// two physical cards, no read matches both.
		{"same ID bytes, other version byte", doc(emp("A", "card:0A00123456"), emp("B", "card:0B00123456"), emp("C", "card:0C00123456")), nil},
		{"neighbouring numbers", doc(emp("A", "card:0001193046"), emp("B", "card:0001193047"), emp("C", "card:1193048")), nil},
		// 1999999999 (decimal) ends in 0x99999999 as a read, like the
		// hex-only 9999999999, but neither's decimal covers the other.
		{"hex-only ten digits", doc(emp("A", "card:9999999999"), emp("B", "card:1999999999")), nil},
		// e. One employee may list one card in several forms, or twice:
		// every read still finds one person.
		{"one card in two forms", doc(emp("A", "card:0A00123456", "card:0001193046", "card:1193046", "card:0a00123456"), emp("B", "card:0B00000001")),
			func(t *testing.T, r *Roster) {
				want := []string{"0A00123456", "0001193046", "0001193046", "0A00123456"}
				for j, c := range r.Employees[0].Credentials {
					if c.Value != want[j] {
						t.Errorf("credentials[%d] = %q, want %q", j, c.Value, want[j])
					}
				}
			}},
		{"one pin twice", doc(emp("A", "pin:4821", "pin:4821")), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

// naiveHolders returns, for every read that matches some card credential
// in held (held[i]: employee i's normalised card values), the employees
// whose credentials match it, straight from the definition (CardKeys).
// Every read that matches V is V itself or ends in the four bytes of V's
// decimal, so those are the only reads to try.
func naiveHolders(held [][]string) map[string][]int {
	var cands []string
	for _, vs := range held {
		for _, v := range vs {
			cands = append(cands, v)
			if n, err := strconv.ParseUint(v, 10, 32); err == nil && len(v) == 10 {
				for ver := range 256 {
					cands = append(cands, fmt.Sprintf("%02X%08X", ver, n))
				}
			}
		}
	}
	holders := map[string][]int{}
	for _, read := range cands {
		if _, done := holders[read]; done {
			continue
		}
		holders[read] = nil
		keys := CardKeys(read)
		for i, vs := range held {
			for _, v := range vs {
				if slices.Contains(keys, Key(Card, v)) {
					holders[read] = append(holders[read], i)
					break
				}
			}
		}
	}
	return holders
}

// clashProne returns the JSON of a roster of two to four employees with
// one or two cards each, drawn from a few IDs in both forms and several
// first bytes so that clashes are frequent, and the normalised card
// values each employee holds.
func clashProne(t *testing.T, rng *rand.Rand) (string, [][]string) {
	t.Helper()
	ids := []uint32{0x00123456, 0x01193046, 0x0001E240, 0x99999999, 0x00000001, 0x00000010}
	vers := []string{"00", "0A", "01", "FF", "0f"}
	card := func() string {
		id := ids[rng.IntN(len(ids))]
		switch rng.IntN(3) {
		case 0:
			return fmt.Sprintf("%010d", id)
		case 1:
			return strconv.FormatUint(uint64(id), 10)
		default:
			return vers[rng.IntN(len(vers))] + fmt.Sprintf("%08x", id)
		}
	}
	n := 2 + rng.IntN(3)
	emps := make([]string, n)
	held := make([][]string, n)
	for i := range emps {
		var cs []string
		for range 1 + rng.IntN(2) {
			c := card()
			v, err := Normalize(Card, c)
			if err != nil {
				t.Fatal(err)
			}
			held[i] = append(held[i], v)
			cs = append(cs, "card:"+c)
		}
		emps[i] = emp(fmt.Sprint("E", i), cs...)
	}
	return doc(emps...), held
}

// Validate agrees with the definition: a roster is rejected exactly when
// some read matches cards of two employees.
func TestCardClashesMatchDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	accepted, rejected := 0, 0
	for range 500 {
		in, held := clashProne(t, rng)
		want := false
		for _, hs := range naiveHolders(held) {
			want = want || len(hs) > 1
		}
		_, err := Parse([]byte(in))
		if got := err != nil; got != want {
			t.Fatalf("roster %v: err = %v, want a clash: %v", held, err, want)
		}
		if err != nil {
			rejected++
		} else {
			accepted++
		}
	}
	if accepted < 50 || rejected < 50 {
		t.Fatalf("accepted %d, rejected %d: the sample does not exercise both", accepted, rejected)
	}
}
