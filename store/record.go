package store

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/punchclock/punchclock/punch"
)

// entry is one recorded punch as journaled and as held until applied:
// its event, the shift it completes, and the open entry it creates or
// closes. Sequences are assigned when it is recorded; the JSON of the
// event and the shift is final: it is what is published, byte for byte,
// on every send.
type entry struct {
	EmployeeID string          `json:"emp,omitempty"`
	At         int64           `json:"at"`           // unix ms of the punch
	EventSeq   uint64          `json:"es,omitempty"` // 0: no event (a shift alone)
	Event      json.RawMessage `json:"ev,omitempty"`
	Close      bool            `json:"close,omitempty"`
	Open       *punch.Open     `json:"open,omitempty"`
	ShiftSeq   uint64          `json:"ss,omitempty"`
	Shift      json.RawMessage `json:"sh,omitempty"`
	// Unsynced lists the seqs of its records stamped on an unsynced
	// clock and neither amended nor settled yet (amend.go).
	Unsynced []uint64 `json:"uns,omitempty"`
	// EventAt and ShiftAt are a record's time once amended while
	// pending (unix ms); 0: At.
	EventAt int64 `json:"eat,omitempty"`
	ShiftAt int64 `json:"sat,omitempty"`

	// An entry of one of these forms records no punch but a change to
	// earlier records (amend.go). An agent that knows neither reads it
	// as an entry with nothing in it, and ignores it.
	Amend  *amendment `json:"amend,omitempty"`
	Settle []uint64   `json:"settle,omitempty"`
}

// recRef is one record of an entry.
type recRef struct {
	seq     uint64
	kind    byte
	at      int64 // unix ms
	payload []byte
}

func (e *entry) records() []recRef {
	var rs []recRef
	if e.EventSeq != 0 {
		rs = append(rs, recRef{e.EventSeq, KindEvent, cmp.Or(e.EventAt, e.At), e.Event})
	}
	if e.Shift != nil {
		rs = append(rs, recRef{e.ShiftSeq, KindShift, cmp.Or(e.ShiftAt, e.At), e.Shift})
	}
	return rs
}

func (r recRef) time() time.Time { return time.UnixMilli(r.at) }

// A stored record, in bucket rec under its seq:
//
//	byte 0     kind: 'e' event, 's' shift
//	byte 1     codec: 0 raw, 1 deflate with the database's dictionary
//	bytes 2-9  time of the punch, unix ms, big endian (retention and the
//	           log read it without decoding the payload)
//	bytes 10-  the payload, as published, in that codec
const recHeader = 10

func (db *DB) encodeRecord(kind byte, at int64, payload []byte) []byte {
	body, codec := payload, byte(codecRaw)
	if db.codec != nil {
		if z := db.codec.compress(payload); z != nil {
			body, codec = z, codecDeflate
		}
	}
	v := make([]byte, recHeader+len(body))
	v[0], v[1] = kind, codec
	binary.BigEndian.PutUint64(v[2:], uint64(at))
	copy(v[recHeader:], body)
	return v
}

// storedRec is a decoded stored record.
type storedRec struct {
	seq   uint64
	kind  byte
	codec byte
	at    time.Time
	body  []byte // aliases bbolt's memory: valid inside the transaction
}

func decodeRecord(seq uint64, v []byte) (storedRec, error) {
	if len(v) < recHeader || (v[0] != KindEvent && v[0] != KindShift) || v[1] > codecDeflate {
		return storedRec{}, fmt.Errorf("%w: record %d", ErrCorrupt, seq)
	}
	return storedRec{
		seq:   seq,
		kind:  v[0],
		codec: v[1],
		at:    recTime(v),
		body:  v[recHeader:],
	}, nil
}

func recTime(v []byte) time.Time { return time.UnixMilli(int64(binary.BigEndian.Uint64(v[2:]))) }

// payload returns the record's payload as first published, in memory of
// its own.
func (db *DB) payload(r storedRec) ([]byte, error) {
	if r.codec == codecRaw {
		return append([]byte(nil), r.body...), nil
	}
	if db.codec == nil {
		return nil, fmt.Errorf("%w: record %d is compressed and the database has no dictionary", ErrCorrupt, r.seq)
	}
	return db.codec.decompress(r.seq, r.body)
}

func getRecord(tx *bolt.Tx, seq uint64) (storedRec, error) {
	v := tx.Bucket(bRec).Get(u64(seq))
	if v == nil {
		return storedRec{}, fmt.Errorf("%w: record %d", ErrUnknownID, seq)
	}
	return decodeRecord(seq, v)
}

// Delivery states a pending record can reach before it is applied.
const (
	stNone = iota // unsent
	stSent        // PUBACKed, waiting for a connector (connector mode)
	stDone        // delivered (broker mode) or confirmed
	stDead        // dead letter
)

type early struct {
	state  int
	at     time.Time
	reason string
	source string
}

// DeadLetter is a record a connector rejected or the broker would not
// take, with the reason.
type DeadLetter struct {
	ID   string `json:"id"`
	Kind string `json:"kind"` // "event" or "shift"
	// Error is the connector's words, or the uplink's reason.
	Error string    `json:"error"`
	At    time.Time `json:"at"`
	// Source is "connector" (an ack with ok:false) or "uplink" (the
	// broker would not take it).
	Source string `json:"source"`
	// Record is the record as it was first published.
	Record json.RawMessage `json:"record"`
}

// deadValue is what the dead bucket keeps under a record's seq.
type deadValue struct {
	Error  string    `json:"error"`
	At     time.Time `json:"at"`
	Source string    `json:"source"`
}

func kindName(k byte) string {
	if k == KindShift {
		return "shift"
	}
	return "event"
}
