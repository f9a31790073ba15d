package logbook

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBook(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(dir, 4096)
	if err != nil {
		t.Fatal(err)
	}
	var console bytes.Buffer
	log := slog.New(b.Handler(slog.NewTextHandler(&console, &slog.HandlerOptions{Level: slog.LevelDebug}), slog.LevelInfo))
	log.Debug("noise")
	log.Info("roster loaded", "version", 3)
	log.Info("punch", "reader", "front", "card", "0A00000001")
	log.Warn("reader offline", "reader", "gate")
	log.Error("prune", "err", "disk")
	if !strings.Contains(console.String(), "noise") || !strings.Contains(console.String(), "msg=punch") {
		t.Fatalf("the console lost lines:\n%s", console.String())
	}
	var got []string
	read := func(min slog.Level) {
		got = nil
		if err := Read(dir, time.Time{}, time.Time{}, min, func(e Entry) error {
			got = append(got, e.Level+" "+e.Msg)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	read(slog.LevelDebug)
	if strings.Join(got, "|") != "INFO roster loaded|WARN reader offline|ERROR prune" {
		t.Fatalf("book: %q (debug lines below its level, punches left to the store)", got)
	}
	read(slog.LevelWarn)
	if strings.Join(got, "|") != "WARN reader offline|ERROR prune" {
		t.Fatalf("warn and above: %q", got)
	}
	// A torn last line (a power cut mid-write) is skipped.
	f, _ := os.OpenFile(filepath.Join(dir, File), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"time":"2026-`)
	f.Close()
	read(slog.LevelDebug)
	if len(got) != 3 {
		t.Fatalf("after a torn line: %q", got)
	}
	// Bounded: a thousand lines leave at most twice the size on disk,
	// the newest kept.
	for i := range 1000 {
		log.Warn("reader offline", "n", i)
	}
	var total int64
	for _, name := range []string{File, File + ".1"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	if total > 2*4096 {
		t.Fatalf("%d bytes on disk, bound %d", total, 2*4096)
	}
	var last Entry
	Read(dir, time.Time{}, time.Time{}, slog.LevelDebug, func(e Entry) error { last = e; return nil })
	if last.Attrs["n"] != float64(999) {
		t.Fatalf("newest line lost: %+v", last)
	}
	// Time bounds.
	n := 0
	Read(dir, time.Now().Add(time.Minute), time.Time{}, slog.LevelDebug, func(Entry) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d lines from the future", n)
	}
	// Clear while the book is open: it goes on writing.
	if n, err := Clear(dir); err != nil || n == 0 {
		t.Fatalf("clear: %d, %v", n, err)
	}
	read(slog.LevelDebug)
	if len(got) != 0 {
		t.Fatalf("after clear: %q", got)
	}
	log.Warn("after clear")
	read(slog.LevelDebug)
	if len(got) != 1 {
		t.Fatalf("written after clear: %q", got)
	}
	if err := b.Close(); err != nil || b.Close() != nil {
		t.Fatal("close")
	}
}
