package gpioline

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

// Every message of the protocol, byte for byte.
var codecCases = []struct {
	name string
	wire string
	msg  Msg
}{
	{"watch D0 and D1 of a Wiegand reader", "WATCH GPIO4 GPIO17\n", Msg{Op: OpWatch, Lines: []string{"GPIO4", "GPIO17"}}},
	{"granted", "OK\n", Msg{Op: OpOK}},
	{"refused, with the reason", "ERR line GPIO4 is busy\n", Msg{Op: OpErr, Text: "line GPIO4 is busy"}},
	{"refused, no reason", "ERR\n", Msg{Op: OpErr}},
	// D0 falls 1.5 ms after the epoch (a 0 bit starts) and rises 80 µs later.
	{"falling edge", "EDGE GPIO4 F 1500000\n", Msg{Op: OpEdge, Lines: []string{"GPIO4"}, At: 1500 * time.Microsecond}},
	{"rising edge", "EDGE GPIO4 R 1580000\n", Msg{Op: OpEdge, Lines: []string{"GPIO4"}, Rising: true, At: 1580 * time.Microsecond}},
	{"edge at the epoch", "EDGE X R 0\n", Msg{Op: OpEdge, Lines: []string{"X"}, Rising: true}},
	{"edge at the largest time", "EDGE X F 9223372036854775807\n", Msg{Op: OpEdge, Lines: []string{"X"}, At: 1<<63 - 1}},
	{"keypad columns", "IN GPIO5 GPIO6 GPIO13\n", Msg{Op: OpIn, Lines: []string{"GPIO5", "GPIO6", "GPIO13"}}},
	{"read them", "GET\n", Msg{Op: OpGet}},
	// Column 2 pulled low by a pressed key on the driven row.
	{"their levels", "LEVELS 101\n", Msg{Op: OpLevels, Levels: []bool{true, false, true}}},
	{"a keypad row", "OUT GPIO23\n", Msg{Op: OpOut, Lines: []string{"GPIO23"}}},
	{"drive it low", "SET 0\n", Msg{Op: OpSet}},
	{"release it", "SET 1\n", Msg{Op: OpSet, High: true}},
}

func TestCodecVectors(t *testing.T) {
	for _, tc := range codecCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.wire))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.wire, err)
			}
			if !reflect.DeepEqual(got, tc.msg) {
				t.Fatalf("Parse(%q) = %+v, want %+v", tc.wire, got, tc.msg)
			}
			b, err := Append([]byte("x"), tc.msg)
			if err != nil || string(b) != "x"+tc.wire {
				t.Fatalf("Append(%+v) = %q, %v; want %q", tc.msg, b, err, tc.wire)
			}
		})
	}
}

func TestCodecRejects(t *testing.T) {
	for _, in := range []string{
		"", "\n", "ok\n", "OK \n", "OK x\n", "HELLO\n",
		"WATCH\n", "WATCH \n", "WATCH  GPIO4\n", "WATCH GPIO4 \n", "WATCH GPIO/4\n",
		"WATCH " + string(bytes.Repeat([]byte("A"), MaxNameLen+1)) + "\n",
		"OUT A B\n", "OUT\n",
		"EDGE GPIO4 F\n", "EDGE GPIO4 X 1\n", "EDGE GPIO4 F -1\n", "EDGE GPIO4 F 01\n",
		"EDGE GPIO4 F 9223372036854775808\n", "EDGE GPIO4 F 1x\n", "EDGE A B F 1\n",
		"LEVELS\n", "LEVELS 102\n", "LEVELS 1 0\n",
		"SET\n", "SET 2\n", "SET 0 1\n", "GET 1\n",
		"ERR \n", "ERR a\tb\n", "ERR a\nb\n",
		"GET\n\n",
	} {
		if m, err := Parse([]byte(in)); err == nil || !errors.Is(err, ErrMsg) {
			t.Errorf("Parse(%q) = %+v, %v; want an ErrMsg", in, m, err)
		}
	}
	many := Msg{Op: OpWatch}
	for range MaxLines + 1 {
		many.Lines = append(many.Lines, "GPIO1")
	}
	for _, m := range []Msg{
		many, {Op: "NOPE"}, {Op: OpOut}, {Op: OpEdge, Lines: []string{"A"}, At: -1},
		{Op: OpLevels}, {Op: OpErr, Text: "a\nb"}, {Op: OpWatch, Lines: []string{""}},
	} {
		if b, err := Append(nil, m); err == nil || len(b) != 0 {
			t.Errorf("Append(%+v) = %q, %v; want an error and nothing", m, b, err)
		}
	}
}

func TestCodecLongestMessageFits(t *testing.T) {
	m := Msg{Op: OpWatch}
	for range MaxLines {
		m.Lines = append(m.Lines, string(bytes.Repeat([]byte("G"), MaxNameLen)))
	}
	b, err := Append(nil, m)
	if err != nil {
		t.Fatalf("the largest request does not fit: %v", err)
	}
	if _, err := Parse(b); err != nil {
		t.Fatal(err)
	}
}

// FuzzCodec: Parse never panics; whatever parses has exactly one
// spelling, which Append gives back.
func FuzzCodec(f *testing.F) {
	for _, tc := range codecCases {
		f.Add([]byte(tc.wire))
	}
	f.Add([]byte("EDGE GPIO4 F 9223372036854775808\n"))
	f.Add([]byte("LEVELS 0000000000000000000000000000000000000000000000000000000000000000\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrMsg) {
				t.Fatalf("Parse error %v does not wrap ErrMsg", err)
			}
			return
		}
		b, err := Append(nil, m)
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, which Append refuses: %v", data, m, err)
		}
		want := data
		if len(want) == 0 || want[len(want)-1] != '\n' {
			want = append(append([]byte(nil), data...), '\n')
		}
		if !bytes.Equal(b, want) {
			t.Fatalf("Parse(%q) = %+v, which Appends as %q", data, m, b)
		}
		if len(b) > MaxLine {
			t.Fatalf("a message of %d bytes parsed", len(b))
		}
	})
}
