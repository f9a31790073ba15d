package roster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"unicode/utf8"
)

// A card credential's value V (normalised: ten hex digits) matches a read
// R (ten hex digits from a reader) when Key(Card, V) is one of
// CardKeys(R): V is R itself, or V is the ten-digit decimal of R's last
// four bytes. So V matches
//
//   - the one read R = V (every normalised V is also ten hex digits), and
//   - if V is all decimal digits and its number n is below 2^32, every
//     read whose last four bytes are n, whatever its first byte.
//
// The checker keeps these sets as numbers: a read as its 40-bit value, a
// decimal credential as the 32-bit n it stands for.

type typedValue struct{ typ, value string }

// ref names credentials[cred] of employees[emp].
type ref struct{ emp, cred int32 }

var noRef = ref{-1, -1}

type checker struct {
	exact map[uint64]ref     // V as a read (40 bits) -> first holder
	wild  map[uint32]ref     // n of a decimal V -> first holder
	byID  map[uint32]ref     // last four bytes of V as a read -> first holder
	other map[typedValue]ref // pins and fingerprints
}

func newChecker(n int) *checker {
	return &checker{
		exact: make(map[uint64]ref, n),
		wild:  make(map[uint32]ref, n),
		byID:  make(map[uint32]ref, n),
		other: make(map[typedValue]ref, n),
	}
}

// add records normalised credential v of type typ held by at, and reports
// a credential of another employee that some read would match too. The
// credentials of one employee never clash with each other.
//
// Each pair of credentials is judged when the later one is added, so one
// holder per key suffices: employees are added one after the other, and
// a key whose first holder is the employee being added was not held by
// any earlier one.
func (c *checker) add(typ, v string, at ref) (other ref, why string, clash bool) {
	if typ != Card {
		k := typedValue{typ, v}
		if o, ok := c.other[k]; ok {
			if o.emp != at.emp {
				return o, fmt.Sprintf("this %s is also held by", typ), true
			}
			return noRef, "", false
		}
		c.other[k] = at
		return noRef, "", false
	}
	if k, ok := otherCardKey(v); ok {
		// A UID or a Wiegand number: only the same value clashes (a
		// 26-bit number that is also part of an EM card is decided per
		// read: Index.Find says it is ambiguous).
		if o, ok := c.other[k]; ok {
			if o.emp != at.emp {
				return o, "this card is also held by", true
			}
			return noRef, "", false
		}
		c.other[k] = at
		return noRef, "", false
	}
	read, _ := hex40(v)
	id := uint32(read)
	n, isDec := decimal32(v)
	if o, ok := c.exact[read]; ok && o.emp != at.emp {
		return o, "this card is also held by", true
	}
	if o, ok := c.wild[id]; ok && o.emp != at.emp {
		return o, "the last four bytes of this card are the decimal card number of", true
	}
	if isDec {
		if o, ok := c.byID[n]; ok && o.emp != at.emp {
			return o, "this decimal card number is the last four bytes of the card of", true
		}
		if _, ok := c.wild[n]; !ok {
			c.wild[n] = at
		}
	}
	if _, ok := c.exact[read]; !ok {
		c.exact[read] = at
	}
	if _, ok := c.byID[id]; !ok {
		c.byID[id] = at
	}
	return noRef, "", false
}

// otherCardKey is the checker's key of a canonical card value that is not
// an EM card.
func otherCardKey(v string) (typedValue, bool) {
	if u, ok := uidKey(v); ok {
		return typedValue{"uid", u}, true
	}
	if _, _, ok := facilityCard(v); ok {
		return typedValue{"wiegand", v}, true
	}
	return typedValue{}, false
}

// hex40 returns the value of ten hex digits (either case).
func hex40(s string) (uint64, bool) {
	if len(s) != 10 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	return v, true
}

// decimal32 returns the number written by ten decimal digits if it is
// below 2^32, the range of a card's four ID bytes.
func decimal32(s string) (uint32, bool) {
	if len(s) != 10 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	if v > math.MaxUint32 {
		return 0, false
	}
	return uint32(v), true
}

// decimalAsHex40 returns the 40-bit value of the ten hex digits that
// spell n as ten decimal digits: the key under which a decimal card
// credential for n is found among reads (see hex40).
func decimalAsHex40(n uint32) uint64 {
	var v uint64
	for shift := 0; shift < 40; shift += 4 {
		v |= uint64(n%10) << shift
		n /= 10
	}
	return v
}

// invalidUTF8 returns the offset of the first byte that is not valid
// UTF-8, or -1.
func invalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

// loneSurrogate returns the offset of the first \u escape that is a UTF-16
// surrogate without its partner (the decoder would turn it into U+FFFD),
// or -1. Outside strings a backslash is a syntax error the decoder
// reports, so the scan need not know where strings are.
func loneSurrogate(b []byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if i+1 < len(b) && b[i+1] == 'u' {
			u, ok := hex4(b, i+2)
			switch {
			case !ok || u < 0xD800 || u > 0xDFFF:
			case u >= 0xDC00:
				return i
			default: // a high surrogate needs a low one right after it
				lo, ok := hex4(b, i+8)
				if !ok || b[i+6] != '\\' || b[i+7] != 'u' || lo < 0xDC00 || lo > 0xDFFF {
					return i
				}
				i += 6
			}
		}
		i++ // skip the escaped character: \\ must not start a new escape
	}
	return -1
}

func hex4(b []byte, at int) (uint16, bool) {
	if at < 0 || at+4 > len(b) {
		return 0, false
	}
	v, ok := hex40("000000" + string(b[at:at+4]))
	return uint16(v), ok
}

// decodeError rewrites a decoder error so that it names the place and
// the kind of value expected, and never a value from the document: the
// decoder's own messages can quote a character or a number.
func decodeError(b []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: empty document", ErrInvalid)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: the document ends in the middle of the roster object", ErrInvalid)
	case errors.As(err, &se):
		msg := se.Error()
		if at := int(se.Offset) - 1; at >= 0 && at < len(b) && isAlnum(b[at]) {
			// "invalid character '4' after ...": the character may be a
			// digit of an unquoted PIN or card.
			if k := strings.Index(msg, "' "); k >= 0 && strings.HasPrefix(msg, "invalid character '") {
				msg = "unexpected letter or digit " + msg[k+2:]
			} else {
				msg = "unexpected letter or digit"
			}
		}
		return fmt.Errorf("%w: malformed JSON at byte %d: %s", ErrInvalid, se.Offset, msg)
	case errors.As(err, &te):
		got, literal, _ := strings.Cut(te.Value, " ")
		if te.Field == "version" {
			if literal != "" {
				// The number was not an int64: a fraction, an exponent,
				// or too big. A version is no secret: show it.
				return fmt.Errorf("%w: at byte %d: version must be an integer from 1 to 2^53-1 written without fraction or exponent (like 42 or 20260301), got %s", ErrInvalid, te.Offset, literal)
			}
			return fmt.Errorf("%w: at byte %d: version must be a JSON number, not a JSON %s", ErrInvalid, te.Offset, got)
		}
		field := te.Field
		if field == "" {
			field = "the roster"
		}
		return fmt.Errorf("%w: at byte %d: %s must be a JSON %s, not a JSON %s", ErrInvalid, te.Offset, field, jsonKind(te.Type), got)
	default:
		// Unknown fields ("json: unknown field \"employes\""), named by
		// their key.
		return fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), "json: "))
	}
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	default:
		return "object"
	}
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// isTypeName reports whether s looks like a credential type word (and so
// is safe to quote in an error) rather than a misplaced value.
func isTypeName(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}
