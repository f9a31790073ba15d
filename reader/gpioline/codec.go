package gpioline

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// The simulated chip's wire protocol. A connection carries one line
// request, as a character-device line request is one file descriptor;
// its first message says which:
//
//	client                          server
//	WATCH GPIO4 GPIO17         →
//	                           ←    OK                (or ERR text)
//	                           ←    EDGE GPIO4 F 1500000
//	                           ←    EDGE GPIO4 R 1580000   (ns since the chip's epoch)
//
//	IN GPIO5 GPIO6 GPIO13      →
//	                           ←    OK
//	GET                        →
//	                           ←    LEVELS 101        (one digit per line, 1 = high)
//
//	OUT GPIO23                 →
//	                           ←    OK
//	SET 0                      →    (drive low; SET 1 releases)
//	                           ←    OK
//
// Messages are ASCII lines ending in '\n', fields separated by one
// space, at most MaxLine bytes. Every message has exactly one spelling,
// so that Append(Parse(b)) == b for every b that parses.

// Wire limits.
const (
	MaxLine    = 4096 // bytes in one message, '\n' included
	MaxLines   = 64   // lines in one request (a LEVELS answer fits a uint64)
	MaxNameLen = 31   // bytes in a line name
	maxText    = 200  // bytes of an ERR message's text
)

// Op is a message's kind: its first word.
type Op string

// The messages.
const (
	OpWatch  Op = "WATCH"  // client: request Lines as inputs reporting edges
	OpIn     Op = "IN"     // client: request Lines as inputs read on demand
	OpOut    Op = "OUT"    // client: request Lines[0] as an open-drain output
	OpOK     Op = "OK"     // server: the request or SET is done
	OpErr    Op = "ERR"    // server: refused, Text says why; the connection closes
	OpEdge   Op = "EDGE"   // server: Lines[0] changed to Rising at At
	OpGet    Op = "GET"    // client on an IN connection: read the levels
	OpLevels Op = "LEVELS" // server: the answer to GET
	OpSet    Op = "SET"    // client on an OUT connection: drive low or release
)

// A Msg is one message of the protocol. Fields not used by its Op are
// zero.
type Msg struct {
	Op     Op
	Lines  []string      // WATCH, IN: 1..MaxLines names; OUT, EDGE: one
	Rising bool          // EDGE
	At     time.Duration // EDGE: >= 0
	Levels []bool        // LEVELS: 1..MaxLines levels
	High   bool          // SET
	Text   string        // ERR: printable ASCII, may be empty
}

// ErrMsg is wrapped by Parse's and Append's errors.
var ErrMsg = errors.New("gpioline: bad message")

// Append appends m's wire form, '\n' included, to b. It returns an error
// for a message that has no wire form (a bad name, too many lines, text
// with control characters).
func Append(b []byte, m Msg) ([]byte, error) {
	if err := m.check(); err != nil {
		return b, err
	}
	start := len(b)
	b = append(b, m.Op...)
	switch m.Op {
	case OpWatch, OpIn, OpOut:
		for _, l := range m.Lines {
			b = append(b, ' ')
			b = append(b, l...)
		}
	case OpEdge:
		b = append(b, ' ')
		b = append(b, m.Lines[0]...)
		if m.Rising {
			b = append(b, " R "...)
		} else {
			b = append(b, " F "...)
		}
		b = strconv.AppendInt(b, int64(m.At), 10)
	case OpLevels:
		b = append(b, ' ')
		for _, l := range m.Levels {
			b = append(b, bit(l))
		}
	case OpSet:
		b = append(b, ' ', bit(m.High))
	case OpErr:
		if m.Text != "" {
			b = append(b, ' ')
			b = append(b, m.Text...)
		}
	}
	b = append(b, '\n')
	if len(b)-start > MaxLine {
		return b[:start], fmt.Errorf("%w: %s is %d bytes, more than %d", ErrMsg, m.Op, len(b)-start, MaxLine)
	}
	return b, nil
}

func bit(v bool) byte {
	if v {
		return '1'
	}
	return '0'
}

func (m Msg) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrMsg, m.Op, fmt.Sprintf(format, args...))
	}
	switch m.Op {
	case OpWatch, OpIn, OpOut, OpEdge:
		n := len(m.Lines)
		if (m.Op == OpOut || m.Op == OpEdge) && n != 1 {
			return bad("takes one line, not %d", n)
		}
		if n == 0 || n > MaxLines {
			return bad("%d lines, want 1 to %d", n, MaxLines)
		}
		for _, l := range m.Lines {
			if !ValidLineName(l) {
				return bad("bad line name %q", l)
			}
		}
		if m.Op == OpEdge && m.At < 0 {
			return bad("negative time %d", m.At)
		}
	case OpLevels:
		if n := len(m.Levels); n == 0 || n > MaxLines {
			return bad("%d levels, want 1 to %d", n, MaxLines)
		}
	case OpErr:
		if len(m.Text) > maxText {
			return bad("text of %d bytes", len(m.Text))
		}
		for i := 0; i < len(m.Text); i++ {
			if m.Text[i] < ' ' || m.Text[i] > '~' {
				return bad("text has byte %#x", m.Text[i])
			}
		}
	case OpOK, OpGet, OpSet:
	default:
		return fmt.Errorf("%w: unknown op %q", ErrMsg, m.Op)
	}
	return nil
}

// Parse parses one message. line may end in '\n' (it is the only place
// a '\n' may be). Parse keeps no reference to line.
func Parse(line []byte) (Msg, error) {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if len(line) > MaxLine-1 {
		return Msg{}, fmt.Errorf("%w: %d bytes, more than %d", ErrMsg, len(line)+1, MaxLine)
	}
	op, rest, hasRest := cut(line)
	m := Msg{Op: Op(op)}
	bad := func(format string, args ...any) (Msg, error) {
		return Msg{}, fmt.Errorf("%w: %.12q: %s", ErrMsg, op, fmt.Sprintf(format, args...))
	}
	var fields []string
	if hasRest && m.Op != OpErr {
		fields = splitFields(rest)
		if fields == nil {
			return bad("empty field")
		}
	}
	switch m.Op {
	case OpWatch, OpIn, OpOut:
		m.Lines = fields
	case OpEdge:
		if len(fields) != 3 {
			return bad("want line, R or F, and a time")
		}
		m.Lines = fields[:1:1]
		switch fields[1] {
		case "R":
			m.Rising = true
		case "F":
		default:
			return bad("edge %q is neither R nor F", fields[1])
		}
		ns, ok := parseNat(fields[2])
		if !ok {
			return bad("bad time %q", fields[2])
		}
		m.At = time.Duration(ns)
	case OpLevels:
		if len(fields) != 1 {
			return bad("want one field of levels")
		}
		for _, c := range []byte(fields[0]) {
			if c != '0' && c != '1' {
				return bad("level %q is neither 0 nor 1", c)
			}
			m.Levels = append(m.Levels, c == '1')
		}
	case OpSet:
		if len(fields) != 1 || (fields[0] != "0" && fields[0] != "1") {
			return bad("want 0 or 1")
		}
		m.High = fields[0] == "1"
	case OpOK, OpGet:
		if hasRest {
			return bad("takes no fields")
		}
	case OpErr:
		if hasRest {
			if len(rest) == 0 {
				return bad("empty text")
			}
			m.Text = string(rest)
		}
	default:
		return Msg{}, fmt.Errorf("%w: unknown op %.12q", ErrMsg, op)
	}
	if err := m.check(); err != nil {
		return Msg{}, err
	}
	return m, nil
}

// cut splits line at its first space.
func cut(line []byte) (first string, rest []byte, ok bool) {
	for i, c := range line {
		if c == ' ' {
			return string(line[:i]), line[i+1:], true
		}
	}
	return string(line), nil, false
}

// splitFields splits at single spaces; nil if any field is empty or
// there are more than MaxLines+2 of them.
func splitFields(b []byte) []string {
	var out []string
	start := 0
	for i := 0; i <= len(b); i++ {
		if i < len(b) && b[i] != ' ' {
			continue
		}
		if i == start || len(out) > MaxLines+2 {
			return nil
		}
		out = append(out, string(b[start:i]))
		start = i + 1
	}
	return out
}

// parseNat parses a canonical non-negative decimal int64: no sign, no
// leading zero.
func parseNat(s string) (int64, bool) {
	if s == "" || len(s) > 19 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}
