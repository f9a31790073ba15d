package pin

import "time"

// Lockout defaults.
const (
	DefaultMaxWrong = 5
	DefaultWindow   = 60 * time.Second
	DefaultLockFor  = 30 * time.Second
)

// Lockout slows down guessing at a reader: MaxWrong wrong PINs there
// within Window lock it for LockFor from the last of them. The caller,
// for each PIN entered at a reader:
//
//	if lock.Check(reader, now) {
//		// deny: locked_out, whether the PIN is right or not
//	} else if known {
//		lock.Right(reader, now) // and decide the punch
//	} else {
//		lock.Wrong(reader, now) // deny: unknown_credential
//	}
//
// The wrong PIN that locks the reader is still reported as unknown; the
// lock applies to the PINs after it. A right PIN before the lock forgets
// the wrong ones; after the lock the count starts from zero.
//
// Times are compared as flood compares them: a wrong PIN counts, and a
// lock holds, only from its own time on, so that a clock set back cannot
// keep a reader locked.
//
// The zero Lockout is ready to use, with zero fields taken as their
// defaults. It keeps at most MaxWrong times per reader, and nothing for a
// reader without recent wrong PINs or a lock.
type Lockout struct {
	// MaxWrong wrong PINs within Window lock the reader. Default 5.
	MaxWrong int
	// Window: how close together the MaxWrong wrong PINs must be.
	// Default 60s.
	Window time.Duration
	// LockFor: how long the lock lasts. Default 30s.
	LockFor time.Duration

	readers map[string]*lockState
}

type lockState struct {
	wrong    []time.Time // recent wrong PINs, oldest first, at most MaxWrong
	locked   bool
	lockedAt time.Time
}

// NewLockout returns a Lockout with its fields set to their defaults.
func NewLockout() *Lockout {
	return &Lockout{MaxWrong: DefaultMaxWrong, Window: DefaultWindow, LockFor: DefaultLockFor}
}

func (l *Lockout) maxWrong() int {
	if l.MaxWrong <= 0 {
		return DefaultMaxWrong
	}
	return l.MaxWrong
}

func (l *Lockout) window() time.Duration {
	if l.Window <= 0 {
		return DefaultWindow
	}
	return l.Window
}

func (l *Lockout) lockFor() time.Duration {
	if l.LockFor <= 0 {
		return DefaultLockFor
	}
	return l.LockFor
}

func within(start, now time.Time, d time.Duration) bool {
	s := now.Sub(start)
	return s >= 0 && s < d
}

// state returns reader's state at now, with a lock that has ended and
// wrong PINs older than Window forgotten; nil when nothing is left.
func (l *Lockout) state(reader string, now time.Time) *lockState {
	s := l.readers[reader]
	if s == nil {
		return nil
	}
	if s.locked {
		if within(s.lockedAt, now, l.lockFor()) {
			return s
		}
		delete(l.readers, reader)
		return nil
	}
	keep := s.wrong[:0]
	for _, t := range s.wrong {
		if within(t, now, l.window()) {
			keep = append(keep, t)
		}
	}
	s.wrong = keep
	if len(s.wrong) == 0 {
		delete(l.readers, reader)
		return nil
	}
	return s
}

// Check reports whether reader is locked at now: a PIN entered there is
// then denied, right or wrong, and not given to Wrong or Right.
func (l *Lockout) Check(reader string, now time.Time) (locked bool) {
	s := l.state(reader, now)
	return s != nil && s.locked
}

// Wrong counts a wrong PIN at reader at now. The one that makes MaxWrong
// within Window locks the reader from now. During a lock it does nothing.
func (l *Lockout) Wrong(reader string, now time.Time) {
	s := l.state(reader, now)
	if s == nil {
		if l.readers == nil {
			l.readers = make(map[string]*lockState)
		}
		s = &lockState{}
		l.readers[reader] = s
	}
	if s.locked {
		return
	}
	s.wrong = append(s.wrong, now)
	if len(s.wrong) >= l.maxWrong() {
		*s = lockState{locked: true, lockedAt: now}
	}
}

// Right notes a right PIN at reader at now: the wrong PINs before it are
// forgotten. During a lock it does nothing: the lock holds.
func (l *Lockout) Right(reader string, now time.Time) {
	if s := l.state(reader, now); s != nil && !s.locked {
		delete(l.readers, reader)
	}
}
