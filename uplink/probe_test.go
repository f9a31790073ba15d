package uplink

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/punchclock/punchclock/internal/mosquitto"
	"github.com/punchclock/punchclock/internal/testbroker"
)

// probe runs Probe and returns the stage it stopped at ("" when all
// passed) with its detail; no detail may hold the password.
func probe(t *testing.T, c Config) (failed, detail string, results []StageResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	results, ok := Probe(ctx, c)
	if d := time.Since(start); d > 10*time.Second+time.Second {
		t.Errorf("the probe took %v", d)
	}
	for _, r := range results {
		if c.Password != "" && strings.Contains(r.Detail, c.Password) {
			t.Fatalf("stage %s shows the password: %s", r.Stage, r.Detail)
		}
	}
	last := results[len(results)-1]
	if ok != last.OK {
		t.Fatalf("ok %v, last stage %+v", ok, last)
	}
	if ok {
		return "", last.Detail, results
	}
	return last.Stage, last.Detail, results
}

func TestProbe(t *testing.T) {
	p := newPKI(t)
	pwFile := filepath.Join(p.dir, "passwd")
	bin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Fatalf("mosquitto_passwd (Debian's mosquitto package) not found: %v", err)
	}
	if out, err := exec.Command(bin, "-b", "-c", pwFile, "door", password).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	// The terminal may read its own topics, but publish nothing.
	acl := filepath.Join(p.dir, "acl")
	if err := os.WriteFile(acl, []byte("topic read "+prefix+"/"+device+"/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, sslURL := tlsBroker(t, p, fmt.Sprintf("allow_anonymous false\npassword_file %s\n", pwFile))
	closed, err := mosquitto.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	base := Config{Broker: sslURL, TopicPrefix: prefix, DeviceID: device, ClientID: "punchclock-" + device,
		Username: "door", Password: password, CAFile: p.ca}
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		failed  string
		because string
	}{
		{"everything works", func(*Config) {}, "", "published and read back"},
		{"no such host", func(c *Config) { c.Broker = "ssl://no-such-host.invalid:8883" }, StageDNS, "resolve no-such-host.invalid"},
		{"nobody listening", func(c *Config) { c.Broker = fmt.Sprintf("ssl://127.0.0.1:%d", closed) }, StageTCP, "connection refused"},
		{"unknown authority", func(c *Config) { c.CAFile = p.otherCA }, StageTLS, "authority this terminal does not trust"},
		{"wrong password", func(c *Config) { c.Password = "wrong-" + password }, StageMQTT, "refused the credentials"},
		{"no credentials", func(c *Config) { c.Username, c.Password = "", "" }, StageMQTT, "requires authentication"},
		{"missing CA file", func(c *Config) { c.CAFile = filepath.Join(p.dir, "nope.pem") }, StageConfig, "nope.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mutate(&c)
			failed, detail, _ := probe(t, c)
			if failed != tc.failed || !strings.Contains(detail, tc.because) {
				t.Fatalf("stopped at %q: %s; want %q with %q", failed, detail, tc.failed, tc.because)
			}
		})
	}
	// The ACL: a broker that lets the terminal read its topics but
	// publish nothing (and still acknowledges its publishes).
	t.Run("acl", func(t *testing.T) {
		b := testbroker.StartWithOptions(t, testbroker.Options{ExtraConfig: "acl_file " + acl + "\n"})
		c := base
		c.Broker, c.CAFile, c.Username, c.Password = b.URL(), "", "door", ""
		failed, detail, _ := probe(t, c)
		if failed != StageACL || !strings.Contains(detail, "does not let this terminal publish") {
			t.Fatalf("stopped at %q: %s; want the acl stage", failed, detail)
		}
	})
}
