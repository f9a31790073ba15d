package device

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"

	"github.com/punchclock/punchclock/punch"
)

// FeedbackOptions configure a Feedback.
type FeedbackOptions struct {
	// Shared signals for every reader not in Readers (the terminal's
	// [feedback]). Nil: those readers show nothing.
	Shared Signaler
	// Readers maps a reader's name to its own Signaler.
	Readers map[string]Signaler
	// Doors names the readers that open a door (role access or both):
	// only their granted punches unlock a relay.
	Doors map[string]bool
	// Logger receives pin errors (Show has no caller to return them to).
	// Nil: silent.
	Logger *slog.Logger
}

// Feedback shows punch decisions at the reader that took them, on the
// reader's own Signaler or the shared one; the package comment has the
// table of what each outcome shows. It has the method set of
// agent.Feedback without importing the agent.
type Feedback struct {
	shared  Signaler
	readers map[string]Signaler
	doors   map[string]bool
	log     *slog.Logger
}

// NewFeedback returns a Feedback. It keeps copies of the maps.
func NewFeedback(o FeedbackOptions) *Feedback {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Feedback{shared: o.Shared, readers: maps.Clone(o.Readers), doors: maps.Clone(o.Doors), log: o.Logger}
}

// Show signals ev's decision at readerName. It does not block: the signal
// runs on timers. An event with neither decision nor a fault reason shows
// no pattern, but still unlocks a door whose access it grants.
func (f *Feedback) Show(readerName string, ev punch.Event) {
	s := f.readers[readerName]
	if s == nil {
		s = f.shared
	}
	if s == nil {
		return
	}
	var errs []error
	// The door first: it is what keeps a person waiting.
	if f.doors[readerName] && ev.Access == punch.AccessGranted {
		errs = append(errs, s.Unlock())
	}
	if pt, ok := patternOf(ev); ok {
		errs = append(errs, s.Signal(pt))
	}
	if err := errors.Join(errs...); err != nil {
		f.log.Error("feedback", "reader", readerName, "decision", ev.Decision, "reason", ev.Reason, "err", err)
	}
}

// Open pulses the door relay at readerName, for the remote open command.
// A reader that is no door (role access or both), or that has no panel,
// is an error: nothing opens.
func (f *Feedback) Open(readerName string) error {
	if !f.doors[readerName] {
		return fmt.Errorf("device: reader %q is not a door (role access or both)", readerName)
	}
	s := f.readers[readerName]
	if s == nil {
		s = f.shared
	}
	if s == nil {
		return fmt.Errorf("device: no door relay at reader %q", readerName)
	}
	return s.Unlock()
}

// patternOf is the pattern that shows ev (see the package comment); false
// for an event with no decision to show.
func patternOf(ev punch.Event) (Pattern, bool) {
	switch {
	case ev.Reason == punch.ReasonStorageFull:
		return PatternFull, true
	case ev.Reason == punch.ReasonStoreError:
		return PatternFault, true
	case ev.Decision == punch.Accepted && ev.Direction == punch.Out:
		return PatternOut, true
	case ev.Decision == punch.Accepted:
		return PatternIn, true
	case ev.Decision == punch.Denied:
		return PatternDeny, true
	}
	return 0, false
}
