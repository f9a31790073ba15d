package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"syscall"

	"github.com/punchclock/punchclock/punch"
)

// Append records decided punches: each one's event, the open entry it
// creates or closes, and the shift it completes. It assigns their ids and
// device id (filling them into outs, and the new open entry's EventID),
// and returns once they are durable (journaled and fdatasynced). On error
// nothing of outs is kept; when the store cannot take more, the error
// wraps ErrFull.
//
// Append reads nothing from bbolt and calls nothing of its caller's: the
// caller decides from its own memory (roster index, open entries).
func (db *DB) Append(outs []*punch.Outcome) error {
	if len(outs) == 0 {
		return nil
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	switch {
	case db.opts.ReadOnly:
		return ErrReadOnly
	case db.closed:
		return ErrClosed
	}
	db.mu.RLock()
	full, unapplied := db.full, len(db.pending)
	db.mu.RUnlock()
	if full != nil {
		poke(db.kick) // what is pending goes to bbolt now
		return full
	}
	if unapplied >= db.opts.MaxUnapplied {
		poke(db.kick)
		return fmt.Errorf("%w: %d punches wait for the database (%v)", ErrFull, unapplied, db.applyErrLocked())
	}
	next := db.next
	batch := make([]*entry, len(outs))
	// The entry events opened in this batch: an exit decided in the same
	// batch was paired before its entry had an id.
	opened := map[string]string{}
	for i, out := range outs {
		if sh := out.Shift; sh != nil && sh.InEvent == "" {
			sh.InEvent = opened[out.Employee()]
		}
		e, err := db.newEntry(out, &next)
		if err != nil {
			return err
		}
		if out.NewOpen != nil {
			opened[out.Employee()] = out.NewOpen.EventID
		}
		batch[i] = e
	}
	if db.jnl != nil {
		payload, err := json.Marshal(batch)
		if err != nil {
			return fmt.Errorf("store: encode journal record: %w", err)
		}
		seq, err := db.jnl.append(payload)
		if err != nil {
			// The record may be in the file all the same: its journal
			// seq and record sequences stay used, so that no later
			// punch takes them (and, after a crash, their ids).
			db.mu.Lock()
			db.next = next
			db.mu.Unlock()
			return fullIfNoSpace(err)
		}
		db.journalSeq = seq
	}
	prev := db.next
	first := db.stage(batch)
	if db.jnl == nil {
		if err := db.applyAll(); err != nil {
			// Nothing of a failed Append is kept.
			db.mu.Lock()
			db.pending, db.next = nil, prev
			db.overlay = map[string]*punch.Open{}
			db.mu.Unlock()
			return fullIfNoSpace(err)
		}
		return nil
	}
	// The punches are durable in the journal; the applier moves them to
	// bbolt without holding up the next punch.
	if first {
		poke(db.wake)
	}
	if len(db.pending) >= db.opts.MaxPending {
		poke(db.kick)
	}
	return nil
}

func (db *DB) applyErrLocked() error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.applyErr
}

// fullIfNoSpace makes a disk-full error an ErrFull.
func fullIfNoSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	return err
}

// newEntry assigns the ids of one outcome and encodes it. An outcome
// without an event is filed at its shift's end (a shift closed by
// max_shift), or, with no shift either, at its new open entry's time: an
// open entry re-dated after the clock synced, which replaces the
// employee's and keeps the EventID the caller gave it.
func (db *DB) newEntry(out *punch.Outcome, next *uint64) (*entry, error) {
	ev := &out.Event
	e := &entry{EmployeeID: out.Employee()}
	var err error
	switch {
	case out.NoEvent && out.Shift == nil && out.NewOpen == nil:
		return nil, fmt.Errorf("store: an outcome with neither event, shift nor open entry")
	case out.NoEvent && out.Shift == nil:
		// An open entry amended (re-dated once the clock synced).
		if e.EmployeeID == "" {
			return nil, fmt.Errorf("store: an open entry without an event names no employee")
		}
		e.At = out.NewOpen.At.UnixMilli()
	case out.NoEvent:
		e.At = out.Shift.Out.UnixMilli()
	default:
		*next++
		e.At, e.EventSeq = ev.At.UnixMilli(), *next
		ev.DeviceID = db.deviceID
		ev.ID = db.recordID(KindEvent, e.EventSeq)
		if e.Event, err = json.Marshal(ev); err != nil {
			return nil, fmt.Errorf("store: encode event: %w", err)
		}
	}
	e.Close = out.CloseOpen
	if o := out.NewOpen; o != nil {
		if !out.NoEvent {
			o.EventID = ev.ID
		}
		e.Open = o
	}
	if sh := out.Shift; sh != nil {
		*next++
		e.ShiftSeq = *next
		sh.ID = db.recordID(KindShift, e.ShiftSeq)
		sh.DeviceID = db.deviceID
		if sh.OutReader != "" {
			// The punch is the shift's exit (a shift closed by
			// max_shift or by a second arrival has none).
			sh.OutEvent = ev.ID
		}
		if e.Shift, err = json.Marshal(sh); err != nil {
			return nil, fmt.Errorf("store: encode shift: %w", err)
		}
	}
	if out.Unsynced {
		for _, seq := range []uint64{e.EventSeq, e.ShiftSeq} {
			if seq != 0 {
				e.Unsynced = append(e.Unsynced, seq)
			}
		}
	}
	return e, nil
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
