package uplink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Probe stages, in the order they run.
const (
	StageConfig = "config" // the TLS files
	StageDNS    = "dns"
	StageTCP    = "tcp"
	StageTLS    = "tls"  // the broker's certificate verified, ours accepted
	StageMQTT   = "mqtt" // CONNECT: the credentials and the client id
	StageACL    = "acl"  // the agent's subscriptions, and a publish under its own topics
)

// StageResult is one stage of a probe.
type StageResult struct {
	Stage  string
	OK     bool
	Detail string // what worked, or exactly what failed; never a secret
	Took   time.Duration
}

// Probe tries the broker of cfg stage by stage, as the agent would
// connect, and stops at the first stage that fails: DNS, TCP, TLS
// verification (ssl:// only), the MQTT CONNECT (credentials), and the
// ACL on the agent's topics (its subscriptions granted, and a message
// published under its own {prefix}/{device}/ coming back to it). A broker
// that grants a subscription its ACL denies (mosquitto 2.0 does, to an
// MQTT 3.1.1 client) is not caught: the probe cannot publish to the
// roster or commands topics to see, since a running agent would take
// the message. It
// connects with the client id <client id>-check, so that a running agent
// is not thrown off. It returns the results of the stages it ran; ok is
// true when every stage passed. ctx bounds the whole probe.
func Probe(ctx context.Context, cfg Config) (results []StageResult, ok bool) {
	cfg.setDefaults()
	stage := func(name string, start time.Time, err error, okDetail string) bool {
		r := StageResult{Stage: name, OK: err == nil, Detail: okDetail, Took: time.Since(start)}
		if err != nil {
			r.Detail = err.Error()
		}
		results = append(results, r)
		return err == nil
	}
	start := time.Now()
	if err := cfg.validateConnection(); err != nil {
		stage(StageConfig, start, err, "")
		return results, false
	}
	u, _ := url.Parse(cfg.Broker) // validated
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = defaultPorts[u.Scheme]
	}
	var tc *tls.Config
	if tlsSchemes[u.Scheme] {
		var err error
		if tc, err = cfg.tlsConfig(host); err != nil {
			stage(StageConfig, start, err, "")
			return results, false
		}
	}

	start = time.Now()
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if !stage(StageDNS, start, wrapStage("resolve "+host, err), fmt.Sprintf("%s is %s", host, strings.Join(addrs, ", "))) {
		return results, false
	}

	start = time.Now()
	addr := net.JoinHostPort(host, port)
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if !stage(StageTCP, start, wrapStage("connect to "+addr, err), "connected to "+addr) {
		return results, false
	}
	if tc != nil {
		start = time.Now()
		tconn := tls.Client(conn, tc)
		err := tconn.HandshakeContext(ctx)
		detail := ""
		if err == nil {
			st := tconn.ConnectionState()
			detail = fmt.Sprintf("%s, the broker's certificate (%s) verified", tls.VersionName(st.Version), st.PeerCertificates[0].Subject.CommonName)
			if len(tc.Certificates) > 0 {
				detail += ", this terminal's client certificate sent"
			}
		}
		conn = tconn
		if !stage(StageTLS, start, tlsError(host, err), detail) {
			conn.Close()
			return results, false
		}
	}
	conn.Close()

	start = time.Now()
	id := cfg.ClientID + "-check"
	o := mqtt.NewClientOptions().AddBroker(cfg.Broker).SetClientID(id).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetKeepAlive(10 * time.Second)
	if cfg.Username != "" {
		o.SetUsername(cfg.Username)
		o.SetPassword(cfg.Password)
	}
	if tc != nil {
		o.SetTLSConfig(tc)
	}
	c := mqtt.NewClient(o)
	t := c.Connect()
	var cerr error
	if !t.WaitTimeout(deadline(ctx)) {
		cerr = errors.New("no CONNACK in time")
	} else if cerr = t.Error(); cerr != nil {
		cerr = connectError(cerr, cfg.Username != "")
	}
	if !stage(StageMQTT, start, wrapStage("MQTT connect as "+id, cerr), "connected as "+id) {
		return results, false
	}
	defer c.Disconnect(100)

	start = time.Now()
	base := cfg.TopicPrefix + "/" + cfg.DeviceID + "/"
	subs := map[string]byte{base + "roster": 1, base + "acks": 1, base + "commands": 1, base + "check": 1}
	got := make(chan struct{}, 1)
	st := c.SubscribeMultiple(subs, func(mqtt.Client, mqtt.Message) {
		select {
		case got <- struct{}{}:
		default:
		}
	})
	var aerr error
	switch {
	case !st.WaitTimeout(deadline(ctx)):
		aerr = errors.New("no SUBACK in time")
	case st.Error() != nil:
		aerr = st.Error()
	default:
		var denied []string
		for topic, qos := range st.(*mqtt.SubscribeToken).Result() {
			if qos == 0x80 {
				denied = append(denied, topic)
			}
		}
		if len(denied) > 0 {
			aerr = fmt.Errorf("the broker refused the subscriptions to %s", strings.Join(denied, ", "))
		}
	}
	if aerr == nil {
		// A publish under the device's own topics, read back: a broker
		// acknowledges a publish its ACL drops (MQTT 3.1.1 has no
		// reason code), so only the message coming back proves it.
		pt := c.Publish(base+"check", 1, false, []byte(`{"check":true}`))
		switch {
		case !pt.WaitTimeout(deadline(ctx)):
			aerr = errors.New("no PUBACK in time for a publish to " + base + "check")
		case pt.Error() != nil:
			aerr = pt.Error()
		default:
			select {
			case <-got:
			case <-time.After(min(2*time.Second, deadline(ctx))):
				aerr = fmt.Errorf("a message published to %s did not come back: the ACL does not let this terminal publish (or read) under %s", base+"check", base)
			}
		}
	}
	ok = stage(StageACL, start, aerr, "subscribed to "+base+"roster, acks, commands; published and read back under "+base)
	return results, ok
}

// deadline is what is left of ctx, at most 10 s.
func deadline(ctx context.Context) time.Duration {
	d := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl))
	}
	return max(d, 0)
}

func wrapStage(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// tlsError names what failed in a TLS handshake.
func tlsError(host string, err error) error {
	if err == nil {
		return nil
	}
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		return fmt.Errorf("the broker's certificate is signed by an authority this terminal does not trust (ca_file): %w", err)
	case errors.As(err, &hn):
		return fmt.Errorf("the broker's certificate is not for %s: %w", host, err)
	case errors.As(err, &ci):
		return fmt.Errorf("the broker's certificate is not valid (expired, or not yet): %w", err)
	}
	return fmt.Errorf("TLS handshake with %s: %w", host, err)
}

// connectError names a refused CONNECT.
func connectError(err error, withUser bool) error {
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		return fmt.Errorf("the broker refused the username or password: %w", err)
	case errors.Is(err, packets.ErrorRefusedNotAuthorised):
		if !withUser {
			return fmt.Errorf("the broker requires authentication (mqtt.username, mqtt.password, or a client certificate): %w", err)
		}
		// mosquitto answers a wrong password so too.
		return fmt.Errorf("the broker refused the credentials (mqtt.username, mqtt.password) or does not authorise this client: %w", err)
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return fmt.Errorf("the broker rejected the client id: %w", err)
	}
	return err
}
