package device

import (
	"log/slog"

	"github.com/punchclock/punchclock/punch"
)

// Feedback shows punch decisions on a Signaler: accepted → Accept, denied
// → Deny, a punch the terminal could not keep (storage_full, store_error)
// → Fault. It has the method set of agent.Feedback without importing the
// agent. One Feedback serves every reader of the terminal.
type Feedback struct {
	signal Signaler
	log    *slog.Logger
}

// NewFeedback returns a Feedback signalling on s. Pin errors go to log
// (Show has no caller to return them to); nil log: silent.
func NewFeedback(s Signaler, log *slog.Logger) *Feedback {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Feedback{signal: s, log: log}
}

// Show signals ev's decision. It does not block: the signal runs on
// timers. Other decisions are ignored.
func (f *Feedback) Show(readerName string, ev punch.Event) {
	var err error
	switch {
	case ev.Reason == punch.ReasonStorageFull || ev.Reason == punch.ReasonStoreError:
		err = f.signal.Fault()
	case ev.Decision == punch.Accepted:
		err = f.signal.Accept()
	case ev.Decision == punch.Denied:
		err = f.signal.Deny()
	default:
		return
	}
	if err != nil {
		f.log.Error("feedback", "reader", readerName, "decision", ev.Decision, "err", err)
	}
}
