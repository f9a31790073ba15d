package bench

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/roster"
	"github.com/punchclock/punchclock/store"
)

const (
	deviceID    = "bench-1"
	topicPrefix = "bench"
	timezone    = "Europe/Amsterdam"
)

// card is employee i's badge: ten hex digits, as the reader sends them.
func card(i int) string { return fmt.Sprintf("0A%08X", i) }

// makeRoster returns a validated roster of n employees, one card each.
func makeRoster(n int) (*roster.Roster, error) {
	r := &roster.Roster{Version: 1, Employees: make([]roster.Employee, n)}
	depts := []string{"Brugsestraat", "Magazijn", "Kassa", "Bakkerij", "Logistiek"}
	for i := range r.Employees {
		r.Employees[i] = roster.Employee{
			ID:          fmt.Sprintf("E%05d", i),
			Name:        fmt.Sprintf("Employee %d", i),
			PayrollNo:   fmt.Sprintf("%06d", 100000+i),
			Department:  depts[i%len(depts)],
			ValidFrom:   "2025-01-01",
			Credentials: []roster.Credential{{Type: roster.Card, Value: card(i)}},
		}
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// openPrefill opens a store for bulk loading (no fsync, no journal) in
// dir, with ros as its roster, and the site's location.
func openPrefill(dir string, ros *roster.Roster) (*store.DB, *time.Location, error) {
	loc, err := time.LoadLocation(timezone)
	if err != nil {
		return nil, nil, err
	}
	db, err := store.Open(dir, store.Options{DeviceID: deviceID, NoSync: true, NoJournal: true})
	if err != nil {
		return nil, nil, err
	}
	if err := db.ReplaceRoster(ros); err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, loc, nil
}

// reopen closes a bulk-loaded store and opens it once the way the agent
// will (with fsync), so that what is measured next starts from there.
func reopen(db *store.DB, dir string) error {
	if err := db.Close(); err != nil {
		return err
	}
	db2, err := store.Open(dir, store.Options{DeviceID: deviceID})
	if err != nil {
		return err
	}
	return db2.Close()
}

// prefillResult is what a prefill stored.
type prefillResult struct {
	Punches, Shifts int
	Took            time.Duration
	// PayloadPerPunch is the JSON of events and shifts per punch: the
	// data itself, without any index or page overhead.
	PayloadPerPunch float64
}

// prefill stores the roster and then punches punches, as the agent would
// decide them (punch.Decide, store.Append), in Append calls of chunk
// punches with fsync and the journal off (each call one bbolt
// transaction); the database is then closed and opened again normally. Each employee in turn badges in and, eight hours later, out,
// so punches/2 shifts are completed. With shiftsOnly, the events' outbox
// rows are removed afterwards (as if delivered before the outage), so
// that only shifts are buffered.
func prefill(dir string, ros *roster.Roster, punches, chunk int, shiftsOnly bool) (prefillResult, error) {
	began := time.Now()
	res := prefillResult{}
	db, loc, err := openPrefill(dir, ros)
	if err != nil {
		return res, err
	}
	defer func() {
		if db != nil {
			db.Close()
		}
	}()
	emps := ros.Employees
	open := make(map[int]*punch.Open, len(emps))
	day0 := time.Date(2026, 1, 5, 8, 0, 0, 0, loc)
	var payload, sampled int
	for done := 0; done < punches; {
		n := min(chunk, punches-done)
		outs := make([]punch.Outcome, n)
		ptrs := make([]*punch.Outcome, n)
		err := func() error {
			for j := range n {
				i := done + j
				e := i / 2 % len(emps)       // employee
				round := i / (2 * len(emps)) // how often everyone has worked
				at := day0.AddDate(0, 0, round).Add(time.Duration(e%600) * time.Second)
				if i%2 == 1 {
					at = at.Add(8*time.Hour + 30*time.Minute)
				}
				outs[j] = punch.Decide(punch.Input{
					Reader: "front", Mode: punch.ModeToggle, CredType: roster.Card, CredVal: card(e),
					At: at, ClockSynced: true, Employee: &emps[e], Open: open[e],
				})
				out := &outs[j]
				ptrs[j] = out
				if out.NewOpen != nil {
					open[e] = out.NewOpen
				}
				if out.CloseOpen {
					delete(open, e)
				}
				if out.Shift != nil {
					res.Shifts++
				}
				if sampled < 1000 {
					sampled++
					b, _ := json.Marshal(out.Event)
					payload += len(b)
					if out.Shift != nil {
						b, _ = json.Marshal(out.Shift)
						payload += len(b)
					}
				}
			}
			return db.Append(ptrs)
		}()
		if err != nil {
			return res, err
		}
		done += n
		res.Punches = done
	}
	res.PayloadPerPunch = float64(payload) / float64(sampled)
	if shiftsOnly {
		if err := dropEvents(db); err != nil {
			return res, err
		}
	}
	err = reopen(db, dir)
	db = nil
	if err != nil {
		return res, err
	}
	res.Took = time.Since(began)
	return res, nil
}

// dropEvents removes the events' rows from the outbox.
func dropEvents(db *store.DB) error {
	var after uint64
	for {
		rows, err := db.Peek(after, 20000)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		var seqs []uint64
		for _, r := range rows {
			if r.Kind == store.KindEvent {
				seqs = append(seqs, r.Seq)
			}
		}
		if err := db.Sent(seqs, time.Now()); err != nil {
			return err
		}
		after = rows[len(rows)-1].Seq
	}
}

// peekPayloads returns up to n payloads from the outbox of the store in dir.
func peekPayloads(dir string, n int) ([][]byte, error) {
	db, err := store.Open(dir, store.Options{DeviceID: deviceID})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.Peek(0, n)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(rows))
	for i, r := range rows {
		out[i] = r.Payload
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no payloads in %s", dir)
	}
	return out, nil
}
