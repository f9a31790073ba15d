// Package agent is the badge terminal's composition root: it takes reads
// from the credential readers, decides each punch against the roster,
// stores it durably (group-committed, fsynced before the decision is
// shown), signals the result, and feeds the uplink. It also answers
// technicians on a local control socket.
package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/punchclock/punchclock/clock"
	"github.com/punchclock/punchclock/config"
	"github.com/punchclock/punchclock/device"
	"github.com/punchclock/punchclock/flood"
	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/roster"
	"github.com/punchclock/punchclock/store"
	"github.com/punchclock/punchclock/uplink"
)

// maxBatch bounds how many reads one transaction commits.
const maxBatch = 256

// floodFlush is how often folded unknown reads whose window closed are
// stored as one event each.
const floodFlush = 10 * time.Second

// Feedback shows a decision to the person at the reader (LEDs, buzzer,
// door relay). It must not block.
type Feedback interface {
	Show(readerName string, ev punch.Event)
}

// Display is a screen at the door (device.Display). Its methods must not
// block.
type Display interface {
	ShowPunch(device.Punch)
	SetStatus(device.Status)
}

// Options configure an Agent.
type Options struct {
	Config  *config.Config
	Readers []reader.Reader // one per Config.Readers entry, same names
	// Feedback is optional.
	Feedback Feedback
	Logger   *slog.Logger
	Version  string
	// Now defaults to time.Now.
	Now func() time.Time
	// ClockFloor, when set, replaces the configuration's clock.floor:
	// the earliest wall time the agent trusts.
	ClockFloor time.Time
	// Clock stamps punches and says whether the system clock is set
	// (package clock). Nil: built from the configuration's [clock], on
	// Now's wall time.
	Clock *clock.Clock
	// Display, when set, shows each decision with the person's name,
	// and the time and whether the terminal is online between them.
	Display Display
	// OnDecision, when set, is called after each decision is durable
	// (benchmarks and the demo use it).
	OnDecision func(ev punch.Event, sh *punch.Shift)
	// Watchdog, when set, is called from the writer loop every
	// floodFlush (10 s): a keep-alive that stops when the writer hangs
	// (cmd/punchclock sends systemd WATCHDOG=1 from it).
	Watchdog func()
	// LogLevel, when set, is the level of Logger's handler: the remote
	// set_log_level command changes it. Nil: the command is refused.
	LogLevel *slog.LevelVar
	// Door opens a reader's door for the remote open command. Nil: the
	// command is refused (commands.go).
	Door Door
}

// Agent runs a terminal.
//
// A punch walks one way: reader → the writer goroutine → the in-memory
// roster index and open entries → punch.Decide (pure) → one durable
// store.Append → feedback and the uplink. Nothing on that path reads
// bbolt, and the store never calls back. A new roster is parsed and
// stored on a goroutine of its own and then swapped in atomically, so a
// roster of any size never holds up the door.
type Agent struct {
	opts Options
	cfg  *config.Config
	log  *slog.Logger
	db   *store.DB
	up   *uplink.Uplink // nil when offline
	// readers is every configured reader's role, mode and state, by
	// name; indicators are the readers with a LED and buzzer of their
	// own.
	readers    map[string]*readerInfo
	indicators map[string]reader.Indicator
	reads      chan reader.Read
	// policy is the site's pairing configuration.
	policy punch.Policy
	// prompts are the badges waiting for a second factor or a job code,
	// and dirKeys the direction keys pressed, per reader; owned by the
	// writer.
	prompts map[string]*prompt
	dirKeys map[string]dirChoice
	// keypadOf names the card reader a keypad reader types for.
	keypadOf map[string]string

	// idx is the roster in use; replaced whole, never changed.
	idx atomic.Pointer[roster.Index]
	// open holds every employee's open entry; owned by the writer (and
	// by New before Run).
	open map[string]*punch.Open
	// rosters holds the newest roster received and not yet applied.
	rosters mailbox
	// rosterRaw is the digest of the last roster message looked at, so
	// that the retained roster offered again at every reconnect costs a
	// hash, not a parse.
	rosterRaw [sha256.Size]byte
	// rosterSum is the content digest of the roster in use.
	rosterSum []byte
	// flood folds repeated and flooding unknown credentials; owned by
	// the writer.
	flood *flood.Limiter

	// erase holds the fingerprint pages to delete from the sensors.
	erase eraser

	// pins assembles PINs from key presses and keeps the lockout; owned
	// by the writer, like judged: the lockout verdicts of the batch being
	// committed.
	pins   *pinPad
	judged map[judgedKey]bool

	// clk stamps punches; clockRef is true once its reference (the
	// first synced stamp of the boot) is stored and the punches before
	// it re-dated. Owned by the writer.
	clk      *clock.Clock
	clockRef bool

	// statusPending is the pending count in the last status published.
	statusPending atomic.Int64
	// restart is poked by the remote restart command (commands.go).
	restart chan struct{}

	closeOnce sync.Once
	wg        sync.WaitGroup
}

// New opens the store and loads roster_file. It starts nothing.
func New(opts Options) (*Agent, error) {
	if opts.Config == nil {
		return nil, errors.New("agent: no config")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg := opts.Config
	if opts.ClockFloor.IsZero() {
		opts.ClockFloor = cfg.Clock.FloorTime
	}
	a := &Agent{
		opts:       opts,
		cfg:        cfg,
		log:        opts.Logger,
		readers:    map[string]*readerInfo{},
		indicators: map[string]reader.Indicator{},
		prompts:    map[string]*prompt{},
		keypadOf:   map[string]string{},
		dirKeys:    map[string]dirChoice{},
		policy:     policyOf(cfg.Pairing),
		judged:     map[judgedKey]bool{},
		reads:      make(chan reader.Read, 64),
		restart:    make(chan struct{}, 1),
	}
	a.rosters.ready = make(chan struct{}, 1)
	a.erase = eraser{pending: map[int]bool{}, wake: make(chan struct{}, 1)}
	a.flood = flood.New(flood.Options{})
	a.addReaders(cfg.Readers)
	for _, r := range opts.Readers {
		if _, ok := a.readers[r.Name()]; !ok {
			return nil, fmt.Errorf("agent: reader %q is not in the config", r.Name())
		}
		if ind, ok := r.(reader.Indicator); ok {
			a.indicators[r.Name()] = ind
		}
	}
	db, err := store.Open(cfg.DataDir, storeOptions(cfg, opts.Now))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.db = db
	if a.pins, err = newPinPad(cfg.DataDir); err != nil {
		db.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := a.loadErasures(); err != nil {
		// Not fatal: the door must open. The pages stay on the sensor
		// until a technician looks.
		a.log.Error("fingerprint pages to erase not read", "err", err)
	}
	if err := a.load(); err != nil {
		db.Close()
		return nil, err
	}
	if err := a.loadReaderStates(); err != nil {
		db.Close()
		return nil, err
	}
	if err := a.setupClock(); err != nil {
		db.Close()
		return nil, err
	}
	if cfg.RosterFile != "" {
		b, err := os.ReadFile(cfg.RosterFile)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("agent: roster_file: %w", err)
		}
		a.applyRoster(b, "roster_file "+cfg.RosterFile)
	}
	if cfg.MQTT.Broker != "" {
		uc := UplinkConfig(cfg)
		uc.Outbox = outbox{db, opts.Now}
		uc.Status = a.uplinkStatus
		uc.OnRoster = a.rosters.put
		uc.OnAcks = a.onAcks
		uc.OnAcked = a.onAcked
		uc.OnCommand = a.onCommand
		uc.OnConnect = a.onConnect
		uc.Logger = a.log.With("component", "uplink")
		up, err := uplink.New(uc)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("agent: %w", err)
		}
		a.up = up
	}
	return a, nil
}

// UplinkConfig is the connection part of the uplink's configuration:
// the broker, the topics' prefix and device, the credentials and TLS
// files (what `check-config -connect` tries too).
func UplinkConfig(cfg *config.Config) uplink.Config {
	return uplink.Config{
		Broker:      cfg.MQTT.Broker,
		TopicPrefix: cfg.MQTT.TopicPrefix,
		DeviceID:    cfg.DeviceID,
		ClientID:    cfg.MQTT.ClientID,
		Username:    cfg.MQTT.Username,
		Password:    cfg.MQTT.Password,
		CAFile:      cfg.MQTT.CAFile,
		CertFile:    cfg.MQTT.CertFile,
		KeyFile:     cfg.MQTT.KeyFile,
	}
}

// DB is the agent's store.
func (a *Agent) DB() *store.DB { return a.db }

// SocketPath is where the control socket of a config's agent listens.
func SocketPath(cfg *config.Config) string {
	return filepath.Join(cfg.DataDir, "punchclock.sock")
}

// Run starts the readers, the writer, the uplink and the control socket,
// and blocks until ctx is done or a remote restart command came (it then
// returns ErrRestart). It then stops everything it started.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ln, err := listenControl(SocketPath(a.cfg))
	if err != nil {
		return fmt.Errorf("agent: control socket: %w", err)
	}
	if addr := a.cfg.HTTP.Listen; addr != "" {
		// The status page is for the technician: a port that is taken
		// is logged, and the door works on.
		if hl, err := net.Listen("tcp", addr); err != nil {
			a.log.Error("status page not served", "listen", addr, "err", err)
		} else {
			a.log.Info("status page", "url", "http://"+hl.Addr().String()+"/")
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				a.serveHTTP(ctx, hl)
			}()
		}
	}
	a.wg.Add(6)
	go func() {
		defer a.wg.Done()
		a.refreshLoop(ctx)
	}()
	go func() {
		defer a.wg.Done()
		a.eraseLoop(ctx)
	}()
	go func() {
		defer a.wg.Done()
		a.serveControl(ctx, ln)
	}()
	go func() {
		defer a.wg.Done()
		a.watchReaders(ctx)
	}()
	go func() {
		defer a.wg.Done()
		a.rosterLoop(ctx)
	}()
	go func() {
		defer a.wg.Done()
		a.maintain(ctx)
	}()
	if a.up != nil {
		if err := a.up.Start(ctx); err != nil {
			cancel()
			a.wg.Wait()
			return fmt.Errorf("agent: %w", err)
		}
	}
	var readersWG sync.WaitGroup
	for _, r := range a.opts.Readers {
		readersWG.Add(1)
		go func() {
			defer readersWG.Done()
			if err := r.Run(ctx, a.reads); err != nil {
				a.log.Error("reader stopped", "reader", r.Name(), "err", err)
			}
		}()
	}
	// The writer outlives the readers: it stops once they have, after
	// committing every read they handed over.
	writerCtx, stopWriter := context.WithCancel(context.Background())
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		a.write(writerCtx)
	}()
	st, _ := a.db.Status()
	if st.Alarm != "" {
		a.log.Error("store alarm: a technician should look", "alarm", st.Alarm)
	}
	a.log.Info("ready", "device", a.cfg.DeviceID, "readers", len(a.opts.Readers),
		"roster_version", st.RosterVersion, "pending", st.Pending, "online", a.up != nil)
	var runErr error
	select {
	case <-ctx.Done():
	case <-a.restart:
		a.log.Warn("restarting: requested by a remote command")
		runErr = ErrRestart
		cancel()
	}
	readersWG.Wait()
	stopWriter()
	<-writerDone
	a.wg.Wait()
	return runErr
}

// Close stops the uplink and closes the store. Run must have returned.
// It is safe to call twice.
func (a *Agent) Close() error {
	var err error
	a.closeOnce.Do(func() {
		if a.up != nil {
			err = a.up.Close()
		}
		if cerr := a.db.Close(); cerr != nil && err == nil {
			err = cerr
		}
	})
	return err
}

// write is the single writer: it takes every read waiting, decides and
// stores them in one transaction (group commit), and only then shows the
// decisions. It also closes entries that outlived max_shift (at start and
// every floodFlush) and gives up on badges whose second factor or job
// code did not come in time.
func (a *Agent) write(ctx context.Context) {
	batch := make([]punchIn, 0, maxBatch)
	tick := time.NewTicker(floodFlush)
	defer tick.Stop()
	// prompt fires at the earliest deadline of a waiting badge.
	prompt := time.NewTimer(time.Hour)
	prompt.Stop()
	defer prompt.Stop()
	a.closeExpired(a.opts.Now())
	a.clockSynced()
	a.showStatus()
	for {
		if d, ok := a.nextPromptDeadline(); ok {
			prompt.Reset(max(0, d.Sub(a.opts.Now())))
		}
		select {
		case <-ctx.Done():
			// The readers have stopped: commit what they handed over,
			// and account for every folded read and waiting badge.
			for {
				select {
				case rd := <-a.reads:
					if ins := a.prepare(rd); len(ins) > 0 {
						a.commit(ins, nil)
					}
				default:
					if ins := a.expirePrompts(time.Time{}); len(ins) > 0 {
						a.commit(ins, nil)
					}
					a.recordFolded(a.flood.Drain())
					return
				}
			}
		case <-tick.C:
			now := a.opts.Now()
			a.recordFolded(a.flood.Flush(now))
			a.pins.entry.Expire(now)
			a.closeExpired(now)
			a.clockSynced()
			a.showStatus()
			if a.opts.Watchdog != nil {
				a.opts.Watchdog()
			}
			continue
		case <-prompt.C:
			if ins := a.expirePrompts(a.opts.Now()); len(ins) > 0 {
				a.commit(ins, nil)
			}
			continue
		case rd := <-a.reads:
			batch = append(batch[:0], a.prepare(rd)...)
		}
	more:
		for len(batch) < maxBatch {
			select {
			case rd := <-a.reads:
				batch = append(batch, a.prepare(rd)...)
			default:
				break more
			}
		}
		if len(batch) > 0 {
			a.commit(batch, nil)
		}
	}
}

// commit decides and stores a batch of punches. verdicts, when set, are
// the flood limiter's verdicts of a batch that failed and is retried one
// by one: the limiter has counted those reads already.
func (a *Agent) commit(batch []punchIn, verdicts []flood.Verdict) {
	a.clockSynced()
	if verdicts == nil {
		// A new batch, not one retried read by read: its PINs are
		// judged afresh (a retry reuses the judgements, so that a wrong
		// PIN is not counted twice towards the lockout).
		clear(a.judged)
	}
	outs := make([]punch.Outcome, len(batch))
	ptrs := make([]*punch.Outcome, 0, len(batch))
	// Open entries as this batch changes them: nil means closed.
	changed := map[string]*punch.Open{}
	idx := a.idx.Load()
	var folded []reader.Read
	// The punches to store, with their verdicts, should they be retried.
	var kept []punchIn
	var keptV []flood.Verdict
	for i, in := range batch {
		rd := in.rd
		var closed *punch.Outcome
		closed, outs[i] = a.decide(idx, changed, in)
		v := flood.Verdict{Record: true, Count: 1}
		if outs[i].Event.Reason == punch.ReasonUnknownCredential {
			// Unknown credentials are kept and sent, but repeats and a
			// flood of them are folded into counts (flood).
			if verdicts != nil {
				v = verdicts[i]
			} else {
				v = a.flood.Admit(rd.Reader, rd.Type, rd.Value, outs[i].Event.At)
			}
			if !v.Record {
				folded = append(folded, rd)
				continue
			}
			if v.Count > 1 {
				outs[i].Event.Count, outs[i].Event.FirstAt = v.Count, v.First.Round(0).Truncate(time.Millisecond)
			}
		}
		kept, keptV = append(kept, in), append(keptV, v)
		for _, o := range []*punch.Outcome{closed, &outs[i]} {
			if o == nil {
				continue
			}
			ptrs = append(ptrs, o)
			if id := o.Employee(); id != "" {
				if o.CloseOpen {
					changed[id] = nil
				}
				if n := o.NewOpen; n != nil {
					changed[id] = n
				}
			}
		}
	}
	for _, rd := range folded {
		a.log.Debug("unknown credential folded", "reader", rd.Reader)
		a.show(rd.Reader, punch.Event{Reader: rd.Reader, Decision: punch.Denied, Reason: punch.ReasonUnknownCredential}, nil)
	}
	if len(ptrs) == 0 {
		return
	}
	err := a.db.Append(ptrs)
	if err != nil && len(kept) > 1 && !errors.Is(err, store.ErrFull) {
		// One bad read must not cost the others: store them one by one.
		for i := range kept {
			a.commit(kept[i:i+1], keptV[i:i+1])
		}
		return
	}
	if err != nil {
		reason := punch.ReasonStoreError
		if errors.Is(err, store.ErrFull) {
			reason = punch.ReasonStorageFull
		}
		for _, in := range kept {
			a.log.Error("punch not stored", "reader", in.rd.Reader, "reason", reason, "err", err)
			a.show(in.rd.Reader, punch.Event{Reader: in.rd.Reader, Decision: punch.Denied, Reason: reason}, nil)
		}
		return
	}
	a.stored(ptrs, changed)
}

// stored follows a durable Append of outs: the open entries they changed
// into memory, each outcome reported and shown, the uplink told.
func (a *Agent) stored(outs []*punch.Outcome, changed map[string]*punch.Open) {
	a.applyOpen(changed)
	for _, out := range outs {
		a.report(out)
	}
	if a.up != nil {
		a.up.Notify()
	}
}

// applyOpen takes the open entries a stored batch changed into memory.
func (a *Agent) applyOpen(changed map[string]*punch.Open) {
	for emp, o := range changed {
		if o == nil {
			delete(a.open, emp)
		} else {
			a.open[emp] = o
		}
	}
}

// recordFolded stores one event for each summary of folded unknown
// reads, so that every read is accounted for in some event's count.
func (a *Agent) recordFolded(sums []flood.Summary) {
	if len(sums) == 0 {
		return
	}
	outs := make([]*punch.Outcome, len(sums))
	for i, s := range sums {
		o := punch.Folded(s.Reader, s.CredType, s.Value, s.First.In(a.cfg.Location), s.Last.In(a.cfg.Location), s.Count, s.RateLimited)
		outs[i] = &o
	}
	if err := a.db.Append(outs); err != nil {
		a.log.Error("folded unknown reads not stored", "events", len(outs), "err", err)
		return
	}
	for _, o := range outs {
		a.log.Info("unknown reads folded", "reader", o.Event.Reader, "count", o.Event.Count, "id", o.Event.ID,
			"rate_limited", len(o.Event.Flags) > 0)
	}
	if a.up != nil {
		a.up.Notify()
	}
}

// show shows a decision at its reader: the feedback, the reader's own
// indicator, and the display with the person's name (and, for an exit,
// the shift it completed). Only the writer calls it: it reads the open
// entries.
func (a *Agent) show(readerName string, ev punch.Event, sh *punch.Shift) {
	if a.opts.Feedback != nil {
		a.opts.Feedback.Show(readerName, ev)
	}
	if ind := a.indicators[readerName]; ind != nil {
		ind.Indicate(reader.Signal{Accepted: ev.Decision == punch.Accepted})
	}
	if d := a.opts.Display; d != nil {
		p := device.Punch{Event: ev, Shift: sh}
		if e := a.idx.Load().Employee(ev.EmployeeID); e != nil {
			p.Name = e.Name
		}
		if ev.Reason == punch.ReasonDoubleIn {
			if o := a.open[ev.EmployeeID]; o != nil {
				p.OpenSince = o.At
			}
		}
		d.ShowPunch(p)
	}
}

// showStatus tells the display whether the terminal is online and its
// clock set.
func (a *Agent) showStatus() {
	if d := a.opts.Display; d != nil {
		d.SetStatus(device.Status{Online: a.up != nil && a.up.Connected(), ClockSet: a.clk.Now().Synced})
	}
}

// decide decides one punch from memory: the roster index and the open
// entries (as changed by the punches before it in the same batch). An
// open entry that outlived max_shift is closed first: closed is that
// shift, to be stored before the punch.
func (a *Agent) decide(idx *roster.Index, changed map[string]*punch.Open, in punchIn) (closed *punch.Outcome, out punch.Outcome) {
	rd := in.rd
	emp, ambiguous := idx.Find(rd.Type, rd.Format, rd.Value)
	if emp != nil && emp.PinWithCard && rd.Type == reader.TypePIN {
		// The PIN of someone who needs card and PIN is a second
		// factor only: alone it identifies nobody.
		emp = nil
	}
	var open *punch.Open
	if emp != nil {
		var ok bool
		if open, ok = changed[emp.ID]; !ok {
			open = a.open[emp.ID]
		}
	}
	st := a.stamp(rd.At)
	at := st.Wall
	if punch.Expired(open, at, a.policy) {
		o := punch.AutoClose(open, emp, a.policy, idx.Version(), a.cfg.Location)
		closed, open = &o, nil
	}
	info := a.readers[rd.Reader]
	mode := in.mode
	if mode == "" {
		mode = info.mode()
	}
	return closed, punch.Decide(punch.Input{
		Reader:        rd.Reader,
		Role:          info.cfg.Role,
		Mode:          mode,
		Suspended:     info.suspended.Load(),
		CredType:      rd.Type,
		CredVal:       rd.Value,
		At:            at.In(a.cfg.Location),
		ClockSynced:   st.Synced,
		TimeUnknown:   a.timeUnknown(st),
		Stamp:         st,
		Employee:      emp,
		Group:         groupOf(idx, emp),
		Ambiguous:     ambiguous,
		LockedOut:     in.lockedOut || a.pinLocked(rd, at, emp),
		WrongPIN:      in.wrongPIN,
		JobCode:       in.jobCode,
		Score:         rd.Score,
		Open:          open,
		RosterVersion: idx.Version(),
		Policy:        a.policy,
	})
}

// closeExpired closes every open entry that outlived max_shift at now
// into an auto_closed shift: at start (the agent may have been down when
// it expired) and on the writer's tick.
func (a *Agent) closeExpired(now time.Time) {
	idx := a.idx.Load()
	var outs []*punch.Outcome
	changed := map[string]*punch.Open{}
	var expired []string
	for emp, o := range a.open {
		if punch.Expired(o, now, a.policy) {
			expired = append(expired, emp)
		}
	}
	// In the order of their entries (then of the ids), so that the
	// shifts' ids do not depend on a map's order.
	slices.SortFunc(expired, func(x, y string) int {
		if c := a.open[x].At.Compare(a.open[y].At); c != 0 {
			return c
		}
		return strings.Compare(x, y)
	})
	for _, emp := range expired {
		out := punch.AutoClose(a.open[emp], idx.Employee(emp), a.policy, idx.Version(), a.cfg.Location)
		outs = append(outs, &out)
		changed[emp] = nil
	}
	if len(outs) == 0 {
		return
	}
	if err := a.db.Append(outs); err != nil {
		a.log.Error("entries past max_shift not closed; tried again later", "entries", len(outs), "err", err)
		return
	}
	a.stored(outs, changed)
}

func (a *Agent) report(out *punch.Outcome) {
	if out.NoEvent {
		sh := out.Shift
		a.log.Info("shift", "id", sh.ID, "employee", sh.EmployeeID, "payroll_no", sh.PayrollNo,
			"in", sh.In.Format(time.RFC3339), "out", sh.Out.Format(time.RFC3339), "duration_s", sh.DurationS, "flags", sh.Flags)
		if a.opts.OnDecision != nil {
			a.opts.OnDecision(punch.Event{}, sh)
		}
		return
	}
	ev := out.Event
	attrs := []any{"reader", ev.Reader, "decision", ev.Decision, "id", ev.ID}
	if ev.EmployeeID != "" {
		attrs = append(attrs, "employee", ev.EmployeeID)
	}
	if ev.Direction != "" {
		attrs = append(attrs, "direction", ev.Direction)
	}
	if ev.Reason != "" {
		attrs = append(attrs, "reason", ev.Reason)
	}
	if ev.CredentialValue != "" {
		attrs = append(attrs, "card", ev.CredentialValue)
	}
	a.log.Info("punch", attrs...)
	if sh := out.Shift; sh != nil {
		a.log.Info("shift", "id", sh.ID, "employee", sh.EmployeeID, "payroll_no", sh.PayrollNo,
			"in", sh.In.Format(time.RFC3339), "out", sh.Out.Format(time.RFC3339), "duration_s", sh.DurationS)
	}
	a.show(ev.Reader, ev, out.Shift)
	if a.opts.OnDecision != nil {
		a.opts.OnDecision(ev, out.Shift)
	}
}

// load reads the stored roster and open entries into memory.
func (a *Agent) load() error {
	defer lowGC()()
	r, err := a.db.Roster()
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if r != nil {
		if r.HashPINs(a.pins.hash) > 0 {
			// Stored by an agent from before PINs were hashed: store
			// the roster again without them.
			if err := a.db.ReplaceRoster(r); err != nil && !errors.Is(err, store.ErrRosterSame) {
				a.log.Error("stored roster's PINs hashed in memory but not stored", "err", err)
			} else {
				a.log.Warn("stored roster held PINs in clear: hashed and stored again")
			}
		}
		_, sum, err := store.RosterDigest(r)
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		a.rosterSum = sum
		a.idx.Store(roster.NewIndex(r))
	}
	open, err := a.db.OpenEntries()
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.open = open
	return nil
}

// rosterLoop applies the rosters received over MQTT, newest first: one
// that arrives while another is being applied replaces any still waiting.
func (a *Agent) rosterLoop(ctx context.Context) {
	// The thread stays locked, and ends with the goroutine.
	if err := lowerPriority(); err != nil {
		a.log.Debug("roster goroutine keeps the normal priority", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.rosters.ready:
			if b := a.rosters.take(); b != nil {
				a.applyRoster(b, "mqtt roster")
			}
		}
	}
}

// applyRoster parses, checks and stores a roster, and swaps it in. The
// roster in use offered again (the retained MQTT message arrives on every
// connect) is ignored; a malformed one, one too large, or one the version
// rule refuses is rejected, logged and shown in status, and the roster in
// use stays. Only the roster goroutine (and New, before it runs) calls it.
func (a *Agent) applyRoster(b []byte, source string) {
	raw := sha256.Sum256(b)
	if raw == a.rosterRaw {
		a.log.Debug("roster message unchanged", "source", source)
		return
	}
	a.rosterRaw = raw
	// Parsing a large roster allocates several times its size, nearly
	// all of it garbage at once: collected as it goes, the GC's cycles
	// and assists would compete with the punches on a small machine.
	// Collect it once afterwards instead, within a memory bound.
	defer lowGC()()
	r, sum, err := a.checkRoster(b)
	switch {
	case err == nil:
		if err = a.db.ReplaceRoster(r); errors.Is(err, store.ErrRosterSame) {
			err = nil // stored already: swap it in
		} else if err != nil {
			// Not the roster's fault (a full disk): the same message
			// offered again at the next reconnect is tried again.
			a.rosterRaw = [sha256.Size]byte{}
		}
	case errors.Is(err, errRosterSame):
		a.log.Debug("roster unchanged", "source", source, "version", r.Version)
		return
	case errors.Is(err, roster.ErrNotNewer) && source != "mqtt roster":
		// A roster_file older than the roster received over MQTT is
		// expected after the first sync: not an error to show forever.
		a.log.Info("roster_file is older than the stored roster; keeping the stored one", "source", source, "err", err)
		return
	}
	if source == "mqtt roster" {
		var v int64
		if r != nil {
			v = r.Version
		}
		a.noteRosterUpdate(v, err)
	}
	if err != nil {
		msg := fmt.Sprintf("%s rejected at %s: %v", source, a.opts.Now().Format(time.RFC3339), err)
		a.log.Warn("roster rejected", "source", source, "err", err)
		if serr := a.db.SetRosterError(msg); serr != nil {
			a.log.Error("roster rejection not recorded", "err", serr)
		}
	} else {
		next := roster.NewIndex(r)
		a.forget(a.idx.Swap(next), next)
		a.rosterSum = sum
		a.log.Info("roster loaded", "source", source, "version", r.Version, "employees", len(r.Employees))
	}
	if a.up != nil {
		a.up.PublishStatus()
	}
}

// rosterMemLimit bounds the heap while a roster is parsed with the GC
// held back: past it the GC runs as usual.
const rosterMemLimit = 384 << 20

// lowGC holds the GC back (within rosterMemLimit) until the function it
// returns is called, which restores it and returns the garbage to the OS.
func lowGC() func() {
	pct := debug.SetGCPercent(-1)
	lim := debug.SetMemoryLimit(rosterMemLimit)
	return func() {
		debug.SetGCPercent(pct)
		debug.SetMemoryLimit(lim)
		debug.FreeOSMemory()
	}
}

// checkRoster parses b and applies the size cap and the version rule
// against the roster in use.
func (a *Agent) checkRoster(b []byte) (*roster.Roster, []byte, error) {
	if max := a.cfg.Storage.MaxRosterMB << 20; len(b) > max {
		return nil, nil, fmt.Errorf("roster of %.1f MB exceeds max_roster_mb (%d MB): not parsed", float64(len(b))/(1<<20), a.cfg.Storage.MaxRosterMB)
	}
	r, err := roster.Parse(b)
	if err != nil {
		return nil, nil, err
	}
	// The device keeps PINs only as keyed hashes: hashed before the
	// roster is stored, indexed or digested.
	r.HashPINs(a.pins.hash)
	_, sum, err := store.RosterDigest(r)
	if err != nil {
		return nil, nil, err
	}
	if bytes.Equal(sum, a.rosterSum) {
		return r, sum, errRosterSame
	}
	if err := roster.Accept(a.idx.Load().Version(), r, a.opts.Now()); err != nil {
		return r, sum, err
	}
	return r, sum, nil
}

// maintain prunes delivered records past the retention horizon, at start
// and then every hour.
func (a *Agent) maintain(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := a.db.Prune(a.opts.Now()); err != nil {
			a.log.Error("prune", "err", err)
		} else if n > 0 {
			a.log.Info("pruned delivered records past retention", "records", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// onAcks applies connectors' answers: confirmed records end their road,
// rejected ones become dead letters with the connector's words. It runs
// on paho's delivery goroutine: a store transaction, no more.
func (a *Agent) onAcks(acks []uplink.Ack) {
	conv := make([]store.Ack, len(acks))
	for i, k := range acks {
		conv[i] = store.Ack{ID: k.ID, OK: k.OK, Error: k.Error}
		if !k.OK {
			a.log.Warn("record rejected by a connector: kept as a dead letter", "id", k.ID, "error", k.Error)
		}
	}
	unknown, err := a.db.Confirm(conv, a.opts.Now())
	if err != nil {
		a.log.Error("acks not recorded; the records will be sent again", "acks", len(acks), "err", err)
		return
	}
	for _, id := range unknown {
		a.log.Warn("ack for an unknown record id ignored", "id", id)
	}
	if a.up != nil {
		a.up.PublishStatus() // unconfirmed and dead letters changed
	}
}

// onAcked republishes the retained status once the outbox is empty, so
// that its pending count does not stay stale after a backlog drained.
func (a *Agent) onAcked(int, time.Time) {
	if a.statusPending.Load() == 0 {
		return // the retained status already says 0
	}
	if st, err := a.db.Status(); err == nil && st.Pending == 0 {
		a.up.PublishStatus()
	}
}

func (a *Agent) uplinkStatus() uplink.Status {
	st, err := a.db.Status()
	if err != nil {
		a.log.Error("status", "err", err)
	}
	a.statusPending.Store(int64(st.Pending))
	return uplink.Status{
		State:         "online",
		Version:       a.opts.Version,
		RosterVersion: st.RosterVersion,
		Pending:       st.Pending,
		RosterError:   st.RosterError,

		Unconfirmed:       st.Unconfirmed,
		OldestUnconfirmed: st.OldestUnconfirmed,
		DeadLetters:       st.DeadLetters,
		StorageWarning:    st.StorageWarning,
		Alarm:             st.Alarm,
		Readers:           a.readerStates(),
	}
}

// readerStates is each reader's state for the status topic.
func (a *Agent) readerStates() []uplink.ReaderState {
	rs := a.readerStatus()
	out := make([]uplink.ReaderState, len(rs))
	for i, r := range rs {
		out[i] = uplink.ReaderState{Name: r.Name, State: r.State}
	}
	return out
}

// watchReaders republishes the status when a reader goes offline or
// comes back.
func (a *Agent) watchReaders(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var b strings.Builder
		for _, r := range a.readerStatus() {
			b.WriteString(r.Name + "=" + r.State + " ")
		}
		if now := b.String(); now != last {
			if last != "" {
				a.log.Info("reader state", "readers", now)
				if a.up != nil {
					a.up.PublishStatus()
				}
			}
			last = now
		}
	}
}

// pinLocked applies the PIN lockout to a PIN read: it reports whether PIN
// entry is locked at the reader, and counts a wrong PIN or resets the
// count on a right one. Only the writer calls it.
func (a *Agent) pinLocked(rd reader.Read, at time.Time, emp *roster.Employee) bool {
	if rd.Type != reader.TypePIN {
		return false
	}
	k := judgedKey{rd.Reader, rd.Value, rd.At}
	if locked, ok := a.judged[k]; ok {
		return locked
	}
	locked := a.pins.judge(rd.Reader, at, emp != nil)
	a.judged[k] = locked
	return locked
}

// judgedKey names a PIN read of the batch being committed.
type judgedKey struct {
	reader, hash string
	at           time.Time
}
