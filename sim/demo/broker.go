package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// broker is the demo's MQTT broker: Debian's mosquitto when it is
// installed, otherwise mochi-mqtt embedded in this process.
type broker struct {
	URL  string
	Kind string
	stop func()
}

func (b *broker) Close() { b.stop() }

func mosquittoPath() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	return ""
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startBroker(ctx context.Context, dir string, logw io.Writer) (*broker, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if bin := mosquittoPath(); bin != "" {
		conf := filepath.Join(dir, "mosquitto.conf")
		body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n", port)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		cmd := exec.Command(bin, "-c", conf)
		cmd.Stdout, cmd.Stderr = logw, logw
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("demo: start mosquitto: %w", err)
		}
		stop := func() {
			cmd.Process.Signal(os.Interrupt)
			cmd.Wait()
		}
		if err := waitPort(ctx, addr); err != nil {
			stop()
			return nil, err
		}
		return &broker{URL: "tcp://" + addr, Kind: "mosquitto " + bin, stop: stop}, nil
	}
	srv := mochi.New(&mochi.Options{InlineClient: false, Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "demo", Address: addr})); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("demo: embedded broker: %w", err)
	}
	return &broker{URL: "tcp://" + addr, Kind: "embedded mochi-mqtt (install mosquitto to use Debian's broker)", stop: func() { srv.Close() }}, nil
}

func waitPort(ctx context.Context, addr string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: broker did not listen on %s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
