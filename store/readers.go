package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ReaderState is whether a reader is enabled, as this device keeps it:
// set from the configuration at start, and changed at run time by a
// remote command. A reader the device never ran has none.
type ReaderState struct {
	Enabled bool `json:"enabled"`
	// By says what set it: "config", "new_readers" or "command".
	By string    `json:"by"`
	At time.Time `json:"at"`
	// FirstRun is when the device first ran the reader.
	FirstRun time.Time `json:"first_run"`
}

// ReaderStates returns the state of every reader the device has run.
func (db *DB) ReaderStates() (map[string]ReaderState, error) {
	out := map[string]ReaderState{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bReaders)
		if b == nil {
			return nil // a database from before reader states
		}
		return b.ForEach(func(k, v []byte) error {
			var st ReaderState
			if err := json.Unmarshal(v, &st); err != nil {
				return fmt.Errorf("%w: state of reader %q: %v", ErrCorrupt, k, err)
			}
			out[string(k)] = st
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: reader states: %w", err)
	}
	return out, nil
}

// SetReaderState records a reader's state, durably. A reader seen for the
// first time keeps at as its first run.
func (db *DB) SetReaderState(name string, enabled bool, by string, at time.Time) (ReaderState, error) {
	if db.opts.ReadOnly {
		return ReaderState{}, ErrReadOnly
	}
	var st ReaderState
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bReaders)
		if err != nil {
			return err
		}
		if v := b.Get([]byte(name)); v != nil {
			if err := json.Unmarshal(v, &st); err != nil {
				return fmt.Errorf("%w: state of reader %q: %v", ErrCorrupt, name, err)
			}
		} else {
			st.FirstRun = at.UTC()
		}
		st.Enabled, st.By, st.At = enabled, by, at.UTC()
		v, err := json.Marshal(st)
		if err != nil {
			return err
		}
		return b.Put([]byte(name), v)
	})
	if err != nil {
		return ReaderState{}, fmt.Errorf("store: reader %q state: %w", name, err)
	}
	return st, nil
}
