package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/reader"
)

const credRoster = `{"version": 1, "employees": [
 {"id": "P1", "payroll_no": "1", "credentials": [{"type": "pin", "value": "48213579"}]},
 {"id": "W1", "payroll_no": "2", "credentials": [{"type": "card", "value": "01AABBCCDD"}]},
 {"id": "W2", "payroll_no": "3", "credentials": [{"type": "card", "value": "02FFBBCCDD"}]},
 {"id": "U1", "payroll_no": "4", "credentials": [{"type": "card", "value": "04A1B2C3D4E5F6"}]},
 {"id": "F1", "payroll_no": "5", "biometric_consent": true, "credentials": [{"type": "fingerprint", "value": "17"}]}]}`

// indicatorReader is a chanReader with a LED of its own.
type indicatorReader struct {
	chanReader
	mu      sync.Mutex
	signals []reader.Signal
}

func (r *indicatorReader) Indicate(s reader.Signal) {
	r.mu.Lock()
	r.signals = append(r.signals, s)
	r.mu.Unlock()
}

func (h *harness) keys(rd, keys string) {
	for _, k := range keys {
		h.readers[rd].reads <- reader.Read{Reader: rd, Type: reader.TypeKey, Value: string(k), At: time.Now()}
	}
}

func TestAgentPINsAndFormats(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	if err := os.WriteFile(cfg.RosterFile, []byte(credRoster), 0o644); err != nil {
		t.Fatal(err)
	}
	h := startAgent(t, cfg)

	// A PIN: digits and '#'; '*' clears what came before.
	h.keys("tog", "99*48213579#")
	h.d.wait(t, 1)
	if ev := h.d.events[0]; ev.EmployeeID != "P1" || ev.Decision != punch.Accepted || ev.CredentialType != "pin" || ev.CredentialValue != "" {
		t.Fatalf("pin event %+v", ev)
	}
	// Four wrong PINs, a right one resets the count; five wrong PINs
	// lock the reader: the fifth is still unknown_credential, then every
	// PIN, the right one included, is locked_out. Another reader is not
	// locked.
	var want []string
	// (Distinct wrong PINs: repeats of one unknown value are folded
	// into one event, see TestAgentFoldsUnknownFlood.)
	for i := range 4 {
		h.keys("in", fmt.Sprintf("111%d#", i))
		want = append(want, punch.ReasonUnknownCredential)
	}
	h.keys("in", "48213579#") // right, at an in reader: P1 is in already
	want = append(want, punch.ReasonDoubleIn)
	for i := range 5 {
		h.keys("in", fmt.Sprintf("222%d#", i))
		want = append(want, punch.ReasonUnknownCredential)
	}
	h.keys("in", "48213579#")
	want = append(want, punch.ReasonLockedOut)
	h.keys("in", "3333#")
	want = append(want, punch.ReasonLockedOut)
	h.d.wait(t, len(want))
	h.keys("out", "48213579#")
	want = append(want, "")
	h.d.wait(t, 1)
	for i, w := range want {
		if ev := h.d.events[1+i]; ev.Reason != w {
			t.Errorf("pin %d at %s: reason %q, want %q", i, ev.Reader, ev.Reason, w)
		}
	}

	n := len(h.d.events)
	h.readers["tog"].reads <- reader.Read{Reader: "tog", Type: reader.TypeCard, Format: reader.FormatWiegand26, Value: "187:52445", At: time.Now()}
	h.readers["tog"].reads <- reader.Read{Reader: "tog", Type: reader.TypeCard, Format: reader.FormatUID, Value: "04A1B2C3D4E5F6", At: time.Now()}
	h.readers["tog"].reads <- reader.Read{Reader: "tog", Type: reader.TypeFingerprint, Value: "17", Score: 91, At: time.Now()}
	h.readers["tog"].reads <- reader.Read{Reader: "tog", Type: reader.TypeFingerprint, Value: "", At: time.Now()}
	h.readers["tog"].reads <- reader.Read{Reader: "tog", Type: reader.TypeCard, Format: reader.FormatWiegand26, Value: "9:9", At: time.Now()}
	h.d.wait(t, 5)
	evs := h.d.events[n:]
	if evs[0].Reason != punch.ReasonAmbiguousCredential || evs[0].CredentialValue != "" {
		t.Errorf("26-bit read of two EM cards: %+v", evs[0])
	}
	if evs[1].EmployeeID != "U1" || evs[1].Decision != punch.Accepted {
		t.Errorf("UID read: %+v", evs[1])
	}
	if evs[2].EmployeeID != "F1" || evs[2].Score == nil || *evs[2].Score != 91 {
		t.Errorf("fingerprint: %+v", evs[2])
	}
	if evs[3].Reason != punch.ReasonUnknownCredential || evs[3].Score == nil || *evs[3].Score != 0 || evs[3].CredentialValue != "" {
		t.Errorf("fingerprint without match: %+v", evs[3])
	}
	if evs[4].Reason != punch.ReasonUnknownCredential || evs[4].CredentialValue != "9:9" {
		t.Errorf("unknown 26-bit card: %+v", evs[4])
	}

	h.stop()
	// The PIN is nowhere on disk: not in the database, the journal, the
	// key file or anything else in the data directory.
	filepath.Walk(cfg.DataDir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Error(err)
			return nil
		}
		if bytes.Contains(b, []byte("48213579")) {
			t.Errorf("%s holds the PIN", p)
		}
		return nil
	})
	if fi, err := os.Stat(filepath.Join(cfg.DataDir, "pin.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("pin.key: %v %v", fi, err)
	}
}

func TestAgentIndicatesOnTheReader(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	ind := &indicatorReader{chanReader: chanReader{name: "tog", reads: make(chan reader.Read)}}
	h := startAgent(t, cfg, func(o *Options) {
		for i, r := range o.Readers {
			if r.Name() == "tog" {
				o.Readers[i] = ind
			}
		}
	})
	h.readers["tog"] = &ind.chanReader
	h.badge("tog", "0A00000001")
	h.badge("tog", "0AFFFFFFFF")
	h.d.wait(t, 2)
	h.stop()
	ind.mu.Lock()
	defer ind.mu.Unlock()
	if len(ind.signals) != 2 || !ind.signals[0].Accepted || ind.signals[1].Accepted {
		t.Errorf("signals %+v, want accepted then denied", ind.signals)
	}
	st := h.a.readerStatus()
	if len(st) != 3 || st[0].Driver != "rdm6300" || !strings.Contains(st[0].State, "line") {
		t.Errorf("reader status %+v", st)
	}
}

// enrollerReader is a fingerprint sensor that records what it is asked
// to erase.
type enrollerReader struct {
	chanReader
	mu     sync.Mutex
	erased [][]int
	fail   bool
}

// Enroll stores at the lowest page from 6 that is not taken (the pages
// below are full on this sensor).
func (r *enrollerReader) Enroll(ctx context.Context, taken func(int) bool) (int, error) {
	for p := 6; ; p++ {
		if !taken(p) {
			return p, nil
		}
	}
}

func (r *enrollerReader) Erase(ctx context.Context, pages []int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return context.DeadlineExceeded
	}
	r.erased = append(r.erased, pages)
	return nil
}

func (r *enrollerReader) erasures() [][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]int(nil), r.erased...)
}

// A new roster that no longer gives anyone a page erases it from the
// sensor; a page given again, or one no roster ever named, is kept.
func TestAgentErasesFingerprintsTheRosterDrops(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	os.WriteFile(cfg.RosterFile, []byte(`{"version": 1, "employees": [
 {"id": "A", "biometric_consent": true, "credentials": [{"type": "fingerprint", "value": "5"}, {"type": "fingerprint", "value": "6"}]},
 {"id": "B", "biometric_consent": true, "credentials": [{"type": "fingerprint", "value": "7"}]}]}`), 0o644)
	sensor := &enrollerReader{chanReader: chanReader{name: "tog", reads: make(chan reader.Read)}}
	h := startAgent(t, cfg, func(o *Options) {
		for i, r := range o.Readers {
			if r.Name() == "tog" {
				o.Readers[i] = sensor
			}
		}
	})
	// Version 2: A keeps 6, loses 5; B moves from 7 to 8; page 9 (a
	// fresh enrolment) was never named.
	h.a.applyRoster([]byte(`{"version": 2, "employees": [
 {"id": "A", "biometric_consent": true, "credentials": [{"type": "fingerprint", "value": "6"}]},
 {"id": "B", "credentials": [{"type": "fingerprint", "value": "8"}]}]}`), "test")
	deadline := time.Now().Add(5 * time.Second)
	for len(sensor.erasures()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := sensor.erasures(); len(got) != 1 || fmt.Sprint(got[0]) != "[5 7]" {
		t.Fatalf("erased %v, want [[5 7]]", got)
	}
	// Enrolment needs consent: B lost it in version 2.
	if _, err := h.a.Enroll(t.Context(), "tog", "B"); !errors.Is(err, ErrNoConsent) {
		t.Errorf("enroll without consent: %v", err)
	}
	if _, err := h.a.Enroll(t.Context(), "in", "A"); err == nil || !strings.Contains(err.Error(), "does not enrol") {
		t.Errorf("enroll at a card reader: %v", err)
	}
	// Pages 6 and 8 are A's and B's in the roster: the new template goes
	// to 7, never onto a page the roster gives someone. (Offline: the
	// enrolment is made but not published.)
	en, err := h.a.Enroll(t.Context(), "tog", "A")
	if en.Credential.Value != "7" || err == nil || !strings.Contains(err.Error(), "page 7") {
		t.Errorf("enroll: %+v, %v; want page 7", en, err)
	}
}

// Withdrawn consent erases the templates; pages a sensor could not erase
// are erased after a restart.
func TestAgentErasuresSurviveARestartAndConsentWithdrawn(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	os.WriteFile(cfg.RosterFile, []byte(`{"version": 1, "employees": [
 {"id": "A", "biometric_consent": true, "credentials": [{"type": "fingerprint", "value": "5"}]},
 {"id": "B", "biometric_consent": true, "credentials": [{"type": "fingerprint", "value": "7"}]}]}`), 0o644)
	start := func(fail bool) (*harness, *enrollerReader) {
		sensor := &enrollerReader{chanReader: chanReader{name: "tog", reads: make(chan reader.Read)}, fail: fail}
		h := startAgent(t, cfg, func(o *Options) {
			for i, r := range o.Readers {
				if r.Name() == "tog" {
					o.Readers[i] = sensor
				}
			}
		})
		return h, sensor
	}
	h, _ := start(true) // the sensor does not answer
	// A withdraws consent: page 5 is to go, though the roster still
	// lists it.
	h.a.applyRoster([]byte(`{"version": 2, "employees": [
 {"id": "A", "credentials": [{"type": "fingerprint", "value": "5"}]},
 {"id": "B", "biometric_consent": true, "credentials": [{"type": "fingerprint", "value": "7"}]}]}`), "test")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(cfg.DataDir, erasuresFile))
		if string(b) == "[5]" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("erasures file %q, want [5]", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.stop()
	_, sensor := start(false)
	deadline = time.Now().Add(5 * time.Second)
	for len(sensor.erasures()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := sensor.erasures(); len(got) == 0 || fmt.Sprint(got[0]) != "[5]" {
		t.Fatalf("after the restart erased %v, want [[5]]", got)
	}
}
