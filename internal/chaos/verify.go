package chaos

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/testbroker"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/store"
)

// Figures are what a scenario measured.
type Figures struct {
	Scenario string
	Cycles   int // kills, cuts or broker restarts
	Connects int // uplink connections the agent made ("uplink: connected")
	Badged   int // frames written to the readers
	Reported int // decisions the agent logged ("msg=punch")
	Decided  int // events in the final `punchclock log`
	Accepted int // of which accepted
	Shifts   int // shifts in the final log
	// Delivered is the number of distinct record ids (events and shifts)
	// the consumer received; Received counts messages before dedupe.
	Delivered, Received int
	// Lost: records reported or in the log that the consumer never got,
	// plus reported decisions missing from the log.
	Lost int
	// DupBefore is Received - Delivered (resends, expected); DupAfter
	// counts records that arrived under two ids (a shift paired twice):
	// duplicates dedupe by id cannot remove.
	DupBefore, DupAfter int
}

func (f Figures) String() string {
	return fmt.Sprintf("chaos %s: cycles %d, connects %d, badged %d, reported %d, decided %d, accepted %d, shifts %d, delivered %d (received %d), lost %d, duplicates before dedupe %d, after %d",
		f.Scenario, f.Cycles, f.Connects, f.Badged, f.Reported, f.Decided, f.Accepted, f.Shifts, f.Delivered, f.Received, f.Lost, f.DupBefore, f.DupAfter)
}

// Print logs the figures and prints them as one line on stdout (`go test
// -v` and `make chaos` show them).
func (f Figures) Print(t testing.TB) {
	t.Log(f.String())
	fmt.Println(f.String())
}

// Settle brings the running terminal to rest and checks the result. It
// waits until the outbox is empty and the consumer has every record of the
// agent's log, stops the agent with SIGTERM, runs bbolt's Check, reads
// the log again from the stopped database, and verifies with Verify.
func Settle(t testing.TB, tm *Terminal, sub *testbroker.Subscriber, timeout time.Duration, f *Figures) {
	t.Helper()
	tm.WaitDrained(timeout)
	live := tm.Log()
	want := map[string]bool{}
	for _, e := range live {
		want[entryID(e)] = true
	}
	waitAll(t, sub, timeout, want, "the agent's log")
	tm.Stop()
	tm.CheckDB()
	final := tm.Log()
	if len(final) > len(live) {
		// As it stops, the agent stores the unknown reads it folded and
		// has not accounted for yet (flood.Drain): they go out at its
		// next start. Anything else is a record the stop made up.
		for _, e := range final {
			if id := entryID(e); !want[id] {
				if e.Event == nil || e.Event.Reason != punch.ReasonUnknownCredential {
					t.Errorf("chaos: the stop added %s, which is no folded unknown read", id)
				}
				want[id] = true
			}
		}
		tm.Start()
		tm.WaitDrained(timeout)
		waitAll(t, sub, timeout, want, "the log, with those stored at the stop")
		tm.Stop()
		tm.CheckDB()
		live, final = final, tm.Log()
	}
	if len(final) != len(live) {
		t.Errorf("chaos: the stopped agent's log has %d entries, the running agent's had %d", len(final), len(live))
	}
	f.Connects = tm.Connects()
	Verify(t, tm.Reported(), final, sub.Messages(), tm.Status().OpenEntries, f)
}

// waitAll waits until the consumer holds every record of want.
func waitAll(t testing.TB, sub *testbroker.Subscriber, timeout time.Duration, want map[string]bool, what string) {
	t.Helper()
	sub.WaitUntil(t, timeout, fmt.Sprintf("the %d records of %s", len(want), what), func(ms []testbroker.Message) bool {
		got := map[string]bool{}
		for _, m := range ms {
			if id := messageID(m); want[id] {
				got[id] = true
			}
		}
		return len(got) == len(want)
	})
}

func entryID(e store.LogEntry) string {
	if e.Event != nil {
		return e.Event.ID
	}
	return e.Shift.ID
}

// messageID is the id of an events or shifts message, "" for others.
func messageID(m testbroker.Message) string {
	if !strings.HasSuffix(m.Topic, "/events") && !strings.HasSuffix(m.Topic, "/shifts") {
		return ""
	}
	var r struct{ ID string }
	if json.Unmarshal(m.Payload, &r) != nil {
		return ""
	}
	return r.ID
}

// Verify checks the agent's promises against what the consumer received
// and fills in f's counts:
//   - every reported decision is in the log, with the same decision;
//   - every record of the log reached the consumer, with its content;
//   - the consumer received nothing the log does not have;
//   - each shift pairs an accepted in with a later accepted out of the
//     same employee, and no event is paired into two shifts;
//   - each accepted "in" is closed by one shift or is one of the
//     openEntries the store still holds.
func Verify(t testing.TB, reported map[string]Reported, log []store.LogEntry, msgs []testbroker.Message, openEntries int, f *Figures) {
	t.Helper()
	events := map[string]*punch.Event{}
	shifts := map[string]*punch.Shift{}
	for _, e := range log {
		switch {
		case e.Event != nil:
			events[e.Event.ID] = e.Event
			f.Decided++
			if e.Event.Decision == punch.Accepted {
				f.Accepted++
			}
		case e.Shift != nil:
			shifts[e.Shift.ID] = e.Shift
			f.Shifts++
		}
	}
	f.Reported = len(reported)
	var lost []string
	for id, r := range reported {
		ev, ok := events[id]
		if !ok {
			lost = append(lost, id+" (reported, not in the log)")
			continue
		}
		if ev.Decision != r.Decision || ev.Reader != r.Reader || ev.EmployeeID != r.Employee {
			t.Errorf("chaos: %s reported as %+v, logged as %+v", id, r, *ev)
		}
	}

	// What arrived, by id; a resend must carry the same record.
	delivered := map[string][]byte{}
	for _, m := range msgs {
		id := messageID(m)
		if id == "" {
			continue
		}
		f.Received++
		canon := canonical(t, m)
		if prev, ok := delivered[id]; ok && string(prev) != string(canon) {
			t.Errorf("chaos: %s arrived with two contents:\n%s\n%s", id, prev, canon)
		}
		delivered[id] = canon
	}
	f.Delivered = len(delivered)
	f.DupBefore = f.Received - f.Delivered
	for id, ev := range events {
		got, ok := delivered[id]
		if !ok {
			lost = append(lost, id+" (event in the log, never delivered)")
			continue
		}
		if want := mustJSON(t, ev); string(got) != string(want) {
			t.Errorf("chaos: event %s delivered as %s, logged as %s", id, got, want)
		}
	}
	for id, sh := range shifts {
		got, ok := delivered[id]
		if !ok {
			lost = append(lost, id+" (shift in the log, never delivered)")
			continue
		}
		if want := mustJSON(t, sh); string(got) != string(want) {
			t.Errorf("chaos: shift %s delivered as %s, logged as %s", id, got, want)
		}
	}
	for id := range delivered {
		if events[id] == nil && shifts[id] == nil {
			t.Errorf("chaos: the consumer received %s, which is not in the agent's log", id)
		}
	}
	f.Lost = len(lost)
	if len(lost) > 0 {
		sort.Strings(lost)
		t.Errorf("chaos: %d records lost:\n  %s", len(lost), strings.Join(lost, "\n  "))
	}

	// Pairing: each event in at most one shift, in then out.
	paired := map[string]string{}
	for id, sh := range shifts {
		for _, side := range []struct {
			ev, dir string
		}{{sh.InEvent, punch.In}, {sh.OutEvent, punch.Out}} {
			if other, dup := paired[side.ev]; dup {
				f.DupAfter++
				t.Errorf("chaos: event %s is in shifts %s and %s", side.ev, other, id)
			}
			paired[side.ev] = id
			ev := events[side.ev]
			if ev == nil || ev.Decision != punch.Accepted || ev.Direction != side.dir || ev.EmployeeID != sh.EmployeeID {
				t.Errorf("chaos: shift %s names %s event %s, which is %+v", id, side.dir, side.ev, ev)
			}
		}
	}
	openIns := 0
	for id, ev := range events {
		if ev.Decision == punch.Accepted && ev.Direction == punch.In && paired[id] == "" {
			openIns++
		}
	}
	if openIns != openEntries {
		t.Errorf("chaos: %d accepted entries have no shift, the store holds %d open entries", openIns, openEntries)
	}
}

// canonical re-encodes a message's record so that equal records compare
// equal as bytes.
func canonical(t testing.TB, m testbroker.Message) []byte {
	t.Helper()
	if strings.HasSuffix(m.Topic, "/events") {
		var ev punch.Event
		if err := json.Unmarshal(m.Payload, &ev); err != nil {
			t.Fatalf("chaos: event payload %s: %v", m.Payload, err)
		}
		return mustJSON(t, &ev)
	}
	var sh punch.Shift
	if err := json.Unmarshal(m.Payload, &sh); err != nil {
		t.Fatalf("chaos: shift payload %s: %v", m.Payload, err)
	}
	return mustJSON(t, &sh)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
