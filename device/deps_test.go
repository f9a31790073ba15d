package device_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependenciesPointInward fails when device (or devicetest) comes to
// depend on the agent, the uplink or the store: feedback hardware knows
// nothing of MQTT or storage.
func TestDependenciesPointInward(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}",
		"github.com/punchclock/punchclock/device/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"agent", "uplink", "store", "reader", "sim"} {
			p := "github.com/punchclock/punchclock/" + banned
			if dep == p || strings.HasPrefix(dep, p+"/") {
				t.Errorf("device depends on %s", dep)
			}
		}
	}
}
