package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/testbroker"
	"github.com/punchclock/punchclock/punch"
)

const connectorMode = `
[delivery]
confirm = "connector"
resend_unconfirmed = "1m"
`

// payloads returns the payloads received per record id, in order.
func payloads(t *testing.T, msgs []testbroker.Message) map[string][][]byte {
	t.Helper()
	out := map[string][][]byte{}
	for _, m := range msgs {
		if !strings.HasSuffix(m.Topic, "/shifts") && !strings.HasSuffix(m.Topic, "/events") {
			continue
		}
		var v struct{ ID string }
		if err := json.Unmarshal(m.Payload, &v); err != nil {
			t.Fatalf("payload %s: %v", m.Payload, err)
		}
		out[v.ID] = append(out[v.ID], m.Payload)
	}
	return out
}

func (tm *terminal) run(args ...string) []byte {
	tm.t.Helper()
	out, err := exec.Command(binary, append(args[:1:1], append([]string{"-config", tm.config}, args[1:]...)...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("punchclock %v: %v\n%s", args, err, out)
	}
	return out
}

func (tm *terminal) waitStatus(what string, cond func(map[string]any) bool) map[string]any {
	tm.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := tm.status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("timed out waiting for %s: status %v\n%s", what, st, tail(tm.logText(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func num(st map[string]any, k string) int {
	f, _ := st[k].(float64)
	return int(f)
}

// A connector nacks one shift: it becomes a dead letter with the
// connector's words, shown by punchclock errors (agent stopped) and sent
// again by punchclock replay (agent running) byte for byte with its
// original id and times; the connector's ack then clears it.
func TestE2EConnectorNackAndReplay(t *testing.T) {
	b := testbroker.Start(t)
	sub := b.Subscribe(t, "punchclock/door-1/#")
	tm := newTerminalWith(t, b.URL(), termOptions{extra: connectorMode})
	tm.start()
	tm.scenario()
	checkDelivery(t, sub)
	st := tm.waitStatus("10 unconfirmed", func(st map[string]any) bool { return num(st, "unconfirmed") == 10 && num(st, "pending") == 0 })
	if st["oldest_unconfirmed"] == nil {
		t.Fatalf("status without oldest_unconfirmed: %v", st)
	}
	first := payloads(t, sub.Messages())
	shifts, events := split(t, sub.Messages())
	rejected := shifts[1]
	const words = "tamigo: 422 Unprocessable Entity: employee 1002 has no contract on this day"
	var acks []string
	for _, ev := range events {
		acks = append(acks, fmt.Sprintf(`{"id":%q,"ok":true}`, ev.ID))
	}
	for _, sh := range shifts {
		if sh.ID == rejected.ID {
			acks = append(acks, fmt.Sprintf(`{"id":%q,"ok":false,"error":%q}`, sh.ID, words))
		} else {
			acks = append(acks, fmt.Sprintf(`{"id":%q,"ok":true}`, sh.ID))
		}
	}
	acks = append(acks, `{"id":"door-1-00000000-e1","ok":true}`) // unknown: logged, ignored
	b.Publish(t, "punchclock/door-1/acks", []byte(`{"acks":[`+strings.Join(acks, ",")+`]}`), false)
	b.Publish(t, "punchclock/door-1/acks", []byte(`{"acks":[{"id":`), false) // malformed: never stops the uplink
	tm.waitStatus("1 dead letter", func(st map[string]any) bool { return num(st, "dead_letters") == 1 && num(st, "unconfirmed") == 0 })
	if !strings.Contains(tm.logText(), "ack for an unknown record id ignored") {
		t.Errorf("unknown ack not logged")
	}

	tm.stop()
	out := tm.run("errors", "-json")
	var dl struct {
		ID, Kind, Error string
		At              time.Time
		Record          punch.Shift
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &dl) != nil {
		t.Fatalf("errors -json = %s", out)
	}
	if dl.ID != rejected.ID || dl.Kind != "shift" || dl.Error != words || !dl.Record.In.Equal(rejected.In) || !dl.Record.Out.Equal(rejected.Out) || dl.At.IsZero() {
		t.Fatalf("dead letter = %+v, want shift %+v with the connector's words", dl, rejected)
	}
	if text := tm.run("errors"); !bytes.Contains(text, []byte(words)) || !bytes.Contains(text, []byte(rejected.ID)) {
		t.Fatalf("errors = %s", text)
	}
	if none := tm.run("errors", "-since", time.Now().AddDate(0, 0, 2).Format("2006-01-02")); !bytes.Contains(none, []byte("no dead letters")) {
		t.Fatalf("errors -since later = %s", none)
	}

	tm.start()
	n := len(sub.Messages())
	if out := tm.run("replay", rejected.ID); !bytes.Contains(out, []byte("1 dead letters replayed")) {
		t.Fatalf("replay = %s", out)
	}
	msgs := sub.WaitUntil(t, 20*time.Second, "the replayed shift", func(ms []testbroker.Message) bool {
		return len(payloads(t, ms[n:])[rejected.ID]) > 0
	})
	again := payloads(t, msgs[n:])[rejected.ID][0]
	if !bytes.Equal(again, first[rejected.ID][0]) {
		t.Fatalf("replayed shift differs:\n%s\nfirst published:\n%s", again, first[rejected.ID][0])
	}
	tm.waitStatus("the replay unconfirmed", func(st map[string]any) bool { return num(st, "dead_letters") == 0 && num(st, "unconfirmed") == 1 })
	b.Publish(t, "punchclock/door-1/acks", []byte(fmt.Sprintf(`{"id":%q,"ok":true}`, rejected.ID)), false)
	tm.waitStatus("everything confirmed", func(st map[string]any) bool { return num(st, "dead_letters") == 0 && num(st, "unconfirmed") == 0 })
	if out := tm.run("replay", "-all"); !bytes.Contains(out, []byte("0 dead letters replayed")) {
		t.Fatalf("replay -all with none = %s", out)
	}
	tm.stop()
}

// mosquitto PUBACKs a publish its ACL denies and drops it: with connector
// confirmation the record stays unconfirmed and visible instead of being
// deleted as delivered.
func TestE2EACLDeniedStaysUnconfirmed(t *testing.T) {
	dir := t.TempDir()
	acl := filepath.Join(dir, "acl")
	writeFile(t, acl, "topic readwrite punchclock/+/events\ntopic readwrite punchclock/+/status\n"+
		"topic readwrite punchclock/+/roster\ntopic readwrite punchclock/+/acks\ntopic read punchclock/#\n")
	b := testbroker.StartWithOptions(t, testbroker.Options{ExtraConfig: "acl_file " + acl + "\n"})
	sub := b.Subscribe(t, "punchclock/door-1/#")
	tm := newTerminalWith(t, b.URL(), termOptions{extra: connectorMode})
	tm.start()
	tm.badge("0A00123456")
	tm.badge("0A00123456")
	sub.WaitUntil(t, 10*time.Second, "2 events", func(ms []testbroker.Message) bool {
		_, e := split(t, ms)
		return len(e) == 2
	})
	tm.waitStatus("3 unconfirmed, none pending", func(st map[string]any) bool { return num(st, "unconfirmed") == 3 && num(st, "pending") == 0 })
	shifts, events := split(t, sub.Messages())
	if len(shifts) != 0 {
		t.Fatalf("the ACL let a shift through: %+v", shifts)
	}
	b.Publish(t, "punchclock/door-1/acks", []byte(fmt.Sprintf(`{"acks":[{"id":%q,"ok":true},{"id":%q,"ok":true}]}`, events[0].ID, events[1].ID)), false)
	st := tm.waitStatus("the shift alone unconfirmed", func(st map[string]any) bool { return num(st, "unconfirmed") == 1 })
	if num(st, "pending") != 0 || num(st, "dead_letters") != 0 {
		t.Fatalf("status = %v", st)
	}
	tm.stop()
}

// A record the broker will never take (over its max_packet_size: it drops
// the connection at every try) becomes a dead letter with the reason after
// a few tries, and the records behind it arrive.
func TestE2EPoisonRecordBecomesDeadLetter(t *testing.T) {
	b := testbroker.StartWithOptions(t, testbroker.Options{ExtraConfig: "max_packet_size 2048\n"})
	sub := b.Subscribe(t, "punchclock/door-1/#")
	long := strings.Repeat("Afdeling ", 400) // the shift carries it: 3.6 kB
	ros := strings.Replace(rosterV3, `"department": "Brugsestraat"`, fmt.Sprintf(`"department": %q`, long), 1)
	tm := newTerminalWith(t, b.URL(), termOptions{roster: ros})
	tm.start()
	tm.scenario() // the first employee's shift is the poison
	msgs := sub.WaitUntil(t, 60*time.Second, "2 shifts and 7 events", func(ms []testbroker.Message) bool {
		s, e := split(t, ms)
		return len(s) == 2 && len(e) == 7
	})
	if s, _ := split(t, msgs); s[0].PayrollNo == "1001" || s[1].PayrollNo == "1001" {
		t.Fatalf("the poison shift arrived: %+v", s)
	}
	st := tm.waitStatus("1 dead letter", func(st map[string]any) bool { return num(st, "dead_letters") == 1 && num(st, "pending") == 0 })
	out := tm.run("errors", "-json")
	var dl struct{ ID, Kind, Error, Source string }
	if json.Unmarshal(bytes.TrimSpace(out), &dl) != nil || dl.Kind != "shift" || dl.Source != "uplink" || dl.Error == "" {
		t.Fatalf("errors -json = %s (status %v)", out, st)
	}
	tm.stop()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
