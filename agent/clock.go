package agent

import (
	"fmt"
	"time"

	"github.com/punchclock/punchclock/clock"
	"github.com/punchclock/punchclock/punch"
)

// setupClock builds the clock from the configuration (unless one was
// given), with the reference an earlier run of this boot stored.
func (a *Agent) setupClock() error {
	ref, _, err := a.db.ClockRef()
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.clk = a.opts.Clock
	if a.clk == nil {
		a.clk, err = clock.New(clock.Options{
			Source:    clock.Source(a.cfg.Clock.Source),
			Floor:     a.opts.ClockFloor,
			Wall:      a.opts.Now,
			Reference: ref,
		})
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	}
	if r, ok := a.clk.Reference(); ok && r.Boot == ref.Boot && r.Mono == ref.Mono && r.Wall.Equal(ref.Wall) {
		a.clockRef = true // stored by an earlier run of this boot
	}
	if !a.clk.Now().Synced {
		a.log.Warn("system clock not known to be set: punches are flagged clock_unsynced until it syncs", "source", a.clk.Source())
	}
	return nil
}

// stamp is the stamp of a read taken at wall time at (now when zero):
// the clock's stamp now, moved back to at along the monotonic clock.
func (a *Agent) stamp(at time.Time) clock.Stamp {
	st := a.clk.Now()
	if at.IsZero() {
		return st
	}
	at = at.Round(0)
	if d := st.Wall.Sub(at); d > 0 && st.Mono > d {
		st.Mono -= d
	}
	st.Wall = at
	return st
}

// timeUnknown reports whether the wall time of an unsynced stamp is
// known to be wrong: before the floor (a Pi that booted in 1970). The
// rules that depend on the date and the time of day then do not deny: an
// offline boot must not lock a site out. A clock past the floor but not
// synced (fake-hwclock restores the last saved time) runs behind at
// worst: the rules apply to it, and the punch is flagged.
func (a *Agent) timeUnknown(st clock.Stamp) bool {
	return !st.Synced && st.Wall.Before(a.opts.ClockFloor)
}

// clockSynced stores the clock's reference the first time it has one
// in this boot, and re-dates the open entries stamped before it. Only the
// writer calls it.
func (a *Agent) clockSynced() {
	if a.clockRef {
		return
	}
	a.clk.Now() // refreshes the sync state
	ref, ok := a.clk.Reference()
	if !ok {
		return
	}
	var outs []*punch.Outcome
	changed := map[string]*punch.Open{}
	for emp, o := range a.open {
		if o.Clock == nil {
			continue
		}
		t, ok := clock.Correct(*o.Clock, ref)
		if !ok {
			continue
		}
		n := *o
		n.At = t.In(a.cfg.Location).Round(0).Truncate(time.Millisecond)
		st := *o.Clock
		st.Wall, st.Synced = t, true
		n.Clock = &st
		n.Flags = punch.Redated(n.Flags, true)
		outs = append(outs, &punch.Outcome{NoEvent: true, NewOpen: &n})
		changed[emp] = &n
	}
	if len(outs) > 0 {
		if err := a.db.Append(outs); err != nil {
			a.log.Error("open entries taken before the clock synced not re-dated; tried again", "entries", len(outs), "err", err)
			return
		}
		a.applyOpen(changed)
	}
	// The records before the reference: a crash before it is stored
	// re-dates the rest at the next start (a re-dated record has left
	// the index).
	n, err := a.redate(ref)
	if err != nil {
		a.log.Error("records taken before the clock synced not re-dated; tried again", "err", err)
		return
	}
	if err := a.db.SetClockRef(ref); err != nil {
		a.log.Error("clock reference not stored", "err", err)
		return
	}
	a.clockRef = true
	a.log.Info("system clock synced", "at", ref.Wall.Format(time.RFC3339), "entries_redated", len(outs), "records_redated", n)
}
