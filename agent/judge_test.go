package agent

import (
	"testing"
	"time"

	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/store"
)

// A judge decides as the agent would, from the store, and stores
// nothing.
func TestJudge(t *testing.T) {
	dir := t.TempDir()
	cfg := rulesConfig(t, dir, "", rdr("in", 0, "direction = \"in\"\n")+rdr("gate", 1, "enabled = false\n"))
	h := startAgent(t, cfg)
	h.badge("in", "0A00000001")
	h.d.wait(t, 1)
	h.stop()

	db, err := store.Open(cfg.DataDir, store.Options{ReadOnly: true, DeviceID: cfg.DeviceID})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before, _ := db.Status()
	j, err := NewJudge(cfg, db)
	if err != nil {
		t.Fatal(err)
	}
	card := func(r, v string) reader.Read {
		return reader.Read{Reader: r, Type: reader.TypeCard, Value: v, At: time.Now()}
	}
	for _, tc := range []struct {
		rd     reader.Read
		reason string
	}{
		{card("in", "0A00000001"), punch.ReasonDoubleIn}, // A1 is in
		{card("in", "0A00000001"), punch.ReasonDoubleIn}, // and stays in: nothing was stored
		{card("in", "0A00000004"), ""},
		{card("gate", "0A00000004"), punch.ReasonReaderSuspended},
		{card("in", "0AFFFFFFFF"), punch.ReasonUnknownCredential},
	} {
		outs := j.Decide(tc.rd)
		if len(outs) != 1 || outs[0].Event.Reason != tc.reason {
			t.Fatalf("%+v: %+v, want reason %q", tc.rd, outs, tc.reason)
		}
	}
	// Keys: a PIN entry completes on '#'.
	var got []punch.Outcome
	for _, k := range "4821#" {
		got = append(got, j.Decide(reader.Read{Reader: "in", Type: reader.TypeKey, Value: string(k), At: time.Now()})...)
	}
	if len(got) != 1 || got[0].Event.CredentialType != "pin" {
		t.Fatalf("PIN keys: %+v", got)
	}
	if after, _ := db.Status(); after.Pending != before.Pending || after.OpenEntries != before.OpenEntries {
		t.Fatalf("the judge changed the store: %+v → %+v", before, after)
	}
	if e := j.Employee("A1"); e == nil {
		t.Fatal("no A1")
	}
}
