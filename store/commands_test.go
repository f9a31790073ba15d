package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCommandRepliesKeptAndPruned(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{DeviceID: "door-1"})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	if _, ok, err := db.CommandReply("c1"); ok || err != nil {
		t.Fatalf("unknown id: ok=%v err=%v", ok, err)
	}
	if err := db.PutCommandReply("c1", []byte(`{"id":"c1","ok":true}`), t0); err != nil {
		t.Fatal(err)
	}
	if err := db.PutCommandReply("c2", []byte(`{"id":"c2","ok":false,"error":"x"}`), t0.Add(3*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", strings.Repeat("x", MaxCommandID+1)} {
		if err := db.PutCommandReply(id, nil, t0); !errors.Is(err, ErrCommandID) {
			t.Errorf("id of %d bytes: err = %v, want ErrCommandID", len(id), err)
		}
	}
	// Kept across a restart.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open(t, dir)
	if r, ok, err := db.CommandReply("c1"); !ok || err != nil || string(r) != `{"id":"c1","ok":true}` {
		t.Fatalf("c1 after reopen = %s %v %v", r, ok, err)
	}
	// 7 days and a minute after c1: c1 goes, c2 (3 days younger) stays.
	if _, err := db.Prune(t0.Add(CommandRetention + time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.CommandReply("c1"); ok {
		t.Errorf("c1 kept past %v", CommandRetention)
	}
	if r, ok, _ := db.CommandReply("c2"); !ok || !strings.Contains(string(r), `"error":"x"`) {
		t.Errorf("c2 = %s %v, want kept", r, ok)
	}
}

func TestRosterRefreshInStatus(t *testing.T) {
	db := open(t, t.TempDir())
	st, err := db.Status()
	if err != nil || st.LastRosterRequest != nil || st.LastRosterUpdate != nil {
		t.Fatalf("fresh store: %+v %v", st, err)
	}
	at := time.Date(2026, 12, 1, 4, 30, 0, 0, time.UTC)
	if err := db.SetRosterRequest(RosterRequest{ID: "r1", Reason: "daily", At: at}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetRosterUpdate(RosterUpdate{At: at.Add(time.Second), Version: 7}); err != nil {
		t.Fatal(err)
	}
	st, err = db.Status()
	if err != nil {
		t.Fatal(err)
	}
	if r := st.LastRosterRequest; r == nil || r.ID != "r1" || r.Reason != "daily" || !r.At.Equal(at) {
		t.Errorf("last_roster_request = %+v", r)
	}
	if u := st.LastRosterUpdate; u == nil || u.Version != 7 || u.Error != "" {
		t.Errorf("last_roster_update = %+v", u)
	}
}
