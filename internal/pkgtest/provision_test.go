package pkgtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pki writes a CA certificate, and a client certificate and key signed
// by it, to dir, and a second key that belongs to no certificate.
func pki(t *testing.T, dir string) (ca, cert, key, otherKey string) {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, cliKey := newKey(), newKey()
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now, NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cliTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "door-7"},
		NotBefore: now, NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	cliDER, err := x509.CreateCertificate(rand.Reader, cliTmpl, caTmpl, &cliKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	otherDER, err := x509.MarshalPKCS8PrivateKey(newKey())
	if err != nil {
		t.Fatal(err)
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("client.pem", "CERTIFICATE", cliDER),
		write("client-key.pem", "PRIVATE KEY", keyDER), write("other-key.pem", "PRIVATE KEY", otherDER)
}

const cardConfig = `device_id = "door-7"
data_dir = "/var/lib/punchclock"
timezone = "Europe/Amsterdam"

[mqtt]
broker = "ssl://mqtt.example.com:8883"
password = "s3cret-broker-password"
ca_file = "/etc/punchclock/tls/ca.pem"
cert_file = "/etc/punchclock/tls/client.pem"
key_file = "/etc/punchclock/tls/client-key.pem"
`

// card is a directory tree standing in for a freshly flashed Raspberry
// Pi OS card: a boot partition and a root partition dpkg can install on.
func card(t *testing.T) (boot, root string) {
	t.Helper()
	boot = t.TempDir()
	root = fakeRoot(t)
	for name, s := range map[string]string{
		filepath.Join(boot, "config.txt"):     "arm_64bit=1\n",
		filepath.Join(boot, "cmdline.txt"):    "console=serial0,115200 root=PARTUUID=0 rootwait\n",
		filepath.Join(root, "etc/os-release"): "PRETTY_NAME=\"Raspbian GNU/Linux 12 (bookworm)\"\n",
		filepath.Join(root, "etc/hostname"):   "raspberrypi\n",
		filepath.Join(root, "etc/hosts"):      "127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n",
	} {
		if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return boot, root
}

func provision(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(repo(), "scripts/provision-sd.sh"), args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestProvisionSD(t *testing.T) {
	boot, root := card(t)
	dir := t.TempDir()
	ca, cert, key, _ := pki(t, dir)
	cfg := filepath.Join(dir, "door-7.toml")
	if err := os.WriteFile(cfg, []byte(cardConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	deb := release.debs["armhf"]
	out, err := provision("-boot", boot, "-root", root, "-config", cfg, "-deb", deb,
		"-ca", ca, "-cert", cert, "-key", key, "-ssh")
	if err != nil {
		t.Fatalf("provision-sd: %v\n%s", err, out)
	}
	t.Logf("provision-sd output:\n%s", out)
	for i := 1; i <= 6; i++ {
		if !strings.Contains(out, "["+string(rune('0'+i))+"/6] ") {
			t.Errorf("no step %d/6 in the output", i)
		}
	}
	// Progress of the copy, one line per MiB, ending at 100 %.
	prog := regexp.MustCompile(`punchclock\.deb: +(\d+)% \((\d+) of (\d+) MiB\)`).FindAllStringSubmatch(out, -1)
	if len(prog) < 2 || prog[len(prog)-1][1] != "100" || prog[len(prog)-1][2] != prog[len(prog)-1][3] {
		t.Errorf("copy progress %q: want a line per MiB ending at 100%%", prog)
	}
	if strings.Contains(out, "s3cret") {
		t.Error("the output shows the broker password")
	}

	// Staged on the root partition, readable by root only.
	stage := filepath.Join(root, "var/lib/punchclock-firstboot")
	for name, want := range map[string]os.FileMode{
		"":                   os.ModeDir | 0o700,
		"punchclock.toml":    0o600,
		"punchclock.deb":     0o600,
		"install.sh":         0o700,
		"tls/ca.pem":         0o600,
		"tls/client.pem":     0o600,
		"tls/client-key.pem": 0o600,
	} {
		if _, _, m := owner(t, filepath.Join(stage, name)); m != want {
			t.Errorf("stage/%s: mode %v, want %v", name, m, want)
		}
	}
	a, _ := os.ReadFile(deb)
	b, _ := os.ReadFile(filepath.Join(stage, "punchclock.deb"))
	if !bytes.Equal(a, b) {
		t.Error("the staged package differs from the source")
	}
	// Nothing secret on the FAT boot partition: only what was there and
	// the ssh flag.
	ents, _ := os.ReadDir(boot)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "cmdline.txt config.txt ssh" {
		t.Errorf("boot partition holds %v", names)
	}
	if h, _ := os.ReadFile(filepath.Join(root, "etc/hostname")); string(h) != "door-7\n" {
		t.Errorf("hostname %q", h)
	}
	if h, _ := os.ReadFile(filepath.Join(root, "etc/hosts")); !strings.Contains(string(h), "127.0.1.1\tdoor-7\n") || strings.Contains(string(h), "raspberrypi") {
		t.Errorf("hosts:\n%s", h)
	}
	fbWants := filepath.Join(root, "etc/systemd/system/multi-user.target.wants/punchclock-firstboot.service")
	if l, err := os.Readlink(fbWants); err != nil || l != "/etc/systemd/system/punchclock-firstboot.service" {
		t.Errorf("first-boot service not enabled: %q %v", l, err)
	}
	if out, err := verify(t, root, "/etc/systemd/system/punchclock-firstboot.service"); err != nil || out != "" {
		t.Errorf("first-boot unit: systemd-analyze verify: %v\n%s", err, out)
	}

	// The first boot, on the tree: the package installed (its amd64
	// twin: this host cannot run armhf maintainer scripts' tools, and
	// the scripts are the same), the config and certificates in place.
	amd := filepath.Join(stage, "punchclock.deb")
	if err := os.WriteFile(amd, mustRead(t, release.debs["amd64"]), 0o600); err != nil {
		t.Fatal(err)
	}
	env, called := noSystemd(t)
	cmd := exec.Command(filepath.Join(stage, "install.sh"))
	cmd.Env = append(env, "ROOT="+root)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("first boot install.sh: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(called); err == nil {
		t.Errorf("first boot called systemctl on a tree: %s", b)
	}
	gid := account(t, root, "group", "punchclock")[2]
	if got := string(mustRead(t, filepath.Join(root, "etc/punchclock/punchclock.toml"))); got != cardConfig {
		t.Errorf("installed config is not the device's:\n%s", got)
	}
	for name, src := range map[string]string{
		"etc/punchclock/punchclock.toml":    cfg,
		"etc/punchclock/tls/ca.pem":         ca,
		"etc/punchclock/tls/client.pem":     cert,
		"etc/punchclock/tls/client-key.pem": key,
	} {
		p := filepath.Join(root, name)
		u, g, m := owner(t, p)
		if u != 0 || itoa(g) != gid || m != 0o640 {
			t.Errorf("/%s: %d:%d %v, want 0:%s -rw-r-----", name, u, g, m, gid)
		}
		if !bytes.Equal(mustRead(t, p), mustRead(t, src)) {
			t.Errorf("/%s differs from %s", name, src)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc/punchclock/punchclock.toml.dpkg-dist")); err != nil {
		t.Errorf("the package's sample config is not kept beside the device's: %v", err)
	}
	for _, p := range []string{stage, fbWants} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("first boot left %s: %v", p, err)
		}
	}
	if _, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/punchclock.service")); err != nil {
		t.Errorf("punchclock not enabled after first boot: %v", err)
	}
}

func TestProvisionSDRefuses(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key, other := pki(t, dir)
	cfg := filepath.Join(dir, "door-7.toml")
	if err := os.WriteFile(cfg, []byte(cardConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongCA := filepath.Join(dir, "wrong-ca.toml")
	if err := os.WriteFile(wrongCA, []byte(strings.Replace(cardConfig, "tls/ca.pem", "ca.pem", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	deb := release.debs["armhf"]
	for _, c := range []struct {
		name string
		args func(boot, root string) []string
		want string
	}{
		{"partitions swapped", func(boot, root string) []string {
			return []string{"-boot", root, "-root", boot, "-config", cfg, "-deb", deb}
		}, "no config.txt"},
		{"not a package", func(boot, root string) []string {
			return []string{"-boot", boot, "-root", root, "-config", cfg, "-deb", cfg}
		}, "not a punchclock package"},
		{"config names another CA path", func(boot, root string) []string {
			return []string{"-boot", boot, "-root", root, "-config", wrongCA, "-deb", deb, "-ca", ca}
		}, `ca_file must be "/etc/punchclock/tls/ca.pem"`},
		{"key of another certificate", func(boot, root string) []string {
			return []string{"-boot", boot, "-root", root, "-config", cfg, "-deb", deb, "-cert", cert, "-key", other}
		}, "does not belong to -cert"},
		{"certificate without key", func(boot, root string) []string {
			return []string{"-boot", boot, "-root", root, "-config", cfg, "-deb", deb, "-cert", cert}
		}, "-cert and -key go together"},
		{"a key given as the CA", func(boot, root string) []string {
			return []string{"-boot", boot, "-root", root, "-config", cfg, "-deb", deb, "-ca", key}
		}, "no PEM CERTIFICATE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			boot, root := card(t)
			out, err := provision(c.args(boot, root)...)
			if err == nil || !strings.Contains(out, c.want) {
				t.Fatalf("err %v, output %q: want a failure saying %q", err, out, c.want)
			}
			if strings.Contains(out, "s3cret") {
				t.Error("the output shows the broker password")
			}
			if _, err := os.Stat(filepath.Join(root, "var/lib/punchclock-firstboot")); !os.IsNotExist(err) {
				t.Errorf("a refused card was written to: %v", err)
			}
		})
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func itoa(i int) string { return strconv.Itoa(i) }
