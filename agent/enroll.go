package agent

import (
	"net"
	"os"
	"path/filepath"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/punchclock/punchclock/config"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/roster"
)

// EnrollTimeout bounds an enrolment: two captures and the sensor's work.
const EnrollTimeout = 90 * time.Second

// ErrNoConsent refuses an enrolment for an employee whose roster entry
// lacks "biometric_consent": true.
var ErrNoConsent = errors.New("agent: no biometric consent")

// Enrolment is what the agent publishes on {prefix}/{device_id}/enrolments
// after a fingerprint was stored on a sensor, so that the HR side adds
// the credential to the roster. The template stays on the sensor.
type Enrolment struct {
	ID         string            `json:"id"`
	DeviceID   string            `json:"device_id"`
	EmployeeID string            `json:"employee_id"`
	Reader     string            `json:"reader"`
	Credential roster.Credential `json:"credential"`
	At         time.Time         `json:"at"`
}

// Enroll stores a new fingerprint of employee on the named reader's
// sensor and publishes the enrolment. It refuses an employee the roster
// does not know or who has not consented. When the template is stored
// but could not be published, it returns the enrolment and an error.
func (a *Agent) Enroll(ctx context.Context, readerName, employee string) (Enrolment, error) {
	var en Enrolment
	emp := a.idx.Load().Employee(employee)
	switch {
	case emp == nil:
		return en, fmt.Errorf("agent: enroll: employee %q is not in the roster", employee)
	case !emp.BiometricConsent:
		return en, fmt.Errorf("%w: enrolment refused: the roster does not give employee %q \"biometric_consent\": true (GDPR art. 9: consent is recorded by the HR system before biometrics)", ErrNoConsent, employee)
	}
	var enr reader.Enroller
	for _, r := range a.opts.Readers {
		if r.Name() == readerName {
			enr, _ = r.(reader.Enroller)
			if enr == nil {
				return en, fmt.Errorf("agent: enroll: reader %q (driver %s) does not enrol fingerprints", readerName, a.readers[readerName].cfg.Driver)
			}
		}
	}
	if enr == nil {
		return en, fmt.Errorf("agent: enroll: no reader %q", readerName)
	}
	ctx, cancel := context.WithTimeout(ctx, EnrollTimeout)
	defer cancel()
	// Never a page the roster gives someone (enrolled on another sensor,
	// or before this sensor was replaced) or one waiting to be erased.
	given := fingerprintPages(a.idx.Load())
	a.erase.mu.Lock()
	for p := range a.erase.pending {
		given[p] = true
	}
	a.erase.mu.Unlock()
	a.log.Info("fingerprint enrolment started: waiting for two captures", "reader", readerName, "employee", employee)
	page, err := enr.Enroll(ctx, func(p int) bool { return given[p] })
	if err != nil {
		return en, fmt.Errorf("agent: enroll at %s: %w", readerName, err)
	}
	now := a.opts.Now()
	en = Enrolment{
		ID:         fmt.Sprintf("%s-enrol-%d", a.cfg.DeviceID, now.UnixMilli()),
		DeviceID:   a.cfg.DeviceID,
		EmployeeID: employee,
		Reader:     readerName,
		Credential: roster.Credential{Type: roster.Fingerprint, Value: strconv.Itoa(page)},
		At:         now.In(a.cfg.Location).Round(0).Truncate(time.Millisecond),
	}
	a.log.Info("fingerprint enrolled", "reader", readerName, "employee", employee, "page", page)
	if a.up == nil {
		return en, fmt.Errorf("agent: enrolled at page %d, but the terminal is offline (no broker): add the credential to the roster by hand", page)
	}
	b, _ := json.Marshal(en)
	if err := a.up.Publish(ctx, "enrolments", b); err != nil {
		return en, fmt.Errorf("agent: enrolled at page %d, but not published: %w", page, err)
	}
	return en, nil
}

// eraser deletes from the sensors the fingerprint templates a new roster
// no longer gives anyone, retrying while a sensor does not answer.
type eraser struct {
	mu      sync.Mutex
	pending map[int]bool
	wake    chan struct{}
}

// poke wakes the erase loop; it never blocks.
func (e *eraser) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// fingerprintPages lists the sensor pages a roster index gives someone.
func fingerprintPages(x *roster.Index) map[int]bool {
	pages := map[int]bool{}
	x.Each(func(e *roster.Employee) {
		if !e.BiometricConsent {
			return // consent withdrawn (or never given): the template goes
		}
		for _, c := range e.Credentials {
			if c.Type != roster.Fingerprint {
				continue
			}
			if n, err := strconv.Atoi(c.Value); err == nil {
				pages[n] = true
			}
		}
	})
	return pages
}

// forget queues the pages that old gives someone and next gives no one.
// A page no roster has named yet (a fresh enrolment waiting for the HR
// system) is never erased.
func (a *Agent) forget(old, next *roster.Index) {
	if old == nil {
		return
	}
	was, now := fingerprintPages(old), fingerprintPages(next)
	var gone []int
	for p := range was {
		if !now[p] {
			gone = append(gone, p)
		}
	}
	if len(gone) == 0 {
		return
	}
	slices.Sort(gone)
	a.erase.mu.Lock()
	for _, p := range gone {
		a.erase.pending[p] = true
	}
	a.saveErasures()
	a.erase.mu.Unlock()
	a.log.Info("fingerprint templates to erase: the roster no longer gives them anyone", "pages", gone)
	a.erase.poke()
}

// eraseLoop erases queued pages on every sensor, retrying every minute
// while one fails. A page that a later roster gives someone again before
// it was erased is kept.
func (a *Agent) eraseLoop(ctx context.Context) {
	var sensors []reader.Enroller
	for _, r := range a.opts.Readers {
		if e, ok := r.(reader.Enroller); ok {
			sensors = append(sensors, e)
		}
	}
	retry := time.NewTicker(time.Minute)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.erase.wake:
		case <-retry.C:
		}
		if len(sensors) == 0 {
			continue
		}
		a.erase.mu.Lock()
		given := fingerprintPages(a.idx.Load())
		var pages []int
		for p := range a.erase.pending {
			if given[p] {
				delete(a.erase.pending, p) // given again: keep it
				continue
			}
			pages = append(pages, p)
		}
		a.saveErasures()
		a.erase.mu.Unlock()
		if len(pages) == 0 {
			continue
		}
		slices.Sort(pages)
		failed := false
		for _, s := range sensors {
			ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := s.Erase(ectx, pages)
			cancel()
			if err != nil {
				failed = true
				a.log.Warn("fingerprint erasure failed; retrying in a minute", "reader", s.(reader.Reader).Name(), "pages", pages, "err", err)
				continue
			}
			a.log.Info("fingerprint templates erased", "reader", s.(reader.Reader).Name(), "pages", pages)
		}
		if !failed {
			a.erase.mu.Lock()
			for _, p := range pages {
				delete(a.erase.pending, p)
			}
			a.saveErasures()
			a.erase.mu.Unlock()
		}
	}
}

// QueryEnroll asks the running agent of cfg to enrol a fingerprint of
// employee at the named reader. It needs the agent: the sensor is its.
func QueryEnroll(cfg *config.Config, readerName, employee string) (Enrolment, error) {
	var en Enrolment
	c, err := net.DialTimeout("unix", SocketPath(cfg), time.Second)
	if err != nil {
		return en, fmt.Errorf("agent: enroll needs the running agent (it owns the sensor): no agent answers on %s", SocketPath(cfg))
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(EnrollTimeout + 10*time.Second))
	if _, err := fmt.Fprintf(c, "enroll %s %s\n", readerName, employee); err != nil {
		return en, fmt.Errorf("agent: control socket: %w", err)
	}
	var resp struct {
		Enrolment
		controlErr
	}
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return en, fmt.Errorf("agent: control socket: %w", err)
	}
	if resp.Msg != "" {
		return resp.Enrolment, errors.New(resp.Msg)
	}
	return resp.Enrolment, nil
}

// erasuresFile keeps the pages still to erase across restarts: a page
// the roster dropped is erased even if the sensor was away or the agent
// restarted before it could be.
const erasuresFile = "fingerprint-erasures.json"

// saveErasures writes the pending pages atomically. a.erase.mu is held.
func (a *Agent) saveErasures() {
	pages := make([]int, 0, len(a.erase.pending))
	for p := range a.erase.pending {
		pages = append(pages, p)
	}
	slices.Sort(pages)
	b, _ := json.Marshal(pages)
	if err := writeFileAtomic(filepath.Join(a.cfg.DataDir, erasuresFile), b); err != nil {
		a.log.Error("fingerprint pages to erase not saved: a restart would forget them", "pages", pages, "err", err)
	}
}

// loadErasures reads the pages a previous run had still to erase.
func (a *Agent) loadErasures() error {
	b, err := os.ReadFile(filepath.Join(a.cfg.DataDir, erasuresFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var pages []int
	if err := json.Unmarshal(b, &pages); err != nil {
		return fmt.Errorf("%s: %w", erasuresFile, err)
	}
	for _, p := range pages {
		a.erase.pending[p] = true
	}
	if len(pages) > 0 {
		a.log.Info("fingerprint templates still to erase", "pages", pages)
		a.erase.poke() // erased as soon as the sensors run
	}
	return nil
}

// writeFileAtomic writes b to path through a synced temporary file and a
// rename, then syncs the directory.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
