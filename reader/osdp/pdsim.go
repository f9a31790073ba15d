package osdp

import (
	"crypto/subtle"
	"time"
)

// pdSim is the twin's PD, as a pure state machine: handle takes a
// command packet and returns the reply to send (nil: stay silent). It
// keeps the sequence rules of §5.7: a fresh PD NAKs any first sequence
// number but 0; a repeated sequence number gets the cached reply again;
// a skipped one is NAKed; 0 starts over (and ends a secure session).
type pdSim struct {
	addr byte
	scbk *Key
	rand func([]byte)
	now  func() time.Time

	id   PDID
	caps []Capability
	cuid [8]byte

	lastSQN  int    // -1: no conversation yet
	cache    []byte // the reply to lastSQN
	events   []Frame
	inflight *Frame // an event reply not yet acknowledged by the next sequence number

	// Secure channel.
	chlng    bool // CHLNG answered, SCRYPT expected
	rndA     [8]byte
	rndB     [8]byte
	keys     SessionKeys
	sess     *session
	rejected uint64 // commands refused (bad MAC, wrong state)

	silentUntil time.Time
	leds        []LED
	buzzes      []Buzzer
}

func newPDSim(addr byte, scbk *Key, rand func([]byte), now func() time.Time) *pdSim {
	p := &pdSim{
		addr: addr, scbk: scbk, rand: rand, now: now, lastSQN: -1,
		id: PDID{Vendor: [3]byte{0x5C, 0x26, 0x0A}, Model: 1, Version: 2, Serial: 0x12345678 + uint32(addr), Firmware: [3]byte{1, 2, 3}},
		caps: []Capability{
			{Function: 1, Compliance: 1, Items: 4},  // contact status monitoring
			{Function: 3, Compliance: 1, Items: 1},  // card data format: raw bits
			{Function: 4, Compliance: 1, Items: 1},  // reader LED control
			{Function: 5, Compliance: 1, Items: 1},  // reader audible output
			{Function: 9, Compliance: 1, Items: 1},  // communication security
			{Function: 10, Compliance: 0, Items: 1}, // receive buffer size, low byte (256)
		},
	}
	copy(p.cuid[:], []byte{0x5C, 0x26, 0x0A, 0x01, addr, 0, 0, 1})
	return p
}

func (p *pdSim) queue(f Frame) { p.events = append(p.events, f) }

// handle answers one packet from the bus.
func (p *pdSim) handle(f Frame) []byte {
	if f.Reply || (f.Addr != p.addr && f.Addr != Broadcast) {
		return nil
	}
	if p.now().Before(p.silentUntil) {
		return nil
	}
	switch {
	case f.SQN == 0:
		p.restart()
	case p.lastSQN < 0 || f.SQN != nextSQN(byte(p.lastSQN)) && int(f.SQN) != p.lastSQN:
		return p.reply(f, ReplyNAK, []byte{NakSequence}, false)
	case int(f.SQN) == p.lastSQN:
		return p.cache
	}
	p.inflight = nil // the CP moved on: it has the last reply
	r := p.process(f)
	p.cache = r
	p.lastSQN = int(f.SQN)
	return r
}

// restart is a sequence number 0: the CP starts over. An event whose
// reply may have been lost is sent again.
func (p *pdSim) restart() {
	if p.inflight != nil {
		p.events = append([]Frame{*p.inflight}, p.events...)
		p.inflight = nil
	}
	p.sess = nil
	p.chlng = false
	p.lastSQN = -1
}

func (p *pdSim) process(f Frame) []byte {
	secure := false
	if p.sess != nil {
		g, err := p.sess.open(f)
		if err != nil {
			p.rejected++
			p.sess = nil
			return p.reply(f, ReplyNAK, []byte{NakEncryptReqd}, false)
		}
		f, secure = g, true
	} else if hasMAC(f.SCBType()) {
		p.rejected++
		return p.reply(f, ReplyNAK, []byte{NakEncryptReqd}, false)
	}
	switch f.Code {
	case CmdPOLL:
		// With a key, card data waits for the secure channel.
		if len(p.events) > 0 && (p.scbk == nil || secure) {
			ev := p.events[0]
			p.events = p.events[1:]
			p.inflight = &ev
			return p.reply(f, ev.Code, ev.Data, secure)
		}
		return p.reply(f, ReplyACK, nil, secure)
	case CmdID:
		return p.reply(f, ReplyPDID, p.id.Encode(), secure)
	case CmdCAP:
		var d []byte
		for _, c := range p.caps {
			d = append(d, c.Function, c.Compliance, c.Items)
		}
		return p.reply(f, ReplyPDCAP, d, secure)
	case CmdLED:
		l, err := DecodeLED(f.Data)
		if err != nil {
			return p.reply(f, ReplyNAK, []byte{NakLength}, secure)
		}
		p.leds = append(p.leds, l)
		return p.reply(f, ReplyACK, nil, secure)
	case CmdBUZ:
		b, err := DecodeBuzzer(f.Data)
		if err != nil {
			return p.reply(f, ReplyNAK, []byte{NakLength}, secure)
		}
		p.buzzes = append(p.buzzes, b)
		return p.reply(f, ReplyACK, nil, secure)
	case CmdCHLNG:
		return p.challenge(f)
	case CmdSCRYPT:
		return p.serverCryptogram(f)
	}
	return p.reply(f, ReplyNAK, []byte{NakUnknownCmd}, secure)
}

func (p *pdSim) challenge(f Frame) []byte {
	if p.scbk == nil || f.SCBType() != SCS11 || len(f.Data) != 8 {
		return p.reply(f, ReplyNAK, []byte{NakSecBlock}, false)
	}
	copy(p.rndA[:], f.Data)
	p.rand(p.rndB[:])
	p.keys = DeriveKeys(*p.scbk, p.rndA)
	cc := ClientCryptogram(p.keys, p.rndA, p.rndB)
	d := append(append(append([]byte(nil), p.cuid[:]...), p.rndB[:]...), cc[:]...)
	p.chlng = true
	return p.encode(Frame{Addr: p.addr, Reply: true, SQN: f.SQN, UseCRC: f.UseCRC, SCB: []byte{3, SCS12, 1}, Code: ReplyCCRYPT, Data: d})
}

func (p *pdSim) serverCryptogram(f Frame) []byte {
	if !p.chlng || f.SCBType() != SCS13 || len(f.Data) != 16 {
		return p.reply(f, ReplyNAK, []byte{NakSecBlock}, false)
	}
	p.chlng = false
	want := ServerCryptogram(p.keys, p.rndA, p.rndB)
	if subtle.ConstantTimeCompare(want[:], f.Data) != 1 {
		p.rejected++
		return p.encode(Frame{Addr: p.addr, Reply: true, SQN: f.SQN, UseCRC: f.UseCRC, SCB: []byte{3, SCS14, 0xFF}, Code: ReplyRMACI, Data: make([]byte, 16)})
	}
	var sc [16]byte
	copy(sc[:], f.Data)
	rmac := InitialRMAC(p.keys, sc)
	p.sess = &session{keys: p.keys, rmac: rmac}
	return p.encode(Frame{Addr: p.addr, Reply: true, SQN: f.SQN, UseCRC: f.UseCRC, SCB: []byte{3, SCS14, 1}, Code: ReplyRMACI, Data: rmac[:]})
}

// reply builds the reply to f, sealed when the command came secured.
func (p *pdSim) reply(f Frame, code byte, data []byte, secure bool) []byte {
	r := Frame{Addr: p.addr, Reply: true, SQN: f.SQN, UseCRC: f.UseCRC, Code: code, Data: data}
	if secure && p.sess != nil {
		b, err := p.sess.seal(r)
		if err == nil {
			return b
		}
	}
	return p.encode(r)
}

func (p *pdSim) encode(r Frame) []byte {
	b, err := r.Encode()
	if err != nil {
		return nil
	}
	return b
}
