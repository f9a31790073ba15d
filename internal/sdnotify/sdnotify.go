// Package sdnotify tells systemd how the service is doing, as
// sd_notify(3) does: READY=1 once started, WATCHDOG=1 as a keep-alive,
// STOPPING=1 on shutdown.
//
// It is ours rather than go-systemd's daemon package because it is one
// datagram on one socket and the agent needs nothing else from systemd;
// it takes its environment as a function so tests need not set the
// process's own.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// States the agent sends.
const (
	Ready    = "READY=1"
	Watchdog = "WATCHDOG=1"
	Stopping = "STOPPING=1"
)

// ErrWatchdogUsec is returned by New for a WATCHDOG_USEC that is not a
// positive number of microseconds.
var ErrWatchdogUsec = errors.New("sdnotify: WATCHDOG_USEC is not a positive integer")

// Notifier sends states to the socket systemd named in NOTIFY_SOCKET. A
// Notifier without a socket (not run by systemd, or Type= not notify)
// sends nothing and reports no error.
type Notifier struct {
	addr *net.UnixAddr // nil: no socket
	// watchdog is the interval systemd expects keep-alives within, zero
	// when it does not watch this process.
	watchdog time.Duration
}

// New reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID through
// getenv (os.Getenv in production). pid is this process's id: a
// WATCHDOG_PID naming another process means the watchdog is not ours.
func New(getenv func(string) string, pid int) (*Notifier, error) {
	n := &Notifier{}
	if s := getenv("NOTIFY_SOCKET"); s != "" {
		// A leading '@' is an abstract socket; net maps it itself.
		n.addr = &net.UnixAddr{Name: s, Net: "unixgram"}
	}
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return n, nil
	}
	if p := getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(pid) {
		return n, nil
	}
	u, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || u <= 0 {
		return nil, fmt.Errorf("%w: %q", ErrWatchdogUsec, usec)
	}
	n.watchdog = time.Duration(u) * time.Microsecond
	return n, nil
}

// Enabled reports whether there is a socket to notify.
func (n *Notifier) Enabled() bool { return n.addr != nil }

// WatchdogInterval is the time within which systemd expects each
// keep-alive, zero when it does not watch this process.
func (n *Notifier) WatchdogInterval() time.Duration { return n.watchdog }

// Notify sends state (one or more "KEY=value" lines) to systemd. Without
// a socket it does nothing.
func (n *Notifier) Notify(state string) error {
	if n.addr == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: send %q to %s: %w", state, n.addr.Name, err)
	}
	return nil
}
