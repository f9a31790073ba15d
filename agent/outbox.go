package agent

import (
	"time"

	"github.com/punchclock/punchclock/store"
	"github.com/punchclock/punchclock/uplink"
)

// outbox adapts the store to the uplink's queue.
type outbox struct {
	db  *store.DB
	now func() time.Time
}

var _ uplink.Outbox = outbox{}

func (o outbox) Peek(after uint64, max int) ([]uplink.Message, error) {
	rows, err := o.db.Peek(after, max)
	if err != nil {
		return nil, err
	}
	msgs := make([]uplink.Message, len(rows))
	for i, r := range rows {
		kind := uplink.KindEvents
		if r.Kind == store.KindShift {
			kind = uplink.KindShifts
		}
		msgs[i] = uplink.Message{Seq: r.Seq, Kind: kind, Payload: r.Payload}
	}
	return msgs, nil
}

func (o outbox) Sent(seqs []uint64) error { return o.db.Sent(seqs, o.now()) }

func (o outbox) Reject(seq uint64, reason string) error { return o.db.Reject(seq, reason, o.now()) }

func (o outbox) Pending() (int, error) {
	st, err := o.db.Status()
	return st.Pending, err
}
