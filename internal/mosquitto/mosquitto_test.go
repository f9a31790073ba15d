package mosquitto

import (
	"net"
	"testing"
)

func TestStartStop(t *testing.T) {
	b, err := Start("", t.TempDir())
	if err != nil {
		t.Fatalf("%v (make test installs mosquitto)", err)
	}
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatalf("broker at %s does not accept: %v", b.URL(), err)
	}
	c.Close()
	b.Stop()
	b.Stop() // safe twice
	if c, err := net.Dial("tcp", b.Addr()); err == nil {
		c.Close()
		t.Fatal("broker still accepts after Stop")
	}
}

func TestFindExplicitMissing(t *testing.T) {
	if _, err := Find("/nonexistent/mosquitto"); err == nil {
		t.Fatal("a missing explicit binary was accepted")
	}
}
