package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CommandRetention is how long the id of an executed remote command is
// kept with its reply: a command redelivered within it gets the original
// reply again and is not executed again.
const CommandRetention = 7 * 24 * time.Hour

// MaxCommandID bounds a command id kept in the store (bbolt keys are at
// most 32 KiB; ids are short).
const MaxCommandID = 256

// ErrCommandID is returned for an empty or over-long command id.
var ErrCommandID = errors.New("store: command id empty or longer than 256 bytes")

// CommandReply returns the reply kept for an executed command id, and
// whether there is one.
func (db *DB) CommandReply(id string) ([]byte, bool, error) {
	if id == "" || len(id) > MaxCommandID {
		return nil, false, ErrCommandID
	}
	var reply []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bCmds)
		if b == nil {
			return nil // a read-only database from before commands
		}
		v := b.Get([]byte(id))
		if v == nil {
			return nil
		}
		if len(v) < 8 {
			return fmt.Errorf("%w: command %q", ErrCorrupt, id)
		}
		reply = append([]byte(nil), v[8:]...)
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: command %q: %w", id, err)
	}
	return reply, reply != nil, nil
}

// PutCommandReply keeps an executed command's id with its reply and the
// time it was executed, durably.
func (db *DB) PutCommandReply(id string, reply []byte, at time.Time) error {
	if db.opts.ReadOnly {
		return ErrReadOnly
	}
	if id == "" || len(id) > MaxCommandID {
		return ErrCommandID
	}
	v := make([]byte, 8, 8+len(reply))
	binary.BigEndian.PutUint64(v, uint64(at.UnixMilli()))
	v = append(v, reply...)
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bCmds)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), v)
	})
	if err != nil {
		return fmt.Errorf("store: command %q: %w", id, err)
	}
	return nil
}

// pruneCommands deletes the command ids executed more than
// CommandRetention before now. The bucket holds a week of commands, a
// few hundred at most: it is scanned whole.
func (db *DB) pruneCommands(now time.Time) (int, error) {
	horizon := now.Add(-CommandRetention).UnixMilli()
	var n int
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bCmds)
		if b == nil {
			return nil
		}
		var del [][]byte
		err := b.ForEach(func(k, v []byte) error {
			if len(v) < 8 || int64(binary.BigEndian.Uint64(v)) < horizon {
				del = append(del, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range del {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(del)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune commands: %w", err)
	}
	return n, nil
}

// RosterRequest is the last roster request the agent published.
type RosterRequest struct {
	ID     string    `json:"id"`
	Reason string    `json:"reason"` // "daily", "sync" or "start"
	At     time.Time `json:"at"`
}

// RosterUpdate is the last roster received over MQTT and what became of
// it: Error is empty when it was taken into use.
type RosterUpdate struct {
	At      time.Time `json:"at"`
	Version int64     `json:"version"`
	Error   string    `json:"error,omitempty"`
}

// Meta keys of the roster refresh.
var (
	kLastRosterRequest = []byte("last_roster_request")
	kLastRosterUpdate  = []byte("last_roster_update")
)

// SetRosterRequest records the last roster request published.
func (db *DB) SetRosterRequest(r RosterRequest) error {
	return db.putMetaJSON(kLastRosterRequest, r)
}

// SetRosterUpdate records the last roster received over MQTT.
func (db *DB) SetRosterUpdate(u RosterUpdate) error {
	return db.putMetaJSON(kLastRosterUpdate, u)
}

func (db *DB) putMetaJSON(k []byte, v any) error {
	if db.opts.ReadOnly {
		return ErrReadOnly
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: %s: %w", k, err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put(k, b) })
	if err != nil {
		return fmt.Errorf("store: %s: %w", k, err)
	}
	return nil
}

// rosterRefresh reads the last roster request and update from the meta
// bucket for Status; a value that does not decode is left out.
func rosterRefresh(m *bolt.Bucket) (req *RosterRequest, upd *RosterUpdate) {
	if v := m.Get(kLastRosterRequest); v != nil {
		var r RosterRequest
		if json.Unmarshal(v, &r) == nil {
			req = &r
		}
	}
	if v := m.Get(kLastRosterUpdate); v != nil {
		var u RosterUpdate
		if json.Unmarshal(v, &u) == nil {
			upd = &u
		}
	}
	return req, upd
}
