// Package pin holds the rules for a PIN used as a credential: how PINs
// are typed on a keypad (Entry assembles key presses into PINs), how
// often a reader may be guessed at (Lockout), and how a PIN is kept
// (Secret.Hash: a keyed hash, so that a roster or a disk image read
// elsewhere does not give the PINs away, even by trying all 10^4 of the
// short ones, without this device's secret).
//
// Everything here but LoadSecret is pure: no goroutines, no clock (times
// are passed in), no logging. Entry and Lockout are not safe for
// concurrent use (the agent decides one read at a time). A PIN is a plain
// string that lives only in memory: the caller hashes it at once and
// never logs or sends it.
package pin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// A PIN is MinDigits to MaxDigits decimal digits.
const (
	MinDigits = 4
	MaxDigits = 12
)

// SecretFile is the name of the secret's file in the directory given to
// LoadSecret.
const SecretFile = "pin.key"

// secretLen is the size of the secret in bytes.
const secretLen = 32

// ErrBadSecret is wrapped by LoadSecret's error when the secret's file
// exists but cannot be used: wrong size, permissions wider than 0600, or
// not a regular file. LoadSecret never replaces such a file: with a new
// secret every stored PIN hash would stop matching.
var ErrBadSecret = errors.New("pin: unusable secret file")

// A Secret is a device's key for hashing PINs. The zero Secret has no
// key; Hash panics on it. A Secret never prints, logs or marshals its
// key: every fmt verb, MarshalJSON and MarshalText give "redacted".
type Secret struct {
	key []byte
}

// LoadSecret returns the secret kept in dir/pin.key, creating the file
// with 32 random bytes and mode 0600 if it does not exist. The
// directory must exist. A file that exists but is unusable is an error
// wrapping ErrBadSecret.
func LoadSecret(dir string) (Secret, error) {
	path := filepath.Join(dir, SecretFile)
	s, err := readSecret(path)
	if !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	return createSecret(dir, path)
}

func readSecret(path string) (Secret, error) {
	// Stat before opening: opening a FIFO would block.
	fi, err := os.Stat(path)
	if err != nil {
		return Secret{}, fmt.Errorf("pin: %w", err)
	}
	// Never replaced here: see ErrBadSecret.
	const keep = " (deleting it makes a new secret, and every PIN hashed with the old one stops matching)"
	if !fi.Mode().IsRegular() {
		return Secret{}, fmt.Errorf("pin: %s is not a regular file (%v): restore it%s: %w", path, fi.Mode().Type(), keep, ErrBadSecret)
	}
	if perm := fi.Mode().Perm(); perm&^0o600 != 0 {
		return Secret{}, fmt.Errorf("pin: %s has mode %#o, wider than 0600: chmod 600 it%s: %w", path, perm, keep, ErrBadSecret)
	}
	f, err := os.Open(path)
	if err != nil {
		return Secret{}, fmt.Errorf("pin: %w", err)
	}
	defer f.Close()
	// Read one byte more than a secret to tell a long file from a good one.
	key, err := io.ReadAll(io.LimitReader(f, secretLen+1))
	if err != nil {
		return Secret{}, fmt.Errorf("pin: read %s: %w", path, err)
	}
	if len(key) != secretLen {
		return Secret{}, fmt.Errorf("pin: %s holds %d bytes, want %d: restore it%s: %w", path, fi.Size(), secretLen, keep, ErrBadSecret)
	}
	return Secret{key: key}, nil
}

// createSecret writes a new secret to a temporary file, makes it durable,
// and links it into place. A link, unlike a rename, never replaces a file
// another process created meanwhile: then that file's secret is the one
// returned, so that no caller hashes with a secret that is not on disk.
func createSecret(dir, path string) (Secret, error) {
	key := make([]byte, secretLen)
	if _, err := rand.Read(key); err != nil {
		return Secret{}, fmt.Errorf("pin: %w", err)
	}
	f, err := os.CreateTemp(dir, SecretFile+".tmp*") // mode 0600
	if err != nil {
		return Secret{}, fmt.Errorf("pin: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Secret{}, fmt.Errorf("pin: write %s: %w", tmp, err)
	}
	if err := os.Link(tmp, path); errors.Is(err, os.ErrExist) {
		return readSecret(path)
	} else if err != nil {
		return Secret{}, fmt.Errorf("pin: %w", err)
	}
	if err := os.Remove(tmp); err != nil {
		return Secret{}, fmt.Errorf("pin: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return Secret{}, err
	}
	return Secret{key: key}, nil
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("pin: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("pin: fsync %s: %w", dir, err)
	}
	return nil
}

// hashPrefix marks a hashed PIN and the scheme: HMAC-SHA256 with the
// device secret, base64url without padding.
const hashPrefix = "h1:"

// hashLen is the length of a hash's text after the prefix.
var hashLen = base64.RawURLEncoding.EncodedLen(sha256.Size)

// Hash returns the keyed hash of pin, "h1:" and 43 base64url characters.
// The same secret and PIN always give the same hash. It panics on the
// zero Secret.
func (s Secret) Hash(pin string) string {
	if len(s.key) == 0 {
		panic("pin: Hash with the zero Secret")
	}
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(pin))
	return hashPrefix + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// IsHashed reports whether v has the form of a Hash (a clear PIN, only
// digits, never has).
func IsHashed(v string) bool {
	rest, ok := strings.CutPrefix(v, hashPrefix)
	if !ok || len(rest) != hashLen {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	return err == nil
}

// Valid reports whether p is a clear PIN: MinDigits to MaxDigits ASCII
// digits.
func Valid(p string) bool {
	if len(p) < MinDigits || len(p) > MaxDigits {
		return false
	}
	for i := range len(p) {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

const redacted = "pin.Secret(redacted)"

// String returns "pin.Secret(redacted)".
func (Secret) String() string { return redacted }

// GoString returns "pin.Secret(redacted)".
func (Secret) GoString() string { return redacted }

// Format prints "pin.Secret(redacted)" for every verb, so that no verb
// (%x, %+v, %d ...) reaches the key.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// MarshalJSON returns the JSON string "redacted".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"redacted"`), nil }

// MarshalText returns "redacted" (for encoders of text: TOML, slog).
func (Secret) MarshalText() ([]byte, error) { return []byte("redacted"), nil }
