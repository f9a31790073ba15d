package agent

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/punchclock/punchclock/clock"
	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/roster"
	"github.com/punchclock/punchclock/store"
)

// A Judge decides reads as the agent would — the same PIN entry,
// prompts, rules and pairing, from the stored roster, open entries and
// reader states — but stores nothing and changes nothing: `punchclock
// diag` shows a technician what each read would get. It is not safe for
// concurrent use.
type Judge struct {
	a *Agent
}

// NewJudge builds a judge of cfg's terminal from db, which may be open
// read-only.
func NewJudge(cfg *config.Config, db *store.DB) (*Judge, error) {
	a := &Agent{
		cfg:      cfg,
		readers:  map[string]*readerInfo{},
		prompts:  map[string]*prompt{},
		dirKeys:  map[string]dirChoice{},
		keypadOf: map[string]string{},
		judged:   map[judgedKey]bool{},
		policy:   policyOf(cfg.Pairing),
		opts:     Options{Config: cfg, ClockFloor: cfg.Clock.FloorTime},
	}
	a.opts.Now = time.Now
	a.log = slog.New(slog.DiscardHandler)
	a.addReaders(cfg.Readers)
	states, err := db.ReaderStates()
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	for name, r := range a.readers {
		st, known := states[name]
		enabled, _ := stateInForce(r.cfg, cfg.NewReaderState, st, known)
		r.suspended.Store(!enabled)
	}
	ros, err := db.Roster()
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.idx.Store(roster.NewIndex(ros))
	if a.open, err = db.OpenEntries(); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if a.pins, err = newPinPad(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	ref, _, err := db.ClockRef()
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if a.clk, err = clock.New(clock.Options{Source: clock.Source(cfg.Clock.Source), Floor: cfg.Clock.FloorTime, Reference: ref}); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return &Judge{a: a}, nil
}

// Decide takes one read and returns the decisions it completes (none
// for a key press that completes nothing), as the agent would make them
// now; nothing is stored, and the open entries stay as they are.
func (j *Judge) Decide(rd reader.Read) []punch.Outcome {
	var outs []punch.Outcome
	idx := j.a.idx.Load()
	clear(j.a.judged)
	for _, in := range j.a.prepare(rd) {
		closed, out := j.a.decide(idx, map[string]*punch.Open{}, in)
		if closed != nil {
			outs = append(outs, *closed)
		}
		outs = append(outs, out)
	}
	return outs
}

// Employee is the roster's employee of an id, nil if none.
func (j *Judge) Employee(id string) *roster.Employee { return j.a.idx.Load().Employee(id) }
