package agent

import (
	"errors"
	"sync"
	"time"

	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/store"
)

var errRosterSame = errors.New("roster is the one in use")

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
