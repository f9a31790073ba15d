package demo

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/punchclock/punchclock/internal/mosquitto"
)

// broker is the demo's MQTT broker: Debian's mosquitto when it is
// installed, otherwise mochi-mqtt embedded in this process.
type broker struct {
	URL  string
	Kind string
	stop func()
}

func (b *broker) Close() { b.stop() }

func startBroker(dir, kind string) (*broker, error) {
	switch kind {
	case "", "mosquitto", "embedded":
	default:
		return nil, fmt.Errorf("demo: broker %q is not mosquitto or embedded", kind)
	}
	_, err := mosquitto.Find("")
	if kind == "mosquitto" && err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if kind != "embedded" && err == nil {
		m, err := mosquitto.Start("", dir)
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		return &broker{URL: m.URL(), Kind: "Debian's mosquitto", stop: func() { m.Stop() }}, nil
	}
	port, err := mosquitto.FreePort()
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
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
