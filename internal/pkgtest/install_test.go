package pkgtest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// fakeRoot is a tree dpkg --root can install into, as a freshly built
// image would be: a dpkg database, and the passwd and group files of a
// Debian base system (root, and dialout; groups lists more).
func fakeRoot(t *testing.T, groups ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"etc", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "usr/bin", "lib/systemd/system"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	group := "root:x:0:\ndialout:x:20:\n" + strings.Join(groups, "")
	gshadow := ""
	for _, l := range strings.Split(strings.TrimSpace(group), "\n") {
		gshadow += strings.SplitN(l, ":", 2)[0] + ":*::\n"
	}
	for name, s := range map[string]string{
		"etc/passwd":             "root:x:0:0:root:/root:/bin/sh\n",
		"etc/shadow":             "root:*:19000:0:99999:7:::\n",
		"etc/group":              group,
		"etc/gshadow":            gshadow,
		"var/lib/dpkg/status":    "",
		"var/lib/dpkg/available": "",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// noSystemd puts a systemctl first on PATH that records being called and
// fails: the package must not need a running systemd.
func noSystemd(t *testing.T) (env []string, called string) {
	t.Helper()
	bin := t.TempDir()
	called = filepath.Join(bin, "called")
	script := "#!/bin/sh\necho \"$@\" >>" + called + "\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH")), called
}

// dpkg runs dpkg on root as an image build would: maintainer scripts
// run on this host with DPKG_ROOT set, not chrooted.
func dpkg(t *testing.T, root string, args ...string) string {
	t.Helper()
	env, called := noSystemd(t)
	cmd := exec.Command("dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--log=/dev/null"}, args...)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if b, err := os.ReadFile(called); err == nil {
		t.Errorf("dpkg %s called systemctl: %s", strings.Join(args, " "), b)
	}
	return string(out)
}

// account is one line of a passwd or group file.
func account(t *testing.T, root, file, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "etc", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Split(sc.Text(), ":"); fs[0] == name {
			return fs
		}
	}
	return nil
}

func owner(t *testing.T, path string) (uid, gid int, mode os.FileMode) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Sys().(*syscall.Stat_t)
	return int(s.Uid), int(s.Gid), st.Mode()
}

func members(fs []string) []string {
	if len(fs) < 4 || fs[3] == "" {
		return nil
	}
	return strings.Split(fs[3], ",")
}

func TestDebInstallAndPurgeWithoutSystemd(t *testing.T) {
	for _, c := range []struct {
		name   string
		groups []string
	}{
		{"debian without gpio", nil},
		{"raspberry pi os with gpio", []string{"gpio:x:997:\n"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := fakeRoot(t, c.groups...)
			dpkg(t, root, "-i", release.debs["amd64"])
			if st := dpkg(t, root, "--status", "punchclock"); !strings.Contains(st, "Status: install ok installed") {
				t.Fatalf("dpkg --status:\n%s", st)
			}

			// The user: a system account in dialout and gpio.
			u := account(t, root, "passwd", "punchclock")
			if u == nil {
				t.Fatal("no punchclock user")
			}
			uid, _ := strconv.Atoi(u[2])
			if uid <= 0 || uid >= 1000 || u[5] != "/var/lib/punchclock" || u[6] != "/usr/sbin/nologin" {
				t.Errorf("punchclock user %q: want a system uid, home /var/lib/punchclock, shell nologin", u)
			}
			g := account(t, root, "group", "punchclock")
			if g == nil || g[2] != u[3] {
				t.Fatalf("group punchclock %q is not the user's primary group %s", g, u[3])
			}
			gid, _ := strconv.Atoi(g[2])
			gpio := account(t, root, "group", "gpio")
			if gpio == nil {
				t.Fatal("no gpio group")
			}
			if c.groups != nil && gpio[2] != "997" {
				t.Errorf("existing gpio group replaced: %q", gpio)
			}
			for _, grp := range []string{"dialout", "gpio"} {
				if !slices.Contains(members(account(t, root, "group", grp)), "punchclock") {
					t.Errorf("punchclock not in group %s", grp)
				}
			}

			// The files.
			for path, want := range map[string]struct {
				uid, gid int
				mode     os.FileMode
			}{
				"usr/bin/punchclock":                    {0, 0, 0o755},
				"lib/systemd/system/punchclock.service": {0, 0, 0o644},
				"etc/punchclock":                        {0, gid, os.ModeDir | 0o750},
				"etc/punchclock/punchclock.toml":        {0, gid, 0o640},
				"var/lib/punchclock":                    {uid, gid, os.ModeDir | 0o750},
			} {
				u, g, m := owner(t, filepath.Join(root, path))
				if u != want.uid || g != want.gid || m != want.mode {
					t.Errorf("/%s: %d:%d %v, want %d:%d %v", path, u, g, m, want.uid, want.gid, want.mode)
				}
			}
			wants := filepath.Join(root, "etc/systemd/system/multi-user.target.wants/punchclock.service")
			if l, err := os.Readlink(wants); err != nil || l != "/lib/systemd/system/punchclock.service" {
				t.Errorf("service not enabled: %q %v", l, err)
			}

			// An upgrade (the same package again) keeps the technician's
			// config and the data.
			conf := filepath.Join(root, "etc/punchclock/punchclock.toml")
			edited := []byte("device_id = \"door-42\"\n")
			if err := os.WriteFile(conf, edited, 0o640); err != nil {
				t.Fatal(err)
			}
			data := filepath.Join(root, "var/lib/punchclock/punchclock.db")
			if err := os.WriteFile(data, []byte("punches"), 0o600); err != nil {
				t.Fatal(err)
			}
			dpkg(t, root, "--force-confold", "-i", release.debs["amd64"])
			if b, _ := os.ReadFile(conf); string(b) != string(edited) {
				t.Errorf("upgrade replaced the edited config: %q", b)
			}
			if _, err := os.Stat(data); err != nil {
				t.Errorf("upgrade lost the data: %v", err)
			}

			// Remove keeps config and data; purge removes both.
			dpkg(t, root, "--remove", "punchclock")
			if _, err := os.Stat(conf); err != nil {
				t.Errorf("remove deleted the config: %v", err)
			}
			if _, err := os.Stat(data); err != nil {
				t.Errorf("remove deleted the data: %v", err)
			}
			if _, err := os.Lstat(wants); !os.IsNotExist(err) {
				t.Errorf("remove left the service enabled: %v", err)
			}
			if err := os.MkdirAll(filepath.Join(root, "etc/punchclock/tls"), 0o750); err != nil {
				t.Fatal(err)
			}
			dpkg(t, root, "--purge", "punchclock")
			for _, p := range []string{"etc/punchclock", "var/lib/punchclock", "usr/bin/punchclock", "lib/systemd/system/punchclock.service"} {
				if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
					t.Errorf("purge left /%s: %v", p, err)
				}
			}
		})
	}
}
