package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/punchclock/punchclock/config"
)

// ErrNotRunning: no agent answers on the control socket.
var ErrNotRunning = errors.New("agent: not running")

// ask sends one request line to the running agent of cfg and decodes its
// one-line JSON answer into out. It wraps ErrNotRunning when no agent
// answers.
func ask(cfg *config.Config, req string, out any) error {
	c, err := net.DialTimeout("unix", SocketPath(cfg), time.Second)
	if err != nil {
		return fmt.Errorf("%w: no agent answers on %s: %v", ErrNotRunning, SocketPath(cfg), err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(req + "\n")); err != nil {
		return fmt.Errorf("agent: control socket: %w", err)
	}
	var raw json.RawMessage
	if err := json.NewDecoder(c).Decode(&raw); err != nil {
		return fmt.Errorf("agent: control socket: %w", err)
	}
	var e controlErr
	if json.Unmarshal(raw, &e) == nil && e.Msg != "" {
		return fmt.Errorf("agent: %s", e.Msg)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("agent: control socket: %w", err)
	}
	return nil
}

// SyncAnswer is the running agent's answer to a local sync.
type SyncAnswer struct {
	// Request is the id of the roster request published.
	Request string `json:"request"`
}

// controlSync asks the connector for a fresh roster now, as the remote
// sync command does.
func (a *Agent) controlSync() any {
	id, err := a.requestRoster(RosterReasonSync)
	if err != nil {
		return controlError(err)
	}
	return SyncAnswer{Request: id}
}

// Sync asks the running agent of cfg to request a fresh roster from the
// connector now (`punchclock sync`). It needs the running agent: its
// connection publishes the request.
func Sync(cfg *config.Config) (SyncAnswer, error) {
	var ans SyncAnswer
	err := ask(cfg, "sync", &ans)
	return ans, err
}
