package r30x

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/punchclock/punchclock/reader"
)

// Twin defaults.
const (
	DefaultTwinScore = 100                    // the score of a matching finger
	DefaultHold      = 300 * time.Millisecond // how long a finger stays
)

// ErrUnplugged is returned by Twin.Do for a command that writes to the
// wire while the twin is unplugged.
var ErrUnplugged = errors.New("r30x: twin is unplugged")

// ErrUsage is wrapped by Twin.Do's errors for a malformed command.
var ErrUsage = errors.New("r30x: twin: bad command")

// TwinOptions configure a Twin.
type TwinOptions struct {
	Name     string
	Link     string // where the pseudo-terminal is linked: the reader's port
	Address  uint32 // zero means DefaultAddress
	Password uint32 // when not zero, VfyPwd must come first
	Pages    int    // library size; zero means TwinPages
	// Serial creates the pseudo-terminal (reader.TwinEnv.Serial).
	Serial func(link string) (reader.SerialEnd, error)
	Logger *slog.Logger
	Now    func() time.Time // default time.Now; measures how long a finger stays
}

// A Twin is a simulated R30x sensor: it answers the driver's commands
// byte for byte as a sensor would, from an in-memory template library,
// with fingers placed and lifted by scenario commands. Each stored
// template is an identity; a finger matches the pages holding its
// identity.
type Twin struct {
	opt TwinOptions
	log *slog.Logger

	mu       sync.Mutex
	end      reader.SerialEnd // nil while unplugged
	stop     chan struct{}
	wg       sync.WaitGroup
	closed   bool
	rng      *rand.Rand
	silentTo time.Time
	counts   map[byte]int
	s        sensor
}

var _ reader.Twin = (*Twin)(nil)

// NewTwin creates the pseudo-terminal and starts answering.
func NewTwin(opt TwinOptions) (*Twin, error) {
	if opt.Serial == nil {
		return nil, fmt.Errorf("%w: twin %q: no Serial", ErrConfig, opt.Name)
	}
	if opt.Address == 0 {
		opt.Address = DefaultAddress
	}
	if opt.Pages <= 0 {
		opt.Pages = TwinPages
	}
	if opt.Pages > 0xFFFF {
		return nil, fmt.Errorf("%w: twin %q: %d pages", ErrConfig, opt.Name, opt.Pages)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	t := &Twin{
		opt:    opt,
		log:    opt.Logger.With("twin", opt.Name, "driver", "r30x"),
		rng:    rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5a5a)),
		counts: make(map[byte]int),
	}
	t.s = newSensor(opt.Pages, opt.Address, opt.Password)
	if err := t.plug(); err != nil {
		return nil, err
	}
	return t, nil
}

// Path is the link the driver opens.
func (t *Twin) Path() string { return t.opt.Link }

// Count returns how many commands with instruction code cmd the twin has
// answered (or ignored while silent).
func (t *Twin) Count(cmd byte) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[cmd]
}

func (t *Twin) plug() error {
	end, err := t.opt.Serial(t.opt.Link)
	if err != nil {
		return fmt.Errorf("r30x: twin %q: %w", t.opt.Name, err)
	}
	stop := make(chan struct{})
	t.mu.Lock()
	t.end, t.stop = end, stop
	t.s.powerOn()
	t.mu.Unlock()
	t.wg.Go(func() { t.serve(end, stop) })
	return nil
}

// Unplug closes the pseudo-terminal, as a pulled cable: the driver's
// port fails. The library survives (it is the sensor's flash).
func (t *Twin) Unplug() error {
	t.mu.Lock()
	end, stop := t.end, t.stop
	t.end, t.stop = nil, nil
	t.mu.Unlock()
	if end == nil {
		return nil
	}
	close(stop)
	err := end.Close()
	t.wg.Wait()
	if err != nil {
		return fmt.Errorf("r30x: twin %q: unplug: %w", t.opt.Name, err)
	}
	return nil
}

// Replug recreates the pseudo-terminal at the same path; the sensor
// starts as after power-on (the password must be verified again).
func (t *Twin) Replug() error {
	t.mu.Lock()
	closed, plugged := t.closed, t.end != nil
	t.mu.Unlock()
	switch {
	case closed:
		return fmt.Errorf("r30x: twin %q: replug after close", t.opt.Name)
	case plugged:
		return nil
	}
	return t.plug()
}

// Close unplugs the twin for good. It is safe to call more than once.
func (t *Twin) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	return t.Unplug()
}

// serve answers commands until stop is closed or end fails.
func (t *Twin) serve(end reader.SerialEnd, stop chan struct{}) {
	var fr Framer
	buf := make([]byte, 512)
	var cmds []Packet
	for {
		select {
		case <-stop:
			return
		default:
		}
		_ = end.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := end.Read(buf)
		if n > 0 {
			fr.Feed(buf[:n], func(p Packet) { cmds = append(cmds, p) })
		}
		for _, p := range cmds {
			t.mu.Lock()
			reply := t.answer(p)
			t.mu.Unlock()
			if reply != nil {
				if _, err := end.Write(reply); err != nil {
					t.log.Debug("write", "err", err)
				}
			}
		}
		cmds = cmds[:0]
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			select {
			case <-stop:
			default:
				t.log.Debug("read", "err", err)
			}
			return
		}
	}
}

// answer returns the ack to one packet, or nil for none. t.mu is held.
func (t *Twin) answer(p Packet) []byte {
	if p.PID != PIDCommand || len(p.Payload) == 0 {
		return nil
	}
	t.counts[p.Payload[0]]++
	if t.opt.Now().Before(t.silentTo) {
		return nil
	}
	pl := t.s.handle(t.opt.Now(), p)
	if pl == nil {
		return nil
	}
	return mustEncode(t.s.addr, PIDAck, pl)
}

// Do runs one scenario command:
//
//	finger <page>|nomatch|new [score N] [hold D]
//	enrollfinger [hold D]   (finger new)
//	lift
//	store <page>...
//	pages
//	garbage <n>
//	raw <hex>
//	silent <duration>|off
func (t *Twin) Do(ctx context.Context, cmd string, args []string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch cmd {
	case "finger":
		return t.finger(args)
	case "enrollfinger":
		return t.finger(append([]string{"new"}, args...))
	case "lift":
		if len(args) != 0 {
			return "", usage("lift")
		}
		t.s.lift()
		return "finger lifted", nil
	case "store":
		if len(args) == 0 {
			return "", usage("store <page>...")
		}
		var stored []string
		for _, a := range args {
			page, err := strconv.Atoi(a)
			if err != nil || page < 0 || page >= len(t.s.pages) {
				return "", fmt.Errorf("%w: store: page %q is not in 0..%d", ErrUsage, a, len(t.s.pages)-1)
			}
			t.s.pages[page] = t.s.newID()
			stored = append(stored, strconv.Itoa(page))
		}
		return "stored " + strings.Join(stored, " "), nil
	case "pages":
		if len(args) != 0 {
			return "", usage("pages")
		}
		var used []string
		for i, id := range t.s.pages {
			if id != 0 {
				used = append(used, strconv.Itoa(i))
			}
		}
		if len(used) == 0 {
			return "pages: none", nil
		}
		return "pages: " + strings.Join(used, " "), nil
	case "garbage":
		n := 0
		if len(args) == 1 {
			n, _ = strconv.Atoi(args[0])
		}
		if n <= 0 || n > 4096 {
			return "", usage("garbage <1..4096>")
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(t.rng.Uint32())
		}
		return fmt.Sprintf("%d garbage bytes", n), t.writeLocked(b)
	case "raw":
		if len(args) == 0 {
			return "", usage("raw <hex>")
		}
		b, err := hex.DecodeString(strings.Join(args, ""))
		if err != nil || len(b) == 0 {
			return "", fmt.Errorf("%w: raw: %v", ErrUsage, err)
		}
		return fmt.Sprintf("%d raw bytes", len(b)), t.writeLocked(b)
	case "silent":
		if len(args) != 1 {
			return "", usage("silent <duration>|off")
		}
		if args[0] == "off" {
			t.silentTo = time.Time{}
			return "answering", nil
		}
		d, err := time.ParseDuration(args[0])
		if err != nil || d <= 0 {
			return "", fmt.Errorf("%w: silent: %q is not a positive duration", ErrUsage, args[0])
		}
		t.silentTo = t.opt.Now().Add(d)
		return "silent for " + d.String(), nil
	}
	return "", fmt.Errorf("%w: %q (finger, enrollfinger, lift, store, pages, garbage, raw, silent)", ErrUsage, cmd)
}

func usage(u string) error { return fmt.Errorf("%w: usage: %s", ErrUsage, u) }

// writeLocked writes b to the wire. t.mu is held: a Write is bounded by
// the pseudo-terminal's write timeout.
func (t *Twin) writeLocked(b []byte) error {
	if t.end == nil {
		return fmt.Errorf("r30x: twin %q: %w", t.opt.Name, ErrUnplugged)
	}
	if _, err := t.end.Write(b); err != nil {
		return fmt.Errorf("r30x: twin %q: %w", t.opt.Name, err)
	}
	return nil
}

func (t *Twin) finger(args []string) (string, error) {
	const u = "finger <page>|nomatch|new [score N] [hold D]"
	if len(args) == 0 {
		return "", usage(u)
	}
	pr := presentation{score: DefaultTwinScore, hold: DefaultHold}
	for i := 1; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return "", usage(u)
		}
		switch args[i] {
		case "score":
			n, err := strconv.Atoi(args[i+1])
			if err != nil || n < 0 || n > 0xFFFF {
				return "", fmt.Errorf("%w: score %q is not in 0..65535", ErrUsage, args[i+1])
			}
			pr.score = n
		case "hold":
			d, err := time.ParseDuration(args[i+1])
			if err != nil || d < 0 {
				return "", fmt.Errorf("%w: hold %q is not a duration", ErrUsage, args[i+1])
			}
			pr.hold = d
		default:
			return "", usage(u)
		}
	}
	var echo string
	switch what := args[0]; what {
	case "nomatch":
		pr.id = t.s.newID()
		t.s.queue = append(t.s.queue, pr)
		echo = "finger (no match) queued"
	case "new":
		// One fresh finger, placed twice: once for each capture of an
		// enrolment, lifted in between.
		pr.id = t.s.newID()
		t.s.queue = append(t.s.queue, pr, pr)
		echo = "new finger queued for two captures"
	default:
		page, err := strconv.Atoi(what)
		if err != nil || page < 0 || page >= len(t.s.pages) {
			return "", fmt.Errorf("%w: finger: %q is not a page in 0..%d, nomatch or new", ErrUsage, what, len(t.s.pages)-1)
		}
		pr.id = t.s.pages[page]
		echo = fmt.Sprintf("finger %d queued", page)
		if pr.id == 0 {
			pr.id = t.s.newID()
			echo += fmt.Sprintf(" (page %d is empty: it matches nothing)", page)
		}
		t.s.queue = append(t.s.queue, pr)
	}
	return echo, nil
}

// A presentation is one placing of a finger.
type presentation struct {
	id    uint64 // the finger's identity; the pages holding it match
	score int
	hold  time.Duration
}

// sensor is the twin's module: its library, buffers and the finger on
// the glass. It does no I/O.
type sensor struct {
	addr, pwd uint32
	pages     []uint64 // identity stored at each page; 0: free
	lastID    uint64

	queue    []presentation // fingers waiting to be placed, in order
	on       *presentation  // the finger on the sensor
	seen     time.Time      // when a GenImg first saw it; its hold runs from then
	sawEmpty bool           // a GenImg found no finger since the last lift

	verified bool
	image    presentation    // the image buffer (id 0: none)
	char     [3]presentation // character buffers 1 and 2
}

func newSensor(pages int, addr, pwd uint32) sensor {
	return sensor{addr: addr, pwd: pwd, pages: make([]uint64, pages), sawEmpty: true}
}

func (s *sensor) newID() uint64 { s.lastID++; return s.lastID }

// powerOn clears what a power cycle clears.
func (s *sensor) powerOn() {
	s.verified = false
	s.image = presentation{}
	s.char = [3]presentation{}
}

func (s *sensor) lift() {
	if s.on != nil {
		s.on = nil
		s.sawEmpty = false
	}
}

// glass returns the finger on the sensor at now, placing and lifting
// fingers as their holds say.
func (s *sensor) glass(now time.Time) *presentation {
	if s.on != nil && !s.seen.IsZero() && now.Sub(s.seen) >= s.on.hold {
		s.lift()
	}
	// The next finger comes only once a GenImg has seen the glass empty,
	// so that the host sees every lift.
	if s.on == nil && s.sawEmpty && len(s.queue) > 0 {
		pr := s.queue[0]
		s.queue = s.queue[1:]
		s.on, s.seen = &pr, time.Time{}
	}
	return s.on
}

// handle returns the ack payload for a command packet, or nil for no
// answer.
func (s *sensor) handle(now time.Time, p Packet) []byte {
	if p.Addr != s.addr {
		return nil // another module's
	}
	pl := p.Payload
	cmd, args := pl[0], pl[1:]
	if s.pwd != 0 && !s.verified && cmd != CmdVfyPwd {
		return []byte{ConfMustVerifyPw}
	}
	bad := []byte{ConfRecvError}
	switch cmd {
	case CmdVfyPwd:
		if len(args) != 4 {
			return bad
		}
		if binary.BigEndian.Uint32(args) != s.pwd {
			return []byte{ConfWrongPwd}
		}
		s.verified = true
		return []byte{ConfOK}
	case CmdGenImg:
		if len(args) != 0 {
			return bad
		}
		f := s.glass(now)
		if f == nil {
			s.sawEmpty = true
			return []byte{ConfNoFinger}
		}
		if s.seen.IsZero() {
			s.seen = now
		}
		s.image = *f
		return []byte{ConfOK}
	case CmdImg2Tz:
		if len(args) != 1 {
			return bad
		}
		if s.image.id == 0 {
			return []byte{ConfNoImage}
		}
		s.char[bufIndex(args[0])] = s.image
		return []byte{ConfOK}
	case CmdSearch:
		if len(args) != 5 {
			return bad
		}
		c := s.char[bufIndex(args[0])]
		start := int(binary.BigEndian.Uint16(args[1:3]))
		end := min(start+int(binary.BigEndian.Uint16(args[3:5])), len(s.pages))
		for page := start; c.id != 0 && page < end; page++ {
			if s.pages[page] == c.id {
				return []byte{ConfOK, byte(page >> 8), byte(page), byte(c.score >> 8), byte(c.score)}
			}
		}
		return []byte{ConfNoMatch, 0, 0, 0, 0}
	case CmdRegModel:
		if len(args) != 0 {
			return bad
		}
		if s.char[1].id == 0 || s.char[1].id != s.char[2].id {
			return []byte{ConfMergeFail}
		}
		return []byte{ConfOK}
	case CmdStore:
		if len(args) != 3 {
			return bad
		}
		page := int(binary.BigEndian.Uint16(args[1:3]))
		if page >= len(s.pages) {
			return []byte{ConfBadPage}
		}
		c := s.char[bufIndex(args[0])]
		if c.id == 0 {
			return bad
		}
		s.pages[page] = c.id
		return []byte{ConfOK}
	case CmdDeleteChar:
		if len(args) != 4 {
			return bad
		}
		page := int(binary.BigEndian.Uint16(args[0:2]))
		n := int(binary.BigEndian.Uint16(args[2:4]))
		if page+n > len(s.pages) {
			return []byte{ConfDeleteFail}
		}
		clear(s.pages[page : page+n])
		return []byte{ConfOK}
	case CmdReadSysPara:
		if len(args) != 0 {
			return bad
		}
		out := []byte{ConfOK}
		out = binary.BigEndian.AppendUint16(out, 0)                    // status register
		out = binary.BigEndian.AppendUint16(out, 0)                    // system identifier
		out = binary.BigEndian.AppendUint16(out, uint16(len(s.pages))) // library size
		out = binary.BigEndian.AppendUint16(out, 3)                    // security level
		out = binary.BigEndian.AppendUint32(out, s.addr)               // device address
		out = binary.BigEndian.AppendUint16(out, 2)                    // packet size code: 128 bytes
		out = binary.BigEndian.AppendUint16(out, 6)                    // baud: 9600 × 6
		return out
	case CmdReadIndexTable:
		if len(args) != 1 || args[0] > 3 {
			return bad
		}
		out := make([]byte, 1+32)
		base := int(args[0]) * 256
		for i := range 256 {
			if page := base + i; page < len(s.pages) && s.pages[page] != 0 {
				out[1+i/8] |= 1 << (i % 8)
			}
		}
		return out
	}
	return bad
}

// bufIndex maps a BufferID to a character buffer: anything but 1 is
// buffer 2, as the manual says.
func bufIndex(b byte) int {
	if b == 1 {
		return 1
	}
	return 2
}

// UsedPages returns the pages holding a template, in order.
func (t *Twin) UsedPages() []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	var used []int
	for i, id := range t.s.pages {
		if id != 0 {
			used = append(used, i)
		}
	}
	return slices.Clip(used)
}
