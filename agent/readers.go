package agent

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/roster"
	"github.com/punchclock/punchclock/store"
)

// readerInfo is one configured reader as the writer decides at it.
type readerInfo struct {
	cfg config.Reader
	// suspended is the reader's state in force (the store keeps it).
	suspended atomic.Bool
}

// addReaders records the configured readers, and which card reader each
// keypad types for.
func (a *Agent) addReaders(rs []config.Reader) {
	for _, r := range rs {
		a.readers[r.Name] = &readerInfo{cfg: r}
		if r.Keypad != "" {
			a.keypadOf[r.Keypad] = r.Name
		}
	}
}

// mode is the direction the reader asks for when nothing chose one.
func (r *readerInfo) mode() string {
	switch r.cfg.Direction {
	case config.DirIn:
		return punch.ModeIn
	case config.DirOut:
		return punch.ModeOut
	}
	return punch.ModeToggle
}

// policyOf is the pairing policy of the configuration.
func policyOf(p config.Pairing) punch.Policy {
	return punch.Policy{DoubleIn: p.DoubleIn, DoubleOut: p.DoubleOut, MaxShift: p.MaxShift.Duration, MinShift: p.MinShift.Duration}
}

// loadReaderStates sets each reader's state at start: an `enabled` key
// in the configuration wins; otherwise the state the store kept (a
// remote command may have changed it); a reader this device never ran
// starts as new_readers says. The state in force is stored.
func (a *Agent) loadReaderStates() error {
	kept, err := a.db.ReaderStates()
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	now := a.opts.Now()
	for name, r := range a.readers {
		st, known := kept[name]
		enabled, by := stateInForce(r.cfg, a.cfg.NewReaderState, st, known)
		if !known || st.Enabled != enabled {
			if _, err := a.db.SetReaderState(name, enabled, by, now); err != nil {
				return fmt.Errorf("agent: %w", err)
			}
		}
		r.suspended.Store(!enabled)
		if !enabled {
			a.log.Warn("reader suspended: its punches are denied reader_suspended", "reader", name, "by", by)
		}
	}
	return nil
}

// stateInForce is a reader's state at start: an `enabled` key in its
// configuration wins; otherwise the state the store kept (known); a
// reader the device never ran starts as new_readers says. by says which.
func stateInForce(rc config.Reader, newReaders string, st store.ReaderState, known bool) (enabled bool, by string) {
	switch {
	case rc.Enabled != nil:
		return *rc.Enabled, "config"
	case known:
		return st.Enabled, st.By
	case newReaders == config.NewReadersSuspended:
		return false, "new_readers"
	}
	return true, "config"
}

// SetReaderEnabled enables or suspends a reader at run time, durably.
func (a *Agent) SetReaderEnabled(name string, enabled bool, by string) error {
	r, ok := a.readers[name]
	if !ok {
		return fmt.Errorf("agent: no reader %q", name)
	}
	if _, err := a.db.SetReaderState(name, enabled, by, a.opts.Now()); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	r.suspended.Store(!enabled)
	a.log.Info("reader state set", "reader", name, "enabled", enabled, "by", by)
	if a.up != nil {
		a.up.PublishStatus()
	}
	return nil
}

// groupOf is the employee's access group in the index; nil (every
// reader, any time) when they have none.
func groupOf(idx *roster.Index, e *roster.Employee) punch.Group {
	if e == nil || e.AccessGroup == "" {
		return nil
	}
	if g := idx.Group(e.AccessGroup); g != nil {
		return g
	}
	// Validation makes every named group exist; were it missing, the
	// person is let through rather than locked out by a roster defect.
	return nil
}

// OpenEntry is an open entry shown in status.
type OpenEntry struct {
	Employee string    `json:"employee_id"`
	Since    time.Time `json:"since"`
	Reader   string    `json:"reader"`
}

// rosterIssues are what status shows an admin to fix in the roster: the
// employees without a payroll number (tamigo drops their clock data), and
// the open entries of people the roster no longer knows (closed by
// max_shift).
func rosterIssues(idx *roster.Index, open map[string]*punch.Open) (noPayroll []string, orphans []OpenEntry) {
	idx.Each(func(e *roster.Employee) {
		if e.PayrollNo == "" {
			noPayroll = append(noPayroll, e.ID)
		}
	})
	slices.Sort(noPayroll)
	for id, o := range open {
		if idx.Employee(id) == nil {
			orphans = append(orphans, OpenEntry{Employee: id, Since: o.At, Reader: o.Reader})
		}
	}
	slices.SortFunc(orphans, func(x, y OpenEntry) int { return x.Since.Compare(y.Since) })
	return noPayroll, orphans
}
