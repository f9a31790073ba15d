package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/punchclock/punchclock/internal/testbroker"
)

// remote drives a terminal's commands topic and reads its replies.
type remote struct {
	t       *testing.T
	b       *testbroker.Broker
	replies *testbroker.Subscriber
	n       int
}

func newRemote(t *testing.T, b *testbroker.Broker) *remote {
	return &remote{t: t, b: b, replies: b.Subscribe(t, "punchclock/door-1/replies")}
}

// send publishes payload on the commands topic and returns the first reply
// that arrives after it with id (the replies of a terminal come in
// command order).
func (r *remote) send(id, payload string) map[string]any {
	r.t.Helper()
	from := r.replies.Len()
	r.b.Publish(r.t, "punchclock/door-1/commands", []byte(payload), false)
	var got map[string]any
	r.replies.WaitUntil(r.t, 20*time.Second, "the reply to "+payload, func(ms []testbroker.Message) bool {
		for _, m := range ms[from:] {
			var v map[string]any
			if json.Unmarshal(m.Payload, &v) == nil && v["id"] == id {
				if m.Retained {
					r.t.Errorf("reply %s retained", m.Payload)
				}
				got = v
				return true
			}
		}
		return false
	})
	return got
}

func (r *remote) ok(id, payload string) map[string]any {
	r.t.Helper()
	rep := r.send(id, payload)
	if rep["ok"] != true {
		r.t.Fatalf("%s -> %v, want ok", payload, rep)
	}
	return rep
}

func (r *remote) refused(id, payload, want string) map[string]any {
	r.t.Helper()
	rep := r.send(id, payload)
	if rep["ok"] != false || !strings.Contains(fmt.Sprint(rep["error"]), want) {
		r.t.Errorf("%s -> %v, want refused with %q", payload, rep, want)
	}
	return rep
}

func nowAt(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }

// Every command and its reply through the built agent and real
// mosquitto, with the malformed, unknown, stale and repeated ones; then
// restart ends the process with exit code 75.
func TestE2ECommands(t *testing.T) {
	b := testbroker.Start(t)
	requests := b.Subscribe(t, "punchclock/door-1/roster/request")
	status := b.Subscribe(t, "punchclock/door-1/status")
	tm := newTerminal(t, b.URL())
	tm.start()
	r := newRemote(t, b)
	// The online status follows the SUBACK of the commands topic: from
	// then on the broker keeps commands for the agent's session.
	status.WaitUntil(t, 20*time.Second, "the agent online", func(ms []testbroker.Message) bool {
		return len(ms) > 0 && strings.Contains(string(ms[len(ms)-1].Payload), `"state":"online"`)
	})

	// Malformed and unknown ones get an error reply; the agent goes on.
	from := r.replies.Len()
	b.Publish(t, "punchclock/door-1/commands", []byte(`{"id": "c0", "cmd":`), false)
	ms := r.replies.WaitUntil(t, 20*time.Second, "the reply to a payload that is not JSON", func(ms []testbroker.Message) bool { return len(ms) > from })
	var bad map[string]any
	if json.Unmarshal(ms[from].Payload, &bad) != nil || bad["id"] != "" || bad["ok"] != false || bad["error"] == nil {
		t.Fatalf("reply to non-JSON = %s", ms[from].Payload)
	}
	r.refused("c1", `{"id":"c1","cmd":"self_destruct"}`, `unknown cmd "self_destruct"`)
	r.refused("c2", `{"id":"c2","cmd":"status","at":"`+nowAt(-10*time.Minute)+`"}`, "stale")

	st := r.ok("c3", `{"id":"c3","cmd":"status","at":"`+nowAt(0)+`"}`)["status"].(map[string]any)
	if st["device_id"] != "door-1" || st["running"] != true || num(st, "roster_version") != 3 {
		t.Errorf("status = %v", st)
	}

	// A repeated id: the original reply, not run again. suspend (c4),
	// enable (c5), then c4 again: the reader stays enabled.
	first := r.ok("c4", `{"id":"c4","cmd":"suspend_reader","reader":"front"}`)
	tm.badge("0A00123456")
	if !strings.Contains(tm.logText(), "reason=reader_suspended") {
		t.Errorf("a badge at the suspended reader was not denied reader_suspended")
	}
	r.ok("c5", `{"id":"c5","cmd":"enable_reader","reader":"front"}`)
	again := r.ok("c4", `{"id":"c4","cmd":"suspend_reader","reader":"front"}`)
	if fmt.Sprint(first) != fmt.Sprint(again) {
		t.Errorf("repeated c4 = %v, first %v", again, first)
	}
	// The log reaches the test through a pipe, after the reply maybe.
	tm.waitLog("the repeat logged", func(s string) bool { return strings.Contains(s, "remote command repeated") })
	if n := strings.Count(tm.logText(), `msg="reader state set" reader=front enabled=false`); n != 1 {
		t.Errorf("the reader was suspended %d times, want once", n)
	}

	// Who is in: two badges in.
	tm.badge("0A00123456")
	tm.badge("1F00ABCDEF")
	pr := r.ok("c6", `{"id":"c6","cmd":"present"}`)["present"].(map[string]any)
	if num(pr, "total") != 2 || !strings.Contains(fmt.Sprint(pr["departments"]), "Anna de Vries") || !strings.Contains(fmt.Sprint(pr["departments"]), "Kassa") {
		t.Errorf("present = %v", pr)
	}

	// sync publishes the roster request; status shows it.
	id := r.ok("c7", `{"id":"c7","cmd":"sync"}`)["request_id"].(string)
	req := requests.WaitUntil(t, 10*time.Second, "the roster request", func(ms []testbroker.Message) bool { return len(ms) > 0 })
	var rq map[string]any
	if json.Unmarshal(req[0].Payload, &rq) != nil || rq["id"] != id || rq["device_id"] != "door-1" || num(rq, "roster_version") != 3 || rq["reason"] != "sync" {
		t.Errorf("roster request = %s, want id %s reason sync", req[0].Payload, id)
	}
	if lr, _ := tm.status()["last_roster_request"].(map[string]any); lr == nil || lr["id"] != id || lr["reason"] != "sync" {
		t.Errorf("status last_roster_request = %v", lr)
	}

	// replay: nothing to replay, an unknown record.
	if rep := r.ok("c8", `{"id":"c8","cmd":"replay","record":"all"}`); fmt.Sprint(rep["replayed"]) != "[]" {
		t.Errorf("replay all = %v", rep)
	}
	r.refused("c9", `{"id":"c9","cmd":"replay","record":"door-1-nope"}`, "door-1-nope")

	// open: refused without at; this build wires no door relay.
	r.refused("c10", `{"id":"c10","cmd":"open","reader":"front"}`, `open needs "at"`)
	r.refused("c11", `{"id":"c11","cmd":"open","reader":"front","at":"`+nowAt(0)+`"}`, "no door relay at reader front")
	r.refused("c12", `{"id":"c12","cmd":"open","reader":"front","at":"`+nowAt(-time.Hour)+`"}`, "stale")

	// set_log_level: at warn, a command run (INFO) is no longer logged.
	r.ok("c13", `{"id":"c13","cmd":"set_log_level","level":"warn"}`)
	r.ok("c14", `{"id":"c14","cmd":"status"}`)
	r.ok("c15", `{"id":"c15","cmd":"set_log_level","level":"debug"}`)
	r.ok("c16", `{"id":"c16","cmd":"status"}`)
	tm.waitLog("c16 logged at debug level again", func(s string) bool { return strings.Contains(s, "id=c16") })
	if strings.Contains(tm.logText(), "id=c14") {
		t.Errorf("set_log_level warn did not hide c14's INFO line")
	}

	// restart: the reply, then exit 75.
	r.ok("c17", `{"id":"c17","cmd":"restart"}`)
	err := tm.cmd.Wait()
	tm.cmd = nil
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitRestart {
		t.Fatalf("agent exit after restart = %v, want code %d\n%s", err, exitRestart, tail(tm.logText(), 20))
	}
	// Started again (as systemd would), the restart is not run again
	// when its command is repeated.
	tm.start()
	if rep := r.ok("c17", `{"id":"c17","cmd":"restart"}`); rep["restarting"] != true {
		t.Errorf("repeated restart = %v", rep)
	}
	// Still running: it answers the next command, and stop sees a clean
	// exit (a process that had exited 75 fails it).
	r.ok("c18", `{"id":"c18","cmd":"status"}`)
	tm.stop()
	if n := strings.Count(tm.logText(), "restarting: requested by a remote command"); n != 1 {
		t.Errorf("restarted %d times, want once", n)
	}

	// present reads the store when the agent is stopped.
	out := tm.run("present", "-json")
	var p struct {
		Total       int
		Departments []struct {
			Name   string
			People []struct{ EmployeeID string }
		}
	}
	if err := json.Unmarshal(out, &p); err != nil || p.Total != 2 || len(p.Departments) != 2 || p.Departments[0].Name != "Brugsestraat" {
		t.Fatalf("present -json (stopped) = %s", out)
	}
	if text := tm.run("present"); !strings.Contains(string(text), "Chris Peeters") || !strings.Contains(string(text), "2 clocked in") {
		t.Errorf("present = %s", text)
	}
}

// aclFile is the ACL documented in docs/mqtt.md: a terminal (user =
// device id) publishes only under its own prefix and reads only its own
// commands, roster and acks; the connector (anonymous here) does all.
const aclFile = `# anonymous: the connector in this test
topic readwrite punchclock/#

# terminals: the MQTT username is the device_id
pattern write punchclock/%u/#
pattern read punchclock/%u/commands
pattern read punchclock/%u/roster
pattern read punchclock/%u/acks
`

// The agent works under the documented ACL: with no roster it asks for
// one at connect, takes the retained roster, answers commands and
// delivers punches; the same credentials may neither read another
// terminal's commands nor publish under its prefix.
func TestE2ECommandsUnderACL(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	writeFile(t, pw, "")
	for _, u := range []string{"door-1", "door-2"} {
		if out, err := exec.Command("mosquitto_passwd", "-b", pw, u, "secret-"+u).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
		}
	}
	acl := filepath.Join(dir, "acl")
	writeFile(t, acl, aclFile)
	b := testbroker.StartWithOptions(t, testbroker.Options{ExtraConfig: "password_file " + pw + "\nacl_file " + acl + "\n"})
	requests := b.Subscribe(t, "punchclock/+/roster/request")
	events := b.Subscribe(t, "punchclock/door-1/events")
	tm := newTerminalWith(t, b.URL(), termOptions{extra: "username = \"door-1\"\npassword = \"secret-door-1\"\n"})
	// No roster: drop roster_file, so the agent asks at connect.
	cfg, err := os.ReadFile(tm.config)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.Split(string(cfg), "\n") {
		if !strings.HasPrefix(l, "roster_file") {
			kept = append(kept, l)
		}
	}
	// The credentials belong to [mqtt], which the extra lines follow
	// only after [[readers]]: move them up.
	text := strings.Join(kept, "\n")
	text = strings.Replace(text, "username = \"door-1\"\npassword = \"secret-door-1\"\n", "", 1)
	text = strings.Replace(text, "[mqtt]\n", "[mqtt]\nusername = \"door-1\"\npassword = \"secret-door-1\"\n", 1)
	writeFile(t, tm.config, text)
	tm.start()

	req := requests.WaitUntil(t, 20*time.Second, "the roster request at connect", func(ms []testbroker.Message) bool { return len(ms) > 0 })
	var rq map[string]any
	if json.Unmarshal(req[0].Payload, &rq) != nil || rq["reason"] != "start" || num(rq, "roster_version") != 0 || req[0].Topic != "punchclock/door-1/roster/request" {
		t.Fatalf("roster request = %s on %s", req[0].Payload, req[0].Topic)
	}
	b.Publish(t, "punchclock/door-1/roster", []byte(rosterV3), true)
	st := tm.waitStatus("the roster from the broker", func(st map[string]any) bool {
		return num(st, "roster_version") == 3 && st["last_roster_update"] != nil
	})
	if lu, _ := st["last_roster_update"].(map[string]any); lu == nil || num(lu, "version") != 3 || lu["error"] != nil {
		t.Errorf("last_roster_update = %v", st["last_roster_update"])
	}

	r := newRemote(t, b)
	if rep := r.ok("a1", `{"id":"a1","cmd":"status"}`); rep["status"].(map[string]any)["uplink"] != "connected" {
		t.Errorf("status over the ACL = %v", rep)
	}
	tm.badge("0A00123456")
	events.WaitUntil(t, 10*time.Second, "the event", func(ms []testbroker.Message) bool { return len(ms) == 1 })

	// The same credentials, another client: door-2's commands are not
	// readable, and a publish under door-2/ is dropped.
	spy := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("spy").
		SetUsername("door-1").SetPassword("secret-door-1").SetConnectTimeout(5 * time.Second))
	if tok := spy.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("spy connect: %v", tok.Error())
	}
	defer spy.Disconnect(100)
	// mosquitto 2.0 grants the SUBSCRIBE and applies the read ACL to
	// each message: door-2's command must not reach door-1's client.
	leaked := make(chan string, 10)
	st2 := spy.Subscribe("punchclock/door-2/commands", 1, func(_ mqtt.Client, m mqtt.Message) { leaked <- string(m.Payload()) })
	if !st2.WaitTimeout(10*time.Second) || st2.Error() != nil {
		t.Fatalf("spy subscribe: %v", st2.Error())
	}
	own := spy.Subscribe("punchclock/door-1/commands", 1, func(_ mqtt.Client, m mqtt.Message) { leaked <- "own:" + string(m.Payload()) })
	if !own.WaitTimeout(10*time.Second) || own.Error() != nil {
		t.Fatalf("spy subscribe: %v", own.Error())
	}
	b.Publish(t, "punchclock/door-2/commands", []byte("for door-2"), false)
	b.Publish(t, "punchclock/door-1/commands", []byte("marker"), false) // arrives after door-2's would have
	select {
	case m := <-leaked:
		if m != "own:marker" {
			t.Errorf("door-1's credentials read %q from door-2's commands", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("door-1's credentials did not receive their own commands")
	}
	door2 := b.Subscribe(t, "punchclock/door-2/#")
	if tok := spy.Publish("punchclock/door-2/events", 1, false, "forged"); !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("no PUBACK")
	}
	b.Publish(t, "punchclock/door-2/marker", []byte("m"), false) // anything before it has arrived
	got := door2.WaitUntil(t, 10*time.Second, "the marker", func(ms []testbroker.Message) bool { return len(ms) > 0 })
	for _, m := range got {
		if string(m.Payload) == "forged" {
			t.Errorf("door-1 published under door-2/")
		}
	}
	tm.stop()
}
