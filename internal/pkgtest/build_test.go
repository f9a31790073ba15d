package pkgtest

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// release is what TestMain built: the binaries and packages in dir.
var release struct {
	dir     string
	version string // as stamped into the binaries
	debVer  string // the packages' version
	debs    map[string]string
}

const testVersion = "v1.4.2-3-gabcdef0"

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "punchclock-release")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		cmd := exec.Command("scripts/build-release.sh", "-deb", testVersion)
		cmd.Dir = repo()
		cmd.Env = append(os.Environ(), "DIST="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "scripts/build-release.sh: %v\n%s", err, out)
			return 1
		}
		os.Stderr.Write(out)
		release.dir, release.version = dir, testVersion
		release.debVer = "1.4.2+3+gabcdef0"
		release.debs = map[string]string{}
		for _, a := range []string{"armhf", "arm64", "amd64"} {
			release.debs[a] = filepath.Join(dir, "punchclock_"+release.debVer+"_"+a+".deb")
		}
		return m.Run()
	}())
}

// repo is the repository's root (tests run in internal/pkgtest).
func repo() string {
	abs, err := filepath.Abs("../..")
	if err != nil {
		panic(err)
	}
	return abs
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestReleaseBinaries(t *testing.T) {
	for _, c := range []struct {
		name    string
		machine elf.Machine
		goarm   string
	}{
		{"armv6", elf.EM_ARM, "6"}, {"armv7", elf.EM_ARM, "7"}, {"arm64", elf.EM_AARCH64, ""}, {"amd64", elf.EM_X86_64, ""},
	} {
		path := filepath.Join(release.dir, "punchclock-linux-"+c.name)
		bi, err := buildinfo.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		if settings["GOARM"] != c.goarm || settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
			t.Errorf("%s: built with GOARM=%q CGO_ENABLED=%q -trimpath=%q, want GOARM=%q, no cgo, -trimpath",
				c.name, settings["GOARM"], settings["CGO_ENABLED"], settings["-trimpath"], c.goarm)
		}
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != c.machine {
			t.Errorf("%s: machine %v, want %v", c.name, f.Machine, c.machine)
		}
		// Stripped: -s -w leaves neither a symbol table nor DWARF.
		if f.Section(".symtab") != nil || f.Section(".debug_info") != nil {
			t.Errorf("%s: not stripped", c.name)
		}
		f.Close()
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes (%.2f MiB)", c.name, st.Size(), float64(st.Size())/(1<<20))
		if c.name == "armv6" && st.Size() >= 10<<20 {
			t.Errorf("armv6 binary is %d bytes, the limit is 10 MiB", st.Size())
		}
	}
	// The stamp: version and commit.
	commit := strings.TrimSpace(run(t, "git", "-C", repo(), "rev-parse", "--short=12", "HEAD"))
	got := run(t, filepath.Join(release.dir, "punchclock-linux-amd64"), "version")
	if !regexp.MustCompile(`^punchclock ` + regexp.QuoteMeta(testVersion) + ` ` + commit + `(-dirty)?\n$`).MatchString(got) {
		t.Errorf("punchclock version = %q, want version %s and commit %s", got, testVersion, commit)
	}
	cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
	cmd.Dir = release.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("SHA256SUMS: %v\n%s", err, out)
	}
}

// entry is one line of dpkg-deb -c.
type entry struct{ mode, owner string }

func contents(t *testing.T, deb string) map[string]entry {
	t.Helper()
	m := map[string]entry{}
	sc := bufio.NewScanner(strings.NewReader(run(t, "dpkg-deb", "-c", deb)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c line %q", sc.Text())
		}
		name := strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")
		m[name] = entry{f[0], f[1]}
	}
	return m
}

func TestDebContents(t *testing.T) {
	machines := map[string]elf.Machine{"armhf": elf.EM_ARM, "arm64": elf.EM_AARCH64, "amd64": elf.EM_X86_64}
	for arch, deb := range release.debs {
		t.Run(arch, func(t *testing.T) {
			for field, want := range map[string]string{
				"Package": "punchclock", "Version": release.debVer, "Architecture": arch,
			} {
				if got := strings.TrimSpace(run(t, "dpkg-deb", "-f", deb, field)); got != want {
					t.Errorf("%s = %q, want %q", field, got, want)
				}
			}
			info := run(t, "dpkg-deb", "-I", deb)
			for _, s := range []string{"conffiles", "preinst", "postinst", "prerm", "postrm"} {
				if !regexp.MustCompile(`(?m)^\s+\d+ bytes,\s+\d+ lines\s+\*?\s+` + s + `\b`).MatchString(info) {
					t.Errorf("control member %s missing:\n%s", s, info)
				}
			}
			ctrl := t.TempDir()
			run(t, "dpkg-deb", "-e", deb, ctrl)
			conf, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
			if err != nil {
				t.Fatal(err)
			}
			if string(conf) != "/etc/punchclock/punchclock.toml\n" {
				t.Errorf("conffiles = %q", conf)
			}
			want := map[string]entry{
				"/usr/bin/punchclock":                    {"-rwxr-xr-x", "root/root"},
				"/lib/systemd/system/punchclock.service": {"-rw-r--r--", "root/root"},
				"/etc/punchclock":                        {"drwxr-x---", "root/punchclock"},
				"/etc/punchclock/punchclock.toml":        {"-rw-r-----", "root/punchclock"},
			}
			got := contents(t, deb)
			for name, w := range want {
				if g, ok := got[name]; !ok || g != w {
					t.Errorf("%s: %v (present %v), want %v", name, g, ok, w)
				}
			}
			for name, e := range got {
				if _, ok := want[name]; !ok && e.mode[0] != 'd' {
					t.Errorf("unexpected file %s", name)
				}
			}
			// The binary is this architecture's, and the unit and the
			// conffile are the repository's.
			x := t.TempDir()
			run(t, "dpkg-deb", "-x", deb, x)
			f, err := elf.Open(filepath.Join(x, "usr/bin/punchclock"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != machines[arch] {
				t.Errorf("binary machine %v, want %v", f.Machine, machines[arch])
			}
			for pkg, src := range map[string]string{
				"lib/systemd/system/punchclock.service": "packaging/punchclock.service",
				"etc/punchclock/punchclock.toml":        "config/sample.toml",
			} {
				a, _ := os.ReadFile(filepath.Join(x, pkg))
				b, _ := os.ReadFile(filepath.Join(repo(), src))
				if len(a) == 0 || !bytes.Equal(a, b) {
					t.Errorf("%s differs from %s", pkg, src)
				}
			}
		})
	}
}
