// Package logbook keeps a bounded log of what a terminal did on its own
// disk — actions, warnings and errors — for `punchclock log`, next to
// the punches the store keeps. It is an slog handler writing JSON lines
// to DIR/agent.log, moved to DIR/agent.log.1 when it passes its size, so
// that it never holds more than twice that. Punch and shift lines are
// left to the store, which keeps them whole.
package logbook

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// File is the log's name in its directory; the previous one is File+".1".
const File = "agent.log"

// DefaultMaxBytes is the size past which the log is moved aside.
const DefaultMaxBytes = 1 << 20

// skipped are the messages the store keeps as records.
var skipped = map[string]bool{"punch": true, "shift": true}

// Book is an open log.
type Book struct {
	dir string
	max int64

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Open opens (or creates) the log in dir; maxBytes <= 0 means
// DefaultMaxBytes.
func Open(dir string, maxBytes int64) (*Book, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	b := &Book{dir: dir, max: maxBytes}
	if err := b.open(); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *Book) open() error {
	f, err := os.OpenFile(filepath.Join(b.dir, File), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("logbook: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("logbook: %w", err)
	}
	b.f, b.size = f, fi.Size()
	return nil
}

// Write appends one line, moving the log aside first when it would pass
// its size.
func (b *Book) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.f == nil {
		return 0, errors.New("logbook: closed")
	}
	if b.size+int64(len(p)) > b.max && b.size > 0 {
		b.f.Close()
		b.f = nil
		path := filepath.Join(b.dir, File)
		if err := os.Rename(path, path+".1"); err != nil {
			return 0, fmt.Errorf("logbook: %w", err)
		}
		if err := b.open(); err != nil {
			return 0, err
		}
	}
	n, err := b.f.Write(p)
	b.size += int64(n)
	return n, err
}

// Close closes the log. It is safe to call twice.
func (b *Book) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.f == nil {
		return nil
	}
	err := b.f.Close()
	b.f = nil
	return err
}

// Handler returns a handler that passes every record to next and writes
// those at or above level (but punches and shifts) to the book.
func (b *Book) Handler(next slog.Handler, level slog.Leveler) slog.Handler {
	return tee{next: next, book: slog.NewJSONHandler(b, &slog.HandlerOptions{Level: level})}
}

type tee struct {
	next, book slog.Handler
}

func (t tee) Enabled(ctx context.Context, l slog.Level) bool {
	return t.next.Enabled(ctx, l) || t.book.Enabled(ctx, l)
}

func (t tee) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if t.next.Enabled(ctx, r.Level) {
		err = t.next.Handle(ctx, r.Clone())
	}
	if t.book.Enabled(ctx, r.Level) && !skipped[r.Message] {
		// A log that cannot be written never stops the terminal.
		t.book.Handle(ctx, r)
	}
	return err
}

func (t tee) WithAttrs(as []slog.Attr) slog.Handler {
	return tee{next: t.next.WithAttrs(as), book: t.book.WithAttrs(as)}
}

func (t tee) WithGroup(name string) slog.Handler {
	return tee{next: t.next.WithGroup(name), book: t.book.WithGroup(name)}
}

// Entry is one line of the log.
type Entry struct {
	Time  time.Time      `json:"time"`
	Level string         `json:"level"`
	Msg   string         `json:"msg"`
	Attrs map[string]any `json:"attrs,omitempty"`
}

// Read calls fn for each line of the log in dir at or above min, in
// [from, to) (zero bounds are open), oldest first. Lines that do not
// parse (a line torn by a power cut) are skipped.
func Read(dir string, from, to time.Time, min slog.Level, fn func(Entry) error) error {
	var all []Entry
	for _, name := range []string{File + ".1", File} {
		f, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("logbook: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			e := Entry{Attrs: map[string]any{}}
			ts, _ := m["time"].(string)
			e.Time, _ = time.Parse(time.RFC3339Nano, ts)
			e.Level, _ = m["level"].(string)
			e.Msg, _ = m["msg"].(string)
			var l slog.Level
			if l.UnmarshalText([]byte(e.Level)) != nil || l < min || e.Time.IsZero() ||
				!from.IsZero() && e.Time.Before(from) || !to.IsZero() && !e.Time.Before(to) {
				continue
			}
			for k, v := range m {
				if k != "time" && k != "level" && k != "msg" {
					e.Attrs[k] = v
				}
			}
			all = append(all, e)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return fmt.Errorf("logbook: %s: %w", name, err)
		}
	}
	slices.SortStableFunc(all, func(a, b Entry) int { return a.Time.Compare(b.Time) })
	for _, e := range all {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Clear empties the log in dir (a running agent's book goes on writing
// at the start of the emptied file) and returns how many lines it held.
func Clear(dir string) (int, error) {
	n := 0
	if err := Read(dir, time.Time{}, time.Time{}, slog.LevelDebug, func(Entry) error { n++; return nil }); err != nil {
		return 0, err
	}
	if err := os.Remove(filepath.Join(dir, File+".1")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("logbook: %w", err)
	}
	if err := os.Truncate(filepath.Join(dir, File), 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("logbook: %w", err)
	}
	return n, nil
}
