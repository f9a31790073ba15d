package uplink

import (
	"encoding/json"
	"errors"
	"fmt"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Remote commands: {prefix}/{device_id}/commands is subscribed at QoS 1
// with the roster and acks; each message is passed to Config.OnCommand and
// the reply it returns is published at QoS 1, not retained, on
// {prefix}/{device_id}/replies. What a command means is the agent's
// business; the uplink only carries it.
//
// The command runs on paho's delivery goroutine, before paho acknowledges
// the command to the broker: a crash while it runs makes the broker
// deliver it again, and the agent recognises its id (it keeps executed ids
// with their replies). The reply is published without waiting for its
// PUBACK (waiting inside a delivery handler would deadlock paho); a reply
// lost with the connection is recovered by sending the command again with
// the same id.

// MaxCommandPayload bounds a command message: a larger one gets an error
// reply without being parsed.
const MaxCommandPayload = 64 << 10

// Topic suffixes of remote commands and the roster request.
const (
	TopicCommands      = "commands"
	TopicReplies       = "replies"
	TopicRosterRequest = "roster/request"
)

// onCommand runs a command message and publishes its reply over c.
func (u *Uplink) onCommand(c mqtt.Client, m mqtt.Message) {
	if u.cfg.OnCommand == nil {
		u.log.Debug("uplink: command ignored: no handler", "topic", m.Topic())
		return
	}
	var reply []byte
	var after func()
	if len(m.Payload()) > MaxCommandPayload {
		reply, _ = json.Marshal(map[string]any{"id": "", "ok": false,
			"error": fmt.Sprintf("command of %d bytes exceeds %d", len(m.Payload()), MaxCommandPayload)})
	} else {
		reply, after = u.cfg.OnCommand(append([]byte(nil), m.Payload()...))
	}
	if reply != nil {
		// Not waited for: see above. Queued now, it goes out before
		// anything published after it on this connection, the offline
		// status of a Close included.
		c.Publish(u.replies, 1, false, reply)
	}
	if after != nil {
		after()
	}
}

// PublishAsync publishes payload once, QoS 1, not retained, on
// {prefix}/{device_id}/{sub} over the live session without waiting for
// the broker's PUBACK. Unlike Publish it may be called from the
// callbacks (OnCommand, OnConnect). It returns ErrNotConnected when there
// is no live session.
func (u *Uplink) PublishAsync(sub string, payload []byte) error {
	tok, topic, err := u.publishLive(sub, payload)
	if err != nil {
		return err
	}
	select {
	case <-tok.Done():
		// Done at once only when paho refused it outright.
		if err := tok.Error(); err != nil {
			return fmt.Errorf("uplink: publish on %s: %w", topic, err)
		}
	default:
	}
	return nil
}

// publishLive publishes payload once, QoS 1, not retained, on
// {prefix}/{device_id}/{sub} over the live session, and returns paho's
// token and the topic.
func (u *Uplink) publishLive(sub string, payload []byte) (mqtt.Token, string, error) {
	c := u.live.Load()
	if c == nil {
		return nil, "", ErrNotConnected
	}
	topic := u.cfg.TopicPrefix + "/" + u.cfg.DeviceID + "/" + sub
	return (*c).Publish(topic, 1, false, payload), topic, nil
}

// errNoCommands is logged when the broker refuses the commands
// subscription (an ACL that does not grant it).
var errNoCommands = errors.New("uplink: commands subscription refused: remote commands will not arrive")
