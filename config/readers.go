package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/drivers"
	"github.com/punchclock/punchclock/reader/gpioline"
)

// Reader configures one credential reader. The common keys are the
// loader's; every other key of the reader's table belongs to its driver,
// which decodes and validates it (Settings).
type Reader struct {
	Name      string `toml:"name"`
	Driver    string `toml:"driver"`
	Direction string `toml:"direction"`
	// Role is RoleAttendance (pairs punches into shifts), RoleAccess (a
	// door: events only, its relay pulses on a granted punch) or RoleBoth.
	Role string `toml:"role"`
	// Enabled false suspends the reader: it is still read, and every
	// punch there is denied reader_suspended. Nil: enabled, unless
	// new_readers = "suspended" and the device never ran the reader.
	// The state in force is kept in the store (a remote command changes
	// it at run time); a key given here wins at every start.
	Enabled *bool `toml:"enabled"`
	// JobCode asks the person for a job code after an accepted badge.
	JobCode bool `toml:"job_code"`
	// InKey and OutKey are the keys that choose the direction when
	// Direction is "key"; KeyTimeout is how long a key press holds
	// before the reader falls back to toggle.
	InKey      string   `toml:"in_key"`
	OutKey     string   `toml:"out_key"`
	KeyTimeout Duration `toml:"key_timeout"`
	// PINTimeout is how long the reader waits for the second factor
	// (a PIN after a card, for pin_with_card) or a job code.
	PINTimeout Duration `toml:"pin_timeout"`
	// Feedback is the reader's own LEDs, buzzer and door relay; nil: it
	// shares the terminal's [feedback].
	Feedback *Feedback `toml:"feedback"`
	// Keypad names another reader (a keypad beside this card reader)
	// whose key presses count as this reader's: the PIN of a card, a job
	// code, a direction key.
	Keypad string `toml:"keypad"`
	// RepeatWindow folds repeated frames of the same card into one
	// presentation: a card is presented again only after the reader has
	// not seen it for this long. Go duration syntax.
	RepeatWindow Duration `toml:"repeat_window"`

	// Settings is the driver's own configuration, decoded from the
	// reader's table and validated.
	Settings reader.Config `toml:"-"`
	// Line is where the reader's [[readers]] table starts in the file.
	Line int `toml:"-"`

	raw unstable.RawMessage
}

// commonKeys are the reader keys the loader owns.
var commonKeys = []string{"name", "driver", "direction", "repeat_window", "role", "enabled",
	"job_code", "in_key", "out_key", "key_timeout", "pin_timeout", "feedback", "keypad"}

// feedbackKeys are the keys of a feedback table.
var feedbackKeys = []string{"green", "red", "buzzer", "relay", "relay_pulse", "active_low"}

// UnmarshalTOML keeps the reader's table to be decoded once its driver is
// known (see decodeReaders).
func (r *Reader) UnmarshalTOML(b []byte) error {
	r.raw = append(unstable.RawMessage(nil), b...)
	return nil
}

// inlineReaders fills in the tables of readers written inline
// (readers = [{name = "a", ...}]), whose bytes the TOML decoder does not
// hand to UnmarshalTOML: it decodes them again as maps and writes each
// as the key/value lines of a table.
func (c *Config) inlineReaders(doc []byte) error {
	inline := false
	for _, r := range c.Readers {
		inline = inline || bytes.HasPrefix(bytes.TrimSpace(r.raw), []byte("{"))
	}
	if !inline {
		return nil
	}
	var all struct {
		Readers []map[string]any `toml:"readers"`
	}
	if err := toml.Unmarshal(doc, &all); err != nil {
		return err
	}
	if len(all.Readers) != len(c.Readers) {
		return fmt.Errorf("%d readers decoded as maps, %d as tables", len(all.Readers), len(c.Readers))
	}
	for i := range c.Readers {
		if !bytes.HasPrefix(bytes.TrimSpace(c.Readers[i].raw), []byte("{")) {
			continue
		}
		b, err := toml.Marshal(all.Readers[i])
		if err != nil {
			return err
		}
		c.Readers[i].raw = b
	}
	return nil
}

// Env is what the reader's driver is given to build it.
func (r *Reader) Env(log *slog.Logger, now func() time.Time) reader.Env {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return reader.Env{
		Name:         r.Name,
		RepeatWindow: r.RepeatWindow.Duration,
		Logger:       log.With("reader", r.Name, "driver", r.Driver),
		Now:          now,
	}
}

// New builds the reader on this host's hardware.
func (r *Reader) New(log *slog.Logger) (reader.Reader, error) {
	rd, err := r.Settings.New(r.Env(log, nil))
	if err != nil {
		return nil, fmt.Errorf("reader %q (driver %s): %w", r.Name, r.Driver, err)
	}
	return rd, nil
}

// NewReaders builds every configured reader on this host's hardware.
func (c *Config) NewReaders(log *slog.Logger) ([]reader.Reader, error) {
	var rs []reader.Reader
	for i := range c.Readers {
		rd, err := c.Readers[i].New(log)
		if err != nil {
			return nil, err
		}
		rs = append(rs, rd)
	}
	return rs, nil
}

// keyLines maps each [[readers]] table of a document to the line of its
// header and of each of its keys, so that an error about a driver's key
// names the line it is on.
type keyLines struct {
	tables []int            // line of the i-th [[readers]] header
	keys   []map[string]int // key -> line, per table
}

func (kl *keyLines) line(i int, key string) int {
	if i < 0 || i >= len(kl.tables) {
		return 0
	}
	if l, ok := kl.keys[i][key]; ok {
		return l
	}
	return kl.tables[i]
}

// readerLines finds the reader tables of doc. The document has been
// decoded already, so it parses.
func readerLines(doc []byte) *keyLines {
	kl := &keyLines{}
	var p unstable.Parser
	p.Reset(doc)
	in := -1
	lineOf := func(n *unstable.Node) (line int) {
		defer func() {
			if recover() != nil {
				line = 0
			}
		}()
		r := n.Raw
		if r.Length == 0 {
			r = p.Range(n.Data)
		}
		return p.Shape(r).Start.Line
	}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.ArrayTable, unstable.Table:
			var parts []string
			first := 0
			for it := e.Key(); it.Next(); {
				if first == 0 {
					first = lineOf(it.Node())
				}
				parts = append(parts, string(it.Node().Data))
			}
			in = -1
			if e.Kind == unstable.ArrayTable && len(parts) == 1 && parts[0] == "readers" {
				kl.tables = append(kl.tables, first)
				kl.keys = append(kl.keys, map[string]int{})
				in = len(kl.tables) - 1
			}
		case unstable.KeyValue:
			if in < 0 {
				continue
			}
			it := e.Key()
			if it.Next() {
				kl.keys[in][string(it.Node().Data)] = lineOf(it.Node())
			}
		}
	}
	return kl
}

// decodeReaders decodes each reader's table: the common keys, then the
// rest into its driver's configuration. Errors name the file, the line
// and the key.
func (c *Config) decodeReaders(doc []byte) []string {
	kl := readerLines(doc)
	c.lines = kl
	if err := c.inlineReaders(doc); err != nil {
		return []string{fmt.Sprintf("%s: readers: %v", c.Path, err)}
	}
	var errs []string
	at := c.readerKey
	for i := range c.Readers {
		r := &c.Readers[i]
		r.Line = kl.line(i, "")
		if err := toml.Unmarshal(r.raw, (*commonReader)(r)); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", at(i, errKey(err)), errText(err)))
			continue
		}
		if r.Feedback != nil {
			// relay_pulse left out takes the default; "0s" given
			// stays 0 (never pulse).
			var given struct {
				Feedback struct {
					RelayPulse *Duration `toml:"relay_pulse"`
				} `toml:"feedback"`
			}
			if toml.Unmarshal(r.raw, &given) == nil && given.Feedback.RelayPulse == nil {
				r.Feedback.RelayPulse.Duration = DefaultRelayPulse
			}
			// The common decoding is lenient: the reader's feedback
			// table's own keys are checked here.
			var fb struct {
				Feedback *Feedback `toml:"feedback"`
			}
			err := toml.NewDecoder(bytes.NewReader(r.raw)).DisallowUnknownFields().Decode(&fb)
			var sm *toml.StrictMissingError
			if errors.As(err, &sm) {
				for _, e := range sm.Errors {
					if kp := e.Key(); kp[0] == "feedback" {
						errs = append(errs, fmt.Sprintf("%s: unknown key (a reader's feedback has %s)", at(i, strings.Join(kp, ".")), strings.Join(feedbackKeys, ", ")))
					}
				}
			}
		}
		d, ok := drivers.Lookup(r.Driver)
		if !ok {
			errs = append(errs, fmt.Sprintf("%s: %q is not one of %s", at(i, "driver"), r.Driver, strings.Join(drivers.Names(), ", ")))
			continue
		}
		s := d.NewConfig()
		dec := toml.NewDecoder(bytes.NewReader(r.raw)).DisallowUnknownFields()
		err := dec.Decode(s)
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			err = nil
			for _, e := range sm.Errors {
				k := strings.Join(e.Key(), ".")
				if slices.Contains(commonKeys, e.Key()[0]) {
					continue
				}
				errs = append(errs, fmt.Sprintf("%s: unknown key for driver %s (%s)", at(i, k), r.Driver, d.Doc))
			}
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", at(i, errKey(err)), errText(err)))
			continue
		}
		r.Settings = s
		r.raw = nil
	}
	return errs
}

// commonReader decodes the common keys alone: a Reader without its
// UnmarshalTOML.
type commonReader Reader

func errKey(err error) string {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		return strings.Join(de.Key(), ".")
	}
	return ""
}

func errText(err error) string {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		return de.Error()
	}
	return err.Error()
}

// validateReaders checks the common keys and asks each driver to check
// its own; claims on one device or pin by two readers are errors.
func (c *Config) validateReaders(errs *[]string) {
	// Every error about a reader names its key by its line in the file.
	bad := func(i int, key, format string, args ...any) {
		*errs = append(*errs, c.readerKey(i, key)+": "+fmt.Sprintf(format, args...))
	}
	seen := map[string]bool{}
	claims := map[string]string{} // claim -> reader
	type agreed struct{ reader, value string }
	agree := map[string]agreed{} // "agree:" claims: name -> the first value
	// The feedback outputs are on the host's GPIO chip too.
	for _, p := range c.Feedback.Pins() {
		if p.Name != "" {
			claims[gpioline.DefaultChip+":"+gpioline.LineName(p.Name)] = p.Key
		}
	}
	for i := range c.Readers {
		r := &c.Readers[i]
		switch {
		case r.Name == "":
			bad(i, "name", "required")
		case !idRE.MatchString(r.Name):
			bad(i, "name", "%q may hold only letters, digits, '_' and '-'", r.Name)
		case seen[r.Name]:
			bad(i, "name", "%q is used by another reader", r.Name)
		}
		seen[r.Name] = true
		if !contains([]string{DirToggle, DirIn, DirOut, DirKey}, r.Direction) {
			bad(i, "direction", "%q must be toggle, in, out or key", r.Direction)
		}
		if !contains([]string{RoleAttendance, RoleAccess, RoleBoth}, r.Role) {
			bad(i, "role", "%q must be attendance, access or both", r.Role)
		}
		if r.Direction == DirKey {
			for _, k := range []struct{ key, v string }{{"in_key", r.InKey}, {"out_key", r.OutKey}} {
				if !contains(directionKeys, k.v) {
					bad(i, k.key, "%q must be one of %s", k.v, strings.Join(directionKeys, ", "))
				}
			}
			if r.InKey == r.OutKey {
				bad(i, "out_key", "%q is in_key too", r.OutKey)
			}
		}
		if r.Keypad != "" {
			j := slices.IndexFunc(c.Readers, func(o Reader) bool { return o.Name == r.Keypad })
			switch {
			case r.Keypad == r.Name:
				bad(i, "keypad", "%q is this reader", r.Keypad)
			case j < 0:
				bad(i, "keypad", "%q is not a reader of this configuration", r.Keypad)
			default:
				for k := range c.Readers[:i] {
					if c.Readers[k].Keypad == r.Keypad {
						bad(i, "keypad", "%q is the keypad of reader %q already", r.Keypad, c.Readers[k].Name)
					}
				}
			}
		}
		if d := r.KeyTimeout.Duration; d < time.Second || d > time.Minute {
			bad(i, "key_timeout", "%v must be between 1s and 1m", d)
		}
		if d := r.PINTimeout.Duration; d < 2*time.Second || d > 2*time.Minute {
			bad(i, "pin_timeout", "%v must be between 2s and 2m", d)
		}
		if f := r.Feedback; f != nil {
			if f.Relay != "" && r.Role == RoleAttendance {
				bad(i, "feedback.relay", "%s: an attendance reader opens no door; set role = \"access\" or \"both\"", f.Relay)
			}
			key := fmt.Sprintf("readers[%d].feedback", i)
			for _, p := range f.Pins() {
				if p.Name == "" {
					continue
				}
				k := strings.Replace(p.Key, "feedback", key, 1)
				if !pinRE.MatchString(p.Name) {
					bad(i, strings.TrimPrefix(k, fmt.Sprintf("readers[%d].", i)), "%q is not a GPIO name like \"GPIO17\"", p.Name)
					continue
				}
				cl := gpioline.DefaultChip + ":" + gpioline.LineName(p.Name)
				if other, taken := claims[cl]; taken {
					bad(i, strings.TrimPrefix(k, fmt.Sprintf("readers[%d].", i)), "%s is also used by %s", p.Name, claimOwner(other))
					continue
				}
				claims[cl] = k
			}
			if d := f.RelayPulse.Duration; d < 0 || d > MaxRelayPulse {
				bad(i, "feedback.relay_pulse", "%v must be between 0 and %v", d, MaxRelayPulse)
			}
		}
		if r.RepeatWindow.Duration < 0 || r.RepeatWindow.Duration > 10*time.Second {
			bad(i, "repeat_window", "%v must be between 0 and 10s", r.RepeatWindow.Duration)
		}
		if r.Settings == nil {
			continue // its table did not decode: reported already
		}
		if err := r.Settings.Validate(); err != nil {
			for _, e := range flatten(err) {
				var ke *reader.KeyError
				if errors.As(e, &ke) {
					bad(i, ke.Key, "%s", ke.Msg)
				} else {
					bad(i, "driver", "%v", e)
				}
			}
			continue
		}
		for _, cl := range r.Settings.Claims() {
			if a, ok := strings.CutPrefix(cl, "agree:"); ok {
				name, value, _ := strings.Cut(a, "=")
				if prev, ok := agree[name]; ok && prev.value != value {
					bad(i, "", "%s: %s, but reader %q has %s", name, value, prev.reader, prev.value)
				} else if !ok {
					agree[name] = agreed{r.Name, value}
				}
				continue
			}
			shared := strings.HasPrefix(cl, "shared:")
			name := strings.TrimPrefix(cl, "shared:")
			other, taken := claims[name]
			if taken && !(shared && strings.HasPrefix(other, "shared:")) {
				bad(i, "", "%s is also used by %s", name, claimOwner(other))
				continue
			}
			if shared {
				claims[name] = "shared:" + r.Name
			} else {
				claims[name] = r.Name
			}
		}
	}
}

// claimOwner names who holds a claim: a reader or a feedback key.
func claimOwner(other string) string {
	if strings.HasPrefix(other, "feedback.") || strings.HasPrefix(other, "readers[") {
		return other
	}
	return fmt.Sprintf("reader %q", strings.TrimPrefix(other, "shared:"))
}

// readerKey names key of reader i with its line, as decodeReaders does.
func (c *Config) readerKey(i int, key string) string {
	name := fmt.Sprintf("readers[%d]", i)
	if key != "" {
		name += "." + key
	}
	if c.lines != nil {
		if l := c.lines.line(i, key); l > 0 {
			return fmt.Sprintf("%s:%d: key %q", c.Path, l, name)
		}
	}
	return fmt.Sprintf("%s: key %q", c.Path, name)
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
