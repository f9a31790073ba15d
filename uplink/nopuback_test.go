package uplink

import (
	"bufio"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stingyBroker speaks just enough MQTT 3.1.1 to accept a connection and a
// subscription, and never acknowledges a PUBLISH. Each connection is cut
// after a while so that the client reconnects and resends.
type stingyBroker struct {
	ln        net.Listener
	wg        sync.WaitGroup
	publishes atomic.Int64
	connects  atomic.Int64
}

func newStingyBroker(t *testing.T, cutAfter time.Duration) *stingyBroker {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stingyBroker{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.connects.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				timer := time.AfterFunc(cutAfter, func() { c.Close() })
				defer timer.Stop()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *stingyBroker) url() string { return "tcp://" + s.ln.Addr().String() }

func (s *stingyBroker) serve(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		typ, body, err := readPacket(r)
		if err != nil {
			return
		}
		var reply []byte
		switch typ >> 4 {
		case 1: // CONNECT
			reply = []byte{
				0x20, 0x02, // CONNACK, remaining length 2
				0x00, // session present: no
				0x00, // return code: accepted
			}
		case 3: // PUBLISH: swallowed, never PUBACKed
			s.publishes.Add(1)
		case 8: // SUBSCRIBE: body starts with the packet id
			reply = []byte{
				0x90, 0x03, // SUBACK, remaining length 3
				body[0], body[1], // packet id
				0x01, // granted QoS 1
			}
		case 12: // PINGREQ
			reply = []byte{0xD0, 0x00} // PINGRESP
		case 14: // DISCONNECT
			return
		}
		if reply != nil {
			if _, err := c.Write(reply); err != nil {
				return
			}
		}
	}
}

// readPacket reads one MQTT control packet: the type byte, the remaining
// length (a base-128 varint, low digits first) and the body.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	typ, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; i < 4; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			break
		}
		mult *= 128
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return typ, body, err
}

// Paho, with CleanSession=false and its own reconnect, completes the
// tokens of publishes it resends after a reconnect without an error before
// any PUBACK (messageIds.claimID). Against a broker that never sends a
// PUBACK and cuts every connection, the uplink must report nothing Sent,
// and must not take its rows for poison either: the broker never proved
// it acknowledges anything, so no row gets a strike (after the first
// session the oldest row waits for the status's PUBACK, which never
// comes, and only the status is published).
func TestNoRemovalWithoutPuback(t *testing.T) {
	s := newStingyBroker(t, 150*time.Millisecond)
	ob := newMemOutbox()
	ob.addN(100)
	acks := atomic.Int64{}
	start(t, s.url(), ob, func(c *Config) {
		c.Window = 10
		c.MaxTries = 1
		c.MaxReconnectInterval = 250 * time.Millisecond
		c.OnAcked = func(n int, _ time.Time) { acks.Add(int64(n)) }
	})
	eventually(t, 10*time.Second, "6 connections with publishes", func() bool {
		return s.connects.Load() >= 6 && s.publishes.Load() >= 10+6
	})
	rej, tries := ob.rejections()
	if n := ob.len(); n != 100 || acks.Load() != 0 || tries != 0 {
		t.Fatalf("outbox holds %d of 100 rows (%d reported acked, %d Reject calls %v) though nothing was acknowledged",
			n, acks.Load(), tries, rej)
	}
}
