package agent

import (
	"time"

	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/roster"
)

// punchIn is one punch to decide: a credential read, and what the
// person keyed in around it at the reader.
type punchIn struct {
	rd reader.Read
	// mode overrides the reader's direction (a direction key).
	mode    string
	jobCode string
	// wrongPIN and lockedOut are the verdict on the second factor of a
	// card (pin_with_card).
	wrongPIN, lockedOut bool
}

// prompt is a badge waiting at its reader for the keys that complete it:
// a PIN (pin_with_card), then a job code (job_code readers). Key presses
// live only here until '#'.
type prompt struct {
	in       punchIn
	emp      *roster.Employee
	needPIN  bool
	needJob  bool
	digits   []byte
	deadline time.Time
}

// dirChoice is a direction key pressed at a "key" reader, good until.
type dirChoice struct {
	mode  string
	until time.Time
}

// maxPromptDigits bounds what a prompt keeps of the keys typed.
const maxPromptDigits = 16

// prepare turns a read into the punches it completes: a credential
// becomes a punch (or a prompt, when the person must type more), a key
// press feeds a prompt, a direction choice or a PIN entry. Only the
// writer calls it.
func (a *Agent) prepare(rd reader.Read) []punchIn {
	if rd.At.IsZero() {
		rd.At = a.opts.Now()
	}
	if rd.Type != reader.TypeKey {
		return a.badge(rd)
	}
	if owner, ok := a.keypadOf[rd.Reader]; ok {
		// A keypad beside a card reader: its keys are the card
		// reader's, while a badge there waits for keys or the reader
		// takes direction keys. Otherwise they are the keypad's own
		// (a PIN alone).
		o := a.readers[owner]
		if a.prompts[owner] != nil || o.cfg.Direction == config.DirKey && (rd.Value == o.cfg.InKey || rd.Value == o.cfg.OutKey) {
			rd.Reader = owner
		}
	}
	info := a.readers[rd.Reader]
	if info != nil && info.cfg.Direction == config.DirKey {
		switch rd.Value {
		case info.cfg.InKey:
			a.dirKeys[rd.Reader] = dirChoice{punch.ModeIn, rd.At.Add(info.cfg.KeyTimeout.Duration)}
			return nil
		case info.cfg.OutKey:
			a.dirKeys[rd.Reader] = dirChoice{punch.ModeOut, rd.At.Add(info.cfg.KeyTimeout.Duration)}
			return nil
		}
	}
	if p := a.prompts[rd.Reader]; p != nil {
		return a.promptKey(p, rd)
	}
	out, isPIN, failed := a.pins.key(rd)
	if failed {
		a.log.Info("pin entry discarded", "reader", rd.Reader)
		a.show(rd.Reader, punch.Event{Reader: rd.Reader, Decision: punch.Denied, Reason: punch.ReasonUnknownCredential}, nil)
	}
	if !isPIN {
		return nil
	}
	return a.badge(out)
}

// badge starts the punch of a credential read: at once, or as a prompt
// for a PIN or a job code. A prompt still waiting at the reader is given
// up first (see giveUp).
func (a *Agent) badge(rd reader.Read) []punchIn {
	var out []punchIn
	if old := a.prompts[rd.Reader]; old != nil {
		delete(a.prompts, rd.Reader)
		out = append(out, a.giveUp(old))
	}
	in := punchIn{rd: rd}
	info := a.readers[rd.Reader]
	if info == nil {
		return append(out, in)
	}
	if c, ok := a.dirKeys[rd.Reader]; ok {
		delete(a.dirKeys, rd.Reader)
		if rd.At.Before(c.until) {
			in.mode = c.mode
		}
	}
	emp, _ := a.idx.Load().Find(rd.Type, rd.Format, rd.Value)
	if emp == nil {
		return append(out, in)
	}
	p := &prompt{
		in:      in,
		emp:     emp,
		needPIN: emp.PinWithCard && rd.Type == reader.TypeCard,
		needJob: info.cfg.JobCode && info.cfg.Role != config.RoleAccess && len(emp.JobCodes) > 0,
	}
	if !p.needPIN && !p.needJob {
		return append(out, in)
	}
	p.deadline = rd.At.Add(info.cfg.PINTimeout.Duration)
	a.prompts[rd.Reader] = p
	a.log.Debug("badge waits for keys", "reader", rd.Reader, "pin", p.needPIN, "job_code", p.needJob)
	return out
}

// promptKey feeds a key press to the prompt at its reader: digits are
// kept, '*' clears them, '#' completes the PIN or the job code.
func (a *Agent) promptKey(p *prompt, rd reader.Read) []punchIn {
	switch v := rd.Value; {
	case v == "*":
		p.digits = p.digits[:0]
		return nil
	case len(v) == 1 && v[0] >= '0' && v[0] <= '9':
		if len(p.digits) < maxPromptDigits {
			p.digits = append(p.digits, v[0])
		}
		return nil
	case v != "#":
		return nil
	}
	typed := string(p.digits)
	clear(p.digits)
	p.digits = p.digits[:0]
	info := a.readers[rd.Reader]
	if p.needPIN {
		p.needPIN = false
		holder, _ := a.idx.Load().Find(roster.PIN, "", a.pins.hash(typed))
		right := holder != nil && holder.ID == p.emp.ID
		switch locked := a.pins.judge(rd.Reader, rd.At, right); {
		case locked:
			p.in.lockedOut = true
		case !right:
			p.in.wrongPIN = true
		case p.needJob:
			p.deadline = rd.At.Add(info.cfg.PINTimeout.Duration)
			return nil // the job code comes next
		}
		delete(a.prompts, rd.Reader)
		return []punchIn{p.in}
	}
	if typed != "" && !p.emp.HasJobCode(typed) {
		// Refused on the spot, not stored: the person may type again.
		a.log.Info("unknown job code", "reader", rd.Reader, "employee", p.emp.ID)
		a.show(rd.Reader, punch.Event{Reader: rd.Reader, EmployeeID: p.emp.ID, Decision: punch.Denied, Reason: punch.ReasonUnknownJobCode}, nil)
		p.deadline = rd.At.Add(info.cfg.PINTimeout.Duration)
		return nil
	}
	p.in.jobCode = typed
	delete(a.prompts, rd.Reader)
	return []punchIn{p.in}
}

// giveUp decides a badge whose keys did not come (in time, or before the
// next badge at the reader): a missing PIN is a wrong one; a missing job
// code is none. The badge is never dropped.
func (a *Agent) giveUp(p *prompt) punchIn {
	if p.needPIN {
		p.in.wrongPIN = true
	}
	clear(p.digits)
	return p.in
}

// expirePrompts gives up the prompts past their deadline at now (every
// prompt when now is zero).
func (a *Agent) expirePrompts(now time.Time) []punchIn {
	var out []punchIn
	for name, p := range a.prompts {
		if now.IsZero() || !now.Before(p.deadline) {
			delete(a.prompts, name)
			out = append(out, a.giveUp(p))
		}
	}
	return out
}

// nextPromptDeadline is the earliest deadline of a waiting prompt.
func (a *Agent) nextPromptDeadline() (time.Time, bool) {
	var first time.Time
	for _, p := range a.prompts {
		if first.IsZero() || p.deadline.Before(first) {
			first = p.deadline
		}
	}
	return first, !first.IsZero()
}
