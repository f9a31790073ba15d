package osdp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/punchclock/punchclock/reader"
)

// Wire constants of an OSDP v2 packet (SIA OSDP v2.2, §5.7).
const (
	SOM       = 0x53 // start of message
	ReplyFlag = 0x80 // set in the address byte of every reply
	// Broadcast is the address every PD answers (as itself).
	Broadcast = 0x7F
	// MaxAddress is the highest PD address.
	MaxAddress = 0x7E

	ctrlSQN = 0x03 // sequence number, bits 0–1
	ctrlCRC = 0x04 // 1: CRC-16 trailer; 0: one checksum byte
	ctrlSCB = 0x08 // a security control block follows the header
	// ctrlReserved: bits this CP neither sends nor understands; a
	// packet with one set is refused (it is noise, or a multi-part
	// message, which is not supported).
	ctrlReserved = 0xF0

	headerLen = 5 // SOM, ADDR, LEN_LSB, LEN_MSB, CTRL
	macLen    = 4 // the MAC sent in a secure-channel message

	// MaxFrame bounds the length a framer accepts. OSDP leaves the
	// maximum to each device; card, keypad and identification replies
	// are a few dozen bytes, so a longer length field is taken as noise
	// rather than waited for.
	MaxFrame = 1024
	// minFrame: header, code and a checksum byte.
	minFrame = headerLen + 1 + 1
)

// Command codes the control panel sends (§6).
const (
	CmdPOLL   = 0x60
	CmdID     = 0x61
	CmdCAP    = 0x62
	CmdLED    = 0x69
	CmdBUZ    = 0x6A
	CmdCHLNG  = 0x76
	CmdSCRYPT = 0x77
)

// Reply codes a PD sends (§7).
const (
	ReplyACK     = 0x40
	ReplyNAK     = 0x41
	ReplyPDID    = 0x45
	ReplyPDCAP   = 0x46
	ReplyRAW     = 0x50
	ReplyFMT     = 0x51
	ReplyKEYPPAD = 0x53
	ReplyCCRYPT  = 0x76
	ReplyRMACI   = 0x78
	ReplyBUSY    = 0x79
)

// NAK error codes (§7.3).
const (
	NakChecksum    = 0x01
	NakLength      = 0x02
	NakUnknownCmd  = 0x03
	NakSequence    = 0x04
	NakSecBlock    = 0x05 // security block not supported
	NakEncryptReqd = 0x06 // encrypted communication required (or MAC failed)
)

// Security control block types (§D.1).
const (
	SCS11 = 0x11 // CHLNG: CP → PD, starts the handshake
	SCS12 = 0x12 // CCRYPT: PD → CP
	SCS13 = 0x13 // SCRYPT: CP → PD
	SCS14 = 0x14 // RMAC_I: PD → CP
	SCS15 = 0x15 // CP → PD, MAC, data in clear
	SCS16 = 0x16 // CP → PD, MAC, data encrypted
	SCS17 = 0x17 // PD → CP, MAC, data in clear
	SCS18 = 0x18 // PD → CP, MAC, data encrypted
)

// A Frame is one decoded OSDP packet.
type Frame struct {
	Addr   byte // PD address, 0–0x7F, without ReplyFlag
	Reply  bool // ReplyFlag was set: a PD's reply
	SQN    byte // sequence number 0–3
	UseCRC bool // CRC-16 trailer (else an 8-bit checksum)
	// SCB is the security control block, length byte and type first,
	// or nil.
	SCB  []byte
	Code byte   // command or reply code
	Data []byte // command or reply data (as on the wire: encrypted in SCS_16/18)
	// MAC is the 4-byte MAC of a secure-channel message (SCB type
	// 0x15–0x18), else nil.
	MAC []byte
	// Raw is the whole packet as received (for MAC checks); Encode
	// ignores it.
	Raw []byte
}

// SCBType returns the security block type, or 0 when there is none.
func (f *Frame) SCBType() byte {
	if len(f.SCB) < 2 {
		return 0
	}
	return f.SCB[1]
}

func hasMAC(scbType byte) bool { return scbType >= SCS15 && scbType <= SCS18 }

// ErrEncode is wrapped by Encode for a frame that cannot be sent.
var ErrEncode = errors.New("osdp: cannot encode frame")

// Encode returns the packet for f: the length, the control byte and the
// CRC-16 (or checksum) are computed; f.MAC is sent as given and must be
// 4 bytes when the SCB type calls for one.
func (f *Frame) Encode() ([]byte, error) {
	if f.Addr > Broadcast || f.SQN > 3 {
		return nil, fmt.Errorf("%w: address %#x, sqn %d", ErrEncode, f.Addr, f.SQN)
	}
	if f.SCB != nil && (len(f.SCB) < 2 || int(f.SCB[0]) != len(f.SCB)) {
		return nil, fmt.Errorf("%w: security block % X", ErrEncode, f.SCB)
	}
	wantMAC := hasMAC(f.SCBType())
	if wantMAC && len(f.MAC) != macLen || !wantMAC && len(f.MAC) != 0 {
		return nil, fmt.Errorf("%w: MAC of %d bytes with security block type %#x", ErrEncode, len(f.MAC), f.SCBType())
	}
	trailer := 1
	if f.UseCRC {
		trailer = 2
	}
	n := headerLen + len(f.SCB) + 1 + len(f.Data) + len(f.MAC) + trailer
	if n > MaxFrame {
		return nil, fmt.Errorf("%w: %d bytes is longer than %d", ErrEncode, n, MaxFrame)
	}
	b := make([]byte, 0, n)
	addr := f.Addr
	if f.Reply {
		addr |= ReplyFlag
	}
	ctrl := f.SQN & ctrlSQN
	if f.UseCRC {
		ctrl |= ctrlCRC
	}
	if f.SCB != nil {
		ctrl |= ctrlSCB
	}
	b = append(b, SOM, addr, byte(n), byte(n>>8), ctrl)
	b = append(b, f.SCB...)
	b = append(b, f.Code)
	b = append(b, f.Data...)
	b = append(b, f.MAC...)
	return appendTrailer(b, f.UseCRC), nil
}

func appendTrailer(b []byte, useCRC bool) []byte {
	if useCRC {
		return binary.LittleEndian.AppendUint16(b, CRC16(b))
	}
	return append(b, Checksum(b))
}

// CRC16 is the OSDP CRC: CRC-16/AUG-CCITT (polynomial 0x1021, initial
// value 0x1D0F, no reflection, no final XOR). It is sent low byte first.
func CRC16(p []byte) uint16 {
	crc := uint16(0x1D0F)
	for _, b := range p {
		crc ^= uint16(b) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// Checksum is the 8-bit OSDP checksum: the two's complement of the sum
// of the bytes, so that the packet with it sums to zero.
func Checksum(p []byte) byte {
	var s byte
	for _, b := range p {
		s += b
	}
	return -s
}

// A Framer splits the byte stream of an OSDP bus into packets. It is
// pure: no I/O, no clock, no goroutines. Bytes may be fed split at any
// position. It hunts for SOM, reads the length, and checks the CRC (or
// checksum) and the packet's structure; a packet that fails is counted
// bad and the stream is rescanned from the byte after its SOM, so a real
// packet starting inside noise is still found. It never holds more than
// MaxFrame bytes.
//
// The zero value is ready to use. A Framer is not safe for concurrent use.
type Framer struct {
	buf []byte // buf[0] == SOM whenever len(buf) > 0

	frames, bad, garbage uint64
}

// Feed consumes p and calls emit, synchronously and in order, with each
// good packet. The Frame's slices are its own.
func (f *Framer) Feed(p []byte, emit func(Frame)) {
	for len(p) > 0 {
		if len(f.buf) == 0 {
			// Skip to the next SOM without buffering noise.
			i := 0
			for i < len(p) && p[i] != SOM {
				i++
			}
			f.garbage += uint64(i)
			p = p[i:]
			if len(p) == 0 {
				return
			}
		}
		room := MaxFrame - len(f.buf)
		take := min(room, len(p))
		f.buf = append(f.buf, p[:take]...)
		p = p[take:]
		f.scan(emit, false)
	}
}

// Flush ends a pause on the line: a packet still incomplete will not be
// completed (its sender gave up, or its length was noise), so it is
// counted bad and what followed its SOM is rescanned. The driver calls
// it when an awaited reply timed out, and on reopening the port.
func (f *Framer) Flush(emit func(Frame)) {
	f.scan(emit, true)
}

// scan decodes what buf holds. With flush, an incomplete packet at the
// start of buf is rejected instead of waited for.
func (f *Framer) scan(emit func(Frame), flush bool) {
	for {
		// Drop noise up to the next SOM.
		i := 0
		for i < len(f.buf) && f.buf[i] != SOM {
			i++
		}
		f.garbage += uint64(i)
		f.drop(i)
		if len(f.buf) == 0 {
			return
		}
		n, verdict := check(f.buf)
		switch verdict {
		case needMore:
			if !flush {
				return
			}
			f.bad++
			f.drop(1)
		case bad:
			f.bad++
			f.drop(1)
		case good:
			fr := parse(f.buf[:n])
			f.frames++
			f.drop(n)
			emit(fr)
		}
	}
}

func (f *Framer) drop(n int) {
	if n == 0 {
		return
	}
	m := copy(f.buf, f.buf[n:])
	f.buf = f.buf[:m]
}

// Stats returns the framer's counters: Frames, BadFrames and Garbage.
func (f *Framer) Stats() reader.Stats {
	return reader.Stats{Frames: f.frames, BadFrames: f.bad, Garbage: f.garbage}
}

type verdict int

const (
	needMore verdict = iota
	bad
	good
)

// check judges the packet starting at b[0] (a SOM) and returns its
// length when good.
func check(b []byte) (int, verdict) {
	if len(b) < 4 {
		return 0, needMore
	}
	n := int(binary.LittleEndian.Uint16(b[2:4]))
	if n < minFrame || n > MaxFrame {
		return 0, bad
	}
	if len(b) >= headerLen {
		ctrl := b[4]
		if ctrl&ctrlReserved != 0 || ctrl&ctrlCRC != 0 && n < minFrame+1 {
			return 0, bad
		}
	}
	if len(b) < n {
		return 0, needMore
	}
	p := b[:n]
	ctrl := p[4]
	body := headerLen
	if ctrl&ctrlCRC != 0 {
		if CRC16(p[:n-2]) != binary.LittleEndian.Uint16(p[n-2:]) {
			return 0, bad
		}
		n -= 2
	} else {
		if Checksum(p[:n-1]) != p[n-1] {
			return 0, bad
		}
		n--
	}
	// p[body:n] is the SCB (if any), the code, the data and the MAC.
	var scbType byte
	if ctrl&ctrlSCB != 0 {
		if body >= n {
			return 0, bad
		}
		l := int(p[body])
		if l < 2 || body+l >= n { // the code must follow
			return 0, bad
		}
		scbType = p[body+1]
		body += l
	}
	if hasMAC(scbType) && n-body-1 < macLen {
		return 0, bad
	}
	return len(p), good
}

// parse splits a packet that check judged good.
func parse(p []byte) Frame {
	raw := append([]byte(nil), p...)
	ctrl := raw[4]
	f := Frame{
		Addr:   raw[1] &^ ReplyFlag,
		Reply:  raw[1]&ReplyFlag != 0,
		SQN:    ctrl & ctrlSQN,
		UseCRC: ctrl&ctrlCRC != 0,
		Raw:    raw,
	}
	end := len(raw) - 1
	if f.UseCRC {
		end--
	}
	i := headerLen
	if ctrl&ctrlSCB != 0 {
		l := int(raw[i])
		f.SCB = raw[i : i+l : i+l]
		i += l
	}
	f.Code = raw[i]
	i++
	if hasMAC(f.SCBType()) {
		f.MAC = raw[end-macLen : end : end]
		end -= macLen
	}
	f.Data = raw[i:end:end]
	return f
}

// macInput returns the bytes a secure-channel MAC covers: the packet
// from SOM to the end of the data.
func (f *Frame) macInput() []byte {
	end := len(f.Raw) - 1 - macLen
	if f.UseCRC {
		end--
	}
	if end < 0 {
		return nil
	}
	return f.Raw[:end]
}

// nextSQN is the sequence number after s: 0 only starts a conversation,
// then 1, 2, 3, 1, 2, 3, …
func nextSQN(s byte) byte {
	return s%3 + 1
}
