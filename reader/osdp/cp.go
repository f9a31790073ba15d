package osdp

import (
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/punchclock/punchclock/reader"
)

// The control panel's conversation with one PD, as a pure state machine:
// next gives the packet to send, handle takes the PD's reply, timeout
// says none came. The bus goroutine drives it; tests drive it directly.

type cpState int

const (
	stPoll0  cpState = iota // the first POLL, sequence number 0
	stID                    // osdp_ID
	stCAP                   // osdp_CAP
	stChlng                 // osdp_CHLNG: secure channel, step 1
	stScrypt                // osdp_SCRYPT: secure channel, step 2
	stOnline                // polling (and LED/BUZ when queued)
)

func (s cpState) String() string {
	return [...]string{"poll0", "id", "cap", "chlng", "scrypt", "online"}[s]
}

// retriesBeforeReset: consecutive unanswered packets after which the PD
// is re-initialised. Before that the same packet is sent again with the
// same sequence number, so that a PD whose reply was lost repeats it.
const retriesBeforeReset = 3

var (
	errStale     = errors.New("osdp: reply with another sequence number")
	errReset     = errors.New("osdp: PD asked for a restart")
	errClearCard = errors.New("osdp: card data in clear while a secure channel is configured")
)

// An item is what a reply carried: a card or key presses.
type item struct {
	typ, format, value string
}

type cp struct {
	addr byte
	scbk *Key
	rand func([]byte) // fills its argument with random bytes

	state   cpState
	sqn     byte   // of the packet pending or last sent
	pending []byte // sent, awaiting its reply; sent again on timeout
	misses  int

	queue []Frame // LED and BUZ commands waiting for their turn

	rndA, rndB [8]byte
	keys       SessionKeys
	scrypt     [16]byte
	sess       *session

	id   PDID
	caps []Capability
}

func newCP(addr byte, scbk *Key, rand func([]byte)) *cp {
	return &cp{addr: addr, scbk: scbk, rand: rand}
}

// reset starts the conversation again: POLL with sequence number 0, then
// ID and CAP (and the secure channel).
func (c *cp) reset() {
	c.state = stPoll0
	c.pending = nil
	c.misses = 0
	c.sess = nil
}

// indicate queues the LED and buzzer commands for s.
func (c *cp) indicate(s reader.Signal) {
	l, b := Feedback(s)
	const maxQueue = 8 // a backlog of stale feedback helps nobody
	if len(c.queue) >= maxQueue {
		c.queue = c.queue[2:]
	}
	c.queue = append(c.queue,
		Frame{Code: CmdLED, Data: l.Encode()},
		Frame{Code: CmdBUZ, Data: b.Encode()})
}

// next returns the packet to send now: the pending one again if it was
// not answered, else the next step of the conversation.
func (c *cp) next() ([]byte, error) {
	if c.pending != nil {
		return c.pending, nil
	}
	f := Frame{Addr: c.addr, UseCRC: true, Code: CmdPOLL}
	switch c.state {
	case stID:
		f.Code, f.Data = CmdID, []byte{0}
	case stCAP:
		f.Code, f.Data = CmdCAP, []byte{0}
	case stChlng:
		c.rand(c.rndA[:])
		f.Code, f.Data = CmdCHLNG, append([]byte(nil), c.rndA[:]...)
		f.SCB = []byte{3, SCS11, 1} // 1: the SCBK, not the default key
	case stScrypt:
		f.Code, f.Data = CmdSCRYPT, append([]byte(nil), c.scrypt[:]...)
		f.SCB = []byte{3, SCS13, 1}
	case stOnline:
		if len(c.queue) > 0 {
			q := c.queue[0]
			c.queue = c.queue[1:]
			f.Code, f.Data = q.Code, q.Data
		}
	}
	if c.state == stPoll0 {
		c.sqn = 0
	} else {
		c.sqn = nextSQN(c.sqn)
	}
	f.SQN = c.sqn
	var p []byte
	var err error
	if c.sess != nil {
		p, err = c.sess.seal(f)
	} else {
		p, err = f.Encode()
	}
	if err != nil {
		return nil, err
	}
	c.pending = p
	return p, nil
}

// timeout records that the pending packet got no reply. It reports
// whether the PD is being re-initialised.
func (c *cp) timeout() bool {
	c.misses++
	if c.misses >= retriesBeforeReset {
		c.reset()
		return true
	}
	return false
}

// handle takes a reply from this PD (f.Reply set, f.Addr == c.addr) and
// returns what it carried. An error wrapping reader.ErrBadFrame is a
// reply that was received but not usable (counted bad).
func (c *cp) handle(f Frame) ([]item, error) {
	if c.pending == nil || f.SQN != c.sqn {
		return nil, fmt.Errorf("%w: %w: %d, want %d", reader.ErrBadFrame, errStale, f.SQN, c.sqn)
	}
	c.misses = 0
	if c.sess != nil {
		var err error
		if f, err = c.sess.open(f); err != nil {
			c.reset()
			return nil, fmt.Errorf("%w: %w", reader.ErrBadFrame, err)
		}
	} else if f.SCB != nil && c.state != stChlng && c.state != stScrypt {
		c.reset()
		return nil, fmt.Errorf("%w: %w: unexpected security block % X", reader.ErrBadFrame, ErrSecure, f.SCB)
	}
	if f.Code == ReplyBUSY {
		return nil, nil // send the same packet again
	}
	c.pending = nil
	if f.Code == ReplyNAK {
		return nil, c.nak(f)
	}
	switch c.state {
	case stPoll0:
		c.state = stID
	case stID:
		if f.Code == ReplyPDID {
			id, err := DecodePDID(f.Data)
			if err != nil {
				return nil, err
			}
			c.id = id
		}
		c.state = stCAP
	case stCAP:
		if f.Code == ReplyPDCAP {
			caps, err := DecodePDCAP(f.Data)
			if err != nil {
				return nil, err
			}
			c.caps = caps
		}
		c.state = stOnline
		if c.scbk != nil {
			c.state = stChlng
		}
	case stChlng:
		return nil, c.ccrypt(f)
	case stScrypt:
		return nil, c.rmacI(f)
	}
	return c.data(f)
}

// nak handles osdp_NAK: a sequence or security complaint restarts the
// conversation; any other (an unsupported ID or CAP, say) moves on.
func (c *cp) nak(f Frame) error {
	code := byte(0)
	if len(f.Data) > 0 {
		code = f.Data[0]
	}
	switch {
	case code == NakSequence || code == NakSecBlock || code == NakEncryptReqd,
		c.state == stChlng || c.state == stScrypt:
		c.reset()
		return fmt.Errorf("%w: NAK %#x in state %v", errReset, code, c.state)
	case c.state == stID:
		c.state = stCAP
	case c.state == stCAP:
		c.state = stOnline
		if c.scbk != nil {
			c.state = stChlng
		}
	case c.state == stPoll0:
		c.state = stID
	}
	return nil
}

func (c *cp) ccrypt(f Frame) error {
	if f.Code != ReplyCCRYPT || f.SCBType() != SCS12 || len(f.Data) != 32 {
		c.reset()
		return fmt.Errorf("%w: %w: want osdp_CCRYPT, got %#x", reader.ErrBadFrame, ErrSecure, f.Code)
	}
	copy(c.rndB[:], f.Data[8:16])
	c.keys = DeriveKeys(*c.scbk, c.rndA)
	want := ClientCryptogram(c.keys, c.rndA, c.rndB)
	if subtle.ConstantTimeCompare(want[:], f.Data[16:32]) != 1 {
		c.reset()
		return fmt.Errorf("%w: %w: the PD's cryptogram does not match (another SCBK?)", reader.ErrBadFrame, ErrSecure)
	}
	c.scrypt = ServerCryptogram(c.keys, c.rndA, c.rndB)
	c.state = stScrypt
	return nil
}

func (c *cp) rmacI(f Frame) error {
	if f.Code != ReplyRMACI || f.SCBType() != SCS14 || len(f.Data) != 16 || len(f.SCB) < 3 || f.SCB[2] != 1 {
		c.reset()
		return fmt.Errorf("%w: %w: the PD refused the CP's cryptogram", reader.ErrBadFrame, ErrSecure)
	}
	want := InitialRMAC(c.keys, c.scrypt)
	if subtle.ConstantTimeCompare(want[:], f.Data) != 1 {
		c.reset()
		return fmt.Errorf("%w: %w: R-MAC-I does not match", reader.ErrBadFrame, ErrSecure)
	}
	c.sess = &session{keys: c.keys, rmac: want}
	c.state = stOnline
	return nil
}

// data decodes a reply that may carry a card or keys.
func (c *cp) data(f Frame) ([]item, error) {
	switch f.Code {
	case ReplyRAW, ReplyFMT, ReplyKEYPPAD:
	default:
		return nil, nil
	}
	if c.scbk != nil && c.sess == nil {
		return nil, fmt.Errorf("%w: %w", reader.ErrBadFrame, errClearCard)
	}
	switch f.Code {
	case ReplyRAW, ReplyFMT:
		dec := DecodeRAW
		if f.Code == ReplyFMT {
			dec = DecodeFMT
		}
		cr, err := dec(f.Data)
		if err != nil {
			return nil, err
		}
		return []item{{typ: reader.TypeCard, format: cr.Format, value: cr.Value}}, nil
	default:
		keys, err := DecodeKeypad(f.Data)
		if err != nil {
			return nil, err
		}
		items := make([]item, len(keys))
		for i, k := range keys {
			items[i] = item{typ: reader.TypeKey, value: k}
		}
		return items, nil
	}
}
