package readertest

import (
	"context"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"
)

func TestPortDeliversInOrderAcrossSmallReads(t *testing.T) {
	p := NewPort()
	done := make(chan error, 1)
	go func() {
		if _, err := p.Write([]byte("hello")); err != nil {
			done <- err
			return
		}
		done <- p.ReadError(syscall.EIO)
	}()
	var got []byte
	buf := make([]byte, 2)
	for {
		n, err := p.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("Read error = %v, want EIO", err)
			}
			break
		}
	}
	if string(got) != "hello" {
		t.Errorf("read %q, want hello", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPortSyncWaitsForNextRead(t *testing.T) {
	p := NewPort()
	processed := make(chan struct{})
	go func() {
		buf := make([]byte, 8)
		p.Read(buf)
		close(processed) // "processing" done before the next Read
		p.Read(buf)
	}()
	if _, err := p.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-processed:
	default:
		t.Fatal("Sync returned before the reader came back to Read")
	}
	p.Close()
}

func TestPortCloseUnblocksAndIsIdempotent(t *testing.T) {
	p := NewPort()
	errc := make(chan error, 1)
	go func() {
		_, err := p.Read(make([]byte, 1))
		errc <- err
	}()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Read after Close = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
	if _, err := p.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	if err := p.ReadError(io.EOF); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadError after Close = %v, want ErrClosed", err)
	}
	select {
	case <-p.Closed():
	default:
		t.Error("Closed() not closed")
	}
}

func TestOpener(t *testing.T) {
	o := NewOpener()
	o.FailNext(2, nil)
	for range 2 {
		if _, err := o.Open(); !errors.Is(err, ErrOpen) {
			t.Fatalf("Open = %v, want ErrOpen", err)
		}
	}
	got := make(chan *Port, 1)
	go func() {
		p, _ := o.Port(context.Background(), 1)
		got <- p
	}()
	rc, err := o.Open()
	if err != nil {
		t.Fatal(err)
	}
	if p := <-got; p != rc {
		t.Errorf("Port(1) = %p, want the port Open returned (%p)", p, rc)
	}
	if n := o.Attempts(); n != 3 {
		t.Errorf("Attempts = %d, want 3", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := o.Port(ctx, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("Port(2) with cancelled ctx = %v", err)
	}
}

func TestClock(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewClock(start)
	c.Advance(time.Second)
	if got := c.Now(); !got.Equal(start.Add(time.Second)) {
		t.Errorf("Now = %v", got)
	}
}
