// Package uplink drains the terminal's durable outbox to an MQTT broker and
// receives the roster from it.
//
// Rows are published at QoS 1 in outbox order with a window of in-flight
// publishes, and reported Sent to the outbox only after the broker's PUBACK
// for that very publish. After any reconnect the outbox is read again from
// the start, so everything not yet PUBACKed is sent again: consumers see
// duplicates (they dedupe by id), never a loss. Once the outbox has
// drained it is read again from the start on every poll tick too: the
// outbox may make rows due again (a row PUBACKed but never confirmed by a
// connector), and their Seqs lie below the uplink's cursor.
//
// Topics, under {prefix}/{device_id}/:
//
//	events   outbox rows of kind "events" (published, QoS 1)
//	shifts   outbox rows of kind "shifts" (published, QoS 1)
//	status   {"state":"online",...} retained on connect and on PublishStatus;
//	         {"state":"offline"} retained as Last Will and on Close
//	roster   subscribed at QoS 1; each message goes to Config.OnRoster
//	acks     subscribed at QoS 1; connectors' verdicts on records (see
//	         ParseAcks), passed to Config.OnAcks
//	commands subscribed at QoS 1; passed to Config.OnCommand, whose reply
//	         is published on replies (QoS 1, not retained; commands.go)
//	roster/request  published by the agent through PublishAsync
//
// # Why one paho client per connection
//
// With CleanSession=false and paho's own automatic reconnect, paho resends
// the publishes still in its memory store when it reconnects, and in doing
// so it completes the original tokens without an error before the broker
// has acknowledged anything (messageIds.claimID). Trusting those tokens
// would remove rows the broker never acknowledged. So the uplink does its
// own reconnecting with backoff: each connection is a fresh paho client
// with AutoReconnect off, whose tokens complete without error only on a
// PUBACK received on that connection; when a connection is lost its pending
// tokens are abandoned and the outbox is read again from the start. The
// session at the broker still persists (fixed client id, CleanSession
// false), so roster and ack messages queued while offline arrive.
//
// # Poison rows
//
// A row the broker will never take must not wedge the outbox. A row larger
// than Config.MaxPayload is Rejected (made a dead letter) unpublished. A
// broker may also drop the connection whenever it reads a certain row
// (mosquitto does for a packet over its max_packet_size): the uplink would
// reconnect and publish it again forever. So after a connection was lost
// with rows awaiting PUBACK, the next session publishes the oldest such row
// alone and opens the window only once its PUBACK came. If the connection
// is lost again within strikeWindow of that lone publish without its
// PUBACK, the row gets a strike; Config.MaxTries strikes in a row and it is
// Rejected, with the last connection error, and the rows behind it flow. A
// PUBACK for it clears its strikes.
//
// A strike needs proof that the connection worked just before: the lone
// publish waits for the broker's PUBACK of the session's retained status,
// so a broker or link that acknowledges nothing (or a link that stalls
// before that round trip) never strikes a row. On a working link the lone
// row's PUBACK follows one round trip after that proof, so a random flap
// strikes a healthy row only if it cuts the connection within that round
// trip: with a 0.5 s round trip and a connection flapping once a minute,
// about 1 in 120 sessions, and MaxTries (3) such sessions in a row for the
// same row about 1 in 1.7 million; on a LAN it is far less.
package uplink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Kinds of outbox rows, and the topic suffix each is published on.
const (
	KindEvents = "events"
	KindShifts = "shifts"
)

// Values of Status.State.
const (
	StateOnline  = "online"
	StateOffline = "offline"
)

// Errors returned by New, Start and Close. Match them with errors.Is.
var (
	// ErrConfig wraps every configuration error from New.
	ErrConfig = errors.New("uplink: invalid config")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("uplink: already started")
	// ErrClosed is returned by Start after Close.
	ErrClosed = errors.New("uplink: closed")
)

// A Message is one outbox row.
type Message struct {
	Seq     uint64 // outbox order; strictly increasing
	Kind    string // KindEvents or KindShifts
	Payload []byte // published as is
}

// Outbox is the durable queue the uplink drains. The agent adapts its
// bbolt store to it. Every method is called from the uplink's one
// goroutine, never concurrently with another.
type Outbox interface {
	// Peek returns up to max rows due for publishing with Seq > after, in
	// ascending Seq.
	Peek(after uint64, max int) ([]Message, error)
	// Sent records that the broker PUBACKed the rows with these Seqs, in
	// one transaction. Seqs no longer present are ignored. An error keeps
	// the rows due: they are published again.
	Sent(seqs []uint64) error
	// Reject sets aside a row the broker will never take (a dead letter),
	// with why. On an error the uplink keeps the row unpublished, logs
	// the error and calls Reject again later.
	Reject(seq uint64, reason string) error
	// Pending counts the rows not yet PUBACKed (for progress logs).
	Pending() (int, error)
}

// Status is the retained payload on {prefix}/{device_id}/status.
type Status struct {
	State         string `json:"state"`
	Version       string `json:"version"`
	RosterVersion int64  `json:"roster_version"`
	Pending       int    `json:"pending"`
	RosterError   string `json:"roster_error,omitempty"`
	// Unconfirmed, OldestUnconfirmed and DeadLetters follow connector
	// confirmations; StorageWarning and Alarm call a technician.
	Unconfirmed       int       `json:"unconfirmed"`
	OldestUnconfirmed time.Time `json:"oldest_unconfirmed,omitzero"`
	DeadLetters       int       `json:"dead_letters"`
	StorageWarning    string    `json:"storage_warning,omitempty"`
	Alarm             string    `json:"alarm,omitempty"`
	// Readers says which readers answer.
	Readers []ReaderState `json:"readers,omitempty"`
}

// ReaderState is one reader in the status: "online" or "offline".
type ReaderState struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// Config configures an Uplink. Zero durations and Window take defaults
// (see setDefaults).
type Config struct {
	Broker      string // tcp://host[:1883] or ssl://host[:8883] (also mqtt://, mqtts://, tls://)
	TopicPrefix string // e.g. "punchclock"
	DeviceID    string
	ClientID    string // default "punchclock-" + DeviceID; must be stable (persistent session)
	Username    string
	Password    string // sent to the broker only; never logged or shown by String

	// TLS, for ssl://, tls:// and mqtts:// brokers only (New refuses them
	// with another scheme). The broker's certificate is always verified,
	// for the broker URL's host, against CAFile (PEM), or the system roots
	// when CAFile is empty; TLS 1.2 at least. CertFile and KeyFile (PEM,
	// both or neither) are the client certificate for mutual TLS.
	CAFile   string
	CertFile string
	KeyFile  string

	Outbox Outbox
	// Status is called (from the uplink's goroutine) to build the retained
	// online status. State is set to "online" by the uplink. Nil publishes
	// only the state.
	Status func() Status
	// OnRoster is called with each message received on the roster topic,
	// in order, from paho's delivery goroutine: it must return promptly and
	// must not call Close. The retained roster comes again after every
	// reconnect (the topic is subscribed again), so OnRoster must be
	// idempotent. Empty payloads (a cleared retained roster) are not passed
	// on.
	OnRoster func(payload []byte)
	// OnAcks is called with the valid acks of each message received on
	// the acks topic (see ParseAcks), from paho's delivery goroutine: it
	// must return promptly and must not call Close. QoS 1 delivery means
	// an ack can come more than once. Malformed acks are logged at WARN
	// and dropped.
	OnAcks func([]Ack)
	// OnCommand is called with each message received on the commands
	// topic, in order, from paho's delivery goroutine (see commands.go):
	// it must return promptly and must not call Close or Publish (it may
	// call PublishAsync). The reply it returns is published on the
	// replies topic (nil publishes nothing); then after, if not nil, is
	// called, on the same goroutine: what must follow the reply (a
	// restart) goes there.
	OnCommand func(payload []byte) (reply []byte, after func())
	// OnConnect is called from the uplink's goroutine once a session is
	// connected and subscribed, before the outbox is drained. It must
	// return promptly; it may call PublishAsync.
	OnConnect func()
	// OnAcked, if set, is called after n PUBACKed rows were reported Sent
	// to the outbox.
	OnAcked func(n int, at time.Time)

	Window int // max in-flight QoS 1 publishes; default 64
	// MaxPayload bounds a row's payload; a larger row is Rejected without
	// being published. Default 256 KiB.
	MaxPayload int
	// MaxTries is how many times in a row the broker may drop the
	// connection right after the oldest unacknowledged row was published
	// alone before that row is Rejected (see "Poison rows"). Default 3.
	MaxTries             int
	PollInterval         time.Duration // outbox poll besides Notify; default 1s
	MaxReconnectInterval time.Duration // backoff cap; default 30s (see backoff)
	Logger               *slog.Logger  // nil: silent
	// Now is the clock for OnAcked's times, strike windows, Reject
	// retries and progress lines; default time.Now.
	Now func() time.Time
}

// Defaults.
const (
	DefaultWindow               = 64
	DefaultPollInterval         = time.Second
	DefaultMaxReconnectInterval = 30 * time.Second
	DefaultMaxPayload           = 256 << 10
	DefaultMaxTries             = 3
	// maxMQTTPayload is the largest MQTT remaining length less room for
	// the topic and packet id.
	maxMQTTPayload = 268435455 - 1024

	minReconnectInterval = 250 * time.Millisecond
	connectTimeout       = 10 * time.Second
	keepAlive            = 30 * time.Second
	pingTimeout          = 10 * time.Second
	// writeTimeout bounds how long paho's Publish may block handing a
	// packet to its writer. With at most Window small packets in flight
	// the socket buffer never fills on a working link, so a longer wait
	// means a stalled or dying connection.
	writeTimeout     = 3 * time.Second
	subscribeTimeout = 10 * time.Second
	goodbyeTimeout   = time.Second
	// stableSession is how long a connection must last before the backoff
	// starts again from its minimum (so a broker that accepts and then
	// drops us, e.g. for a duplicate client id, is not hammered).
	stableSession = 10 * time.Second
	// strikeWindow: a connection lost this soon after a row was published
	// alone, without its PUBACK, counts against that row.
	strikeWindow = 5 * time.Second
)

// String describes the config without its password.
func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = " password=<redacted>"
	}
	tlsFiles := ""
	if c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" {
		tlsFiles = fmt.Sprintf(" ca=%s cert=%s key=%s", c.CAFile, c.CertFile, c.KeyFile)
	}
	return fmt.Sprintf("uplink.Config{broker=%s prefix=%s device=%s client=%s user=%s%s%s window=%d}",
		redact(c.Broker), c.TopicPrefix, c.DeviceID, c.ClientID, c.Username, pw, tlsFiles, c.Window)
}

func (c *Config) setDefaults() {
	if c.ClientID == "" && c.DeviceID != "" {
		c.ClientID = "punchclock-" + c.DeviceID
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.MaxTries <= 0 {
		c.MaxTries = DefaultMaxTries
	}
	if c.MaxReconnectInterval <= 0 {
		c.MaxReconnectInterval = DefaultMaxReconnectInterval
	}
	if c.MaxReconnectInterval < minReconnectInterval {
		c.MaxReconnectInterval = minReconnectInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// validateConnection checks what a connection needs: the broker URL,
// the topics' prefix and device, the TLS files' presence.
func (c *Config) validateConnection() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, key, fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(c.Broker)
	if err != nil || c.Broker == "" {
		return bad("Broker", "%q is not a broker URL", redact(c.Broker))
	}
	if _, ok := defaultPorts[u.Scheme]; !ok {
		return bad("Broker", "scheme %q: want tcp://, ssl://, mqtt://, mqtts:// or tls://", u.Scheme)
	}
	if u.Hostname() == "" {
		return bad("Broker", "%q has no host", u.Redacted())
	}
	if u.User != nil {
		return bad("Broker", "%q: put credentials in Username and Password, not the URL", u.Redacted())
	}
	if c.TopicPrefix == "" || strings.ContainsAny(c.TopicPrefix, "#+") ||
		strings.HasPrefix(c.TopicPrefix, "/") || strings.HasSuffix(c.TopicPrefix, "/") {
		return bad("TopicPrefix", "%q must be non-empty, without '#', '+' or a leading or trailing '/'", c.TopicPrefix)
	}
	if c.DeviceID == "" || strings.ContainsAny(c.DeviceID, "#+/") {
		return bad("DeviceID", "%q must be non-empty, without '#', '+' or '/'", c.DeviceID)
	}
	if !tlsSchemes[u.Scheme] && (c.CAFile != "" || c.CertFile != "" || c.KeyFile != "") {
		return bad("CAFile", "TLS files are given but the broker %s is not ssl://, tls:// or mqtts://", u.Redacted())
	}
	return nil
}

// validate checks the whole configuration of an Uplink.
func (c *Config) validate() error {
	if err := c.validateConnection(); err != nil {
		return err
	}
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, key, fmt.Sprintf(format, args...))
	}
	if c.Outbox == nil {
		return bad("Outbox", "required")
	}
	if c.Window > 65535 {
		return bad("Window", "%d exceeds the 65535 MQTT packet ids", c.Window)
	}
	if c.MaxPayload > maxMQTTPayload {
		return bad("MaxPayload", "%d exceeds what an MQTT packet can carry", c.MaxPayload)
	}
	return nil
}

var defaultPorts = map[string]string{"tcp": "1883", "mqtt": "1883", "ssl": "8883", "tls": "8883", "mqtts": "8883"}

var tlsSchemes = map[string]bool{"ssl": true, "tls": true, "mqtts": true}

// tlsConfig builds the TLS client configuration for host from the files
// in c. The server is always verified: there is no way to turn that off.
func (c *Config) tlsConfig(host string) (*tls.Config, error) {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, key, fmt.Sprintf(format, args...))
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, bad("CAFile", "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, bad("CAFile", "%s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	switch {
	case c.CertFile != "" && c.KeyFile != "":
		certPEM, err := os.ReadFile(c.CertFile)
		if err != nil {
			return nil, bad("CertFile", "%v", err)
		}
		keyPEM, err := os.ReadFile(c.KeyFile)
		if err != nil {
			return nil, bad("KeyFile", "%v", err)
		}
		// X509KeyPair's errors describe the PEM blocks, never the key.
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, bad("CertFile and KeyFile", "%s and %s: %v", c.CertFile, c.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case c.CertFile != "":
		return nil, bad("KeyFile", "required with CertFile %s", c.CertFile)
	case c.KeyFile != "":
		return nil, bad("CertFile", "required with KeyFile %s", c.KeyFile)
	}
	return tc, nil
}

func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	if i := strings.LastIndex(raw, "@"); i >= 0 {
		return "…" + raw[i:]
	}
	return raw
}

// An Uplink connects to the broker, drains the Outbox and delivers the
// roster. Create it with New, run it with Start, stop it with Close.
type Uplink struct {
	cfg    Config
	log    *slog.Logger
	topics map[string]string // kind -> topic
	status string            // status topic
	roster string            // roster topic
	tls    *tls.Config       // nil for tcp:// brokers
	acks   string            // acks topic
	cmds   string            // commands topic
	// replies is the topic of command replies.
	replies string

	notify    chan struct{} // 1-buffered wake-ups
	statusReq chan struct{}
	connected atomic.Bool
	// live is the client of the session in progress, for Publish.
	live atomic.Pointer[mqtt.Client]

	// Owned by the run goroutine.
	unrejected map[uint64]*deadRow // rows to set aside whose Reject failed
	suspect    bool                // the last connection was lost with rows awaiting PUBACK
	strike     strike              // the oldest row's consecutive strikes
	prog       progress            // of the current drain

	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New validates cfg, fills its defaults and returns an Uplink that is not
// yet running.
func New(cfg Config) (*Uplink, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	base := cfg.TopicPrefix + "/" + cfg.DeviceID + "/"
	u := &Uplink{
		cfg: cfg,
		topics: map[string]string{
			KindEvents: base + KindEvents,
			KindShifts: base + KindShifts,
		},
		status:     base + "status",
		roster:     base + "roster",
		acks:       base + "acks",
		cmds:       base + TopicCommands,
		replies:    base + TopicReplies,
		notify:     make(chan struct{}, 1),
		statusReq:  make(chan struct{}, 1),
		unrejected: make(map[uint64]*deadRow),
	}
	if bu, _ := url.Parse(cfg.Broker); tlsSchemes[bu.Scheme] { // validated above
		tc, err := cfg.tlsConfig(bu.Hostname())
		if err != nil {
			return nil, err
		}
		u.tls = tc
	}
	u.log = cfg.Logger.With("device", cfg.DeviceID) // the caller names the component
	return u, nil
}

// Start starts the uplink's goroutine and returns at once; an unreachable
// broker is not an error (the uplink keeps retrying). The uplink stops when
// ctx is done or Close is called.
func (u *Uplink) Start(ctx context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.closed:
		return ErrClosed
	case u.started:
		return ErrStarted
	}
	u.started = true
	ctx, u.cancel = context.WithCancel(ctx)
	u.wg.Add(1)
	go u.run(ctx)
	return nil
}

// Notify tells the uplink that rows were added to the outbox. It never
// blocks.
func (u *Uplink) Notify() { poke(u.notify) }

// PublishStatus asks for the retained status to be published again (from
// Config.Status) if connected. It never blocks.
func (u *Uplink) PublishStatus() { poke(u.statusReq) }

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// ErrNotConnected is returned by Publish when there is no live session.
var ErrNotConnected = errors.New("uplink: not connected to the broker")

// Publish sends payload once, QoS 1, not retained, on
// {prefix}/{device_id}/{sub} over the live session and waits for the
// broker's PUBACK or ctx. It is for messages outside the outbox (an
// enrolment answering a technician at the terminal), which the caller
// reports as failed when there is no connection.
func (u *Uplink) Publish(ctx context.Context, sub string, payload []byte) error {
	tok, topic, err := u.publishLive(sub, payload)
	if err != nil {
		return err
	}
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("uplink: publish on %s: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("uplink: publish on %s: no PUBACK: %w", topic, ctx.Err())
	}
}

// Connected reports whether the uplink has a live broker connection.
func (u *Uplink) Connected() bool { return u.connected.Load() }

// Close stops the uplink: rows acknowledged so far are reported Sent, the retained
// status is set to offline (best effort, up to a second), the connection is
// closed, and Close waits for the uplink's goroutine. Nothing is published
// after Close returns. Close is safe to call more than once and before
// Start.
func (u *Uplink) Close() error {
	u.mu.Lock()
	u.closed = true
	if u.cancel != nil {
		u.cancel()
	}
	u.mu.Unlock()
	u.wg.Wait()
	return nil
}

// run owns the connection: it connects, serves, and reconnects with
// backoff until ctx is done.
func (u *Uplink) run(ctx context.Context) {
	defer u.wg.Done()
	bo := newBackoff(u.cfg.MaxReconnectInterval, rand.Float64)
	for {
		began := time.Now()
		err := u.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) >= stableSession {
			bo.reset()
		}
		wait := bo.next()
		u.log.Warn("uplink: disconnected; retrying", "err", err, "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// session makes one connection and serves it until it is lost (returning
// why) or ctx is done (returning nil after a clean goodbye).
func (u *Uplink) session(ctx context.Context) error {
	// dialCtx aborts a dial or handshake in progress when ctx is done, and
	// closes the socket when the session ends, whatever paho is doing.
	dialCtx, cancelDial := context.WithCancel(context.Background())
	defer cancelDial()

	lost := make(chan struct{})
	var lostErr error
	var lostOnce sync.Once
	client := mqtt.NewClient(u.options(dialCtx, func(_ mqtt.Client, err error) {
		lostOnce.Do(func() {
			lostErr = err
			close(lost)
		})
	}))

	tok := client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		cancelDial()
		<-tok.Done()
		client.Disconnect(0)
		return nil
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("uplink: connect to %s: %w", redact(u.cfg.Broker), err)
	}
	u.connected.Store(true)
	defer u.connected.Store(false)
	u.live.Store(&client)
	defer u.live.Store(nil)
	u.log.Info("uplink: connected", "broker", redact(u.cfg.Broker), "client_id", u.cfg.ClientID)

	st := client.SubscribeMultiple(map[string]byte{u.roster: 1, u.acks: 1, u.cmds: 1}, u.onMessage)
	select {
	case <-st.Done():
		for _, topic := range []string{u.roster, u.acks, u.cmds} {
			if err := subscribeErr(st, topic); err != nil {
				// The uplink still publishes without them; say so and go on.
				if topic == u.cmds {
					err = fmt.Errorf("%w: %v", errNoCommands, err)
				}
				u.log.Error("uplink: subscription refused", "topic", topic, "err", err)
			}
		}
	case <-lost:
		return lostErr
	case <-ctx.Done():
		u.goodbye(client)
		return nil
	case <-time.After(subscribeTimeout):
		// The deferred cancelDial cuts the socket (no DISCONNECT, so the
		// broker publishes the Last Will while we reconnect).
		return fmt.Errorf("uplink: no SUBACK for %s and %s within %v", u.roster, u.acks, subscribeTimeout)
	}
	statusTok := u.publishStatus(client)
	if u.cfg.OnConnect != nil {
		u.cfg.OnConnect()
	}

	end := u.drain(ctx, client, lost, statusTok)
	if ctx.Err() != nil {
		u.goodbye(client)
		return nil
	}
	u.suspect = end.awaiting
	if end.probe != 0 {
		if end.probeAge < strikeWindow {
			u.strikeRow(end.probe, lostErr)
		} else {
			u.strike = strike{} // not the pattern of a poison row
		}
	}
	return lostErr
}

// A strike is the count of sessions in a row that were lost right after
// row seq was published alone.
type strike struct {
	seq uint64
	n   int
}

// strikeRow counts a strike against seq and Rejects it after MaxTries.
func (u *Uplink) strikeRow(seq uint64, cause error) {
	if u.strike.seq != seq {
		u.strike = strike{seq: seq}
	}
	u.strike.n++
	if u.strike.n < u.cfg.MaxTries {
		u.log.Warn("uplink: connection lost right after a row was published alone", "seq", seq,
			"strikes", u.strike.n, "max_tries", u.cfg.MaxTries, "err", cause)
		return
	}
	reason := fmt.Sprintf("the broker dropped the connection %d times in a row right after this row was published alone; last error: %v",
		u.strike.n, cause)
	u.strike = strike{}
	u.reject(seq, reason)
}

func subscribeErr(t mqtt.Token, topic string) error {
	if err := t.Error(); err != nil {
		return err
	}
	if st, ok := t.(*mqtt.SubscribeToken); ok {
		if code, ok := st.Result()[topic]; ok && code == 0x80 {
			return errors.New("SUBACK failure (0x80)")
		}
	}
	return nil
}

func (u *Uplink) options(dialCtx context.Context, onLost mqtt.ConnectionLostHandler) *mqtt.ClientOptions {
	return mqtt.NewClientOptions().
		AddBroker(u.cfg.Broker).
		SetClientID(u.cfg.ClientID).
		SetUsername(u.cfg.Username).
		SetPassword(u.cfg.Password).
		SetCleanSession(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(connectTimeout).
		SetKeepAlive(keepAlive).
		SetPingTimeout(pingTimeout).
		SetWriteTimeout(writeTimeout).
		SetOrderMatters(true).
		SetBinaryWill(u.status, []byte(offlineJSON), 1, true).
		SetDefaultPublishHandler(u.onMessage). // queued roster messages may arrive before SUBSCRIBE
		SetConnectionLostHandler(onLost).
		SetCustomOpenConnectionFn(u.dialer(dialCtx))
}

// offlineJSON is the Last Will, also published by Close.
const offlineJSON = `{"state":"offline"}`

// dialer opens the network connection for paho, honouring ctx.
func (u *Uplink) dialer(ctx context.Context) mqtt.OpenConnectionFunc {
	return func(uri *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
		port := uri.Port()
		if port == "" {
			port = defaultPorts[uri.Scheme]
		}
		addr := net.JoinHostPort(uri.Hostname(), port)
		nd := &net.Dialer{Timeout: connectTimeout, KeepAlive: keepAlive}
		var conn net.Conn
		var err error
		switch uri.Scheme {
		case "ssl", "tls", "mqtts":
			conn, err = (&tls.Dialer{NetDialer: nd, Config: u.tls}).DialContext(ctx, "tcp", addr)
		default:
			conn, err = nd.DialContext(ctx, "tcp", addr)
		}
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { conn.Close() })
		return conn, nil
	}
}

func (u *Uplink) onMessage(c mqtt.Client, m mqtt.Message) {
	switch m.Topic() {
	case u.roster:
		u.onRoster(m)
	case u.acks:
		u.onAcks(m)
	case u.cmds:
		u.onCommand(c, m)
	default:
		u.log.Debug("uplink: ignoring message", "topic", m.Topic())
	}
}

func (u *Uplink) onRoster(m mqtt.Message) {
	if len(m.Payload()) == 0 {
		u.log.Info("uplink: empty roster message ignored", "topic", m.Topic())
		return
	}
	u.log.Debug("uplink: roster received", "topic", m.Topic(), "bytes", len(m.Payload()), "retained", m.Retained())
	if u.cfg.OnRoster != nil {
		u.cfg.OnRoster(append([]byte(nil), m.Payload()...))
	}
}

func (u *Uplink) onAcks(m mqtt.Message) {
	acks, err := ParseAcks(m.Payload())
	if err != nil {
		u.log.Warn("uplink: malformed acks skipped", "topic", m.Topic(), "bytes", len(m.Payload()),
			"kept", len(acks), "err", truncate(err.Error(), MaxAckError))
	}
	if len(acks) > 0 && u.cfg.OnAcks != nil {
		u.cfg.OnAcks(acks)
	}
}

// publishStatus publishes the retained online status without waiting for
// its PUBACK (it is republished on every connect). It returns the publish's
// token, nil if nothing was published.
func (u *Uplink) publishStatus(client mqtt.Client) mqtt.Token {
	var st Status
	if u.cfg.Status != nil {
		st = u.cfg.Status()
	}
	st.State = StateOnline
	payload, err := json.Marshal(st)
	if err != nil { // cannot happen with these field types
		u.log.Error("uplink: encode status", "err", err)
		return nil
	}
	return client.Publish(u.status, 1, true, payload)
}

// goodbye sets the retained status to offline (a clean DISCONNECT makes the
// broker drop the Last Will) and disconnects.
func (u *Uplink) goodbye(client mqtt.Client) {
	tok := client.Publish(u.status, 1, true, []byte(offlineJSON))
	t := time.NewTimer(goodbyeTimeout)
	select {
	case <-tok.Done():
	case <-t.C:
		u.log.Warn("uplink: offline status not acknowledged", "topic", u.status)
	}
	t.Stop()
	client.Disconnect(250)
}

// inflight is one publish awaiting its PUBACK.
type inflight struct {
	seq uint64
	tok mqtt.Token
}

// A deadRow is a row the broker will never take whose Reject failed. It is
// not published (publishing it would drop the connection again, or it
// cannot be published at all); Reject is tried again after wait, doubling
// up to maxRejectRetry.
type deadRow struct {
	reason  string
	retryAt time.Time
	wait    time.Duration
}

const maxRejectRetry = 5 * time.Minute

// reject sets the row aside through Outbox.Reject. If that fails the row
// is remembered in unrejected: it stays in the outbox and is not
// published, and Reject is tried again (logged each time) when due.
func (u *Uplink) reject(seq uint64, reason string) {
	now := u.cfg.Now()
	d := u.unrejected[seq]
	if d != nil && now.Before(d.retryAt) {
		return
	}
	if err := u.cfg.Outbox.Reject(seq, reason); err != nil {
		if d == nil {
			d = &deadRow{wait: u.cfg.PollInterval}
		} else {
			d.wait = min(2*d.wait, maxRejectRetry)
		}
		d.reason, d.retryAt = reason, now.Add(d.wait)
		u.unrejected[seq] = d
		u.log.Error("uplink: cannot set a row aside as a dead letter; it stays in the outbox unpublished and is tried again",
			"seq", seq, "reason", reason, "retry_in", d.wait, "err", err)
		return
	}
	delete(u.unrejected, seq)
	u.log.Warn("uplink: row set aside as a dead letter", "seq", seq, "reason", reason)
}

// drainEnd is how a drain ended when the connection was lost.
type drainEnd struct {
	awaiting bool          // rows published on this or the last connection still lack their PUBACK
	probe    uint64        // the row published alone whose PUBACK did not come (strike candidate), or 0
	probeAge time.Duration // how long before the loss it was published
}

// drain publishes the outbox over client until lost is closed or ctx is
// done. It starts from the beginning of the outbox. A row is reported
// Sent only after the token of its own publish on this connection
// completed without error; with AutoReconnect off that means a PUBACK
// arrived for it. When the last connection was lost with rows awaiting
// PUBACK (u.suspect), the first row is published alone, once statusTok
// completed (see "Poison rows" in the package comment).
func (u *Uplink) drain(ctx context.Context, client mqtt.Client, lost <-chan struct{}, statusTok mqtt.Token) drainEnd {
	var (
		window     = u.cfg.Window
		batch      = max(1, window/2)
		queue      = make([]inflight, 0, window) // in publish order
		acked      = make([]uint64, 0, window)   // PUBACKed, not yet reported Sent
		cursor     uint64                        // highest Seq read on this connection
		more       = true                        // the outbox may hold rows after cursor
		resend     bool                          // a publish failed: restart from 0 once the queue is empty
		failed     bool                          // a publish failed on this connection
		peekFailed bool                          // the last Peek failed
		started    = time.Now()
		sent       int

		probing  = u.suspect      // publishing the oldest row alone
		proven   <-chan struct{}  // closed once the broker PUBACKed the status; nil when not waiting
		verified bool             // it did: a strike may count
		gateOpen = !probing       // the probe may be published
		gateWait <-chan time.Time // gives up waiting for proof
		probe    uint64           // the row published alone
		probeAt  time.Time
	)
	if probing {
		window, batch = 1, 1
		if statusTok != nil {
			proven = statusTok.Done()
			t := time.NewTimer(subscribeTimeout)
			defer t.Stop()
			gateWait = t.C
		} else {
			gateOpen = true
		}
	}
	flush := func() {
		if len(acked) == 0 {
			return
		}
		if err := u.cfg.Outbox.Sent(acked); err != nil {
			// The rows stay due and are published again.
			u.log.Error("uplink: record acknowledged rows", "rows", len(acked), "err", err)
		} else {
			u.prog.acked(len(acked))
			if u.cfg.OnAcked != nil {
				u.cfg.OnAcked(len(acked), u.cfg.Now())
			}
			u.reportProgress()
		}
		acked = acked[:0]
	}
	defer flush()

	if pending, err := u.cfg.Outbox.Pending(); err != nil {
		u.log.Warn("uplink: count pending rows", "err", err)
	} else {
		u.prog.session(u.cfg.Now(), pending)
	}

	tick := time.NewTicker(u.cfg.PollInterval)
	defer tick.Stop()
	for {
		for gateOpen && more && !resend && len(queue) < window && ctx.Err() == nil {
			want := window - len(queue)
			msgs, err := u.cfg.Outbox.Peek(cursor, want)
			if err != nil {
				u.log.Error("uplink: read outbox", "err", err)
				more, peekFailed = false, true // try again on the next tick or Notify
				break
			}
			more, peekFailed = len(msgs) == want, false
			for _, m := range msgs {
				if m.Seq <= cursor {
					u.log.Error("uplink: outbox returned rows out of order", "seq", m.Seq, "after", cursor)
					more = false
					break
				}
				cursor = m.Seq
				if d, ok := u.unrejected[m.Seq]; ok {
					u.reject(m.Seq, d.reason)
					continue
				}
				topic, ok := u.topics[m.Kind]
				if !ok {
					u.reject(m.Seq, fmt.Sprintf("unknown kind %q", m.Kind))
					continue
				}
				if len(m.Payload) > u.cfg.MaxPayload {
					u.reject(m.Seq, fmt.Sprintf("payload of %d bytes exceeds max_payload %d", len(m.Payload), u.cfg.MaxPayload))
					continue
				}
				if probing {
					probe, probeAt = m.Seq, u.cfg.Now()
					u.log.Info("uplink: the last connection was lost with rows in flight; publishing the oldest alone",
						"seq", m.Seq, "bytes", len(m.Payload), "strikes", u.strikesOf(m.Seq))
				}
				queue = append(queue, inflight{m.Seq, client.Publish(topic, 1, false, m.Payload)})
				sent++
				if !u.prog.busy {
					u.prog.publishing(u.cfg.Now())
				}
			}
		}
		if len(queue) == 0 && !more && !resend && !peekFailed && u.prog.busy {
			if attrs, ok := u.prog.drained(u.cfg.Now()); ok {
				u.log.Info("uplink: backlog drained", attrs...)
			}
		}
		if probing && len(queue) == 0 && !more && !resend && gateOpen {
			// Nothing to probe with: the outbox is empty.
			probing, window, batch = false, u.cfg.Window, max(1, u.cfg.Window/2)
		}

		var head <-chan struct{}
		if len(queue) > 0 {
			head = queue[0].tok.Done()
		}
		select {
		case <-ctx.Done():
			return drainEnd{}
		case <-lost:
			// Still probing: the rows unacknowledged before still are.
			end := drainEnd{awaiting: len(queue) > 0 || failed || probing}
			if probing && verified && probe != 0 {
				end.probe, end.probeAge = probe, u.cfg.Now().Sub(probeAt)
			}
			return end
		case <-proven:
			proven, gateWait, gateOpen = nil, nil, true
			verified = statusTok.Error() == nil
		case <-gateWait:
			// No PUBACK for the status: publish the row alone anyway,
			// but a loss now proves nothing about it.
			proven, gateWait, gateOpen = nil, nil, true
			u.log.Warn("uplink: no PUBACK for the status", "topic", u.status, "waited", subscribeTimeout)
		case <-head:
			n := 0
			for ; n < len(queue) && done(queue[n].tok); n++ {
				if err := queue[n].tok.Error(); err != nil {
					// The connection is breaking, or a write stalled past
					// writeTimeout. Publish nothing more until what is in
					// flight has settled, then start again from the first
					// row (duplicates are fine).
					if !resend {
						u.log.Warn("uplink: publish failed; will resend from the start", "seq", queue[n].seq, "err", err)
					}
					resend, failed = true, true
					continue
				}
				acked = append(acked, queue[n].seq)
				if probing && queue[n].seq == probe {
					// The broker takes it: open the window.
					probing, window, batch = false, u.cfg.Window, max(1, u.cfg.Window/2)
					if u.strike.seq == probe {
						u.strike = strike{}
					}
					u.log.Info("uplink: the row published alone was acknowledged; window open", "seq", probe)
				}
			}
			queue = append(queue[:0], queue[n:]...)
			if len(acked) >= batch || len(queue) == 0 {
				flush()
			}
			if len(queue) == 0 && resend {
				// A dead connection fails every publish at once: wait
				// for lost (or the next tick) rather than spin.
				cursor, resend, more = 0, false, client.IsConnectionOpen()
			}
			if len(queue) == 0 && !more && sent > 0 {
				u.log.Debug("uplink: outbox drained", "rows", sent, "took", time.Since(started))
				sent, started = 0, time.Now()
			}
		case <-u.notify:
			more = true
		case <-tick.C:
			if len(queue) == 0 && !more {
				// Drained: read again from the start, for rows the
				// outbox made due again.
				cursor = 0
			}
			more = true
			flush()
			u.reportProgress()
		case <-u.statusReq:
			u.publishStatus(client)
		}
	}
}

// reportProgress logs a progress line if one is due.
func (u *Uplink) reportProgress() {
	if !u.prog.busy {
		return
	}
	now := u.cfg.Now()
	if !u.prog.due(now) {
		return
	}
	left, err := u.cfg.Outbox.Pending()
	if err != nil {
		u.log.Warn("uplink: count pending rows", "err", err)
		left = -1
	}
	u.log.Info("uplink: draining backlog", u.prog.line(now, left)...)
}

// strikesOf returns the strikes counted against seq.
func (u *Uplink) strikesOf(seq uint64) int {
	if u.strike.seq == seq {
		return u.strike.n
	}
	return 0
}

func done(t mqtt.Token) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}
