package pin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadSecretCreatesThenReloads(t *testing.T) {
	dir := t.TempDir()
	s1, err := LoadSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, SecretFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != secretLen {
		t.Fatalf("%s: mode %v, %d bytes; want 0600, %d", path, fi.Mode(), fi.Size(), secretLen)
	}
	key, _ := os.ReadFile(path)
	if !bytes.Equal(key, s1.key) {
		t.Fatal("the file does not hold the secret returned")
	}
	if bytes.Equal(key, make([]byte, secretLen)) {
		t.Fatal("the secret is all zeros")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("dir holds %d entries, want only %s (no temporary file left)", len(ents), SecretFile)
	}

	s2, err := LoadSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s1.Hash("1234") != s2.Hash("1234") {
		t.Fatal("a reloaded secret hashes differently")
	}
	if s3, _ := LoadSecret(t.TempDir()); s3.Hash("1234") == s1.Hash("1234") {
		t.Fatal("two directories got the same secret")
	}
}

func TestLoadSecretRejects(t *testing.T) {
	good := bytes.Repeat([]byte{7}, secretLen)
	for _, tc := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"mode 0644", good, 0o644},
		{"mode 0640", good, 0o640},
		{"mode 0604", good, 0o604},
		{"mode 0700", good, 0o700},
		{"short", good[:16], 0o600},
		{"empty", nil, 0o600},
		{"long", append(good, 0), 0o600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, SecretFile)
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadSecret(dir)
			if !errors.Is(err, ErrBadSecret) {
				t.Fatalf("LoadSecret = %v, want ErrBadSecret", err)
			}
			if !strings.HasPrefix(err.Error(), "pin: ") || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not start with the package and name the file", err)
			}
			// Not replaced: the file is as it was.
			got, _ := os.ReadFile(path)
			fi, _ := os.Stat(path)
			if !bytes.Equal(got, tc.data) || fi.Mode().Perm() != tc.mode {
				t.Fatalf("the file was changed: %d bytes, mode %v", len(got), fi.Mode())
			}
		})
	}
}

func TestLoadSecretAccepts0400(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SecretFile)
	key := bytes.Repeat([]byte{9}, secretLen)
	if err := os.WriteFile(path, key, 0o400); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.key, key) {
		t.Fatal("wrong key read")
	}
}

func TestLoadSecretNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, SecretFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSecret(dir); !errors.Is(err, ErrBadSecret) {
		t.Fatalf("LoadSecret of a directory = %v, want ErrBadSecret", err)
	}
}

func TestLoadSecretNoDir(t *testing.T) {
	_, err := LoadSecret(filepath.Join(t.TempDir(), "missing"))
	if err == nil || errors.Is(err, ErrBadSecret) || !strings.HasPrefix(err.Error(), "pin: ") {
		t.Fatalf("LoadSecret of a missing dir = %v", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s, err := LoadSecret(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	type holder struct {
		Name   string
		Secret Secret
		Ptr    *Secret
	}
	h := holder{"x", s, &s}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, &s), fmt.Sprintf(verb, h))
	}
	outs = append(outs, fmt.Sprint(s), fmt.Sprintln(s), s.String(), s.GoString())
	for _, v := range []any{s, &s, h} {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal: %v", err)
		}
		outs = append(outs, string(j))
	}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "secret", s, "holder", h)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "secret", s, "holder", h)
	outs = append(outs, logs.String())

	forms := []string{string(s.key), fmt.Sprintf("%x", s.key), fmt.Sprintf("%X", s.key), fmt.Sprint(s.key), fmt.Sprintf("%q", s.key)}
	for _, out := range outs {
		for _, f := range forms {
			if strings.Contains(out, f) {
				t.Fatalf("the key appears in %q", out)
			}
		}
		// Any three key bytes in decimal, as %v of a byte slice prints them.
		if strings.Contains(out, strings.Trim(fmt.Sprint(s.key[:3]), "[]")) {
			t.Fatalf("key bytes appear in %q", out)
		}
	}
	if got := fmt.Sprintf("%v", s); got != "pin.Secret(redacted)" {
		t.Errorf("%%v = %q", got)
	}
	if j, _ := json.Marshal(s); string(j) != `"redacted"` {
		t.Errorf("json = %s", j)
	}
}

func TestHash(t *testing.T) {
	a := Secret{key: bytes.Repeat([]byte{1}, secretLen)}
	b := Secret{key: bytes.Repeat([]byte{2}, secretLen)}
	// A vector computed apart (Python: hmac.new(b"\x01"*32, b"1234",
	// "sha256"), base64.urlsafe_b64encode, "=" stripped).
	const want = "h1:" + hash1234
	if got := a.Hash("1234"); got != want {
		t.Errorf("Hash(1234) = %q, want %q", got, want)
	}
	if a.Hash("1234") != a.Hash("1234") {
		t.Error("Hash is not deterministic")
	}
	if a.Hash("1234") == b.Hash("1234") {
		t.Error("two secrets give the same hash")
	}
	if a.Hash("1234") == a.Hash("12340") || a.Hash("0000") == a.Hash("00000") {
		t.Error("two PINs give the same hash")
	}
	for _, p := range []string{"1234", "000000000000", ""} {
		h := a.Hash(p)
		if !IsHashed(h) || len(h) != 3+43 || Valid(h) {
			t.Errorf("Hash(%q) = %q: IsHashed %v, Valid %v", p, h, IsHashed(h), Valid(h))
		}
	}
}

func TestHashZeroSecretPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Hash with the zero Secret did not panic")
		}
	}()
	Secret{}.Hash("1234")
}

func TestIsHashedAndValid(t *testing.T) {
	h := Secret{key: bytes.Repeat([]byte{1}, secretLen)}.Hash("1234")
	for _, tc := range []struct {
		v             string
		hashed, valid bool
	}{
		{h, true, false},
		{"1234", false, true},
		{"123", false, false},
		{"123456789012", false, true},
		{"1234567890123", false, false},
		{"12a4", false, false},
		{"١٢٣٤", false, false}, // Arabic-Indic digits are not PIN digits
		{"", false, false},
		{"h1:", false, false},
		{h[:len(h)-1], false, false},
		{h + "A", false, false},
		{"h2:" + h[3:], false, false},
		{h[:len(h)-1] + "!", false, false},
		{h[:len(h)-1] + "B", false, false}, // non-canonical: the last character's low bits must be zero
	} {
		if got := IsHashed(tc.v); got != tc.hashed {
			t.Errorf("IsHashed(%q) = %v", tc.v, got)
		}
		if got := Valid(tc.v); got != tc.valid {
			t.Errorf("Valid(%q) = %v", tc.v, got)
		}
	}
}

const hash1234 = "HuwOuvqROoa5CMpLJ_RGiOdjP0NC6vezp34O7re68jI"

func TestLoadSecretConcurrentFirstStart(t *testing.T) {
	// Two starts racing to create the file agree on one secret: the one
	// on disk.
	for range 50 {
		dir := t.TempDir()
		var got [2]Secret
		var errs [2]error
		done := make(chan int)
		for i := range 2 {
			go func() { got[i], errs[i] = LoadSecret(dir); done <- i }()
		}
		<-done
		<-done
		if errs[0] != nil || errs[1] != nil {
			t.Fatal(errs)
		}
		onDisk, _ := os.ReadFile(filepath.Join(dir, SecretFile))
		if !bytes.Equal(got[0].key, onDisk) || !bytes.Equal(got[1].key, onDisk) {
			t.Fatal("a racing LoadSecret returned a secret that is not on disk")
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Fatalf("%d entries left in dir", len(ents))
		}
	}
}

func TestCreateSecretLosingTheRace(t *testing.T) {
	// The file appeared after LoadSecret found none: it is kept, and
	// its secret returned.
	dir := t.TempDir()
	path := filepath.Join(dir, SecretFile)
	theirs := bytes.Repeat([]byte{3}, secretLen)
	if err := os.WriteFile(path, theirs, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := createSecret(dir, path)
	if err != nil {
		t.Fatal(err)
	}
	onDisk, _ := os.ReadFile(path)
	if !bytes.Equal(s.key, theirs) || !bytes.Equal(onDisk, theirs) {
		t.Fatal("the other start's secret was not kept and returned")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d entries left in dir", len(ents))
	}
}
