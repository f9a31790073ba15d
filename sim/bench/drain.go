package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// drain buffers Backlog shifts in a store (as if the broker had been
// unreachable), measures a bare paho publisher with the same payloads on
// the same broker, then starts the agent and times it from its start
// (connect) to an empty outbox, every row deleted, with a subscriber
// attached in both cases.
func (r *run) drain(ctx context.Context) error {
	dir := filepath.Join(r.dir, "drain")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	ros, err := makeRoster(r.opts.Roster)
	if err != nil {
		return err
	}
	pre, err := prefill(filepath.Join(dir, "data"), ros, 2*r.opts.Backlog, r.opts.PrefillChunk, true)
	if err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	r.logf("prefilled %d shifts (%d punches) in %v", pre.Shifts, pre.Punches, pre.Took.Round(time.Millisecond))
	payloads, err := peekPayloads(filepath.Join(dir, "data"), 1000)
	if err != nil {
		return err
	}
	if err := r.barePaho(ctx, payloads); err != nil {
		return err
	}

	sub, err := newSubscriber(r.broker.URL(), "bench-drain-sub", topicPrefix+"/"+deviceID+"/shifts", 0)
	if err != nil {
		return err
	}
	defer sub.close()
	began := time.Now()
	s, err := startSite(dir, r.broker.URL(), 0, nil)
	if err != nil {
		return err
	}
	defer s.stop()
	if err := s.waitIdle(ctx, 5*time.Millisecond, 5*time.Minute); err != nil {
		return err
	}
	took := time.Since(began)
	if err := sub.waitCount(ctx, int64(pre.Shifts), time.Minute); err != nil {
		return err
	}
	if err := s.stop(); err != nil {
		return err
	}
	rate := float64(pre.Shifts) / took.Seconds()
	ratio := rate / r.bareRate
	r.rep.add(Row{
		Figure:   fmt.Sprintf("backlog drain: %d buffered shifts → mosquitto, rows deleted", pre.Shifts),
		Measured: perSec(rate),
		Limit:    "bare paho QoS 1, window 64 " + perSec(r.bareRate),
		Ratio:    fmt.Sprintf("%.2f×", ratio),
		Goal:     "≥ 0.3× bare paho",
		Pass:     ratio >= 0.3,
		Bound:    "the uplink's peek/publish/remove cycle; see docs/performance.md",
	})
	r.logf("drained %d shifts in %v: %s (subscriber got %d)", pre.Shifts, took.Round(time.Millisecond), perSec(rate), sub.n.Load())
	r.rep.note("backlog prefill: %d shifts (%d punches, events already delivered) stored in %v", pre.Shifts, pre.Punches, pre.Took.Round(time.Millisecond))
	return nil
}
