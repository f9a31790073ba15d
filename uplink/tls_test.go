package uplink

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/mosquitto"
	"github.com/punchclock/punchclock/internal/testbroker"
)

// pki is a test CA with a server certificate for 127.0.0.1 and localhost,
// a client certificate, and a second, unrelated CA; all as PEM files.
type pki struct {
	dir                   string
	ca, otherCA           string
	serverCert, serverKey string
	clientCert, clientKey string
	caCert                *x509.Certificate
	caKey                 *ecdsa.PrivateKey
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	p.caCert, p.caKey, p.ca = p.selfSigned(t, "test CA", "ca.pem")
	_, _, p.otherCA = p.selfSigned(t, "other CA", "other-ca.pem")
	p.serverCert, p.serverKey = p.leaf(t, "server", &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:    []string{"localhost"},
	})
	p.clientCert, p.clientKey = p.leaf(t, "client", &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return p
}

func (p *pki) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var serial int64

func template(cn string) *x509.Certificate {
	serial++
	return &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
}

func (p *pki) selfSigned(t *testing.T, cn, file string) (*x509.Certificate, *ecdsa.PrivateKey, string) {
	t.Helper()
	key := newKey(t)
	tmpl := template(cn)
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, p.write(t, file, "CERTIFICATE", der)
}

func (p *pki) leaf(t *testing.T, name string, tmpl *x509.Certificate) (certFile, keyFile string) {
	t.Helper()
	key := newKey(t)
	base := template(name)
	tmpl.SerialNumber, tmpl.Subject, tmpl.NotBefore, tmpl.NotAfter = base.SerialNumber, base.Subject, base.NotBefore, base.NotAfter
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+".key", "PRIVATE KEY", keyDER)
}

// tlsBroker runs mosquitto with a second listener speaking TLS with p's
// server certificate; extra is appended to that listener's settings. It
// returns the broker (whose plain listener the test helpers use) and the
// ssl:// URL.
func tlsBroker(t *testing.T, p *pki, extra string) (*testbroker.Broker, string) {
	t.Helper()
	port, err := mosquitto.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	b := testbroker.StartWithOptions(t, testbroker.Options{ExtraConfig: fmt.Sprintf(
		"listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n%s",
		port, p.ca, p.serverCert, p.serverKey, extra)})
	return b, fmt.Sprintf("ssl://127.0.0.1:%d", port)
}

const password = "s3cr3t-Pa55w0rd"

// Mutual TLS: the uplink verifies the broker against CAFile and shows its
// client certificate; rows flow.
func TestTLSMutual(t *testing.T) {
	p := newPKI(t)
	b, url := tlsBroker(t, p, "require_certificate true\n")
	sub := b.Subscribe(t, base+"+")
	ob := newMemOutbox()
	ob.addN(20)
	u := start(t, url, ob, func(c *Config) {
		c.CAFile, c.CertFile, c.KeyFile = p.ca, p.clientCert, p.clientKey
	})
	waitEmpty(t, ob, 10*time.Second)
	if !u.Connected() {
		t.Fatal("not connected")
	}
	sub.WaitUntil(t, 5*time.Second, "20 rows", func(ms []testbroker.Message) bool { return len(distinct(seqs(t, ms))) == 20 })
}

// A broker whose certificate is not signed by CAFile is refused, and the
// log says why; so is a client without a certificate by a broker that
// requires one.
func TestTLSRefusals(t *testing.T) {
	p := newPKI(t)
	_, url := tlsBroker(t, p, "require_certificate true\n")
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		why    string
	}{
		{"wrong CA", func(c *Config) { c.CAFile, c.CertFile, c.KeyFile = p.otherCA, p.clientCert, p.clientKey },
			"certificate signed by unknown authority"},
		{"system roots", func(c *Config) { c.CertFile, c.KeyFile = p.clientCert, p.clientKey },
			"certificate signed by unknown authority"},
		{"no client certificate", func(c *Config) { c.CAFile = p.ca }, "tls: certificate required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ob := newMemOutbox()
			ob.addN(3)
			log, lines := captureLogger(t)
			u := start(t, url, ob, func(c *Config) {
				c.Logger = log
				tc.mutate(c)
			})
			eventually(t, 10*time.Second, "the refusal logged", func() bool {
				return len(lines.matching("level=WARN", "disconnected; retrying", tc.why)) > 0
			})
			if u.Connected() || ob.len() != 3 {
				t.Fatalf("connected %v, %d of 3 rows left", u.Connected(), ob.len())
			}
			if len(lines.matching("uplink: connected")) != 0 {
				t.Fatal("a connection was accepted")
			}
		})
	}
}

// Username and password over TLS: the right password connects, a wrong
// one is refused; the password never appears in a log line, in
// Config.String or in an error.
func TestTLSPassword(t *testing.T) {
	p := newPKI(t)
	pwFile := filepath.Join(p.dir, "passwd")
	bin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Fatalf("mosquitto_passwd (Debian's mosquitto package) not found: %v", err)
	}
	if out, err := exec.Command(bin, "-b", "-c", pwFile, "door", password).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	_, url := tlsBroker(t, p, fmt.Sprintf("allow_anonymous false\npassword_file %s\n", pwFile))
	var all []string
	run := func(pw string, wantOK bool) {
		t.Helper()
		ob := newMemOutbox()
		ob.addN(5)
		log, lines := captureLogger(t)
		u := start(t, url, ob, func(c *Config) {
			c.Logger = log
			c.CAFile = p.ca
			c.Username, c.Password = "door", pw
			if s := c.String(); strings.Contains(s, pw) {
				t.Fatalf("Config.String shows the password: %s", s)
			}
		})
		if wantOK {
			waitEmpty(t, ob, 10*time.Second)
		} else {
			eventually(t, 10*time.Second, "refusal logged", func() bool {
				return len(lines.matching("disconnected; retrying", "not Authorized")) >= 2
			})
			if ob.len() != 5 {
				t.Fatal("rows sent with a wrong password")
			}
		}
		u.Close()
		all = append(all, lines.all()...)
	}
	run(password, true)
	run("wrong-"+password, false)

	// Configuration errors do not show it either.
	for _, mutate := range []func(*Config){
		func(c *Config) { c.CertFile = p.clientCert },
		func(c *Config) { c.CAFile = filepath.Join(p.dir, "missing.pem") },
		func(c *Config) { c.Broker = "tcp://127.0.0.1:1883" },
	} {
		c := Config{Broker: url, TopicPrefix: prefix, DeviceID: device, Outbox: newMemOutbox(),
			Username: "door", Password: password, CAFile: p.ca}
		mutate(&c)
		_, err := New(c)
		if err == nil {
			t.Fatal("New accepted a bad TLS config")
		}
		all = append(all, err.Error())
	}
	for _, line := range all {
		if strings.Contains(line, password) || strings.Contains(line, "Pa55w0rd") {
			t.Fatalf("the password appears in: %s", line)
		}
	}
	if len(all) < 5 {
		t.Fatalf("only %d lines checked", len(all))
	}
}

// New checks the TLS files and names the key at fault.
func TestNewTLSConfig(t *testing.T) {
	p := newPKI(t)
	garbage := filepath.Join(p.dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := func() Config {
		return Config{Broker: "ssl://localhost:8883", TopicPrefix: "pc", DeviceID: "d1", Outbox: newMemOutbox(),
			CAFile: p.ca, CertFile: p.clientCert, KeyFile: p.clientKey}
	}
	u, err := New(good())
	if err != nil {
		t.Fatal(err)
	}
	if u.tls.ServerName != "localhost" || u.tls.MinVersion < 0x0303 || u.tls.InsecureSkipVerify ||
		u.tls.RootCAs == nil || len(u.tls.Certificates) != 1 {
		t.Fatalf("tls.Config: server name %q, min version %x, insecure %v, roots %v, %d certs",
			u.tls.ServerName, u.tls.MinVersion, u.tls.InsecureSkipVerify, u.tls.RootCAs != nil, len(u.tls.Certificates))
	}
	c := good()
	c.CAFile = ""
	if u, err := New(c); err != nil || u.tls.RootCAs != nil {
		t.Fatalf("without CAFile: %v, roots %v (want the system's: nil)", err, u.tls.RootCAs)
	}
	for name, tc := range map[string]struct {
		mutate func(*Config)
		key    string
	}{
		"cert without key":  {func(c *Config) { c.KeyFile = "" }, "KeyFile"},
		"key without cert":  {func(c *Config) { c.CertFile = "" }, "CertFile"},
		"missing CA":        {func(c *Config) { c.CAFile = garbage + ".none" }, "CAFile"},
		"CA not PEM":        {func(c *Config) { c.CAFile = garbage }, "CAFile"},
		"missing cert":      {func(c *Config) { c.CertFile = garbage + ".none" }, "CertFile"},
		"missing key":       {func(c *Config) { c.KeyFile = garbage + ".none" }, "KeyFile"},
		"key not PEM":       {func(c *Config) { c.KeyFile = garbage }, "KeyFile"},
		"key of other cert": {func(c *Config) { c.KeyFile = p.serverKey }, "KeyFile"},
		"files with tcp://": {func(c *Config) { c.Broker = "tcp://localhost:1883" }, "CAFile"},
	} {
		t.Run(name, func(t *testing.T) {
			c := good()
			tc.mutate(&c)
			_, err := New(c)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("New: %v, want ErrConfig naming %s", err, tc.key)
			}
		})
	}
}
