package pn532

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Command codes (UM0701-02 §7). A response's code is its command's plus
// one.
const (
	CmdDiagnose             = 0x00
	CmdGetFirmwareVersion   = 0x02
	CmdReadRegister         = 0x06
	CmdWriteRegister        = 0x08
	CmdSetSerialBaudRate    = 0x10
	CmdSetParameters        = 0x12
	CmdPowerDown            = 0x16
	CmdSAMConfiguration     = 0x14
	CmdRFConfiguration      = 0x32
	CmdInListPassiveTarget  = 0x4A
	CmdInRelease            = 0x52
	BrTy106A                = 0x00 // InListPassiveTarget: 106 kbps ISO/IEC 14443 type A
	SAMNormal               = 0x01 // SAMConfiguration mode: normal, no SAM
	RFCfgMaxRetries         = 0x05 // RFConfiguration item: MxRtyATR, MxRtyPSL, MxRtyPassiveActivation
	ICPN532                 = 0x32 // GetFirmwareVersion IC byte of a PN532
	maxUIDLen               = 10
	inListPassiveTargetResp = CmdInListPassiveTarget + 1
)

// WakeUp is what the host sends on HSU before its first command, so that
// a PN532 asleep (after power-up or a reset) sees a long preamble of
// activity and is ready by the time the command's start code comes
// (UM0701-02, HSU wake-up: 0x55 0x55 then zeros; the first command must
// then be SAMConfiguration, which also ends LowVbat mode).
var WakeUp = []byte{0x55, 0x55, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// ErrBadResponse is wrapped by the response parsers.
var ErrBadResponse = errors.New("pn532: bad response")

// ErrBadUID is wrapped by ParseUID for a value that is not 4, 7 or 10
// bytes of hex.
var ErrBadUID = errors.New("pn532: a UID is 4, 7 or 10 bytes of hex")

// Command returns the frame of command code cmd with its parameters.
func Command(cmd byte, params ...byte) []byte {
	fr, err := Encode(TFIHost, append([]byte{cmd}, params...))
	if err != nil {
		panic(err) // the driver's commands are a few bytes
	}
	return fr
}

// Requests the driver sends.
var (
	// GetFirmwareVersion: D4 02.
	GetFirmwareVersion = Command(CmdGetFirmwareVersion)
	// SAMConfiguration normal mode, timeout 0x14 (1 s, unused in normal
	// mode), P70_IRQ used: D4 14 01 14 01. It also takes a PN532 out of
	// LowVbat after power-up.
	SAMConfiguration = Command(CmdSAMConfiguration, SAMNormal, 0x14, 0x01)
	// RFConfiguration MaxRetries: ATR 0xFF, PSL 0x01 and passive
	// activation 0xFF (the power-up defaults, set explicitly): with
	// passive activation retried forever, InListPassiveTarget answers
	// only when a card is in the field, so an idle reader costs one
	// exchange per listen window rather than one per poll.
	RFMaxRetries = Command(CmdRFConfiguration, RFCfgMaxRetries, 0xFF, 0x01, 0xFF)
	// InListPassiveTarget MaxTg 1, BrTy 106 kbps type A: D4 4A 01 00.
	InListPassiveTarget = Command(CmdInListPassiveTarget, 0x01, BrTy106A)
)

// BaudCode is SetSerialBaudRate's BR byte for each HSU rate the serial
// layer also supports (UM0701-02 §7: 00 9600 … 04 115200; 05–08, up to
// 1 288 000, are beyond reader/serialport).
var BaudCode = map[int]byte{9600: 0x00, 19200: 0x01, 38400: 0x02, 57600: 0x03, 115200: 0x04}

// PowerUpBaud is the HSU rate of a PN532 after power-up or a reset.
const PowerUpBaud = 115200

// SetSerialBaudRate returns the command that switches the HSU to baud
// (a key of BaudCode). The PN532 answers at the old rate, and switches
// when the host has acknowledged the answer with an ACK.
func SetSerialBaudRate(baud int) ([]byte, error) {
	br, ok := BaudCode[baud]
	if !ok {
		return nil, fmt.Errorf("pn532: %d is not an HSU rate", baud)
	}
	return Command(CmdSetSerialBaudRate, br), nil
}

// Firmware is a GetFirmwareVersion answer.
type Firmware struct {
	IC, Ver, Rev, Support byte
}

func (f Firmware) String() string {
	return fmt.Sprintf("IC %02X firmware %d.%d support %02X", f.IC, f.Ver, f.Rev, f.Support)
}

// ParseFirmware decodes the data of a GetFirmwareVersion response frame
// (D5 03 IC Ver Rev Support; data starts at the response code 03).
func ParseFirmware(data []byte) (Firmware, error) {
	if len(data) != 5 || data[0] != CmdGetFirmwareVersion+1 {
		return Firmware{}, fmt.Errorf("%w: GetFirmwareVersion % X", ErrBadResponse, data)
	}
	return Firmware{IC: data[1], Ver: data[2], Rev: data[3], Support: data[4]}, nil
}

// A Target is one ISO 14443A target of an InListPassiveTarget answer.
type Target struct {
	Tg      byte
	SensRes [2]byte // ATQA as the PN532 sends it
	SelRes  byte    // SAK
	UID     []byte  // NFCID1: 4, 7 or 10 bytes
	ATS     []byte  // for ISO 14443-4 targets, with its length byte; may be empty
}

// ParseInList decodes the data of an InListPassiveTarget response frame
// for BrTy 106 kbps type A (4B NbTg [Tg SENS_RES(2) SEL_RES NFCIDLength
// NFCID1 [ATS]]...; data starts at 4B). Zero targets is not an error.
func ParseInList(data []byte) ([]Target, error) {
	if len(data) < 2 || data[0] != inListPassiveTargetResp {
		return nil, fmt.Errorf("%w: InListPassiveTarget % X", ErrBadResponse, data)
	}
	nb := int(data[1])
	if nb > 2 {
		return nil, fmt.Errorf("%w: InListPassiveTarget: %d targets", ErrBadResponse, nb)
	}
	p := data[2:]
	var ts []Target
	for i := range nb {
		if len(p) < 5 {
			return nil, fmt.Errorf("%w: InListPassiveTarget: target %d cut short", ErrBadResponse, i+1)
		}
		t := Target{Tg: p[0], SensRes: [2]byte{p[1], p[2]}, SelRes: p[3]}
		n := int(p[4])
		if n != 4 && n != 7 && n != 10 || len(p) < 5+n {
			return nil, fmt.Errorf("%w: InListPassiveTarget: NFCID length %d in % X", ErrBadResponse, n, data)
		}
		t.UID = append([]byte(nil), p[5:5+n]...)
		p = p[5+n:]
		// ISO 14443-4 compliant (SAK bit 6): the ATS follows, its
		// first byte its length including itself.
		if t.SelRes&0x20 != 0 && len(p) > 0 {
			l := int(p[0])
			if l < 1 || len(p) < l {
				return nil, fmt.Errorf("%w: InListPassiveTarget: ATS length %d in % X", ErrBadResponse, l, data)
			}
			t.ATS = append([]byte(nil), p[:l]...)
			p = p[l:]
		}
		ts = append(ts, t)
	}
	if len(p) != 0 && nb < 2 {
		return nil, fmt.Errorf("%w: InListPassiveTarget: %d trailing bytes in % X", ErrBadResponse, len(p), data)
	}
	return ts, nil
}

// UIDString is the credential value of a UID: upper-case hex.
func UIDString(uid []byte) string { return strings.ToUpper(hex.EncodeToString(uid)) }

// ParseUID reads a UID given as hex (either case, optional spaces or
// colons), 4, 7 or 10 bytes.
func ParseUID(s string) ([]byte, error) {
	s = strings.NewReplacer(" ", "", ":", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 4 && len(b) != 7 && len(b) != 10 {
		return nil, fmt.Errorf("%w: %q", ErrBadUID, s)
	}
	return b, nil
}

// InListAnswer is the data of the response a PN532 gives to
// InListPassiveTarget with one target of uid in the field (zero targets
// for a nil uid), with a plausible SENS_RES and SEL_RES for the UID
// size: a MIFARE Classic 1K for 4 bytes, an NTAG/Ultralight for 7, a
// triple-size UID for 10.
func InListAnswer(uid []byte) []byte {
	if uid == nil {
		return []byte{inListPassiveTargetResp, 0x00}
	}
	sens, sel := [2]byte{0x00, 0x04}, byte(0x08)
	switch len(uid) {
	case 7:
		sens, sel = [2]byte{0x00, 0x44}, 0x00
	case 10:
		sens, sel = [2]byte{0x00, 0x84}, 0x00
	}
	out := []byte{inListPassiveTargetResp, 0x01, 0x01, sens[0], sens[1], sel, byte(len(uid))}
	return append(out, uid...)
}
