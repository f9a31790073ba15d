package osdp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"errors"
	"fmt"
)

// The secure channel (SIA OSDP v2.2, Annex D): AES-128 keys derived per
// session from the Secure Channel Base Key (SCBK) and the CP's random
// number; mutual authentication by cryptograms; then every message
// carries a 4-byte MAC, chained across messages, and its data encrypted
// in CBC mode.
//
// The functions here are pure: the caller brings the random numbers.

// ErrSecure is wrapped by secure-channel failures: a cryptogram or MAC
// that does not match, a message that is not secured, bad padding.
var ErrSecure = errors.New("osdp: secure channel")

// Key is an AES-128 key.
type Key [16]byte

// SessionKeys are the keys of one secure session.
type SessionKeys struct {
	Enc, MAC1, MAC2 Key
}

func ecb(k Key, in []byte) [16]byte {
	b, _ := aes.NewCipher(k[:]) // a 16-byte key never fails
	var out [16]byte
	b.Encrypt(out[:], in)
	return out
}

// DeriveKeys derives the session keys from the base key and the CP's
// random number (RND.A): each is AES-128-ECB under the SCBK of a block
// that starts 0x01 then 0x82 (S-ENC), 0x01 (S-MAC1) or 0x02 (S-MAC2),
// then the first six bytes of RND.A, then zeros.
func DeriveKeys(scbk Key, rndA [8]byte) SessionKeys {
	derive := func(kind byte) Key {
		var in [16]byte
		in[0], in[1] = 0x01, kind
		copy(in[2:8], rndA[:6])
		return ecb(scbk, in[:])
	}
	return SessionKeys{Enc: derive(0x82), MAC1: derive(0x01), MAC2: derive(0x02)}
}

// ClientCryptogram is the PD's proof that it holds the key:
// AES-ECB(S-ENC, RND.A ‖ RND.B).
func ClientCryptogram(k SessionKeys, rndA, rndB [8]byte) [16]byte {
	var in [16]byte
	copy(in[:8], rndA[:])
	copy(in[8:], rndB[:])
	return ecb(k.Enc, in[:])
}

// ServerCryptogram is the CP's: AES-ECB(S-ENC, RND.B ‖ RND.A).
func ServerCryptogram(k SessionKeys, rndA, rndB [8]byte) [16]byte {
	var in [16]byte
	copy(in[:8], rndB[:])
	copy(in[8:], rndA[:])
	return ecb(k.Enc, in[:])
}

// InitialRMAC is the PD's R-MAC-I, the first link of the MAC chain:
// AES-ECB(S-MAC2, AES-ECB(S-MAC1, server cryptogram)).
func InitialRMAC(k SessionKeys, serverCryptogram [16]byte) [16]byte {
	x := ecb(k.MAC1, serverCryptogram[:])
	return ecb(k.MAC2, x[:])
}

// padded returns p followed by 0x80 and zeros up to a multiple of 16.
func padded(p []byte) []byte {
	n := (len(p) + 1 + 15) / 16 * 16
	out := make([]byte, n)
	copy(out, p)
	out[len(p)] = 0x80
	return out
}

// MAC computes a message's MAC: AES-CBC over msg (padded with 0x80 0x00…
// unless it already fills whole blocks) starting from iv, the previous
// MAC of the chain; every block but the last under S-MAC1, the last
// under S-MAC2. The first 4 bytes are sent; all 16 are the next link.
func MAC(k SessionKeys, iv [16]byte, msg []byte) [16]byte {
	var buf []byte
	if len(msg) > 0 && len(msg)%16 == 0 {
		buf = append([]byte(nil), msg...)
	} else {
		buf = padded(msg)
	}
	chain := iv
	if len(buf) > 16 {
		b1, _ := aes.NewCipher(k.MAC1[:])
		head := buf[:len(buf)-16]
		cipher.NewCBCEncrypter(b1, chain[:]).CryptBlocks(head, head)
		copy(chain[:], head[len(head)-16:])
	}
	last := buf[len(buf)-16:]
	for i := range last {
		last[i] ^= chain[i]
	}
	return ecb(k.MAC2, last)
}

func complement(m [16]byte) [16]byte {
	for i := range m {
		m[i] = ^m[i]
	}
	return m
}

// Encrypt pads data with 0x80 0x00… and encrypts it AES-CBC under S-ENC
// with the complement of lastMAC as IV (a command: the last reply's MAC;
// a reply: the MAC of the command it answers).
func Encrypt(k SessionKeys, lastMAC [16]byte, data []byte) []byte {
	buf := padded(data)
	b, _ := aes.NewCipher(k.Enc[:])
	iv := complement(lastMAC)
	cipher.NewCBCEncrypter(b, iv[:]).CryptBlocks(buf, buf)
	return buf
}

// Decrypt reverses Encrypt and strips the padding.
func Decrypt(k SessionKeys, lastMAC [16]byte, data []byte) ([]byte, error) {
	if len(data) == 0 || len(data)%16 != 0 {
		return nil, fmt.Errorf("%w: %d encrypted bytes are not whole blocks", ErrSecure, len(data))
	}
	buf := append([]byte(nil), data...)
	b, _ := aes.NewCipher(k.Enc[:])
	iv := complement(lastMAC)
	cipher.NewCBCDecrypter(b, iv[:]).CryptBlocks(buf, buf)
	i := len(buf) - 1
	for i > 0 && buf[i] == 0 && len(buf)-i < 16 {
		i--
	}
	if buf[i] != 0x80 {
		return nil, fmt.Errorf("%w: bad padding", ErrSecure)
	}
	return buf[:i], nil
}

// A session is one side's state of an established secure channel: the
// keys and the two ends of the MAC chain.
type session struct {
	keys SessionKeys
	cmac [16]byte // MAC of the last command
	rmac [16]byte // MAC of the last reply (R-MAC-I at first)
}

// seal turns f (a command when f.Reply is false, a reply otherwise)
// into a secure packet: SCS_15/17 when it has no data, else SCS_16/18
// with its data encrypted; the MAC chain advances.
func (s *session) seal(f Frame) ([]byte, error) {
	last := s.rmac
	if f.Reply {
		last = s.cmac
	}
	typ := byte(SCS15)
	if len(f.Data) > 0 {
		typ = SCS16
		f.Data = Encrypt(s.keys, last, f.Data)
	}
	if f.Reply {
		typ += 2 // SCS_17, SCS_18
	}
	f.SCB = []byte{2, typ}
	f.MAC = make([]byte, macLen)
	p, err := f.Encode()
	if err != nil {
		return nil, err
	}
	trailer := 1
	if f.UseCRC {
		trailer = 2
	}
	body := p[:len(p)-trailer-macLen]
	mac := MAC(s.keys, last, body)
	if f.Reply {
		s.rmac = mac
	} else {
		s.cmac = mac
	}
	copy(p[len(body):], mac[:macLen])
	return appendTrailer(p[:len(body)+macLen], f.UseCRC), nil
}

// open checks a received secure packet's MAC, advances the chain and
// returns the frame with its data decrypted.
func (s *session) open(f Frame) (Frame, error) {
	typ := f.SCBType()
	wantClear, wantEnc := byte(SCS15), byte(SCS16)
	last := s.rmac
	if f.Reply {
		wantClear, wantEnc = SCS17, SCS18
		last = s.cmac
	}
	if typ != wantClear && typ != wantEnc {
		return f, fmt.Errorf("%w: security block type %#x, want %#x or %#x", ErrSecure, typ, wantClear, wantEnc)
	}
	mac := MAC(s.keys, last, f.macInput())
	if subtle.ConstantTimeCompare(mac[:macLen], f.MAC) != 1 {
		return f, fmt.Errorf("%w: MAC mismatch", ErrSecure)
	}
	if typ == wantEnc {
		d, err := Decrypt(s.keys, last, f.Data)
		if err != nil {
			return f, err
		}
		f.Data = d
	}
	if f.Reply {
		s.rmac = mac
	} else {
		s.cmac = mac
	}
	return f, nil
}
