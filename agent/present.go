package agent

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/roster"
	"github.com/punchclock/punchclock/store"
)

// Present is who is clocked in right now, per department: the roll call
// of an evacuation. It is read from the device's own store (the open
// entries) and roster, so it works offline.
type Present struct {
	At          time.Time           `json:"at"`
	Total       int                 `json:"total"`
	Departments []PresentDepartment `json:"departments"`
}

// PresentDepartment is one department's people, by entry time.
type PresentDepartment struct {
	Name   string          `json:"name"` // "" for people without one
	People []PresentPerson `json:"people"`
}

// PresentPerson is one person clocked in.
type PresentPerson struct {
	EmployeeID string    `json:"employee_id"`
	Name       string    `json:"name,omitempty"` // empty when the roster no longer knows them
	PayrollNo  string    `json:"payroll_no,omitempty"`
	Since      time.Time `json:"since"`
	Reader     string    `json:"reader"`
}

// presentOf builds the roll call from the open entries and the roster
// (nil: none). The roster's department is used; an entry of someone the
// roster no longer knows keeps the department it was opened under.
func presentOf(idx *roster.Index, open map[string]*punch.Open, at time.Time, loc *time.Location) Present {
	byDept := map[string][]PresentPerson{}
	for id, o := range open {
		p := PresentPerson{EmployeeID: id, PayrollNo: o.PayrollNo, Since: o.At.In(loc), Reader: o.Reader}
		dept := o.Department
		if e := idx.Employee(id); e != nil {
			p.Name, p.PayrollNo, dept = e.Name, e.PayrollNo, e.Department
		}
		byDept[dept] = append(byDept[dept], p)
	}
	out := Present{At: at.In(loc), Total: len(open), Departments: []PresentDepartment{}}
	for name, people := range byDept {
		slices.SortFunc(people, func(x, y PresentPerson) int {
			return cmp.Or(x.Since.Compare(y.Since), cmp.Compare(x.EmployeeID, y.EmployeeID))
		})
		out.Departments = append(out.Departments, PresentDepartment{Name: name, People: people})
	}
	slices.SortFunc(out.Departments, func(x, y PresentDepartment) int { return cmp.Compare(x.Name, y.Name) })
	return out
}

// Present is who the running agent holds clocked in now.
func (a *Agent) Present() (Present, error) {
	open, err := a.db.OpenEntries()
	if err != nil {
		return Present{}, fmt.Errorf("agent: present: %w", err)
	}
	return presentOf(a.idx.Load(), open, a.opts.Now(), a.cfg.Location), nil
}

// presentFromStore builds the roll call from a store (read-only when no
// agent runs).
func presentFromStore(db *store.DB, now time.Time, loc *time.Location) (Present, error) {
	r, err := db.Roster()
	if err != nil {
		return Present{}, fmt.Errorf("agent: present: %w", err)
	}
	open, err := db.OpenEntries()
	if err != nil {
		return Present{}, fmt.Errorf("agent: present: %w", err)
	}
	var idx *roster.Index
	if r != nil {
		idx = roster.NewIndex(r)
	}
	return presentOf(idx, open, now, loc), nil
}

// ControlPresent answers the control socket's "present" request: the
// roll call, or a control error.
func (a *Agent) ControlPresent() any {
	p, err := a.Present()
	if err != nil {
		return controlError(err)
	}
	return p
}

// QueryPresent asks the agent of cfg who is clocked in, over the control
// socket ("present"); when no agent answers, it reads the database opened
// read-only, like QueryStatus.
func QueryPresent(cfg *config.Config, now time.Time) (Present, error) {
	var p Present
	err := ask(cfg, "present", &p)
	if !errors.Is(err, ErrNotRunning) {
		return p, err
	}
	db, err := store.Open(cfg.DataDir, store.Options{ReadOnly: true, DeviceID: cfg.DeviceID, Timeout: 2 * time.Second})
	if err != nil {
		return p, fmt.Errorf("agent: no agent answers on %s and %w", SocketPath(cfg), err)
	}
	defer db.Close()
	return presentFromStore(db, now, cfg.Location)
}
