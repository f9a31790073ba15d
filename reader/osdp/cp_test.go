package osdp

import (
	"bytes"
	"testing"
	"time"

	"github.com/punchclock/punchclock/reader"
)

func counter() func([]byte) {
	var n byte
	return func(p []byte) {
		for i := range p {
			n++
			p[i] = n
		}
	}
}

// decodeOne frames p, which must be one packet.
func decodeOne(t *testing.T, p []byte) Frame {
	t.Helper()
	var f Framer
	var got []Frame
	f.Feed(p, func(fr Frame) { got = append(got, fr) })
	if len(got) != 1 {
		t.Fatalf("% X is %d frames", p, len(got))
	}
	return got[0]
}

func newTestPD(scbk *Key) *pdSim {
	return newPDSim(1, scbk, counter(), time.Now)
}

// The PD's sequence rules (§5.7), byte by byte.
func TestPDSequenceRules(t *testing.T) {
	pd := newTestPD(nil)
	poll := func(sqn byte) Frame { return Frame{Addr: 1, SQN: sqn, UseCRC: true, Code: CmdPOLL} }

	// A fresh PD NAKs a first sequence number of 1: ADDR 81, CTRL 05
	// (SQN 1, CRC), 41, error 04.
	r := pd.handle(poll(1))
	want, _ := (&Frame{Addr: 1, Reply: true, SQN: 1, UseCRC: true, Code: ReplyNAK, Data: []byte{NakSequence}}).Encode()
	if !bytes.Equal(r, want) {
		t.Fatalf("fresh PD, SQN 1: % X, want % X", r, want)
	}
	// SQN 0 starts the conversation: an ACK with SQN 0.
	if f := decodeOne(t, pd.handle(poll(0))); f.Code != ReplyACK || f.SQN != 0 {
		t.Fatalf("SQN 0: %+v", f)
	}
	// Then 1: a card is waiting, so the reply is its osdp_RAW.
	raw, _, _ := cardReply([]string{"123:45678"})
	pd.queue(raw)
	r1 := pd.handle(poll(1))
	if f := decodeOne(t, r1); f.Code != ReplyRAW || f.SQN != 1 {
		t.Fatalf("SQN 1: %+v", f)
	}
	// The CP did not get it and repeats SQN 1: the same bytes again,
	// not a new reply.
	if r := pd.handle(poll(1)); !bytes.Equal(r, r1) {
		t.Fatalf("repeated SQN 1: % X, want the cached % X", r, r1)
	}
	// Skipping to 3 is a sequence error.
	if f := decodeOne(t, pd.handle(poll(3))); f.Code != ReplyNAK || f.Data[0] != NakSequence {
		t.Fatalf("SQN 3 after 1: %+v", f)
	}
	// 2, 3, then 1 again (never 0).
	for _, s := range []byte{2, 3, 1} {
		if f := decodeOne(t, pd.handle(poll(s))); f.Code != ReplyACK || f.SQN != s {
			t.Fatalf("SQN %d: %+v", s, f)
		}
	}
	// Another address's command is not answered.
	if r := pd.handle(Frame{Addr: 2, SQN: 0, UseCRC: true, Code: CmdPOLL}); r != nil {
		t.Fatalf("answered address 2: % X", r)
	}
}

// A bad CRC never reaches the PD: the framer drops it, the PD is silent.
func TestPDSilentOnBadCRC(t *testing.T) {
	pd := newTestPD(nil)
	p := hx(t, "53 01 08 00 04 60 00 00") // CRC 0000: wrong
	var f Framer
	f.Feed(p, func(fr Frame) { t.Fatalf("a bad CRC was framed: %+v", fr) })
	if f.Stats().BadFrames != 1 || pd.lastSQN != -1 {
		t.Fatalf("stats %+v", f.Stats())
	}
}

// exchange runs one command/reply between cp and pd; a nil reply is a
// timeout.
func exchange(t *testing.T, c *cp, pd *pdSim) ([]item, error) {
	t.Helper()
	p, err := c.next()
	if err != nil {
		t.Fatal(err)
	}
	r := pd.handle(decodeOne(t, p))
	if r == nil {
		c.timeout()
		return nil, nil
	}
	return c.handle(decodeOne(t, r))
}

func TestConversationClear(t *testing.T) {
	pd := newTestPD(nil)
	c := newCP(1, nil, counter())
	var codes []byte
	for range 4 {
		p, _ := c.next()
		codes = append(codes, decodeOne(t, p).Code)
		if _, err := c.handle(decodeOne(t, pd.handle(decodeOne(t, p)))); err != nil {
			t.Fatal(err)
		}
	}
	// POLL (SQN 0), ID, CAP, then POLL.
	if !bytes.Equal(codes, []byte{CmdPOLL, CmdID, CmdCAP, CmdPOLL}) || c.state != stOnline {
		t.Fatalf("commands % X, state %v", codes, c.state)
	}
	if c.id.Serial != pd.id.Serial || len(c.caps) != len(pd.caps) {
		t.Errorf("id %+v caps %+v", c.id, c.caps)
	}
	ev, _, _ := cardReply([]string{"123:45678"})
	pd.queue(ev)
	pd.queue(Frame{Code: ReplyKEYPPAD, Data: EncodeKeypad("12#")})
	items, err := exchange(t, c, pd)
	if err != nil || len(items) != 1 || items[0] != (item{reader.TypeCard, reader.FormatWiegand26, "123:45678"}) {
		t.Fatalf("card: %+v, %v", items, err)
	}
	items, err = exchange(t, c, pd)
	if err != nil || len(items) != 3 || items[2].value != "#" || items[0].typ != reader.TypeKey {
		t.Fatalf("keys: %+v, %v", items, err)
	}
	// Feedback: LED then BUZ, then polling again.
	c.indicate(reader.Signal{Accepted: true})
	for range 3 {
		if _, err := exchange(t, c, pd); err != nil {
			t.Fatal(err)
		}
	}
	if len(pd.leds) != 1 || pd.leds[0].TempOnColor != ColorGreen || len(pd.buzzes) != 1 || pd.buzzes[0].Tone != 2 {
		t.Fatalf("leds %+v buzzes %+v", pd.leds, pd.buzzes)
	}
}

// A lost reply: the CP repeats the packet with the same SQN and the PD
// repeats its reply; the card arrives once.
func TestConversationLostReply(t *testing.T) {
	pd := newTestPD(nil)
	c := newCP(1, nil, counter())
	for range 3 {
		exchange(t, c, pd)
	}
	ev, _, _ := cardReply([]string{"1:2"})
	pd.queue(ev)
	p, _ := c.next()
	pd.handle(decodeOne(t, p)) // the reply is lost
	c.timeout()
	p2, _ := c.next()
	if !bytes.Equal(p, p2) {
		t.Fatalf("retry % X differs from % X", p2, p)
	}
	items, err := c.handle(decodeOne(t, pd.handle(decodeOne(t, p2))))
	if err != nil || len(items) != 1 || items[0].value != "1:2" {
		t.Fatalf("%+v, %v", items, err)
	}
}

// Three timeouts re-initialise: POLL with SQN 0, ID, CAP again; a card
// whose reply was lost is sent again by the PD after the restart.
func TestConversationReinit(t *testing.T) {
	pd := newTestPD(nil)
	c := newCP(1, nil, counter())
	for range 3 {
		exchange(t, c, pd)
	}
	ev, _, _ := cardReply([]string{"7:7"})
	pd.queue(ev)
	for range retriesBeforeReset {
		p, _ := c.next()
		pd.handle(decodeOne(t, p)) // replies lost
		c.timeout()
	}
	p, _ := c.next()
	if f := decodeOne(t, p); f.SQN != 0 || f.Code != CmdPOLL || c.state != stPoll0 {
		t.Fatalf("after timeouts: %+v in %v", f, c.state)
	}
	var got []item
	for range 5 {
		items, err := exchange(t, c, pd)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, items...)
	}
	if len(got) != 1 || got[0].value != "7:7" {
		t.Fatalf("after restart: %+v", got)
	}
}

func TestConversationSecure(t *testing.T) {
	k := key(t, "000102030405060708090A0B0C0D0E0F")
	pd := newTestPD(&k)
	c := newCP(1, &k, counter())
	var codes []byte
	for range 6 {
		p, _ := c.next()
		codes = append(codes, decodeOne(t, p).Code)
		if _, err := c.handle(decodeOne(t, pd.handle(decodeOne(t, p)))); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(codes, []byte{CmdPOLL, CmdID, CmdCAP, CmdCHLNG, CmdSCRYPT, CmdPOLL}) || c.sess == nil || pd.sess == nil {
		t.Fatalf("commands % X, cp session %v, pd session %v", codes, c.sess != nil, pd.sess != nil)
	}
	ev, _, _ := cardReply([]string{"123:45678"})
	pd.queue(ev)
	p, _ := c.next()
	if f := decodeOne(t, p); f.SCBType() != SCS15 || len(f.MAC) != 4 {
		t.Fatalf("secure POLL: %+v", f)
	}
	r := pd.handle(decodeOne(t, p))
	rf := decodeOne(t, r)
	if rf.SCBType() != SCS18 || bytes.Contains(r, hx(t, "BD D9 37 40")) {
		t.Fatalf("the card went in clear: % X", r)
	}
	items, err := c.handle(rf)
	if err != nil || len(items) != 1 || items[0].value != "123:45678" {
		t.Fatalf("%+v, %v", items, err)
	}
	// LED in the secure channel: SCS_16, encrypted.
	c.indicate(reader.Signal{Accepted: false})
	p, _ = c.next()
	if f := decodeOne(t, p); f.SCBType() != SCS16 || f.Code != CmdLED {
		t.Fatalf("secure LED: %+v", f)
	}
	if _, err := c.handle(decodeOne(t, pd.handle(decodeOne(t, p)))); err != nil {
		t.Fatal(err)
	}
	if len(pd.leds) != 1 || pd.leds[0].TempOnColor != ColorRed {
		t.Fatalf("leds %+v", pd.leds)
	}
}

// A PD with another key: its cryptogram does not match; the CP starts
// over and never goes online, nor accepts card data in clear.
func TestConversationWrongKey(t *testing.T) {
	k1 := key(t, "000102030405060708090A0B0C0D0E0F")
	k2 := key(t, "F00102030405060708090A0B0C0D0E0F")
	pd := newTestPD(&k1)
	c := newCP(1, &k2, counter())
	sawErr := false
	for range 12 {
		if _, err := exchange(t, c, pd); err != nil {
			sawErr = true
		}
		if c.state == stOnline {
			t.Fatal("online with the wrong key")
		}
	}
	if !sawErr {
		t.Fatal("no cryptogram error")
	}
	// Card data in clear to a CP with a key is refused.
	c2 := newCP(1, &k1, counter())
	c2.state, c2.pending, c2.sqn = stPoll0, []byte{0}, 0
	ev, _, _ := cardReply([]string{"1:1"})
	ev.Addr, ev.Reply, ev.UseCRC = 1, true, true
	enc, _ := ev.Encode()
	if items, err := c2.handle(decodeOne(t, enc)); err == nil || len(items) != 0 {
		t.Fatalf("clear card accepted: %+v", items)
	}
}
