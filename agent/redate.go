package agent

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/punchclock/punchclock/clock"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/store"
)

// redate re-dates the stored records stamped before the clock synced in
// this boot, from ref: each is published again under its id with the
// corrected time, flagged clock_corrected. Records of an earlier boot
// can never be re-dated: they leave the index as they are, flagged
// clock_unsynced. It returns how many were re-dated.
func (a *Agent) redate(ref clock.Stamp) (int, error) {
	var amends []store.Amendment
	var settle []string
	err := a.db.Unsynced(func(r store.Record) error {
		payload, at, ok, err := a.redateRecord(r, ref)
		switch {
		case err != nil:
			// A record this agent cannot read is left as it was.
			a.log.Error("record stamped on an unsynced clock not re-dated", "id", r.ID, "err", err)
			settle = append(settle, r.ID)
		case ok:
			amends = append(amends, store.Amendment{ID: r.ID, Payload: payload, At: at})
		default:
			settle = append(settle, r.ID)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := a.db.AmendAll(amends); err != nil {
		return 0, err
	}
	if err := a.db.Settle(settle); err != nil {
		return 0, err
	}
	if len(amends) > 0 && a.up != nil {
		a.up.Notify()
	}
	return len(amends), nil
}

// redateRecord is the corrected payload of one record and its time;
// ok is false when nothing of it can be corrected.
func (a *Agent) redateRecord(r store.Record, ref clock.Stamp) (payload []byte, at time.Time, ok bool, err error) {
	fix := func(st clock.Stamp) (clock.Stamp, bool) {
		t, ok := clock.Correct(st, ref)
		if !ok {
			return st, false
		}
		st.Wall, st.Synced = t, true
		return st, true
	}
	local := func(t time.Time) time.Time { return t.In(a.cfg.Location).Round(0).Truncate(time.Millisecond) }
	switch r.Kind {
	case store.KindEvent:
		var ev punch.Event
		if err := json.Unmarshal(r.Payload, &ev); err != nil {
			return nil, time.Time{}, false, fmt.Errorf("event %s: %w", r.ID, err)
		}
		if ev.Clock == nil {
			return nil, time.Time{}, false, nil
		}
		st, ok := fix(*ev.Clock)
		if !ok {
			return nil, time.Time{}, false, nil
		}
		ev.At, ev.Clock = local(st.Wall), nil
		ev.Flags = punch.Redated(ev.Flags, true)
		b, err := json.Marshal(ev)
		return b, ev.At, err == nil, err
	case store.KindShift:
		var sh punch.Shift
		if err := json.Unmarshal(r.Payload, &sh); err != nil {
			return nil, time.Time{}, false, fmt.Errorf("shift %s: %w", r.ID, err)
		}
		if sh.Clock == nil {
			return nil, time.Time{}, false, nil
		}
		in, inOK := fix(sh.Clock.In)
		out, outOK := fix(sh.Clock.Out)
		if !inOK && !outOK {
			return nil, time.Time{}, false, nil
		}
		if inOK {
			sh.In = local(in.Wall)
		}
		if outOK {
			sh.Out = local(out.Wall)
		}
		if d, ok := clock.Elapsed(in, out); ok {
			sh.DurationS = int64(d / time.Second)
			if sh.Out.Before(sh.In) {
				sh.Out = sh.In.Add(d)
			}
		}
		settled := in.Synced && out.Synced
		sh.Clock = &punch.ShiftClock{In: in, Out: out}
		if settled {
			sh.Clock = nil
		}
		sh.Flags = punch.Redated(sh.Flags, settled)
		b, err := json.Marshal(sh)
		return b, sh.Out, err == nil, err
	}
	return nil, time.Time{}, false, nil
}
