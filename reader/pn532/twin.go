package pn532

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/punchclock/punchclock/reader"
)

// Defaults of the twin's scenario commands.
const (
	DefaultHold = 300 * time.Millisecond // how long "card" keeps a card in the field
	maxHold     = time.Minute
	maxSilent   = 10 * time.Minute
	maxGarbage  = 4096
)

// TwinFirmware is what the twin answers to GetFirmwareVersion: a PN532
// (IC 32) with firmware 1.6 supporting ISO 14443A, B and ISO 18092
// (support 07), as real modules answer.
var TwinFirmware = Firmware{IC: ICPN532, Ver: 1, Rev: 6, Support: 0x07}

// A Twin is a simulated PN532 on HSU: it reads the host's frames from a
// pseudo-terminal and answers them as the module does, an ACK then the
// response frame. It honours the commands the driver and libnfc's
// nfc-list use to find an ISO 14443A card: GetFirmwareVersion,
// SAMConfiguration, RFConfiguration, InListPassiveTarget (a card only at
// 106 kbps type A; none at other rates), InRelease, and for libnfc
// Diagnose (the communication line test echoes), ReadRegister (reads
// zeros), WriteRegister, SetParameters and PowerDown (the module
// sleeps); SetSerialBaudRate is answered, but a pty has no rate to
// change; and the host's NACK (send the last response again) and ACK
// (abort). Any other command gets the error frame.
//
// Like the module, it sleeps after power-up or a reset and ignores
// everything until a 0x55 byte (the HSU wake-up preamble) arrives; until
// SAMConfiguration it answers only GetFirmwareVersion and
// SAMConfiguration, and the error frame to the rest. With passive
// activation retried forever (RFConfiguration MaxRetries, third byte
// FF, the power-up default), InListPassiveTarget with no card in the
// field is acknowledged and answered only when a card comes, or never if
// the host aborts it (an ACK) or sends another command; with finite
// retries it answers "no target" at once.
//
// Its scenario commands (Do; the reader's name is not among the args):
//
//	card <uid hex> [hold <duration>]  a card with a 4, 7 or 10-byte UID
//	                                   enters the field, stays Hold
//	                                   (default DefaultHold), and leaves;
//	                                   Do returns when it has left
//	garbage <n>                       n random bytes, none of them 00 (so
//	                                   they never start a frame)
//	raw <hex bytes>                   bytes as given, e.g. "00 00 FF 00 FF 00"
//	reset                             the module resets: asleep, not
//	                                   configured, until the host wakes it
//	silent <duration>                 the module ignores everything for
//	                                   that long (Do returns at once)
type Twin struct {
	// Logger receives what the twin does. Default: silent.
	Logger *slog.Logger
	// Now is the twin's clock for holds and silences. Default time.Now.
	Now func() time.Time
	// Rand makes garbage bytes. Default: randomly seeded.
	Rand *rand.Rand

	link   string
	serial func(link string) (reader.SerialEnd, error)

	mu     sync.Mutex
	end    reader.SerialEnd // nil while unplugged
	done   chan struct{}    // closed when the serving goroutine of end exits
	framer Framer

	// The module's state.
	awake, configured bool
	silentUntil       time.Time
	uid               []byte
	uidUntil          time.Time
	lastResp          []byte // for a NACK
	counts            map[byte]int
	retryForever      bool // MxRtyPassiveActivation is FF
	listening         bool // an InListPassiveTarget waits for a card
}

var _ reader.Twin = (*Twin)(nil)

// NewTwin returns an unplugged twin that will create its pseudo-terminal
// at link through serial (reader.TwinEnv.Serial, or sim.NewSerial
// adapted). Call Replug to plug it in.
func NewTwin(link string, serial func(link string) (reader.SerialEnd, error)) *Twin {
	return &Twin{link: link, serial: serial, counts: make(map[byte]int)}
}

// Path implements reader.Twin.
func (t *Twin) Path() string { return t.link }

// Commands returns how many times the twin has received command code
// cmd while awake (e.g. CmdSAMConfiguration: how often the driver
// initialised it).
func (t *Twin) Commands(cmd byte) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[cmd]
}

func (t *Twin) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t *Twin) logger() *slog.Logger {
	if t.Logger != nil {
		return t.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Replug implements reader.Twin: a new pseudo-terminal at the same link,
// and a module just powered up (asleep).
func (t *Twin) Replug() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.end != nil {
		return nil
	}
	if t.serial == nil {
		return errors.New("pn532: twin: no serial link to plug")
	}
	end, err := t.serial(t.link)
	if err != nil {
		return fmt.Errorf("pn532: twin: %w", err)
	}
	t.end = end
	t.done = make(chan struct{})
	t.powerUpLocked()
	go t.serve(end, t.done)
	return nil
}

// Unplug implements reader.Twin: the pseudo-terminal goes away, as a
// pulled cable, and the module loses power.
func (t *Twin) Unplug() error {
	t.mu.Lock()
	end, done := t.end, t.done
	t.end, t.done = nil, nil
	t.mu.Unlock()
	if end == nil {
		return errors.New("pn532: twin: not plugged in")
	}
	err := end.Close()
	<-done
	if err != nil {
		return fmt.Errorf("pn532: twin: %w", err)
	}
	return nil
}

// Close implements reader.Twin; it is safe twice.
func (t *Twin) Close() error {
	t.mu.Lock()
	plugged := t.end != nil
	t.mu.Unlock()
	if !plugged {
		return nil
	}
	return t.Unplug()
}

func (t *Twin) powerUpLocked() {
	t.awake, t.configured = false, false
	t.retryForever, t.listening = true, false
	t.lastResp = nil
	t.framer.Reset()
}

// serve answers the host until end is closed.
func (t *Twin) serve(end reader.SerialEnd, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 512)
	for {
		n, err := end.Read(buf)
		if n > 0 {
			t.receive(end, buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// receive handles bytes from the host.
func (t *Twin) receive(end reader.SerialEnd, p []byte) {
	t.mu.Lock()
	if t.now().Before(t.silentUntil) {
		t.mu.Unlock()
		return
	}
	if !t.awake {
		i := strings.IndexByte(string(p), 0x55)
		if i < 0 {
			t.mu.Unlock()
			return
		}
		t.awake = true
		p = p[i:]
	}
	var out [][]byte
	t.framer.Feed(p, func(fr Frame) {
		t.logger().Debug("twin: host frame", "kind", fr.Kind, "data", fmt.Sprintf("% X", fr.Data))
		out = append(out, t.answerLocked(fr)...)
	})
	t.mu.Unlock()
	for _, b := range out {
		if _, err := end.Write(b); err != nil {
			t.logger().Debug("twin write", "err", err)
			return
		}
	}
}

// answerLocked returns what the module sends for a frame from the host.
func (t *Twin) answerLocked(fr Frame) [][]byte {
	t.listening = false // answered, aborted (ACK) or superseded
	switch fr.Kind {
	case KindNACK:
		if t.lastResp != nil {
			return [][]byte{t.lastResp}
		}
		return nil
	case KindACK, KindError:
		return nil
	}
	if fr.TFI != TFIHost || len(fr.Data) == 0 {
		return [][]byte{ErrorFrame}
	}
	t.counts[fr.Data[0]]++
	resp := t.respondLocked(fr.Data[0], fr.Data[1:])
	if t.listening {
		return [][]byte{ACK} // the response comes with a card
	}
	if resp == nil {
		t.lastResp = ErrorFrame
		return [][]byte{ACK, ErrorFrame}
	}
	frame, err := Encode(TFIPN532, resp)
	if err != nil {
		return [][]byte{ACK, ErrorFrame}
	}
	t.lastResp = frame
	return [][]byte{ACK, frame}
}

// respondLocked returns the response data to command cmd, or nil for the
// error frame.
func (t *Twin) respondLocked(cmd byte, params []byte) []byte {
	switch cmd {
	case CmdGetFirmwareVersion:
		f := TwinFirmware
		return []byte{cmd + 1, f.IC, f.Ver, f.Rev, f.Support}
	case CmdDiagnose:
		if len(params) < 1 || params[0] != 0x00 {
			return nil // only the communication line test
		}
		return append([]byte{cmd + 1}, params...)
	case CmdPowerDown:
		t.awake = false // until the next wake-up preamble
		return []byte{cmd + 1, 0x00}
	case CmdSAMConfiguration:
		if len(params) < 1 || params[0] != SAMNormal {
			return nil // only normal mode is simulated
		}
		t.configured = true
		return []byte{cmd + 1}
	}
	if !t.configured {
		return nil
	}
	switch cmd {
	case CmdRFConfiguration:
		if len(params) < 1 {
			return nil
		}
		if params[0] == RFCfgMaxRetries && len(params) == 4 {
			t.retryForever = params[3] == 0xFF
		}
		return []byte{cmd + 1}
	case CmdInListPassiveTarget:
		if len(params) < 2 || params[0] < 1 || params[0] > 2 {
			return nil
		}
		if params[1] == BrTy106A && t.now().Before(t.uidUntil) {
			return InListAnswer(t.uid)
		}
		if params[1] == BrTy106A && t.retryForever {
			t.listening = true
			return []byte{cmd + 1, 0x00} // not sent
		}
		return []byte{cmd + 1, 0x00}
	case CmdInRelease:
		return []byte{cmd + 1, 0x00}
	case CmdReadRegister:
		if len(params) == 0 || len(params)%2 != 0 {
			return nil
		}
		return append([]byte{cmd + 1}, make([]byte, len(params)/2)...)
	case CmdWriteRegister, CmdSetParameters:
		return []byte{cmd + 1}
	case CmdSetSerialBaudRate:
		// A pty has no rate: the twin answers and talks on as before.
		if len(params) != 1 || params[0] > 0x08 {
			return nil
		}
		return []byte{cmd + 1}
	}
	return nil
}

// Do implements reader.Twin.
func (t *Twin) Do(ctx context.Context, cmd string, args []string) (string, error) {
	switch cmd {
	case "card":
		return t.card(ctx, args)
	case "garbage":
		return t.garbage(args)
	case "raw":
		return t.raw(args)
	case "reset":
		if len(args) != 0 {
			return "", errors.New("usage: reset <reader>")
		}
		// The module forgets everything, a waiting poll included.
		t.mu.Lock()
		t.powerUpLocked()
		t.mu.Unlock()
		return "reset", nil
	case "silent":
		return t.silent(args)
	}
	return "", fmt.Errorf("pn532 twin: unknown command %q (want card, garbage, raw, reset or silent)", cmd)
}

func (t *Twin) card(ctx context.Context, args []string) (string, error) {
	const usage = "usage: card <reader> <uid hex> [hold <duration>]"
	if len(args) != 1 && len(args) != 3 {
		return "", errors.New(usage)
	}
	uid, err := ParseUID(args[0])
	if err != nil {
		return "", fmt.Errorf("card: %w", err)
	}
	hold := DefaultHold
	if len(args) == 3 {
		d, err := time.ParseDuration(args[2])
		if args[1] != "hold" || err != nil || d <= 0 || d > maxHold {
			return "", fmt.Errorf("card: hold %q must be a duration up to %v; %s", args[2], maxHold, usage)
		}
		hold = d
	}
	t.mu.Lock()
	t.uid = uid
	t.uidUntil = t.now().Add(hold)
	var resp []byte
	if t.listening && !t.now().Before(t.silentUntil) {
		// The waiting InListPassiveTarget finds the card.
		t.listening = false
		resp, _ = Encode(TFIPN532, InListAnswer(uid))
		t.lastResp = resp
	}
	t.mu.Unlock()
	if resp != nil {
		if err := t.write(resp); err != nil {
			return "", fmt.Errorf("card: %w", err)
		}
	}
	timer := time.NewTimer(hold)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
		t.mu.Lock()
		t.uidUntil = time.Time{}
		t.mu.Unlock()
		return "", ctx.Err()
	}
	return fmt.Sprintf("card %s hold %v", UIDString(uid), hold), nil
}

func (t *Twin) silent(args []string) (string, error) {
	if len(args) != 1 {
		return "", errors.New("usage: silent <reader> <duration>")
	}
	d, err := time.ParseDuration(args[0])
	if err != nil || d < 0 || d > maxSilent {
		return "", fmt.Errorf("silent: %q must be a duration up to %v", args[0], maxSilent)
	}
	t.mu.Lock()
	t.silentUntil = t.now().Add(d)
	t.listening = false // a waiting poll is never answered
	t.mu.Unlock()
	return fmt.Sprintf("silent %v", d), nil
}

func (t *Twin) garbage(args []string) (string, error) {
	if len(args) != 1 {
		return "", errors.New("usage: garbage <reader> <n>")
	}
	var n int
	if _, err := fmt.Sscanf(args[0], "%d", &n); err != nil || n < 1 || n > maxGarbage {
		return "", fmt.Errorf("garbage: count %q must be 1 to %d", args[0], maxGarbage)
	}
	r := t.Rand
	if r == nil {
		r = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(1 + r.IntN(255)) // never 00: no start code
	}
	if err := t.write(b); err != nil {
		return "", fmt.Errorf("garbage: %w", err)
	}
	return fmt.Sprintf("garbage %d", n), nil
}

func (t *Twin) raw(args []string) (string, error) {
	if len(args) < 1 {
		return "", errors.New("usage: raw <reader> <hex bytes>")
	}
	b, err := hex.DecodeString(strings.Join(strings.Fields(strings.Join(args, " ")), ""))
	if err != nil || len(b) == 0 {
		return "", fmt.Errorf("raw: %q is not hex bytes", strings.Join(args, " "))
	}
	if err := t.write(b); err != nil {
		return "", fmt.Errorf("raw: %w", err)
	}
	return fmt.Sprintf("raw % X", b), nil
}

func (t *Twin) write(b []byte) error {
	t.mu.Lock()
	end := t.end
	t.mu.Unlock()
	if end == nil {
		return errors.New("unplugged")
	}
	_, err := end.Write(b)
	return err
}
