package osdp

import (
	"bytes"
	"errors"
	"testing"
)

func key(t testing.TB, s string) Key {
	var k Key
	copy(k[:], hx(t, s))
	return k
}

func b16(t testing.TB, s string) [16]byte {
	var b [16]byte
	copy(b[:], hx(t, s))
	return b
}

// SIA OSDP v2.2 Annex E: the secure-channel example with the default key
// SCBK-D (30 31 … 3F), CP random B0…B7 and PD random A0…A7.
func TestSecureChannelAnnexE(t *testing.T) {
	scbkD := key(t, "30 31 32 33 34 35 36 37 38 39 3A 3B 3C 3D 3E 3F")
	rndA := [8]byte{0xB0, 0xB1, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7}
	rndB := [8]byte{0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7}
	k := DeriveKeys(scbkD, rndA)
	for _, c := range []struct {
		name string
		got  Key
		want string
	}{
		{"S-ENC", k.Enc, "BF 8D C2 A8 32 9A CB 8C 67 C6 D0 CD 9A 45 16 82"},
		{"S-MAC1", k.MAC1, "5E 86 C6 76 60 3B DE E2 D8 BE AF E1 78 63 73 32"},
		{"S-MAC2", k.MAC2, "6F DA 86 E8 57 77 7E 81 13 20 35 75 82 39 17 2E"},
	} {
		if c.got != key(t, c.want) {
			t.Errorf("%s = % X, want %s", c.name, c.got, c.want)
		}
	}
	client := ClientCryptogram(k, rndA, rndB)
	if client != b16(t, "FD E5 D2 F4 28 EC 16 31 24 71 EA 3C 02 BD 77 96") {
		t.Errorf("client cryptogram % X", client)
	}
	server := ServerCryptogram(k, rndA, rndB)
	if server != b16(t, "26 D3 35 6E 07 76 2D 26 28 01 FC 8E 66 65 A8 91") {
		t.Errorf("server cryptogram % X", server)
	}
	if r := InitialRMAC(k, server); r != b16(t, "B2 A3 00 57 EB 98 BA 22 29 EC 1F 87 56 62 B5 24") {
		t.Errorf("R-MAC-I % X", r)
	}
}

// The MAC and the data encryption against NIST SP 800-38A F.2.1
// (AES-128-CBC, key 2B7E…, IV 0001…0F): with S-MAC1 = S-MAC2 = that key
// the MAC of whole blocks is the last CBC ciphertext block; a partial
// block is padded with 80 00…; encryption uses the complement of the
// last MAC as IV, so the last MAC is given as ^IV.
func TestMACAndEncryptionNIST(t *testing.T) {
	nistKey := key(t, "2B 7E 15 16 28 AE D2 A6 AB F7 15 88 09 CF 4F 3C")
	iv := b16(t, "00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F")
	pt := hx(t, "6B C1 BE E2 2E 40 9F 96 E9 3D 7E 11 73 93 17 2A"+
		"AE 2D 8A 57 1E 03 AC 9C 9E B7 6F AC 45 AF 8E 51"+
		"30 C8 1C 46 A3 5C E4 11 E5 FB C1 19 1A 0A 52 EF"+
		"F6 9F 24 45 DF 4F 9B 17 AD 2B 41 7B E6 6C 37 10")
	ct := hx(t, "76 49 AB AC 81 19 B2 46 CE E9 8E 9B 12 E9 19 7D"+
		"50 86 CB 9B 50 72 19 EE 95 DB 11 3A 91 76 78 B2"+
		"73 BE D6 B8 E3 C1 74 3B 71 16 E6 9E 22 22 95 16"+
		"3F F1 CA A1 68 1F AC 09 12 0E CA 30 75 86 E1 A7")
	k := SessionKeys{Enc: nistKey, MAC1: nistKey, MAC2: nistKey}
	if m := MAC(k, iv, pt[:16]); !bytes.Equal(m[:], ct[:16]) {
		t.Errorf("MAC of one block % X", m)
	}
	if m := MAC(k, iv, pt); !bytes.Equal(m[:], ct[48:]) {
		t.Errorf("MAC of four blocks % X", m)
	}
	// With different keys only the last block is under S-MAC2: change
	// S-MAC2 and a one-block MAC changes, a four-block one's first
	// three blocks do not matter to S-MAC2.
	k2 := k
	k2.MAC2[0] ^= 1
	if m := MAC(k2, iv, pt[:16]); bytes.Equal(m[:], ct[:16]) {
		t.Error("S-MAC2 is not used for the last block")
	}
	// Encryption: 64 bytes of NIST plaintext gain a whole block of
	// padding; the first 64 ciphertext bytes are NIST's.
	lastMAC := complement(iv)
	enc := Encrypt(k, lastMAC, pt)
	if len(enc) != 80 || !bytes.Equal(enc[:64], ct) {
		t.Errorf("Encrypt = % X", enc)
	}
	dec, err := Decrypt(k, lastMAC, enc)
	if err != nil || !bytes.Equal(dec, pt) {
		t.Errorf("Decrypt = % X, %v", dec, err)
	}
	// Lengths 0…33: padding to whole blocks and back.
	for n := range 34 {
		e := Encrypt(k, lastMAC, pt[:n])
		if len(e) != (n/16+1)*16 {
			t.Errorf("Encrypt of %d bytes gave %d", n, len(e))
		}
		if d, err := Decrypt(k, lastMAC, e); err != nil || !bytes.Equal(d, pt[:n]) {
			t.Errorf("round trip of %d bytes: % X, %v", n, d, err)
		}
	}
	// A block without the 0x80 marker is refused.
	if _, err := Decrypt(k, lastMAC, ct[:16]); !errors.Is(err, ErrSecure) {
		t.Errorf("Decrypt without a marker: %v", err)
	}
	if _, err := Decrypt(k, lastMAC, ct[:15]); !errors.Is(err, ErrSecure) {
		t.Errorf("Decrypt of 15 bytes: %v", err)
	}
}

// A sealed command and reply open on the other side, the MAC chain
// advancing in step; a flipped bit or a replayed packet is refused.
func TestSessionSealOpen(t *testing.T) {
	k := DeriveKeys(key(t, "00112233445566778899AABBCCDDEEFF"), [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	rmacI := b16(t, "0F0E0D0C0B0A09080706050403020100")
	cpS := &session{keys: k, rmac: rmacI}
	pdS := &session{keys: k, rmac: rmacI}
	var fr Framer
	decode := func(p []byte) Frame {
		var got []Frame
		fr.Feed(p, func(f Frame) { got = append(got, f) })
		if len(got) != 1 {
			t.Fatalf("% X decodes to %d frames", p, len(got))
		}
		return got[0]
	}
	var prev []byte
	for i, data := range [][]byte{nil, {0}, hx(t, "00 00 02 05 02 02 00 14 00 00 00 00 00 00"), make([]byte, 40)} {
		sqn := nextSQN(byte(i))
		cmd, err := cpS.seal(Frame{Addr: 3, SQN: sqn, UseCRC: true, Code: CmdLED, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		got, err := pdS.open(decode(cmd))
		if err != nil || !bytes.Equal(got.Data, data) || (len(data) > 0) != (got.SCBType() == SCS16) {
			t.Fatalf("command %d: %+v, %v", i, got, err)
		}
		rep, err := pdS.seal(Frame{Addr: 3, Reply: true, SQN: sqn, UseCRC: true, Code: ReplyRAW, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		// The previous exchange's reply, replayed, does not match
		// the chain: its MAC follows an older command.
		if prev != nil {
			if _, err := cpS.open(decode(prev)); !errors.Is(err, ErrSecure) {
				t.Fatalf("replayed reply accepted: %v", err)
			}
		}
		back, err := cpS.open(decode(rep))
		if err != nil || !bytes.Equal(back.Data, data) {
			t.Fatalf("reply %d: %+v, %v", i, back, err)
		}
		prev = rep
	}
	// A bit flipped in the data (CRC recomputed) breaks the MAC.
	cmd, _ := cpS.seal(Frame{Addr: 3, SQN: 1, UseCRC: true, Code: CmdPOLL, Data: []byte{1, 2, 3}})
	cmd[8] ^= 0x01
	cmd = appendTrailer(cmd[:len(cmd)-2], true)
	if _, err := pdS.open(decode(cmd)); !errors.Is(err, ErrSecure) {
		t.Errorf("tampered command accepted: %v", err)
	}
}
