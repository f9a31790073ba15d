package chaos

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/punchclock/punchclock/internal/mosquitto"
	"github.com/punchclock/punchclock/internal/testbroker"
)

// A Broker is an MQTT broker on a fixed loopback port that the suite can
// restart.
type Broker interface {
	Name() string
	Addr() string // host:port
	URL() string  // tcp://host:port
	// Restart stops the broker and starts it again on the same port.
	Restart(t testing.TB)
}

// Mosquitto is testbroker's persistent mosquitto as a Broker: sessions,
// queued and retained messages survive Restart.
type Mosquitto struct{ *testbroker.Broker }

// Name implements Broker.
func (Mosquitto) Name() string { return "mosquitto" }

// Restart implements Broker.
func (m Mosquitto) Restart(t testing.TB) {
	t.Helper()
	m.Stop()
	m.Start()
}

// Forgetful is mosquitto without persistence: Restart loses every
// session, queued QoS 1 message and retained message.
type Forgetful struct {
	cfg  mosquitto.Config
	mu   sync.Mutex
	proc *mosquitto.Process
}

// StartForgetful runs mosquitto without persistence on a free port. It is
// stopped by t.Cleanup.
func StartForgetful(t testing.TB) *Forgetful {
	t.Helper()
	bin, err := mosquitto.Find("")
	if err != nil {
		t.Fatalf("chaos: %v", err)
	}
	b := &Forgetful{cfg: mosquitto.Config{Binary: bin, Dir: t.TempDir()}}
	t.Cleanup(func() {
		b.stop(t)
		if t.Failed() {
			t.Logf("chaos: mosquitto log:\n%s", b.cfg.ReadLog())
		}
	})
	for attempt := 0; ; attempt++ {
		if b.cfg.Port, err = mosquitto.FreePort(); err != nil {
			t.Fatalf("chaos: %v", err)
		}
		if b.proc, err = mosquitto.Run(b.cfg); err == nil {
			return b
		}
		if attempt == 2 {
			t.Fatalf("chaos: %v", err)
		}
	}
}

// Name implements Broker.
func (*Forgetful) Name() string { return "mosquitto without persistence" }

// Addr implements Broker.
func (b *Forgetful) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.cfg.Port)) }

// URL implements Broker.
func (b *Forgetful) URL() string { return "tcp://" + b.Addr() }

func (b *Forgetful) stop(t testing.TB) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc != nil {
		if err := b.proc.Stop(); err != nil {
			t.Errorf("chaos: %v", err)
		}
		b.proc = nil
	}
}

// Restart implements Broker.
func (b *Forgetful) Restart(t testing.TB) {
	t.Helper()
	b.stop(t)
	b.mu.Lock()
	defer b.mu.Unlock()
	p, err := mosquitto.Run(b.cfg)
	if err != nil {
		t.Fatalf("chaos: restart: %v", err)
	}
	b.proc = p
}

// ErrNoNATS: nats-server is not installed.
var ErrNoNATS = errors.New("chaos: nats-server not found in PATH or /usr/sbin (`make setup` installs Debian's)")

// NATS is nats-server with JetStream and its MQTT interface; JetStream's
// store (sessions, queued messages) is in the test's directory and
// survives Restart.
type NATS struct {
	bin, conf, dir string
	port           int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartNATS runs nats-server with MQTT on a free port. A missing
// nats-server fails the test. It is stopped by t.Cleanup.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		bin = "/usr/sbin/nats-server"
		if _, err := os.Stat(bin); err != nil {
			t.Fatal(ErrNoNATS)
		}
	}
	n := &NATS{bin: bin, dir: t.TempDir()}
	t.Cleanup(func() {
		n.stop(t)
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(n.dir, "nats.log"))
			t.Logf("chaos: nats-server log:\n%s", tail(string(log), 16<<10))
		}
	})
	for attempt := 0; ; attempt++ {
		if n.port, err = mosquitto.FreePort(); err != nil {
			t.Fatalf("chaos: %v", err)
		}
		n.conf = filepath.Join(n.dir, "nats.conf")
		conf := fmt.Sprintf(`server_name: chaos
host: 127.0.0.1
port: -1
log_file: %q
jetstream {
  store_dir: %q
}
mqtt {
  host: 127.0.0.1
  port: %d
}
`, filepath.Join(n.dir, "nats.log"), filepath.Join(n.dir, "jetstream"), n.port)
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if err = n.start(); err == nil {
			return n
		}
		if attempt == 2 {
			t.Fatalf("chaos: %v", err)
		}
	}
}

func (n *NATS) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	cmd := exec.Command(n.bin, "-c", n.conf)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("chaos: start nats-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // its log says why
		close(done)
	}()
	n.cmd, n.done = cmd, done
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", n.Addr(), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			n.cmd = nil
			log, _ := os.ReadFile(filepath.Join(n.dir, "nats.log"))
			return fmt.Errorf("chaos: nats-server exited at start:\n%s", tail(string(log), 4<<10))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: nats-server's MQTT port %s not open within 20s", n.Addr())
		}
	}
}

func (n *NATS) stop(t testing.TB) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
		t.Errorf("chaos: nats-server ignored SIGTERM for 20s; killed")
	}
	n.cmd = nil
}

// Name implements Broker.
func (*NATS) Name() string { return "nats-server" }

// Addr implements Broker.
func (n *NATS) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

// URL implements Broker.
func (n *NATS) URL() string { return "tcp://" + n.Addr() }

// Restart implements Broker.
func (n *NATS) Restart(t testing.TB) {
	t.Helper()
	n.stop(t)
	if err := n.start(); err != nil {
		t.Fatalf("chaos: restart: %v", err)
	}
}

// Mochi is mochi-mqtt embedded in the test process. It keeps state in
// memory only: Restart loses sessions and queued messages.
type Mochi struct {
	addr string
	mu   sync.Mutex
	srv  *mochi.Server
}

// StartMochi runs an embedded broker on a free port. It is closed by
// t.Cleanup.
func StartMochi(t testing.TB) *Mochi {
	t.Helper()
	port, err := mosquitto.FreePort()
	if err != nil {
		t.Fatalf("chaos: %v", err)
	}
	m := &Mochi{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	if err := m.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.stop)
	return m
}

func (m *Mochi) start() error {
	srv := mochi.New(&mochi.Options{InlineClient: false, Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return fmt.Errorf("chaos: mochi: %w", err)
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "chaos", Address: m.addr})); err != nil {
		return fmt.Errorf("chaos: mochi: %w", err)
	}
	if err := srv.Serve(); err != nil {
		return fmt.Errorf("chaos: mochi: %w", err)
	}
	m.mu.Lock()
	m.srv = srv
	m.mu.Unlock()
	return nil
}

func (m *Mochi) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.srv != nil {
		m.srv.Close()
		m.srv = nil
	}
}

// Name implements Broker.
func (*Mochi) Name() string { return "mochi-mqtt" }

// Addr implements Broker.
func (m *Mochi) Addr() string { return m.addr }

// URL implements Broker.
func (m *Mochi) URL() string { return "tcp://" + m.addr }

// Restart implements Broker.
func (m *Mochi) Restart(t testing.TB) {
	t.Helper()
	m.stop()
	if err := m.start(); err != nil {
		t.Fatalf("chaos: restart: %v", err)
	}
}

// MarkerTopic is under the consumer's filter and outside the agent's
// topics; Flush and WaitSubscribed publish on it.
const MarkerTopic = "punchclock/" + DeviceID + "/chaos-marker"

// Flush waits until the consumer has received everything the broker
// accepted before the call: it publishes markers (QoS 1, from a fresh
// client) until one comes back, and the broker delivers to one
// subscriber in order. It also proves that the consumer is subscribed.
func Flush(t testing.TB, b Broker, sub *testbroker.Subscriber) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		marker := fmt.Sprintf("%d-%d", time.Now().UnixNano(), i)
		testbroker.Publish(t, b.URL(), MarkerTopic, []byte(marker), false)
		wait := time.Now().Add(time.Second)
		for time.Now().Before(wait) {
			for _, m := range sub.Messages() {
				if m.Topic == MarkerTopic && string(m.Payload) == marker {
					return
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			t.Fatalf("chaos: the consumer did not receive a marker on %s within 30s", b.Name())
		}
	}
}

// GatedRestart restarts b while the agent is cut off from it, so that the
// consumer misses nothing the broker acknowledged: cut the agent's link,
// let the consumer take everything the broker holds, restart, wait until
// the consumer is subscribed again, and restore the link. What the agent
// sees is its connection closed and, on reconnecting, a broker that may
// have lost its session.
func GatedRestart(t testing.TB, b Broker, link *Link, sub *testbroker.Subscriber) {
	t.Helper()
	link.Cut()
	Flush(t, b, sub)
	b.Restart(t)
	Flush(t, b, sub)
	link.Restore()
}
