package store

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/punchclock/punchclock/clock"
)

// kClockRef is the meta key of the clock's reference: the first synced
// stamp of the boot, so that an agent restarted in the same boot knows
// the clock was set even if the kernel no longer says so.
var kClockRef = []byte("clock_ref")

// ClockRef returns the stored clock reference; ok is false when none is.
func (db *DB) ClockRef() (ref clock.Stamp, ok bool, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bMeta).Get(kClockRef)
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &ref)
	})
	if err != nil {
		return clock.Stamp{}, false, fmt.Errorf("store: clock reference: %w", err)
	}
	return ref, ok, nil
}

// SetClockRef stores the clock's reference.
func (db *DB) SetClockRef(ref clock.Stamp) error {
	return db.putMetaJSON(kClockRef, ref)
}
