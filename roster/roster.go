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

// MaxVersion is the highest roster version: 2^53-1, the largest integer
// that every JSON implementation (JavaScript's numbers included) carries
// exactly.
const MaxVersion = 1<<53 - 1

// MaxSchema is the highest roster schema this agent knows. A roster's
// schema says which agents may read it: raise it only for a change an
// older agent must not misread (a field it would ignore or take for
// something else), not for every new field. Schema 1 is the original
// roster; schema 2 has the same fields and is reserved for the first
// such change.
const MaxSchema = 2

// Roster is one version of the employee list.
type Roster struct {
	// Schema is the roster's "schema": 0 when absent, which means 1.
	// Parse rejects a schema above MaxSchema before it decodes anything
	// else, so that a roster made for a newer agent is rejected for its
	// schema and not for a field this agent does not know.
	Schema  int   `json:"schema,omitempty"`
	Version int64 `json:"version"`
	// Reset makes the agent accept this roster whatever the stored
	// version (see Accept): the way out after a wrong version was
	// accepted.
	Reset bool `json:"reset,omitempty"`
	// Empty must be set, and only then, when Employees is an empty list
	// on purpose, so that a connector that lost its employees cannot
	// lock everyone out by accident.
	Empty     bool       `json:"empty,omitempty"`
	Employees []Employee `json:"employees"`
	// AccessGroups are the groups employees' access_group names.
	AccessGroups []AccessGroup `json:"access_groups,omitempty"`
}

// Employee is one person who may punch.
type Employee struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	PayrollNo  string `json:"payroll_no"`
	Department string `json:"department"`
	ValidFrom  string `json:"valid_from"`  // YYYY-MM-DD or empty
	ValidUntil string `json:"valid_until"` // YYYY-MM-DD or empty
	// AccessGroup names one of the roster's access groups; empty: every
	// reader at any time.
	AccessGroup string `json:"access_group,omitempty"`
	// BiometricConsent records the employee's consent to biometric
	// identification (GDPR art. 9): without it no fingerprint is
	// enrolled for them.
	BiometricConsent bool `json:"biometric_consent,omitempty"`
	// JobCodes are the codes (1 to 8 digits, typed on a keypad) the
	// employee may book a shift to, at a reader that asks for one.
	JobCodes []string `json:"job_codes,omitempty"`
	// PinWithCard asks for two factors: the card, then the PIN. The
	// employee must hold both.
	PinWithCard bool         `json:"pin_with_card,omitempty"`
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
// a typo in the HR connector is seen, not silently ignored. The document
// must be valid UTF-8 without escaped lone surrogates: the decoder would
// otherwise replace such bytes with U+FFFD, and an id would no longer be
// the one the HR system sent. No error names a card value or a PIN.
func Parse(b []byte) (*Roster, error) {
	if off := invalidUTF8(b); off >= 0 {
		return nil, fmt.Errorf("%w: invalid UTF-8 at byte %d", ErrInvalid, off)
	}
	if off := loneSurrogate(b); off >= 0 {
		return nil, fmt.Errorf("%w: at byte %d: a \\u escape of a lone UTF-16 surrogate is not a character", ErrInvalid, off)
	}
	if err := checkSchema(b); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Roster
	if err := dec.Decode(&r); err != nil {
		return nil, decodeError(b, err)
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
//
// Two different employees must not hold credentials that one read could
// match (see CardKeys): for cards that is the same value, and also a
// decimal card number that equals the last four bytes of another
// employee's hex card. One employee may list the same card several
// times, in either form: every read still finds exactly one person.
//
// It also checks the schema, the access groups (compiling their windows
// for InWindow), that every access_group names one of them, the job
// codes, and that an employee with pin_with_card holds a card and a PIN.
func (r *Roster) Validate() error {
	if err := schemaError(int64(r.Schema)); err != nil {
		return err
	}
	if r.Version < 1 || r.Version > MaxVersion {
		return fmt.Errorf("%w: version must be a positive integer up to 2^53-1 (%d), got %d", ErrInvalid, int64(MaxVersion), r.Version)
	}
	switch {
	case r.Employees == nil:
		return fmt.Errorf("%w: employees is missing or null", ErrInvalid)
	case len(r.Employees) == 0 && !r.Empty:
		return fmt.Errorf(`%w: employees is empty: a roster without employees must say "empty": true`, ErrInvalid)
	case len(r.Employees) > 0 && r.Empty:
		return fmt.Errorf(`%w: "empty": true but employees lists %d`, ErrInvalid, len(r.Employees))
	}
	groups, err := r.validateGroups()
	if err != nil {
		return err
	}
	ids := make(map[string]int, len(r.Employees))
	chk := newChecker(len(r.Employees))
	for i := range r.Employees {
		e := &r.Employees[i]
		if e.ID == "" {
			return fmt.Errorf("%w: employees[%d].id is required", ErrInvalid, i)
		}
		if first, dup := ids[e.ID]; dup {
			return fmt.Errorf("%w: %s: duplicate id (also employees[%d])", ErrInvalid, r.where(i), first)
		}
		ids[e.ID] = i
		for _, d := range []struct{ key, v string }{{"valid_from", e.ValidFrom}, {"valid_until", e.ValidUntil}} {
			if d.v == "" {
				continue
			}
			if _, err := time.Parse(dateLayout, d.v); err != nil {
				return fmt.Errorf("%w: %s.%s: %q is not a date YYYY-MM-DD", ErrInvalid, r.where(i), d.key, d.v)
			}
		}
		if e.ValidFrom != "" && e.ValidUntil != "" && e.ValidUntil < e.ValidFrom {
			return fmt.Errorf("%w: %s: valid_until %s is before valid_from %s", ErrInvalid, r.where(i), e.ValidUntil, e.ValidFrom)
		}
		if e.AccessGroup != "" && !groups[e.AccessGroup] {
			return fmt.Errorf("%w: %s.access_group: %q is not the name of one of access_groups", ErrInvalid, r.where(i), e.AccessGroup)
		}
		if err := checkJobCodes(e.JobCodes); err != nil {
			return fmt.Errorf("%w: %s.%w", ErrInvalid, r.where(i), err)
		}
		for j := range e.Credentials {
			c := &e.Credentials[j]
			v, err := Normalize(c.Type, c.Value)
			if err != nil {
				return fmt.Errorf("%w: %s.credentials[%d]: %w", ErrInvalid, r.where(i), j, err)
			}
			c.Value = v
			if other, why, clash := chk.add(c.Type, v, ref{int32(i), int32(j)}); clash {
				if c.Type == PIN {
					// roster_error is published: naming the other
					// holder would tell its readers whose PIN this is.
					return fmt.Errorf("%w: %s.credentials[%d]: this pin is also another employee's (not named: two people may not share a PIN)", ErrInvalid, r.where(i), j)
				}
				return fmt.Errorf("%w: %s.credentials[%d]: %s %s.credentials[%d]", ErrInvalid,
					r.where(i), j, why, r.where(int(other.emp)), other.cred)
			}
		}
		if e.PinWithCard {
			if err := checkTwoFactors(e.Credentials); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrInvalid, r.where(i), err)
			}
		}
	}
	return nil
}

// where names employee i in an error; it is only called on the way out.
func (r *Roster) where(i int) string {
	return fmt.Sprintf("employees[%d] (id %q)", i, r.Employees[i].ID)
}

// Key is the lookup key of a normalised credential.
func Key(typ, value string) string { return typ + ":" + value }

// Normalize returns the canonical form of a credential value. A card is
// either ten hex digits (EM4100 version byte + four ID bytes), returned in
// upper case, or the decimal printed on EM cards (the four ID bytes as a
// number), returned zero-padded to ten digits. PINs are 4 to 12 digits.
// Its errors never contain the value.
func Normalize(typ, value string) (string, error) {
	value = strings.TrimSpace(value)
	switch typ {
	case Card:
		if v, ok := normalizeCard(value); ok {
			return v, nil
		}
		return "", errors.New("card value must be ten hex digits (an EM4100 card as a reader sends it), the decimal number printed on an EM card (below 2^32), an ISO 14443 UID of 8, 14 or 20 hex digits (\"uid:\" before one of 8 decimal digits), or a Wiegand \"facility:card\" in decimal")
	case PIN:
		if IsHashedPIN(value) {
			return value, nil // as stored: hashed with the device's key
		}
		if len(value) < 4 || len(value) > 12 || !isDigits(value) {
			return "", errors.New("pin must be 4 to 12 digits")
		}
		return value, nil
	case Fingerprint:
		if value == "" {
			return "", errors.New("fingerprint template id is empty")
		}
		if isDigits(value) {
			// A sensor page: "017" and "17" are one page.
			if n, err := strconv.ParseUint(value, 10, 16); err == nil {
				return strconv.FormatUint(n, 10), nil
			}
		}
		return value, nil
	default:
		if isTypeName(typ) {
			return "", fmt.Errorf("type %q is not card, pin or fingerprint", typ)
		}
		// Not a word: perhaps a value in the wrong field. Do not echo it.
		return "", errors.New("type is not card, pin or fingerprint")
	}
}

// CardKeys returns the roster keys under which a card read with the given
// ten hex digits may be enrolled: its hex form and the decimal of its four
// ID bytes (only for a read of ten hex digits). This defines which reads a card credential matches: the read
// R matches the credential V when Key(Card, V) is in CardKeys(R). Validate
// rejects a roster in which one read would match two employees, and Index
// finds a read exactly this way.
func CardKeys(hex10 string) []string {
	hex10 = strings.ToUpper(hex10)
	keys := []string{Key(Card, hex10)}
	if v, ok := hex40(hex10); ok {
		keys = append(keys, Key(Card, fmt.Sprintf("%010d", uint32(v))))
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

// HasJobCode reports whether code is one of the employee's job codes,
// compared as typed ("0042" and "42" are two codes). It allocates
// nothing; a nil employee has none.
func (e *Employee) HasJobCode(code string) bool {
	if e == nil {
		return false
	}
	for _, c := range e.JobCodes {
		if c == code {
			return true
		}
	}
	return false
}

// checkJobCodes: each 1 to 8 ASCII digits, none twice. The codes are not
// quoted: a PIN put in the wrong list must not end up in the status.
func checkJobCodes(codes []string) error {
	var seen map[string]int // only for long lists: most hold a few codes
	if len(codes) > 16 {
		seen = make(map[string]int, len(codes))
	}
	for i, c := range codes {
		if len(c) < 1 || len(c) > 8 || !isDigits(c) {
			return fmt.Errorf("job_codes[%d]: a job code is 1 to 8 digits (0-9), as typed on a keypad", i)
		}
		if seen != nil {
			if j, dup := seen[c]; dup {
				return fmt.Errorf("job_codes[%d]: the same code as job_codes[%d]", i, j)
			}
			seen[c] = i
			continue
		}
		for j := range i {
			if codes[j] == c {
				return fmt.Errorf("job_codes[%d]: the same code as job_codes[%d]", i, j)
			}
		}
	}
	return nil
}

// checkTwoFactors: an employee with pin_with_card holds a card and a PIN.
func checkTwoFactors(creds []Credential) error {
	var card, pin bool
	for _, c := range creds {
		card = card || c.Type == Card
		pin = pin || c.Type == PIN
	}
	switch {
	case !card && !pin:
		return errors.New("pin_with_card needs a card and a pin among the credentials, and there is neither")
	case !card:
		return errors.New("pin_with_card needs a card among the credentials, and there is none")
	case !pin:
		return errors.New("pin_with_card needs a pin among the credentials, and there is none")
	}
	return nil
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
