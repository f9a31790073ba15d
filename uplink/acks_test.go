package uplink

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseAcks(t *testing.T) {
	long := strings.Repeat("é", MaxAckError) // 2 bytes each: twice the bound
	for _, tc := range []struct {
		name    string
		in      string
		want    []Ack
		wantErr string // substring; "" means no error
	}{
		{"ok", `{"id":"door-1-ab-e7","ok":true}`, []Ack{{ID: "door-1-ab-e7", OK: true}}, ""},
		{"refused", `{"id":"door-1-ab-s3","ok":false,"error":"employee E100 unknown"}`,
			[]Ack{{ID: "door-1-ab-s3", Error: "employee E100 unknown"}}, ""},
		{"refused without words", `{"id":"x","ok":false}`, []Ack{{ID: "x"}}, ""},
		{"refused, null error", `{"id":"x","ok":false,"error":null}`, []Ack{{ID: "x"}}, ""},
		{"ok drops an error", `{"id":"x","ok":true,"error":"ignored"}`, []Ack{{ID: "x", OK: true}}, ""},
		{"extra fields ignored", `{"id":"x","ok":true,"at":"2026-12-01T10:00:00Z"}`, []Ack{{ID: "x", OK: true}}, ""},
		{"batch", `{"acks":[{"id":"a","ok":true},{"id":"b","ok":false,"error":"no"}]}`,
			[]Ack{{ID: "a", OK: true}, {ID: "b", Error: "no"}}, ""},
		{"empty batch", `{"acks":[]}`, []Ack{}, ""},
		{"batch keeps the good entries", `{"acks":[{"id":"a","ok":true},{"ok":true},7,{"id":"c","ok":"yes"},null,{"id":"d","ok":false}]}`,
			[]Ack{{ID: "a", OK: true}, {ID: "d"}}, `acks[1]: uplink: malformed ack: no "id"`},

		{"not JSON", `{"id":`, nil, "malformed ack"},
		{"not an object", `["x"]`, nil, "malformed ack"},
		{"null", `null`, nil, "null"},
		{"empty", ``, nil, "malformed ack"},
		{"no id", `{"ok":true}`, nil, `no "id"`},
		{"empty id", `{"id":"","ok":true}`, nil, `"id" must hold`},
		{"numeric id", `{"id":7,"ok":true}`, nil, `"id" is not a string`},
		{"null id", `{"id":null,"ok":true}`, nil, `"id" is not a string`},
		{"huge id", `{"id":"` + strings.Repeat("x", 257) + `","ok":true}`, nil, `has 257`},
		{"no ok", `{"id":"x"}`, nil, `no "ok"`},
		{"ok not a bool", `{"id":"x","ok":1}`, nil, `"ok" is not true or false`},
		{"error not a string", `{"id":"x","ok":false,"error":{"code":5}}`, nil, `"error" is not a string`},
		{"acks not an array", `{"acks":{"id":"x","ok":true}}`, nil, "not an array"},
		{"both id and acks", `{"id":"x","ok":true,"acks":[]}`, nil, "both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAcks([]byte(tc.in))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("acks = %#v, want %#v", got, tc.want)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("err = %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("err = %v, want one containing %q", err, tc.wantErr)
			case err != nil && !errors.Is(err, ErrAck):
				t.Errorf("err = %v does not wrap ErrAck", err)
			}
		})
	}

	t.Run("long error truncated", func(t *testing.T) {
		got, err := ParseAcks([]byte(`{"id":"x","ok":false,"error":"` + long + `"}`))
		if err != nil {
			t.Fatal(err)
		}
		e := got[0].Error
		if len(e) > MaxAckError || !strings.HasSuffix(e, truncatedMark) || !utf8.ValidString(e) ||
			!strings.HasPrefix(long, strings.TrimSuffix(e, truncatedMark)) {
			t.Fatalf("error of %d bytes (valid UTF-8: %v), want the text's start cut to <= %d bytes ending in %q",
				len(e), utf8.ValidString(e), MaxAckError, truncatedMark)
		}
		exact := strings.Repeat("y", MaxAckError)
		got, _ = ParseAcks([]byte(`{"id":"x","ok":false,"error":"` + exact + `"}`))
		if got[0].Error != exact {
			t.Fatalf("an error of exactly %d bytes was changed", MaxAckError)
		}
	})
}

func FuzzParseAcks(f *testing.F) {
	for _, s := range []string{
		`{"id":"a","ok":true}`, `{"id":"a","ok":false,"error":"x"}`,
		`{"acks":[{"id":"a","ok":true},{"ok":1}]}`, `null`, `{"acks":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		acks, err := ParseAcks(b)
		if err != nil && !errors.Is(err, ErrAck) {
			t.Fatalf("error %v does not wrap ErrAck", err)
		}
		for _, a := range acks {
			if a.ID == "" || len(a.ID) > maxAckID || len(a.Error) > MaxAckError || (a.OK && a.Error != "") {
				t.Fatalf("invalid ack returned: %+v", a)
			}
		}
	})
}
