package agent

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/roster"
	"github.com/punchclock/punchclock/store"
)

var (
	errRosterSame     = errors.New("roster is the one in use")
	errRosterNotNewer = errors.New("roster version is not newer than the one in use")
)

// acceptRoster is the version rule: a roster replaces the one in use only
// if its version is higher.
func acceptRoster(cur int64, r *roster.Roster, _ time.Time) error {
	if r.Version <= cur {
		return fmt.Errorf("%w: offered %d, in use %d", errRosterNotNewer, r.Version, cur)
	}
	return nil
}

// rosterIndex finds employees by credential, in memory.
type rosterIndex struct {
	version int64
	byKey   map[string]*roster.Employee
	byID    map[string]*roster.Employee
}

func newRosterIndex(r *roster.Roster) *rosterIndex {
	x := &rosterIndex{version: r.Version, byKey: map[string]*roster.Employee{}, byID: make(map[string]*roster.Employee, len(r.Employees))}
	for i := range r.Employees {
		e := &r.Employees[i]
		x.byID[e.ID] = e
		for _, c := range e.Credentials {
			x.byKey[roster.Key(c.Type, c.Value)] = e
		}
	}
	return x
}

// Lookup finds the holder of a credential as a reader sends it; a card is
// found under its hex and its decimal form.
func (x *rosterIndex) Lookup(typ, value string) *roster.Employee {
	if x == nil {
		return nil
	}
	keys := []string{roster.Key(typ, value)}
	if typ == roster.Card {
		keys = roster.CardKeys(value)
	}
	for _, k := range keys {
		if e := x.byKey[k]; e != nil {
			return e
		}
	}
	return nil
}

// Version is the roster's version, 0 without a roster.
func (x *rosterIndex) Version() int64 {
	if x == nil {
		return 0
	}
	return x.version
}

// mailbox holds the newest value put and not yet taken.
type mailbox struct {
	mu     sync.Mutex
	latest []byte
	ready  chan struct{} // 1-buffered; made by New
}

// put replaces what waits, never blocking.
func (m *mailbox) put(b []byte) {
	m.mu.Lock()
	m.latest = b
	m.mu.Unlock()
	select {
	case m.ready <- struct{}{}:
	default:
	}
}

func (m *mailbox) take() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.latest
	m.latest = nil
	return b
}

// storeOptions maps the configuration to the store's options.
func storeOptions(cfg *config.Config, now func() time.Time) store.Options {
	return store.Options{
		DeviceID:     cfg.DeviceID,
		Confirm:      cfg.Delivery.Confirm,
		ResendAfter:  cfg.Delivery.ResendUnconfirmed.Duration,
		Retention:    cfg.Storage.Retention.Duration,
		MaxDataBytes: int64(cfg.Storage.MaxDataMB) << 20,
		Now:          now,
	}
}
