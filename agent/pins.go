package agent

import (
	"time"

	"github.com/punchclock/punchclock/pin"
	"github.com/punchclock/punchclock/reader"
)

// pinPad turns key presses into PIN reads and applies the lockout. PINs
// live only here, in memory, until they are hashed with the device's key;
// they are never logged, stored or sent. Owned by the writer.
type pinPad struct {
	secret  pin.Secret
	entry   *pin.Entry
	lockout *pin.Lockout
}

func newPinPad(dataDir string) (*pinPad, error) {
	s, err := pin.LoadSecret(dataDir)
	if err != nil {
		return nil, err
	}
	return &pinPad{secret: s, entry: pin.NewEntry(), lockout: pin.NewLockout()}, nil
}

// key takes one key press. It returns a PIN read (its value the keyed
// hash) when '#' completes a PIN, and reports an entry that failed
// (too short, too long) so that the reader can show it.
func (p *pinPad) key(rd reader.Read) (out reader.Read, isPIN, failed bool) {
	res := p.entry.Key(rd.Reader, rd.Value, rd.At)
	switch res.Kind {
	case pin.PIN:
		return reader.Read{Reader: rd.Reader, Type: reader.TypePIN, Value: p.secret.Hash(res.PIN), At: rd.At}, true, false
	case pin.Discarded:
		return reader.Read{}, false, true
	}
	return reader.Read{}, false, false
}

// judge reports whether PIN entry is locked at the reader, and otherwise
// counts the PIN wrong or right.
func (p *pinPad) judge(readerName string, at time.Time, known bool) bool {
	if p.lockout.Check(readerName, at) {
		return true
	}
	if known {
		p.lockout.Right(readerName, at)
	} else {
		p.lockout.Wrong(readerName, at)
	}
	return false
}

// hash is the keyed hash of a roster PIN.
func (p *pinPad) hash(v string) string { return p.secret.Hash(v) }
