package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/device"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/reader"
)

// shown records what the terminal showed at its readers.
type shown struct {
	mu  sync.Mutex
	evs []punch.Event
}

func (s *shown) Show(_ string, ev punch.Event) {
	s.mu.Lock()
	s.evs = append(s.evs, ev)
	s.mu.Unlock()
}

func (s *shown) reasons() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, ev := range s.evs {
		out = append(out, ev.Reason)
	}
	return out
}

const rulesRoster = `{"version": 7, "access_groups": [
  {"name": "day", "readers": ["door", "clock"], "windows": [{"days": "mon-sun", "from": "06:00", "to": "22:00"}]}],
 "employees": [
 {"id": "A1", "payroll_no": "1", "department": "Shop", "credentials": [{"type": "card", "value": "0A00000001"}]},
 {"id": "A2", "payroll_no": "2", "department": "Shop", "pin_with_card": true,
  "credentials": [{"type": "card", "value": "0A00000002"}, {"type": "pin", "value": "4821"}]},
 {"id": "A3", "payroll_no": "3", "department": "Bar", "job_codes": ["1001", "2002"], "credentials": [{"type": "card", "value": "0A00000003"}]},
 {"id": "A4", "payroll_no": "", "department": "Bar", "credentials": [{"type": "card", "value": "0A00000004"}]},
 {"id": "A5", "payroll_no": "5", "department": "Bar", "access_group": "day", "credentials": [{"type": "card", "value": "0A00000005"}]}]}`

func rulesConfig(t *testing.T, dir, extra string, readers string) *config.Config {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "roster.json"), []byte(rulesRoster), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("rules.toml", []byte(`device_id = "t1"
data_dir = "`+filepath.Join(dir, "data")+`"
timezone = "Europe/Amsterdam"
roster_file = "`+filepath.Join(dir, "roster.json")+`"
`+extra+readers))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func rdr(name string, i int, keys string) string {
	return "[[readers]]\nname = \"" + name + "\"\ndriver = \"rdm6300\"\nport = \"/dev/null" + string(rune('0'+i)) + "\"\n" + keys
}

// badgeAt shows a card at a reader at a given time.
func (h *harness) badgeAt(rd, card string, at time.Time) {
	h.readers[rd].reads <- reader.Read{Reader: rd, Type: reader.TypeCard, Value: card, At: at}
}

func (h *harness) last(t *testing.T) punch.Event {
	t.Helper()
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	return h.d.events[len(h.d.events)-1]
}

func TestAgentSuspendedReaders(t *testing.T) {
	dir := t.TempDir()
	readers := rdr("gate", 0, "enabled = false\n") + rdr("front", 1, "")
	cfg := rulesConfig(t, dir, "new_readers = \"suspended\"\n", readers)
	h := startAgent(t, cfg)
	for _, r := range []string{"gate", "front"} {
		h.badge(r, "0A00000001")
		h.d.wait(t, 1)
		if ev := h.last(t); ev.Decision != punch.Denied || ev.Reason != punch.ReasonReaderSuspended || ev.Access != punch.AccessDenied {
			t.Fatalf("at %s: %+v", r, ev)
		}
	}
	st, err := h.a.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Readers {
		if r.State != StateSuspended {
			t.Errorf("reader %s state %q, want suspended", r.Name, r.State)
		}
	}
	// A command enables the new reader; it stays enabled after a
	// restart, while the configuration's enabled = false still wins.
	if err := h.a.SetReaderEnabled("front", true, "command"); err != nil {
		t.Fatal(err)
	}
	h.badge("front", "0A00000001")
	h.d.wait(t, 1)
	if ev := h.last(t); ev.Decision != punch.Accepted {
		t.Fatalf("after enabling: %+v", ev)
	}
	h.stop()
	h = startAgent(t, cfg)
	for _, c := range []struct{ reader, reason string }{{"front", ""}, {"gate", punch.ReasonReaderSuspended}} {
		h.badge(c.reader, "0A00000001")
		h.d.wait(t, 1)
		if ev := h.last(t); ev.Reason != c.reason {
			t.Errorf("after restart at %s: %+v, want reason %q", c.reader, ev, c.reason)
		}
	}
	if err := h.a.SetReaderEnabled("nope", true, "command"); err == nil {
		t.Error("an unknown reader was enabled")
	}
}

func TestAgentAccessAndBothReaders(t *testing.T) {
	dir := t.TempDir()
	readers := rdr("door", 0, "role = \"access\"\n") + rdr("clock", 1, "role = \"both\"\ndirection = \"in\"\n")
	fb := &shown{}
	h := startAgent(t, rulesConfig(t, dir, "", readers), func(o *Options) { o.Feedback = fb })
	// A door: granted, no entry opened.
	h.badge("door", "0A00000001")
	h.d.wait(t, 1)
	if ev := h.last(t); ev.Decision != punch.Accepted || ev.Access != punch.AccessGranted || ev.Direction != "" || ev.RosterVersion != 7 {
		t.Fatalf("door: %+v", ev)
	}
	if st, _ := h.a.Status(); st.OpenEntries != 0 {
		t.Fatalf("a door opened an entry: %d open", st.OpenEntries)
	}
	// A clock at a door: in, then a second arrival is an attendance
	// error that still opens the door.
	h.badge("clock", "0A00000001")
	h.d.wait(t, 1)
	h.badge("clock", "0A00000001")
	h.d.wait(t, 1)
	if ev := h.last(t); ev.Decision != punch.Denied || ev.Reason != punch.ReasonDoubleIn || ev.Access != punch.AccessGranted {
		t.Fatalf("double in at a door: %+v", ev)
	}
}

func TestAgentCardAndPIN(t *testing.T) {
	dir := t.TempDir()
	readers := rdr("front", 0, "pin_timeout = \"2s\"\n") + rdr("door", 1, "keypad = \"pad\"\n") + rdr("pad", 2, "")
	h := startAgent(t, rulesConfig(t, dir, "", readers))
	h.badge("front", "0A00000002")
	h.keys("front", "4821#")
	h.d.wait(t, 1)
	if ev := h.last(t); ev.Decision != punch.Accepted || ev.EmployeeID != "A2" || ev.CredentialType != "card" {
		t.Fatalf("card + right PIN: %+v", ev)
	}
	h.badge("front", "0A00000002")
	h.keys("front", "1111#")
	h.d.wait(t, 1)
	if ev := h.last(t); ev.Decision != punch.Denied || ev.Reason != punch.ReasonWrongPIN || ev.Access != punch.AccessDenied {
		t.Fatalf("card + wrong PIN: %+v", ev)
	}
	// No PIN in time: the badge is kept, denied wrong_pin.
	h.badge("front", "0A00000002")
	h.d.wait(t, 1)
	if ev := h.last(t); ev.Reason != punch.ReasonWrongPIN {
		t.Fatalf("card without PIN: %+v", ev)
	}
	// A card reader with a keypad beside it: the PIN is typed there.
	// (The badge goes through the keypad's test reader so that it
	// reaches the agent before the keys, as a person's would.)
	h.readers["pad"].reads <- reader.Read{Reader: "door", Type: reader.TypeCard, Value: "0A00000002", At: time.Now()}
	h.keys("pad", "4821#")
	h.d.wait(t, 1)
	if ev := h.last(t); ev.Decision != punch.Accepted || ev.EmployeeID != "A2" || ev.Reader != "door" {
		t.Fatalf("card + PIN on the keypad beside: %+v", ev)
	}
	// With no badge waiting, the keypad's keys are its own: a PIN
	// alone. A2's PIN is only a second factor: alone it identifies
	// nobody.
	h.keys("pad", "4821#")
	h.d.wait(t, 1)
	if ev := h.last(t); ev.EmployeeID != "" || ev.Reader != "pad" || ev.CredentialType != "pin" || ev.Reason != punch.ReasonUnknownCredential {
		t.Fatalf("PIN alone at the keypad: %+v", ev)
	}
	// The PIN alone is a credential as before; a card without
	// pin_with_card needs none.
	h.badge("front", "0A00000001")
	h.d.wait(t, 1)
	if ev := h.last(t); ev.Decision != punch.Accepted || ev.EmployeeID != "A1" {
		t.Fatalf("card alone: %+v", ev)
	}
}

func TestAgentJobCodes(t *testing.T) {
	dir := t.TempDir()
	readers := rdr("front", 0, "job_code = true\n")
	fb := &shown{}
	h := startAgent(t, rulesConfig(t, dir, "", readers), func(o *Options) { o.Feedback = fb })
	h.badge("front", "0A00000003")
	h.keys("front", "7#")
	h.keys("front", "1001#")
	h.d.wait(t, 1)
	if ev := h.last(t); ev.Decision != punch.Accepted || ev.JobCode != "1001" || ev.Direction != punch.In {
		t.Fatalf("entry with a job code: %+v", ev)
	}
	if !slices.Contains(fb.reasons(), punch.ReasonUnknownJobCode) {
		t.Fatalf("an unknown job code was not shown: %v", fb.reasons())
	}
	// '#' alone: none; the shift keeps the entry's code.
	h.badge("front", "0A00000003")
	h.keys("front", "#")
	h.d.wait(t, 1)
	h.d.mu.Lock()
	shifts := slices.Clone(h.d.shifts)
	h.d.mu.Unlock()
	if len(shifts) != 1 || shifts[0].JobCode != "1001" {
		t.Fatalf("shifts %+v", shifts)
	}
	// Someone without job codes is not asked.
	h.badge("front", "0A00000001")
	h.d.wait(t, 1)
	if ev := h.last(t); ev.EmployeeID != "A1" || ev.JobCode != "" {
		t.Fatalf("no job codes: %+v", ev)
	}
	if st, _ := h.a.Status(); st.Pending != 4 {
		t.Errorf("%d records pending, want 4: the refused job code is not stored", st.Pending)
	}
}

func TestAgentDirectionKey(t *testing.T) {
	dir := t.TempDir()
	readers := rdr("front", 0, "direction = \"key\"\n")
	h := startAgent(t, rulesConfig(t, dir, "", readers))
	steps := []struct{ key, reason, dir string }{
		{"F2", punch.ReasonDoubleOut, punch.Out}, // out, with nothing open
		{"F1", "", punch.In},
		{"F1", punch.ReasonDoubleIn, punch.In},
		{"", "", punch.Out}, // no key: toggle
	}
	for i, s := range steps {
		if s.key != "" {
			h.readers["front"].reads <- reader.Read{Reader: "front", Type: reader.TypeKey, Value: s.key, At: time.Now()}
		}
		h.badge("front", "0A00000001")
		h.d.wait(t, 1)
		if ev := h.last(t); ev.Reason != s.reason || ev.Direction != s.dir {
			t.Fatalf("step %d (key %q): %+v", i, s.key, ev)
		}
	}
}

// An entry older than max_shift is closed into an auto_closed shift when
// the agent starts, even though it was down when the entry expired; the
// person's next punch opens a new entry. The status lists employees
// without a payroll number, and entries of people the roster dropped.
func TestAgentAutoCloseAndRosterIssues(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	now := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg := rulesConfig(t, dir, "[pairing]\nmax_shift = \"10h\"\n", rdr("front", 0, ""))
	h := startAgent(t, cfg, func(o *Options) { o.Now = clock })
	h.badgeAt("front", "0A00000001", now)
	h.badgeAt("front", "0A00000004", now)
	h.d.wait(t, 2)
	st, err := h.a.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.NoPayrollNo, []string{"A4"}) || len(st.Orphaned) != 0 {
		t.Fatalf("status: no_payroll_no %v, orphaned %v", st.NoPayrollNo, st.Orphaned)
	}
	// A roster without A1: the entry is orphaned, not lost.
	h.a.applyRoster([]byte(`{"version": 8, "employees": [
	 {"id": "A4", "payroll_no": "4", "credentials": [{"type": "card", "value": "0A00000004"}]}]}`), "test")
	if st, _ := h.a.Status(); len(st.Orphaned) != 1 || st.Orphaned[0].Employee != "A1" || len(st.NoPayrollNo) != 0 {
		t.Fatalf("after the roster dropped A1: orphaned %v, no_payroll_no %v", st.Orphaned, st.NoPayrollNo)
	}
	h.stop()
	mu.Lock()
	now = now.Add(11 * time.Hour)
	mu.Unlock()
	h = startAgent(t, cfg, func(o *Options) { o.Now = clock })
	h.d.wait(t, 2)
	h.d.mu.Lock()
	shifts := slices.Clone(h.d.shifts)
	h.d.mu.Unlock()
	byEmp := map[string]*punch.Shift{}
	for _, sh := range shifts {
		byEmp[sh.EmployeeID] = sh
	}
	a1, a4 := byEmp["A1"], byEmp["A4"]
	if a1 == nil || a4 == nil {
		t.Fatalf("shifts %+v", shifts)
	}
	for _, sh := range []*punch.Shift{a1, a4} {
		if !slices.Contains(sh.Flags, punch.FlagAutoClosed) || sh.DurationS != 10*3600 || sh.OutEvent != "" || sh.OutReader != "" || sh.ID == "" {
			t.Errorf("auto-closed shift %+v", sh)
		}
	}
	if a1.PayrollNo != "1" || a4.PayrollNo != "4" || a4.RosterVersion != 8 {
		t.Errorf("payroll numbers: dropped A1 keeps its entry's %q; A4 gets the roster's %q (version %d)", a1.PayrollNo, a4.PayrollNo, a4.RosterVersion)
	}
	if st, _ := h.a.Status(); st.OpenEntries != 0 || len(st.Orphaned) != 0 {
		t.Fatalf("after auto close: %d open, orphaned %v", st.OpenEntries, st.Orphaned)
	}
	h.badgeAt("front", "0A00000004", clock())
	h.d.wait(t, 1)
	if ev := h.last(t); ev.Direction != punch.In || ev.Decision != punch.Accepted {
		t.Fatalf("next punch: %+v", ev)
	}
}

// fakeDisplay records what the agent shows on a display.
type fakeDisplay struct {
	mu     sync.Mutex
	shown  []device.Punch
	status []device.Status
}

func (f *fakeDisplay) ShowPunch(p device.Punch) {
	f.mu.Lock()
	f.shown = append(f.shown, p)
	f.mu.Unlock()
}

func (f *fakeDisplay) SetStatus(s device.Status) {
	f.mu.Lock()
	f.status = append(f.status, s)
	f.mu.Unlock()
}

// The display gets each decision with the person's name, the shift of an
// exit, and for a second arrival the time of the entry still open.
func TestAgentDisplay(t *testing.T) {
	dir := t.TempDir()
	roster := strings.Replace(rulesRoster, `{"id": "A1", "payroll_no": "1"`, `{"id": "A1", "name": "Anna", "payroll_no": "1"`, 1)
	cfg := rulesConfig(t, dir, "", rdr("in", 0, "direction = \"in\"\n")+rdr("out", 1, "direction = \"out\"\n"))
	if err := os.WriteFile(cfg.RosterFile, []byte(roster), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &fakeDisplay{}
	h := startAgent(t, cfg, func(o *Options) { o.Display = d })
	h.badge("in", "0A00000001")
	h.d.wait(t, 1)
	entry := h.last(t)
	h.badge("in", "0A00000001")
	h.d.wait(t, 1)
	h.badge("out", "0A00000001")
	h.d.wait(t, 1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.shown) != 3 || len(d.status) == 0 {
		t.Fatalf("shown %+v, status %+v", d.shown, d.status)
	}
	in, again, out := d.shown[0], d.shown[1], d.shown[2]
	if in.Name != "Anna" || in.Event.Direction != punch.In || in.Shift != nil {
		t.Errorf("entry shown %+v", in)
	}
	if again.Event.Reason != punch.ReasonDoubleIn || !again.OpenSince.Equal(entry.At) {
		t.Errorf("second arrival shown %+v, want the entry's time %v", again, entry.At)
	}
	if out.Shift == nil || out.Shift.EmployeeID != "A1" || out.Name != "Anna" {
		t.Errorf("exit shown %+v", out)
	}
}
