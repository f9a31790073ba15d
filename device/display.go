package device

// The display at the door: texts are a pure function of a decision and the
// screen's size in characters (PunchLines, IdleLines), and a Display draws
// them on a Screen from its own goroutine, so a slow I²C bus (an HD44780
// behind a PCF8574 takes a few milliseconds per character) never holds up
// a decision. Drivers: ssd1306.go (OLED) and hd44780.go (LCD backpack).

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3"

	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/roster"
)

// A Screen shows lines of text, one per row from the top. Show draws
// synchronously (it may take tens of milliseconds on I²C); a Display calls
// it from its own goroutine only. Lines are ASCII, at most the screen's
// columns long, and as many as its rows: a shorter line leaves the rest of
// its row blank.
type Screen interface {
	Show(lines []string) error
}

// Size is a text screen's geometry in characters.
type Size struct {
	Cols, Rows int
}

// Punch is what the display needs of one decision: the event, and what
// the event does not hold.
type Punch struct {
	Event punch.Event
	// Name is the employee's display name (the roster's name); empty for
	// an unknown credential.
	Name string
	// Shift is the shift an accepted exit closed, for its duration; nil:
	// no duration is shown.
	Shift *punch.Shift
	// OpenSince is the open entry's time, for a double_in.
	OpenSince time.Time
}

// Status is what the idle screen shows besides the time.
type Status struct {
	// Online: the uplink is connected to the broker.
	Online bool
	// ClockSet: the system clock is known to be set. Until then the idle
	// screen shows "--:--", not a time from 1970 or the last shutdown.
	ClockSet bool
}

// Defaults for DisplayOptions fields left zero.
const (
	// DefaultHold is how long a punch stays on the screen before the idle
	// screen comes back.
	DefaultHold = 4 * time.Second
)

// DisplayOptions configure a Display.
type DisplayOptions struct {
	Screen Screen
	// Size is the Screen's size in characters (the drivers' Size method).
	Size Size
	// Hold is how long a punch is shown; zero: DefaultHold.
	Hold time.Duration
	// Clock schedules the return to idle and the idle screen's minute
	// updates. Nil: the system clock.
	Clock Clock
	// Now is the wall time the idle screen shows. Nil: time.Now.
	Now func() time.Time
	// Location is where the idle time is shown. Nil: time.Local.
	Location *time.Location
	// Logger receives the Screen's errors (the drawing goroutine has no
	// caller to return them to): the first of a run of failures and the
	// recovery. Nil: silent.
	Logger *slog.Logger
}

// A Display shows the idle screen, and each punch for Hold. ShowPunch and
// SetStatus return at once: they compute the lines and hand them to the
// Display's goroutine, which draws only the latest (a punch shown while
// the bus is still busy with the previous one replaces it). Close stops
// the goroutine and waits for it.
type Display struct {
	screen Screen
	size   Size
	hold   time.Duration
	clock  Clock
	now    func() time.Time
	loc    *time.Location
	log    *slog.Logger

	wake chan struct{} // capacity 1: something is pending
	stop chan struct{}
	wg   sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	status    Status
	showing   bool   // a punch is on the screen
	gen       uint64 // the punch shown; its hold timer checks it
	holdTimer Timer
	tick      Timer
	pending   []string
	hasLines  bool
}

// NewDisplay starts a Display: it draws the idle screen at once and
// redraws it at every minute.
func NewDisplay(o DisplayOptions) (*Display, error) {
	if o.Screen == nil {
		return nil, fmt.Errorf("device: display: no screen")
	}
	if o.Size.Cols < 8 || o.Size.Rows < 1 {
		return nil, fmt.Errorf("device: display: a screen of %d columns and %d rows is too small (at least 8 by 1)", o.Size.Cols, o.Size.Rows)
	}
	if o.Hold < 0 {
		return nil, fmt.Errorf("device: display: negative hold %v", o.Hold)
	}
	if o.Hold == 0 {
		o.Hold = DefaultHold
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Display{screen: o.Screen, size: o.Size, hold: o.Hold, clock: o.Clock, now: o.Now, loc: o.Location,
		log: o.Logger, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	d.mu.Lock()
	d.idle()
	d.scheduleTick()
	d.mu.Unlock()
	d.wg.Add(1)
	go d.draw()
	return d, nil
}

// ShowPunch shows p for Hold, then the idle screen again. It does not
// block.
func (d *Display) ShowPunch(p Punch) {
	lines := PunchLines(p, d.size)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.gen++
	gen := d.gen
	d.showing = true
	if d.holdTimer != nil {
		d.holdTimer.Stop()
	}
	d.holdTimer = d.clock.AfterFunc(d.hold, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.closed || d.gen != gen {
			return // a later punch took the screen
		}
		d.showing, d.holdTimer = false, nil
		d.idle()
	})
	d.put(lines)
}

// SetStatus changes what the idle screen shows; it is redrawn at once
// unless a punch is on the screen. It does not block.
func (d *Display) SetStatus(st Status) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || st == d.status {
		return
	}
	d.status = st
	if !d.showing {
		d.idle()
	}
}

// Close stops the timers and the drawing goroutine, and waits for a draw
// under way. The screen keeps what it shows. Safe to call twice.
func (d *Display) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	for _, t := range []Timer{d.holdTimer, d.tick} {
		if t != nil {
			t.Stop()
		}
	}
	d.mu.Unlock()
	close(d.stop)
	d.wg.Wait()
	return nil
}

// idle makes the idle screen pending. d.mu is held.
func (d *Display) idle() {
	d.put(IdleLines(d.now().In(d.loc), d.status, d.size))
}

// scheduleTick redraws the idle screen at the next minute. d.mu is held.
func (d *Display) scheduleTick() {
	now := d.now()
	next := now.Truncate(time.Minute).Add(time.Minute)
	d.tick = d.clock.AfterFunc(next.Sub(now), func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.closed {
			return
		}
		if !d.showing {
			d.idle()
		}
		d.scheduleTick()
	})
}

// put hands lines to the drawing goroutine. d.mu is held.
func (d *Display) put(lines []string) {
	d.pending, d.hasLines = lines, true
	select {
	case d.wake <- struct{}{}:
	default: // already woken: it will take these lines
	}
}

// draw is the Display's goroutine: it shows the latest pending lines.
func (d *Display) draw() {
	defer d.wg.Done()
	var failing bool
	for {
		select {
		case <-d.stop:
			return
		case <-d.wake:
		}
		d.mu.Lock()
		lines, ok := d.pending, d.hasLines
		d.pending, d.hasLines = nil, false
		d.mu.Unlock()
		if !ok {
			continue
		}
		err := d.screen.Show(lines)
		switch {
		case err != nil && !failing:
			d.log.Error("display", "err", err)
		case err == nil && failing:
			d.log.Info("display works again")
		}
		failing = err != nil
	}
}

// PunchLines are the lines that show p on a screen of size s: exactly
// s.Rows lines (blank ones at the end), each at most s.Cols ASCII
// characters. The longest layout that fits is chosen; docs/display.md has
// the table.
func PunchLines(p Punch, s Size) []string {
	ev := p.Event
	name := truncate(Fold(strings.TrimSpace(p.Name)), s.Cols)
	// A time taken before the clock was set is not shown (it may be
	// 1970's); a shift's duration still is: it is the monotonic clock's.
	at := " " + ev.At.Format("15:04")
	hello := greeting(ev.At)
	if slices.Contains(ev.Flags, punch.FlagClockUnsynced) {
		at, hello = "", "Hello"
	}
	var layouts [][]string
	switch {
	case ev.Decision == punch.Accepted:
		state := ""
		switch ev.Direction {
		case punch.In:
			state = "IN" + at
		case punch.Out:
			hello, state = "Goodbye", "OUT"+at
			if d, ok := shiftLength(p.Shift); ok {
				layouts = append(layouts, withName(name, hello, state+" ("+d+")")...)
				layouts = append(layouts, withName(name, hello, state+" "+d)...)
			}
		default: // a door that keeps no attendance
			hello, state = "Welcome", "OK"+at
			if ev.Access == punch.AccessGranted {
				state = "Door open"
			}
		}
		layouts = append(layouts, withName(name, hello, state)...)
	default:
		long, short := reasonText(p)
		for _, text := range []string{long, short} {
			if name != "" {
				layouts = append(layouts, append([]string{name}, wrap(text, s.Cols)...))
			}
			layouts = append(layouts, wrap(text, s.Cols))
		}
	}
	return fit(layouts, s)
}

// withName lays out a greeting, the name and a state line, from the most
// to the least spacious.
func withName(name, hello, state string) [][]string {
	if name == "" {
		return [][]string{{hello, state}, {state}}
	}
	return [][]string{
		{hello, name, state},
		{hello + " " + name, state},
		{hello, name + " " + state},
		{name, state},
		{name + " " + state},
		{state},
	}
}

// greeting says hello by the time of day of t (in t's location).
func greeting(t time.Time) string {
	switch h := t.Hour(); {
	case h < 5:
		return "Hello"
	case h < 12:
		return "Good morning"
	case h < 18:
		return "Good afternoon"
	default:
		return "Good evening"
	}
}

// shiftLength is the shift's duration as "8h29" (minutes rounded down),
// false when the shift is nil or its duration unknown.
func shiftLength(sh *punch.Shift) (string, bool) {
	if sh == nil || sh.DurationS < 0 {
		return "", false
	}
	if slices.Contains(sh.Flags, punch.FlagDurationUnknown) {
		return "", false
	}
	m := sh.DurationS / 60
	return fmt.Sprintf("%dh%02d", m/60, m%60), true
}

// reasonText says why p was refused, in a long and a short form.
func reasonText(p Punch) (long, short string) {
	ev := p.Event
	switch ev.Reason {
	case punch.ReasonDoubleIn:
		if !p.OpenSince.IsZero() {
			since := p.OpenSince.In(ev.At.Location()).Format("15:04")
			return "Already in since " + since, "In since " + since
		}
		return "Already clocked in", "Already in"
	case punch.ReasonDoubleOut:
		return "Not clocked in", "Not in"
	case punch.ReasonOutsideContract:
		return "Contract ended", "No contract"
	case punch.ReasonUnknownCredential:
		switch ev.CredentialType {
		case roster.Card:
			return "Unknown card", "Unknown card"
		case roster.PIN:
			return "Unknown PIN", "Unknown PIN"
		case roster.Fingerprint:
			return "Finger not known", "Unknown finger"
		}
		return "Not recognised", "Unknown"
	case punch.ReasonAmbiguousCredential:
		return "Card not unique - Tell staff", "Card not unique"
	case punch.ReasonLockedOut:
		return "PIN locked - Try later", "PIN locked"
	case punch.ReasonReaderSuspended:
		return "Reader suspended", "Suspended"
	case punch.ReasonReaderNotAllowed:
		return "Not allowed here", "Not allowed"
	case punch.ReasonOutsideWindow:
		return "Outside your hours", "Not now"
	case punch.ReasonWrongPIN:
		return "Wrong PIN", "Wrong PIN"
	case punch.ReasonUnknownJobCode:
		return "Unknown job code", "Bad job code"
	case punch.ReasonTooSoon:
		return "Too soon to clock out", "Too soon"
	case punch.ReasonStorageFull:
		return "Storage full - Tell staff", "Storage full"
	case punch.ReasonStoreError:
		return "Not saved - Tell staff", "Not saved"
	}
	return "Not accepted", "Refused"
}

// IdleLines are the lines of the idle screen at now on a screen of size s:
// the date, the time and whether the terminal is online.
func IdleLines(now time.Time, st Status, s Size) []string {
	clock, date := "--:--", "Clock not set"
	if st.ClockSet {
		clock, date = now.Format("15:04"), now.Format("Mon 2 Jan")
	}
	state := "Offline"
	if st.Online {
		state = "Online"
	}
	return fit([][]string{
		{date, clock, state},
		{clock + " " + date, state},
		{clock, state},
		{clock + " " + state},
	}, s)
}

// fit returns the first layout with no more lines than s.Rows and no line
// longer than s.Cols, else the last one cut to size; padded with blank
// lines to s.Rows.
func fit(layouts [][]string, s Size) []string {
	pick := layouts[len(layouts)-1]
	for _, l := range layouts {
		if fits(l, s) {
			pick = l
			break
		}
	}
	out := make([]string, s.Rows)
	for i := range min(len(pick), s.Rows) {
		out[i] = truncate(pick[i], s.Cols)
	}
	return out
}

func fits(lines []string, s Size) bool {
	if len(lines) > s.Rows {
		return false
	}
	for _, l := range lines {
		if len(l) > s.Cols {
			return false
		}
	}
	return true
}

// wrap breaks text into lines of at most cols at spaces (a longer word is
// cut), and always at " - ", which parts a message from what to do.
func wrap(text string, cols int) []string {
	var lines []string
	for part := range strings.SplitSeq(text, " - ") {
		lines = append(lines, wrapPart(part, cols)...)
	}
	return lines
}

func wrapPart(text string, cols int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		w = truncate(w, cols)
		switch {
		case line == "":
			line = w
		case len(line)+1+len(w) <= cols:
			line += " " + w
		default:
			lines = append(lines, line)
			line = w
		}
	}
	return append(lines, line)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Fold spells s in printable ASCII, which both drivers' fonts draw:
// accented Latin letters lose their accents ("Zoë Çelik" → "Zoe Celik"),
// a few letters become two ("ß" → "ss"), dashes and quotes their ASCII
// kin, anything else "?".
func Fold(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case folds[r] != "":
			b.WriteString(folds[r])
		case r == '\t' || r == 0xa0:
			b.WriteByte(' ')
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}

// folds maps letters of the Latin-1 Supplement and Latin Extended-A (the
// names of a European workforce) and some punctuation to ASCII.
var folds = func() map[rune]string {
	m := map[rune]string{
		'ß': "ss", 'Æ': "AE", 'æ': "ae", 'Œ': "OE", 'œ': "oe", 'Ø': "O", 'ø': "o",
		'Đ': "D", 'đ': "d", 'Ł': "L", 'ł': "l", 'Þ': "Th", 'þ': "th", 'Ð': "D", 'ð': "d", 'ı': "i",
		'–': "-", '—': "-", '‘': "'", '’': "'", '“': "\"", '”': "\"", '…': "...",
	}
	for base, letters := range map[string]string{
		"A": "ÀÁÂÃÄÅĀĂĄ", "a": "àáâãäåāăą", "C": "ÇĆĈĊČ", "c": "çćĉċč", "D": "Ď", "d": "ď",
		"E": "ÈÉÊËĒĔĖĘĚ", "e": "èéêëēĕėęě", "G": "ĜĞĠĢ", "g": "ĝğġģ", "H": "ĤĦ", "h": "ĥħ",
		"I": "ÌÍÎÏĨĪĬĮİ", "i": "ìíîïĩīĭį", "J": "Ĵ", "j": "ĵ", "K": "Ķ", "k": "ķ",
		"L": "ĹĻĽĿ", "l": "ĺļľŀ", "N": "ÑŃŅŇ", "n": "ñńņň", "O": "ÒÓÔÕÖŌŎŐ", "o": "òóôõöōŏő",
		"R": "ŔŖŘ", "r": "ŕŗř", "S": "ŚŜŞŠ", "s": "śŝşš", "T": "ŢŤŦ", "t": "ţťŧ",
		"U": "ÙÚÛÜŨŪŬŮŰŲ", "u": "ùúûüũūŭůűų", "W": "Ŵ", "w": "ŵ", "Y": "ÝŶŸ", "y": "ýÿŷ",
		"Z": "ŹŻŽ", "z": "źżž",
	} {
		for _, r := range letters {
			m[r] = base
		}
	}
	return m
}()

// ErrBusNotFound is wrapped by OpenScreen when the host has no I²C bus of
// that name (I²C not enabled: dtparam=i2c_arm=on in config.txt).
var ErrBusNotFound = errors.New("device: I2C bus not found")

// ScreenConfig names a display's hardware (the [display] keys).
type ScreenConfig struct {
	// Driver is "ssd1306" (OLED) or "hd44780" (LCD on a PCF8574
	// backpack).
	Driver string
	// Bus is the I²C bus: "/dev/i2c-1", "I2C1" or "1". Empty: "/dev/i2c-1".
	Bus string
	// Address on the bus; zero: 0x3C (ssd1306) or 0x27 (hd44780).
	Address uint16
	// Width and Height in pixels (ssd1306); zero: 128 by 64.
	Width, Height int
	// Cols and Rows in characters (hd44780); zero: 16 by 2.
	Cols, Rows int
}

// A ScreenCloser is an opened display: Close turns it off and releases
// its bus.
type ScreenCloser interface {
	Screen
	Size() Size
	Close() error
}

// OpenScreen loads periph's host drivers, opens the I²C bus and
// initialises the display c names. key is the configuration section, for
// errors (e.g. "display").
func OpenScreen(key string, c ScreenConfig) (ScreenCloser, error) {
	if c.Driver != "ssd1306" && c.Driver != "hd44780" {
		return nil, fmt.Errorf("device: %s.driver: %q: want \"ssd1306\" or \"hd44780\"", key, c.Driver)
	}
	if c.Bus == "" {
		c.Bus = "/dev/i2c-1"
	}
	if _, err := host.Init(); err != nil {
		return nil, fmt.Errorf("device: %s.bus %q: loading the I2C drivers: %w", key, c.Bus, err)
	}
	bus, err := i2creg.Open(strings.TrimPrefix(c.Bus, "/dev/i2c-"))
	if err != nil {
		return nil, fmt.Errorf("%w: %s.bus %q: %w (is I2C enabled: dtparam=i2c_arm=on?)", ErrBusNotFound, key, c.Bus, err)
	}
	var s ScreenCloser
	switch c.Driver {
	case "ssd1306":
		s, err = NewOLED(bus, cmp.Or(c.Address, 0x3C), cmp.Or(c.Width, 128), cmp.Or(c.Height, 64))
	case "hd44780":
		s, err = NewLCD(bus, cmp.Or(c.Address, 0x27), cmp.Or(c.Cols, 16), cmp.Or(c.Rows, 2))
	}
	if err != nil {
		bus.Close()
		return nil, fmt.Errorf("%w (%s, bus %s)", err, key, c.Bus)
	}
	return busScreen{s, bus}, nil
}

// busScreen closes its bus after its screen.
type busScreen struct {
	ScreenCloser
	bus i2c.BusCloser
}

func (b busScreen) Close() error {
	return errors.Join(b.ScreenCloser.Close(), b.bus.Close())
}
