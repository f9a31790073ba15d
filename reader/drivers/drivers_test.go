package drivers_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/punchclock/punchclock/reader/drivers"
	"github.com/punchclock/punchclock/sim/samples"
)

// Every driver is a folder with a README (wiring, a sample config block),
// a sample reader for the simulator's terminals, and a config whose
// defaults validate once its required keys are set by that sample.
func TestEveryDriverIsComplete(t *testing.T) {
	if len(drivers.All) < 2 {
		t.Fatalf("%d drivers", len(drivers.All))
	}
	seen := map[string]bool{}
	for _, d := range drivers.All {
		if d.Name == "" || d.Doc == "" || d.NewConfig == nil || seen[d.Name] {
			t.Errorf("driver %+v", d)
			continue
		}
		seen[d.Name] = true
		if d.NewConfig() == d.NewConfig() {
			t.Errorf("%s: NewConfig returns the same value twice", d.Name)
		}
		dir := filepath.Join("..", d.Name)
		readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
		if err != nil {
			t.Errorf("%s: %v", d.Name, err)
		} else if !strings.Contains(string(readme), `driver = "`+d.Name+`"`) {
			t.Errorf("%s: README.md has no sample config block with driver = %q", d.Name, d.Name)
		}
		n := 0
		for _, s := range samples.Samples {
			if s.Driver == d.Name {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d samples in sim/samples, want 1", d.Name, n)
		}
		if got, ok := drivers.Lookup(d.Name); !ok || got.Name != d.Name {
			t.Errorf("Lookup(%q) = %v, %v", d.Name, got, ok)
		}
	}
	if _, ok := drivers.Lookup("nope"); ok {
		t.Error("Lookup found a driver that does not exist")
	}
}
