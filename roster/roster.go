// Package roster parses and validates the employee roster that the HR
// system sends down (over MQTT or in a file) and normalises credentials so
// that a read at a reader and a roster entry compare equal.
package roster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every parse and validation error.
var ErrInvalid = errors.New("roster: invalid")

// Roster is one version of the employee list.
type Roster struct {
	Version   int64      `json:"version"`
	Employees []Employee `json:"employees"`
}

// Employee is one person who may punch.
type Employee struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	PayrollNo   string       `json:"payroll_no"`
	Department  string       `json:"department"`
	ValidFrom   string       `json:"valid_from"`  // YYYY-MM-DD or empty
	ValidUntil  string       `json:"valid_until"` // YYYY-MM-DD or empty
	AccessGroup string       `json:"access_group,omitempty"`
	Credentials []Credential `json:"credentials"`
}

// Credential is one way an employee identifies at a reader.
type Credential struct {
	Type  string `json:"type"` // card | pin | fingerprint
	Value string `json:"value"`
}

// Credential types.
const (
	Card        = "card"
	PIN         = "pin"
	Fingerprint = "fingerprint"
)

const dateLayout = "2006-01-02"

// Parse decodes and validates a roster. Unknown fields are rejected so that
// a typo in the HR connector is seen, not silently ignored.
func Parse(b []byte) (*Roster, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Roster
	if err := dec.Decode(&r); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%w: at byte %d: %v", ErrInvalid, se.Offset, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the roster object", ErrInvalid)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks every employee and credential and normalises credential
// values in place (cards to ten upper-case hex digits or a decimal key).
func (r *Roster) Validate() error {
	if r.Version <= 0 {
		return fmt.Errorf("%w: version must be a positive integer, got %d", ErrInvalid, r.Version)
	}
	ids := map[string]bool{}
	creds := map[string]string{}
	for i := range r.Employees {
		e := &r.Employees[i]
		where := fmt.Sprintf("employees[%d]", i)
		if e.ID == "" {
			return fmt.Errorf("%w: %s.id is required", ErrInvalid, where)
		}
		where = fmt.Sprintf("employees[%d] (id %q)", i, e.ID)
		if ids[e.ID] {
			return fmt.Errorf("%w: %s: duplicate id", ErrInvalid, where)
		}
		ids[e.ID] = true
		for _, d := range []struct{ key, v string }{{"valid_from", e.ValidFrom}, {"valid_until", e.ValidUntil}} {
			if d.v == "" {
				continue
			}
			if _, err := time.Parse(dateLayout, d.v); err != nil {
				return fmt.Errorf("%w: %s.%s: %q is not a date YYYY-MM-DD", ErrInvalid, where, d.key, d.v)
			}
		}
		if e.ValidFrom != "" && e.ValidUntil != "" && e.ValidUntil < e.ValidFrom {
			return fmt.Errorf("%w: %s: valid_until %s is before valid_from %s", ErrInvalid, where, e.ValidUntil, e.ValidFrom)
		}
		for j := range e.Credentials {
			c := &e.Credentials[j]
			cw := fmt.Sprintf("%s.credentials[%d]", where, j)
			v, err := Normalize(c.Type, c.Value)
			if err != nil {
				return fmt.Errorf("%w: %s: %v", ErrInvalid, cw, err)
			}
			c.Value = v
			k := Key(c.Type, v)
			if other, ok := creds[k]; ok {
				return fmt.Errorf("%w: %s: %s credential is also held by employee %q", ErrInvalid, cw, c.Type, other)
			}
			creds[k] = e.ID
		}
	}
	return nil
}

// Key is the lookup key of a normalised credential.
func Key(typ, value string) string { return typ + ":" + value }

// Normalize returns the canonical form of a credential value. A card is
// either ten hex digits (EM4100 version byte + four ID bytes), returned in
// upper case, or the decimal printed on EM cards (the four ID bytes as a
// number), returned zero-padded to ten digits. PINs are 4 to 12 digits.
func Normalize(typ, value string) (string, error) {
	value = strings.TrimSpace(value)
	switch typ {
	case Card:
		if len(value) == 10 && isHex(value) {
			// Ten hex digits as a reader sends them. Ten decimal digits
			// fall here too and stay as they are: CardKeys looks a read
			// up under both its hex and its decimal form.
			return strings.ToUpper(value), nil
		}
		if isDigits(value) && len(value) < 10 {
			if n, err := strconv.ParseUint(value, 10, 32); err == nil {
				return fmt.Sprintf("%010d", n), nil
			}
		}
		return "", fmt.Errorf("card value %q must be ten hex digits (0A00123456) or the decimal number printed on the card (0001193046)", value)
	case PIN:
		if len(value) < 4 || len(value) > 12 || !isDigits(value) {
			return "", errors.New("pin must be 4 to 12 digits")
		}
		return value, nil
	case Fingerprint:
		if value == "" {
			return "", errors.New("fingerprint template id is empty")
		}
		return value, nil
	default:
		return "", fmt.Errorf("type %q is not card, pin or fingerprint", typ)
	}
}

// CardKeys returns the roster keys under which a card read with the given
// ten hex digits may be enrolled: its hex form and the decimal of its four
// ID bytes.
func CardKeys(hex10 string) []string {
	hex10 = strings.ToUpper(hex10)
	keys := []string{Key(Card, hex10)}
	if len(hex10) == 10 {
		if n, err := strconv.ParseUint(hex10[2:], 16, 32); err == nil {
			keys = append(keys, Key(Card, fmt.Sprintf("%010d", n)))
		}
	}
	return keys
}

// ValidOn reports whether the contract covers the calendar day of t (in
// t's location). valid_from and valid_until are inclusive.
func (e *Employee) ValidOn(t time.Time) bool {
	day := t.Format(dateLayout)
	if e.ValidFrom != "" && day < e.ValidFrom {
		return false
	}
	if e.ValidUntil != "" && day > e.ValidUntil {
		return false
	}
	return true
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return s != ""
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
