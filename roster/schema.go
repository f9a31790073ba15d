package roster

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrNewerSchema is wrapped, with ErrInvalid, by the error for a roster
// whose schema is above MaxSchema: a connector built it for a newer
// agent, and this one must be updated to read it.
var ErrNewerSchema = errors.New("roster: newer schema")

// newerSchemaError names the schema (as written) of a roster made for a
// newer agent.
type newerSchemaError struct{ schema string }

func (e *newerSchemaError) Error() string {
	return fmt.Sprintf("%v: roster schema %s is newer than this agent knows (1–%d): update the agent", ErrInvalid, e.schema, MaxSchema)
}

func (e *newerSchemaError) Is(target error) bool {
	return target == ErrInvalid || target == ErrNewerSchema
}

// schemaError checks a decoded schema: 0 (absent), or 1 to MaxSchema.
func schemaError(n int64) error {
	switch {
	case n < 0:
		return fmt.Errorf("%w: schema must be an integer from 1 to %d, got %d", ErrInvalid, MaxSchema, n)
	case n > MaxSchema:
		return &newerSchemaError{strconv.FormatInt(n, 10)}
	}
	return nil
}

// checkSchema reads the top-level "schema" of a roster document before
// anything else is decoded: a roster for a newer agent may hold fields
// this one does not know, and the strict decoding would reject it for
// those with no hint that the agent is too old. A document without one
// (or too malformed to find it) is left for the decoding to report, and
// Validate checks the decoded schema again.
func checkSchema(b []byte) error {
	v := topLevelValue(b, "schema")
	if v == nil {
		return nil
	}
	lit := string(v)
	switch c := lit[0]; {
	case c == '"':
		return fmt.Errorf("%w: schema must be a JSON integer, not a JSON string", ErrInvalid)
	case c == '{' || c == '[':
		return fmt.Errorf("%w: schema must be a JSON integer, not a JSON %s", ErrInvalid, map[byte]string{'{': "object", '[': "array"}[c])
	case c != '-' && (c < '0' || c > '9'):
		return fmt.Errorf("%w: schema must be a JSON integer, got %.8s", ErrInvalid, lit)
	case strings.ContainsAny(lit, ".eE"):
		return fmt.Errorf("%w: schema must be an integer written without fraction or exponent, got %.30s", ErrInvalid, lit)
	}
	n, err := strconv.ParseInt(lit, 10, 64)
	switch {
	case err != nil && lit[0] != '-' && isDigits(lit):
		return &newerSchemaError{fmt.Sprintf("%.30s", lit)} // beyond int64: newer still
	case err != nil || n < 1:
		return fmt.Errorf("%w: schema must be an integer from 1 to %d, got %.30s", ErrInvalid, MaxSchema, lit)
	}
	return schemaError(n)
}

// topLevelValue returns the start of the value of key in the JSON object
// b — a whole scalar, or the first byte of a string, object or array —
// or nil if b is not an object that has the key at its top level. It is
// a scan of the bytes, not a decoding: most rosters have no schema, and
// those are recognised at the speed of bytes.Contains.
func topLevelValue(b []byte, key string) []byte {
	if !bytes.Contains(b, []byte(`"`+key+`"`)) {
		return nil
	}
	depth := 0
	wantKey := false // at depth 1, the next string is a key
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{':
			depth++
			wantKey = depth == 1
		case '[':
			depth++
		case '}', ']':
			depth--
			if depth <= 0 {
				return nil
			}
		case ',':
			wantKey = depth == 1
		case '"':
			end := stringEnd(b, i)
			if end < 0 {
				return nil
			}
			isKey := wantKey && string(b[i+1:end]) == key
			wantKey = false
			i = end
			if !isKey {
				continue
			}
			j := skipSpace(b, end+1)
			if j >= len(b) || b[j] != ':' {
				return nil
			}
			j = skipSpace(b, j+1)
			if j >= len(b) {
				return nil
			}
			k := j
			if c := b[j]; c != '"' && c != '{' && c != '[' {
				for k < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[k])) {
					k++
				}
				return b[j:k]
			}
			return b[j : j+1]
		}
	}
	return nil
}

// stringEnd returns the index of the quote that closes the string
// opening at b[i], or -1.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
	return -1
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}
