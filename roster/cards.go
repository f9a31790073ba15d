package roster

import (
	"fmt"
	"github.com/punchclock/punchclock/pin"
	"strconv"
	"strings"
)

// Card values in a roster, told apart by how they are spelled (Normalize
// returns the canonical spelling):
//
//	0A00123456      ten hex digits: an EM4100 card as a reader sends it
//	1193046         up to nine decimal digits below 2^32: the number printed
//	                on an EM card (its last four bytes), kept as ten digits
//	04A1B2C3D4E5F6  8, 14 or 20 hex digits: an ISO 14443A UID (PN532); a
//	                4-byte UID spelled with decimal digits only is written
//	                "uid:12345678" (else it is a decimal EM number)
//	123:45678       a Wiegand facility and card number in decimal
//
// Which reads a value matches depends on the read's format (Index.Find):
// an EM4100 read matches its hex value and the decimal of its last four
// bytes; a UID read its UID; a 26-bit Wiegand read its facility:card and
// every EM card whose last three bytes carry that facility (the byte
// before the last two) and card number (the last two bytes), so that a
// site can swap an RDM6300 for a Wiegand reader without re-enrolling; a
// typed read (a keyboard wedge) the EM card whose decimal it typed.

// uidPrefix marks a UID whose hex digits are all decimal.
const uidPrefix = "uid:"

// normalizeCard returns the canonical spelling of a card value.
func normalizeCard(v string) (string, bool) {
	switch {
	case len(v) == 10 && isHex(v):
		// Ten hex digits as a reader sends them. Ten decimal digits
		// fall here too and stay as they are: an EM read is looked up
		// under both its hex and its decimal form.
		return strings.ToUpper(v), true
	case isDigits(v) && len(v) < 10:
		if n, err := strconv.ParseUint(v, 10, 32); err == nil {
			return fmt.Sprintf("%010d", n), true
		}
		return "", false
	case strings.HasPrefix(strings.ToLower(v), uidPrefix):
		u := v[len(uidPrefix):]
		if !isUID(u) {
			return "", false
		}
		u = strings.ToUpper(u)
		if len(u) == 8 && isDigits(u) {
			return uidPrefix + u, true
		}
		return u, true
	case isUID(v):
		return strings.ToUpper(v), true
	}
	if fac, card, ok := facilityCard(v); ok {
		return fmt.Sprintf("%d:%d", fac, card), true
	}
	return "", false
}

// isUID: 8, 14 or 20 hex digits (a 4-, 7- or 10-byte UID).
func isUID(v string) bool {
	return (len(v) == 8 || len(v) == 14 || len(v) == 20) && isHex(v)
}

// uidKey is the UID a canonical card value stands for, if it is one.
func uidKey(v string) (string, bool) {
	if u, ok := strings.CutPrefix(v, uidPrefix); ok {
		return u, true
	}
	if len(v) != 10 && isUID(v) {
		return v, true
	}
	return "", false
}

// facilityCard parses "facility:card" in decimal (a facility below 2^16,
// a card below 2^20: 26-, 34- and 37-bit formats).
func facilityCard(v string) (fac, card uint32, ok bool) {
	f, c, found := strings.Cut(v, ":")
	if !found || !isDigits(f) || !isDigits(c) || len(f) > 5 || len(c) > 7 {
		return 0, 0, false
	}
	fn, err1 := strconv.ParseUint(f, 10, 16)
	cn, err2 := strconv.ParseUint(c, 10, 20)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uint32(fn), uint32(cn), true
}

// wiegand26 is the 24 data bits of a 26-bit read of facility fac and card
// number card, or false when they do not fit.
func wiegand26(fac, card uint32) (uint32, bool) {
	if fac > 0xFF || card > 0xFFFF {
		return 0, false
	}
	return fac<<16 | card, true
}

// IsHashedPIN reports whether v is a PIN as the agent stores it: hashed
// with the device's key, never the digits.
func IsHashedPIN(v string) bool { return pin.IsHashed(v) }

// HashPINs replaces every PIN credential's value with hash(value), in
// place: the device keeps PINs only as keyed hashes. Values hashed
// already are left as they are. It returns how many it hashed.
func (r *Roster) HashPINs(hash func(pin string) string) int {
	n := 0
	for i := range r.Employees {
		for j := range r.Employees[i].Credentials {
			c := &r.Employees[i].Credentials[j]
			if c.Type == PIN && !IsHashedPIN(c.Value) {
				c.Value = hash(c.Value)
				n++
			}
		}
	}
	return n
}
