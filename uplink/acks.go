package uplink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// An Ack is a connector's verdict on one record, received on
// {prefix}/{device_id}/acks: OK when the record reached its destination,
// else Error holds the server's words (possibly empty: the connector gave
// none).
type Ack struct {
	ID    string `json:"id"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Bounds on what an ack may carry.
const (
	// MaxAckError bounds Ack.Error; longer text is cut at a character
	// boundary and ends in truncatedMark.
	MaxAckError = 1 << 10
	// maxAckID bounds Ack.ID: record ids are short ("door-1-3f9c0a12-e7").
	maxAckID = 256
)

const truncatedMark = "…[truncated]"

// ErrAck wraps every error ParseAcks returns.
var ErrAck = errors.New("uplink: malformed ack")

// ParseAcks decodes an acks message: one ack {"id":"…","ok":true} or
// {"id":"…","ok":false,"error":"…"}, or a batch {"acks":[{…},{…}]}.
// An ack needs a non-empty id (at most 256 bytes) and an explicit ok;
// ok:false without an error is valid (Error stays empty); the error of an
// ok:true ack is dropped. Fields other than these are ignored.
//
// It returns every valid ack, in message order, and an error (wrapping
// ErrAck) describing what it had to skip: a message that is not JSON or
// not an object yields no acks, a batch entry that is bad is skipped while
// the others are kept. Both results can be non-empty.
func ParseAcks(payload []byte) ([]Ack, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(payload, &top); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAck, err)
	}
	raw, batch := top["acks"]
	if !batch {
		a, err := parseAck(top)
		if err != nil {
			return nil, err
		}
		return []Ack{a}, nil
	}
	if _, ok := top["id"]; ok {
		return nil, fmt.Errorf("%w: both \"id\" and \"acks\"", ErrAck)
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("%w: \"acks\" is not an array: %v", ErrAck, err)
	}
	acks := make([]Ack, 0, len(entries))
	var errs []error
	for i, e := range entries {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(e, &obj); err != nil {
			errs = append(errs, fmt.Errorf("%w: acks[%d]: %v", ErrAck, i, err))
			continue
		}
		a, err := parseAck(obj)
		if err != nil {
			errs = append(errs, fmt.Errorf("acks[%d]: %w", i, err))
			continue
		}
		acks = append(acks, a)
	}
	return acks, errors.Join(errs...)
}

func parseAck(obj map[string]json.RawMessage) (Ack, error) {
	var a Ack
	if obj == nil { // the JSON null
		return a, fmt.Errorf("%w: null", ErrAck)
	}
	rawID, ok := obj["id"]
	if !ok {
		return a, fmt.Errorf("%w: no \"id\"", ErrAck)
	}
	if err := json.Unmarshal(rawID, &a.ID); err != nil || isNull(rawID) {
		return a, fmt.Errorf("%w: \"id\" is not a string", ErrAck)
	}
	if a.ID == "" || len(a.ID) > maxAckID {
		return a, fmt.Errorf("%w: \"id\" must hold 1 to %d bytes, has %d", ErrAck, maxAckID, len(a.ID))
	}
	rawOK, ok := obj["ok"]
	if !ok {
		return a, fmt.Errorf("%w: %q has no \"ok\"", ErrAck, a.ID)
	}
	if err := json.Unmarshal(rawOK, &a.OK); err != nil || isNull(rawOK) {
		return a, fmt.Errorf("%w: %q: \"ok\" is not true or false", ErrAck, a.ID)
	}
	if a.OK {
		return a, nil
	}
	if rawErr, ok := obj["error"]; ok && !isNull(rawErr) {
		if err := json.Unmarshal(rawErr, &a.Error); err != nil {
			return Ack{}, fmt.Errorf("%w: %q: \"error\" is not a string", ErrAck, a.ID)
		}
		a.Error = truncate(a.Error, MaxAckError)
	}
	return a, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// truncate cuts s to at most max bytes, at a character boundary, ending in
// truncatedMark when it cut anything.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	n := max - len(truncatedMark)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + truncatedMark
}
