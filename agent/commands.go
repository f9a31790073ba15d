package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/punchclock/punchclock/store"
	"github.com/punchclock/punchclock/uplink"
)

// Door opens the door at a reader: a relay pulse. The agent takes it as
// an option (cmd wires it to the device feedback); it must not block.
type Door interface {
	Open(reader string) error
}

// ErrRestart is returned by Run after a remote "restart" command: the
// command's reply was published, and the process should exit so that
// its supervisor starts it again (cmd/punchclock exits 75).
var ErrRestart = errors.New("agent: restart requested by a remote command")

// Remote command names (docs/mqtt.md).
const (
	CmdStatus        = "status"
	CmdPresent       = "present"
	CmdEnableReader  = "enable_reader"
	CmdSuspendReader = "suspend_reader"
	CmdReplay        = "replay"
	CmdSetLogLevel   = "set_log_level"
	CmdSync          = "sync"
	CmdOpen          = "open"
	CmdRestart       = "restart"
)

// Reasons of a roster request.
const (
	RosterReasonDaily = "daily"
	RosterReasonSync  = "sync"
	RosterReasonStart = "start"
)

// command is a remote command: arguments sit beside cmd.
type command struct {
	ID     string `json:"id"`
	Cmd    string `json:"cmd"`
	At     string `json:"at"`     // RFC 3339; optional except for open
	Reader string `json:"reader"` // enable_reader, suspend_reader, open
	Level  string `json:"level"`  // set_log_level
	Record string `json:"record"` // replay: a record id or "all"
}

// reply is the answer to a command; what a command returns sits beside
// ok in Result's fields.
type reply struct {
	ID     string         `json:"id"`
	Cmd    string         `json:"cmd,omitempty"`
	OK     bool           `json:"ok"`
	Error  string         `json:"error,omitempty"`
	Result map[string]any `json:"-"`
}

func (r reply) MarshalJSON() ([]byte, error) {
	m := map[string]any{"id": r.ID, "ok": r.OK}
	for k, v := range r.Result {
		m[k] = v
	}
	if r.Cmd != "" {
		m["cmd"] = r.Cmd
	}
	if r.Error != "" {
		m["error"] = r.Error
	}
	return json.Marshal(m)
}

// errCommand marks a refusal that is the command's fault (unknown,
// malformed, stale): the reply says so.
var errCommand = errors.New("command refused")

// onCommand runs one remote command and returns its reply, and what must
// follow the reply's publication (a restart), if anything. It is called
// on paho's delivery goroutine, one command at a time, so the check for a
// repeated id and the execution cannot interleave. A command whose id was
// executed before gets the kept reply and is not executed again. The
// reply is kept before it is returned; a crash between the execution and
// that write runs the command again on its redelivery.
func (a *Agent) onCommand(payload []byte) (out []byte, after func()) {
	var c command
	if err := json.Unmarshal(payload, &c); err != nil {
		a.log.Warn("remote command is not a JSON object", "bytes", len(payload), "err", err)
		return a.encodeReply(reply{Error: fmt.Sprintf("not a JSON command object: %v", err)}), nil
	}
	if c.ID == "" || len(c.ID) > store.MaxCommandID {
		return a.encodeReply(reply{ID: "", Cmd: c.Cmd, Error: fmt.Sprintf("id must be 1 to %d bytes", store.MaxCommandID)}), nil
	}
	if kept, ok, err := a.db.CommandReply(c.ID); err != nil {
		// Unknown whether it ran: do not run it (a door must not open
		// twice); the sender may try again.
		a.log.Error("remote command not run: executed ids unreadable", "id", c.ID, "err", err)
		return a.encodeReply(reply{ID: c.ID, Cmd: c.Cmd, Error: fmt.Sprintf("executed commands unreadable, not run: %v", err)}), nil
	} else if ok {
		a.log.Info("remote command repeated: its first reply sent again", "id", c.ID, "cmd", c.Cmd)
		return kept, nil
	}
	r := reply{ID: c.ID, Cmd: c.Cmd, OK: true}
	res, after, err := a.runCommand(c)
	if err != nil {
		r.OK, r.Error = false, err.Error()
		a.log.Warn("remote command refused", "id", c.ID, "cmd", c.Cmd, "err", err)
	} else {
		r.Result = res
		a.log.Info("remote command run", "id", c.ID, "cmd", c.Cmd)
	}
	b := a.encodeReply(r)
	if err := a.db.PutCommandReply(c.ID, b, a.opts.Now()); err != nil {
		a.log.Error("remote command's id not kept: a redelivery would run it again", "id", c.ID, "err", err)
	}
	return b, after
}

func (a *Agent) encodeReply(r reply) []byte {
	b, err := json.Marshal(r)
	if err != nil { // a result that does not encode: say so instead
		b, _ = json.Marshal(reply{ID: r.ID, Cmd: r.Cmd, Error: fmt.Sprintf("reply does not encode: %v", err)})
	}
	return b
}

// runCommand checks a command's age and runs it. after, when set, is to
// run once the reply is kept and published (restart).
func (a *Agent) runCommand(c command) (res map[string]any, after func(), err error) {
	refuse := func(format string, args ...any) (map[string]any, func(), error) {
		return nil, nil, fmt.Errorf("%w: %s", errCommand, fmt.Sprintf(format, args...))
	}
	if c.At != "" {
		at, err := time.Parse(time.RFC3339Nano, c.At)
		if err != nil {
			return refuse("at %q is not an RFC 3339 time", c.At)
		}
		maxAge := a.cfg.Commands.MaxAge.Duration
		if age := a.opts.Now().Sub(at); age > maxAge {
			return nil, nil, fmt.Errorf("stale: sent %v ago, more than commands.max_age %v", age.Round(time.Second), maxAge)
		}
	}
	switch c.Cmd {
	case CmdStatus:
		st, err := a.Status()
		if err != nil {
			return nil, nil, err
		}
		return map[string]any{"status": st}, nil, nil
	case CmdPresent:
		p, err := a.Present()
		if err != nil {
			return nil, nil, err
		}
		return map[string]any{"present": p}, nil, nil
	case CmdEnableReader, CmdSuspendReader:
		if c.Reader == "" {
			return refuse("%s needs \"reader\"", c.Cmd)
		}
		if err := a.SetReaderEnabled(c.Reader, c.Cmd == CmdEnableReader, "command"); err != nil {
			return nil, nil, err
		}
		return map[string]any{"reader": c.Reader, "enabled": c.Cmd == CmdEnableReader}, nil, nil
	case CmdReplay:
		if c.Record == "" {
			return refuse("replay needs \"record\": a record id or \"all\"")
		}
		var ids []string
		if c.Record != "all" {
			ids = []string{c.Record}
		}
		done, err := a.db.Replay(ids, c.Record == "all")
		if err != nil {
			return nil, nil, err
		}
		a.log.Info("dead letters replayed", "records", len(done), "by", "command")
		if a.up != nil {
			a.up.Notify()
			a.up.PublishStatus()
		}
		if done == nil {
			done = []string{}
		}
		return map[string]any{"replayed": done}, nil, nil
	case CmdSetLogLevel:
		if a.opts.LogLevel == nil {
			return nil, nil, errors.New("the log level cannot be changed: the agent was given no LogLevel")
		}
		var l slog.Level
		if err := l.UnmarshalText([]byte(c.Level)); err != nil {
			return refuse("level %q: want debug, info, warn or error", c.Level)
		}
		old := a.opts.LogLevel.Level()
		a.opts.LogLevel.Set(l)
		a.log.Log(context.Background(), max(l, old), "log level set", "level", l, "was", old, "by", "command")
		return map[string]any{"level": strings.ToLower(l.String())}, nil, nil
	case CmdSync:
		id, err := a.requestRoster(RosterReasonSync)
		if err != nil {
			return nil, nil, err
		}
		return map[string]any{"request_id": id}, nil, nil
	case CmdOpen:
		if c.At == "" {
			return refuse("open needs \"at\" (RFC 3339): a door is not opened by a command of unknown age")
		}
		if c.Reader == "" {
			return refuse("open needs \"reader\"")
		}
		if _, ok := a.readers[c.Reader]; !ok {
			return nil, nil, fmt.Errorf("no reader %q", c.Reader)
		}
		if a.opts.Door == nil {
			return nil, nil, fmt.Errorf("no door relay at reader %s", c.Reader)
		}
		if err := a.opts.Door.Open(c.Reader); err != nil {
			return nil, nil, err
		}
		a.log.Info("door opened", "reader", c.Reader, "by", "command")
		return map[string]any{"reader": c.Reader}, nil, nil
	case CmdRestart:
		return map[string]any{"restarting": true}, a.requestRestart, nil
	case "":
		return refuse("no \"cmd\"")
	default:
		return refuse("unknown cmd %q", c.Cmd)
	}
}

// requestRestart makes Run return ErrRestart. It runs after the reply
// was handed to the connection: Run then stops the uplink, whose offline
// status and DISCONNECT follow the reply on that connection.
func (a *Agent) requestRestart() {
	select {
	case a.restart <- struct{}{}:
	default:
	}
}

// rosterRequestSeq makes roster request ids unique within a process.
var rosterRequestSeq atomic.Uint64

// requestRoster publishes a roster request
// {"id","device_id","roster_version","reason"} on
// {prefix}/{device_id}/roster/request and records it for status.
func (a *Agent) requestRoster(reason string) (string, error) {
	if a.up == nil {
		return "", errors.New("agent: no broker configured: no roster request")
	}
	now := a.opts.Now()
	id := fmt.Sprintf("%s-roster-%d-%d", a.cfg.DeviceID, now.UnixMilli(), rosterRequestSeq.Add(1))
	b, err := json.Marshal(struct {
		ID            string `json:"id"`
		DeviceID      string `json:"device_id"`
		RosterVersion int64  `json:"roster_version"`
		Reason        string `json:"reason"`
	}{id, a.cfg.DeviceID, a.idx.Load().Version(), reason})
	if err != nil {
		return "", fmt.Errorf("agent: roster request: %w", err)
	}
	if err := a.up.PublishAsync(uplink.TopicRosterRequest, b); err != nil {
		return "", fmt.Errorf("agent: roster request: %w", err)
	}
	a.log.Info("roster requested", "id", id, "reason", reason)
	if err := a.db.SetRosterRequest(store.RosterRequest{ID: id, Reason: reason, At: now}); err != nil {
		a.log.Error("roster request not recorded for status", "err", err)
	}
	return id, nil
}

// onConnect asks for a roster when the agent holds none.
func (a *Agent) onConnect() {
	if a.idx.Load().Version() != 0 {
		return
	}
	if _, err := a.requestRoster(RosterReasonStart); err != nil {
		a.log.Warn("roster request at connect not sent", "err", err)
	}
}

// refreshLoop publishes a roster request daily at roster.refresh (local
// time). A refresh due while the broker is unreachable is logged and
// skipped; the next connect asks only when no roster is held.
func (a *Agent) refreshLoop(ctx context.Context) {
	for {
		now := a.opts.Now()
		next, ok := a.cfg.Roster.NextRosterRefresh(now, a.cfg.Location)
		if !ok {
			return
		}
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if _, err := a.requestRoster(RosterReasonDaily); err != nil {
			a.log.Warn("daily roster request not sent", "err", err)
		}
	}
}

// noteRosterUpdate records the outcome of a roster received over MQTT for
// status.
func (a *Agent) noteRosterUpdate(version int64, rerr error) {
	u := store.RosterUpdate{At: a.opts.Now(), Version: version}
	if rerr != nil {
		u.Error = rerr.Error()
	}
	if err := a.db.SetRosterUpdate(u); err != nil {
		a.log.Error("roster update not recorded for status", "err", err)
	}
}
