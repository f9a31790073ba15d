// Package reader defines what every credential reader driver delivers to
// the agent: a Read, one per presentation of a credential. Drivers live in
// sub-packages (reader/rdm6300, ...); each keeps its wire framing in a pure
// function apart from the port I/O. Readers know nothing of decisions,
// storage or MQTT.
package reader

import (
	"context"
	"errors"
	"time"
)

// Credential types a Read can carry. They match the "type" of roster
// credentials.
const (
	TypeCard        = "card"
	TypePIN         = "pin"
	TypeFingerprint = "fingerprint"
)

// A Read is one presentation of one credential at one reader.
type Read struct {
	Reader string    // configured reader name, e.g. "front"
	Type   string    // TypeCard, TypePIN, ...
	Value  string    // canonical value: for EM4100 cards ten upper-case hex digits
	At     time.Time // when the last byte of the credential arrived
}

// A Reader delivers Reads until its context is cancelled. Run owns every
// goroutine it starts and returns only after they have stopped. A reader
// whose port fails keeps retrying (with backoff) rather than returning: Run
// returns nil when ctx is done, or an error only for a configuration that
// can never work.
type Reader interface {
	Name() string
	Run(ctx context.Context, out chan<- Read) error
}

// Stats are counters a driver keeps for technicians.
type Stats struct {
	Frames    uint64 // good frames decoded
	Reads     uint64 // presentations reported (repeats folded)
	BadFrames uint64 // frames rejected (checksum, bad digits, wrong length)
	Garbage   uint64 // bytes discarded while resynchronising
	Reopens   uint64 // times the port was (re)opened after a failure
}

// ErrBadFrame is wrapped by framing errors.
var ErrBadFrame = errors.New("reader: bad frame")
