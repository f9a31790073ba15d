package archtest

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/punchclock/punchclock"

type pkg struct {
	ImportPath string
	Dir        string
	Deps       []string
	GoFiles    []string
	Name       string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// rules: packages under a prefix must not depend on any of the listed
// import path prefixes (their own tests are not counted).
var rules = []struct {
	under     string
	forbidden []string
	why       string
}{
	{"reader", []string{module + "/uplink", module + "/store", module + "/agent", module + "/device", "github.com/eclipse/paho.mqtt.golang", "go.etcd.io/bbolt"}, "readers know nothing of MQTT, storage or feedback"},
	{"device", []string{module + "/uplink", module + "/store", module + "/agent", module + "/reader", "github.com/eclipse/paho.mqtt.golang", "go.etcd.io/bbolt"}, "devices know nothing of MQTT, storage or readers"},
	{"internal/sdnotify", []string{module + "/agent", module + "/store", module + "/uplink", module + "/reader", module + "/device"}, "it talks to systemd only"},
	{"logbook", []string{module + "/agent", module + "/store", module + "/uplink", module + "/reader", module + "/device"}, "a log file, nothing of the terminal"},
	{"store", []string{module + "/reader", module + "/device", module + "/uplink", module + "/agent", "periph.io", "github.com/tarm/serial", "go.bug.st/serial", "github.com/eclipse/paho.mqtt.golang"}, "the store knows nothing of hardware or MQTT"},
	{"uplink", []string{module + "/reader", module + "/device", module + "/store", module + "/agent", "periph.io", "github.com/tarm/serial", "go.bug.st/serial"}, "the uplink knows nothing of hardware or of how the outbox is stored"},
	{"punch", []string{"go.etcd.io/bbolt", "github.com/eclipse/paho.mqtt.golang", "periph.io", "github.com/tarm/serial", module + "/store", module + "/reader"}, "the rules do no I/O"},
	{"roster", []string{"go.etcd.io/bbolt", "github.com/eclipse/paho.mqtt.golang", "periph.io", "github.com/tarm/serial", module + "/store"}, "the roster does no I/O"},
	{"flood", []string{"go.etcd.io/bbolt", "github.com/eclipse/paho.mqtt.golang", "periph.io", "github.com/tarm/serial"}, "the flood limiter does no I/O"},
	{"pin", []string{module + "/reader", module + "/store", module + "/agent", module + "/uplink", module + "/device", "go.etcd.io/bbolt", "github.com/eclipse/paho.mqtt.golang", "periph.io", "github.com/tarm/serial"}, "PIN rules take plain strings and times; their only I/O is the secret's file"},
}

// onlyProject: packages under a prefix may depend on no package of this
// module but the listed ones.
var onlyProject = map[string][]string{
	"flood": {module + "/punch", module + "/roster"}, // a pure rule beside punch.Decide
	"pin":   nil,                                     // a leaf: the agent wires it to readers and the roster
	"clock": nil,                                     // a leaf: reads the kernel's clocks; the agent stamps punches with it
}

func TestDependenciesPointInward(t *testing.T) {
	pkgs := listPackages(t)
	// A control: the dependency lists are complete (the agent reaches
	// bbolt, paho and the reader driver), so an empty list cannot pass.
	for _, p := range pkgs {
		if p.ImportPath != module+"/agent" {
			continue
		}
		for _, want := range []string{"go.etcd.io/bbolt", "github.com/eclipse/paho.mqtt.golang", module + "/store"} {
			found := false
			for _, d := range p.Deps {
				found = found || d == want
			}
			if !found {
				t.Fatalf("agent's dependencies lack %s: go list gave %d", want, len(p.Deps))
			}
		}
	}
	for _, p := range pkgs {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for _, r := range rules {
			if rel != r.under && !strings.HasPrefix(rel, r.under+"/") {
				continue
			}
			if strings.HasSuffix(rel, "test") && rel != r.under {
				continue // fakes for tests (readertest, devicetest) may use more
			}
			for _, d := range p.Deps {
				for _, f := range r.forbidden {
					if d == f || strings.HasPrefix(d, f+"/") || (strings.HasSuffix(f, ".io") && strings.HasPrefix(d, f)) {
						t.Errorf("%s depends on %s: %s", p.ImportPath, d, r.why)
					}
				}
			}
		}
		for under, allowed := range onlyProject {
			if rel != under && !strings.HasPrefix(rel, under+"/") {
				continue
			}
			for _, d := range p.Deps {
				if strings.HasPrefix(d, module+"/") && !slices.Contains(allowed, d) {
					t.Errorf("%s depends on %s: it may use only %v of this module", p.ImportPath, d, allowed)
				}
			}
		}
	}
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for _, p := range listPackages(t) {
		fset := token.NewFileSet()
		documented := false
		for _, f := range p.GoFiles {
			af, err := parser.ParseFile(fset, p.Dir+"/"+f, nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if af.Doc != nil && strings.TrimSpace(af.Doc.Text()) != "" {
				documented = true
			}
		}
		if !documented {
			t.Errorf("package %s has no doc comment saying what it is for", p.ImportPath)
		}
	}
}
