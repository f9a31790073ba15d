package uplink

import (
	"math"
	"time"
)

// When a drain counts as a backlog worth progress lines.
const (
	backlogRows   = 1000             // pending when a session starts
	slowDrain     = 10 * time.Second // or draining this long
	progressEvery = 10 * time.Second
)

// progress follows one drain of the outbox (from the first publish after
// it was empty to empty again, across reconnects) and says when a
// progress line is due. It only computes; the uplink logs. Times come from
// the caller.
type progress struct {
	busy     bool // a drain is under way
	backlog  bool // and it is a backlog: progress lines are logged
	began    time.Time
	last     time.Time // of the last line (or began)
	sent     int       // rows Sent since began
	lastSent int       // sent at the last line
}

// session notes a session's start with pending rows in the outbox.
func (p *progress) session(now time.Time, pending int) {
	if pending > backlogRows {
		p.publishing(now)
		p.backlog = true
	}
}

// publishing notes that rows are being published; it begins a drain if
// none is under way.
func (p *progress) publishing(now time.Time) {
	if p.busy {
		return
	}
	*p = progress{busy: true, began: now, last: now}
}

func (p *progress) acked(n int) { p.sent += n }

// due reports whether a progress line is due at now.
func (p *progress) due(now time.Time) bool {
	if !p.busy {
		return false
	}
	if !p.backlog && now.Sub(p.began) >= slowDrain {
		p.backlog = true
	}
	return p.backlog && now.Sub(p.last) >= progressEvery
}

// line returns the attributes of a progress line at now with left rows
// pending (negative: unknown): rows sent so far, the rate since the last
// line, rows left and the time left at that rate.
func (p *progress) line(now time.Time, left int) []any {
	rate := float64(p.sent-p.lastSent) / now.Sub(p.last).Seconds()
	p.last, p.lastSent = now, p.sent
	attrs := []any{"sent", p.sent, "rate_per_s", round1(rate)}
	switch {
	case left < 0:
		attrs = append(attrs, "left", "unknown", "eta", "unknown")
	case rate > 0:
		eta := time.Duration(float64(left) / rate * float64(time.Second))
		attrs = append(attrs, "left", left, "eta", eta.Round(time.Second))
	default:
		attrs = append(attrs, "left", left, "eta", "unknown")
	}
	return attrs
}

// drained ends the drain at now. It returns the attributes of the closing
// line, and whether there is one (only after a backlog).
func (p *progress) drained(now time.Time) ([]any, bool) {
	was := p.busy && p.backlog
	took := now.Sub(p.began)
	sent := p.sent
	*p = progress{}
	if !was {
		return nil, false
	}
	rate := 0.0
	if took > 0 {
		rate = float64(sent) / took.Seconds()
	}
	return []any{"sent", sent, "took", took.Round(time.Millisecond), "rate_per_s", round1(rate)}, true
}

func round1(f float64) float64 {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return 0
	}
	return math.Round(f*10) / 10
}
