package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	bolt "go.etcd.io/bbolt"

	"github.com/punchclock/punchclock/punch"
	"github.com/punchclock/punchclock/roster"
)

// rawValue is a record of the size of a stored punch event.
var rawValue = func() []byte {
	b := make([]byte, 250)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}()

func openRaw(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o640, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte("r"))
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func putRaw(tx *bolt.Tx) error {
	b := tx.Bucket([]byte("r"))
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return b.Put(k[:], rawValue)
}

// rawCommit times one-record bbolt Updates (fsync included) on the work
// directory's file system, and counts the bytes each writes: the floor
// for one durable decision.
func (r *run) rawCommit(ctx context.Context) error {
	path := filepath.Join(r.dir, "raw-commit.db")
	db, err := openRaw(path)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	defer db.Close()
	for range 20 { // warm up: grow the file, fault the mmap in
		if err := db.Update(putRaw); err != nil {
			return err
		}
	}
	w0, err := procIO("self")
	if err != nil {
		return err
	}
	lat := make([]time.Duration, r.opts.RawCommits)
	for i := range lat {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t := time.Now()
		if err := db.Update(putRaw); err != nil {
			return err
		}
		lat[i] = time.Since(t)
	}
	w1, err := procIO("self")
	if err != nil {
		return err
	}
	r.commit = newDist(lat)
	r.commitBytes = float64(w1-w0) / float64(len(lat))
	r.logf("one-record commit p50 %s p99 %s, %s written per commit", ms(r.commit.pct(50)), ms(r.commit.pct(99)), kib(r.commitBytes))
	r.rep.note("raw bbolt one-record Update (same file system, fsync): p50 %s, p99 %s over %d commits; %s written per commit",
		ms(r.commit.pct(50)), ms(r.commit.pct(99)), len(lat), kib(r.commitBytes))
	return nil
}

// rawBatch measures bbolt Batch calls per second from 8 goroutines, each
// putting one record per call, with bbolt's default batching (up to 1000
// calls or 10 ms per transaction).
func (r *run) rawBatch(ctx context.Context) error {
	path := filepath.Join(r.dir, "raw-batch.db")
	db, err := openRaw(path)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	defer db.Close()
	var n atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, r.opts.Readers)
	began := time.Now()
	deadline := began.Add(r.opts.BatchFor)
	for range r.opts.Readers {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := db.Batch(putRaw); err != nil {
					errc <- err
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	took := time.Since(began)
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	r.batchRate = float64(n.Load()) / took.Seconds()
	r.logf("%d goroutines: %s Batch commits", r.opts.Readers, perSec(r.batchRate))
	r.rep.note("raw bbolt Batch, %d goroutines, default MaxBatchDelay %v: %s one-record calls",
		r.opts.Readers, db.MaxBatchDelay, perSec(r.batchRate))
	return nil
}

// subscriber counts the messages on one topic and passes their arrival
// times on.
type subscriber struct {
	client  mqtt.Client
	n       atomic.Int64
	arrived chan time.Time // nil: count only
}

func newSubscriber(url, id, topic string, arrivals int) (*subscriber, error) {
	s := &subscriber{}
	if arrivals > 0 {
		s.arrived = make(chan time.Time, arrivals)
	}
	handler := func(_ mqtt.Client, m mqtt.Message) {
		at := time.Now()
		if m.Retained() {
			return
		}
		s.n.Add(1)
		if s.arrived != nil {
			select {
			case s.arrived <- at:
			default:
			}
		}
	}
	s.client = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(id).
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(false))
	if tok := s.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("subscriber connect: %w", tokErr(tok))
	}
	if tok := s.client.Subscribe(topic, 1, handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		s.client.Disconnect(100)
		return nil, fmt.Errorf("subscribe %s: %w", topic, tokErr(tok))
	}
	return s, nil
}

func (s *subscriber) close() { s.client.Disconnect(100) }

// waitCount waits until n messages arrived.
func (s *subscriber) waitCount(ctx context.Context, n int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for s.n.Load() < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("subscriber got %d of %d messages in %v", s.n.Load(), n, timeout)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

func tokErr(t mqtt.Token) error {
	if err := t.Error(); err != nil {
		return err
	}
	return errors.New("timed out")
}

// connectBare connects a bare paho client and a subscriber on topic
// (passing on up to arrivals arrival times).
func (r *run) connectBare(topic string, arrivals int) (mqtt.Client, *subscriber, error) {
	sub, err := newSubscriber(r.broker.URL(), "bench-bare-sub", topic, arrivals)
	if err != nil {
		return nil, nil, err
	}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(r.broker.URL()).SetClientID("bench-bare-pub").
		SetCleanSession(true).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		sub.close()
		return nil, nil, fmt.Errorf("connect: %w", tokErr(tok))
	}
	return c, sub, nil
}

func waitPub(t mqtt.Token) error {
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return fmt.Errorf("publish: %w", tokErr(t))
	}
	return nil
}

// pahoRoundTrip times RoundTrips single QoS 1 publishes of a shift's
// JSON by a bare paho client, each until a subscriber has it, on the
// idle broker: the floor of exit → shift, measured before that figure.
func (r *run) pahoRoundTrip(ctx context.Context) error {
	payload, err := sampleShift()
	if err != nil {
		return err
	}
	topic := "bench/bare/roundtrip"
	c, sub, err := r.connectBare(topic, r.opts.RoundTrips)
	if err != nil {
		return err
	}
	defer sub.close()
	defer c.Disconnect(100)
	rt := make([]time.Duration, r.opts.RoundTrips)
	for i := range rt {
		t0 := time.Now()
		if err := waitPub(c.Publish(topic, 1, false, payload)); err != nil {
			return err
		}
		select {
		case at := <-sub.arrived:
			rt[i] = at.Sub(t0)
		case <-time.After(10 * time.Second):
			return errors.New("round trip: subscriber got nothing in 10s")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.roundTrip = newDist(rt)
	r.logf("bare paho round trip p50 %s p99 %s", ms(r.roundTrip.pct(50)), ms(r.roundTrip.pct(99)))
	r.rep.note("bare paho QoS 1 publish of one shift (%d B) → subscriber, idle broker: p50 %s, p99 %s over %d",
		len(payload), ms(r.roundTrip.pct(50)), ms(r.roundTrip.pct(99)), len(rt))
	return nil
}

// sampleShift is the JSON of a shift as the agent decides one.
func sampleShift() ([]byte, error) {
	ros, err := makeRoster(64)
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(timezone)
	if err != nil {
		return nil, err
	}
	at := time.Date(2026, 3, 2, 8, 0, 0, 0, loc)
	in := punch.Decide(punch.Input{Reader: "front", Mode: punch.ModeToggle, CredType: roster.Card, CredVal: card(0),
		At: at, ClockSynced: true, Employee: &ros.Employees[0]})
	out := punch.Decide(punch.Input{Reader: "front", Mode: punch.ModeToggle, CredType: roster.Card, CredVal: card(0),
		At: at.Add(8 * time.Hour), ClockSynced: true, Employee: &ros.Employees[0], Open: in.NewOpen})
	if out.Shift == nil {
		return nil, errors.New("the sample exit made no shift")
	}
	return json.Marshal(out.Shift)
}

// barePaho measures a bare paho client publishing Backlog shift-sized
// messages at QoS 1 with a window of 64 in flight (the uplink's default),
// to the same broker with a subscriber attached, as the drain will: the
// ceiling for the uplink.
func (r *run) barePaho(ctx context.Context, payloads [][]byte) error {
	const window = 64
	topic := "bench/bare/shifts"
	c, sub, err := r.connectBare(topic, 0)
	if err != nil {
		return err
	}
	defer sub.close()
	defer c.Disconnect(100)
	wait := waitPub

	base := sub.n.Load()
	queue := make([]mqtt.Token, 0, window)
	began := time.Now()
	for i := range r.opts.Backlog {
		if len(queue) == window {
			if err := wait(queue[0]); err != nil {
				return err
			}
			queue = queue[1:]
		}
		queue = append(queue, c.Publish(topic, 1, false, payloads[i%len(payloads)]))
	}
	for _, t := range queue {
		if err := wait(t); err != nil {
			return err
		}
	}
	took := time.Since(began)
	r.bareRate = float64(r.opts.Backlog) / took.Seconds()
	if err := sub.waitCount(ctx, base+int64(r.opts.Backlog), time.Minute); err != nil {
		return err
	}
	r.logf("bare paho: %s (window %d)", perSec(r.bareRate), window)
	r.rep.note("bare paho QoS 1 publisher, window %d, %d shift payloads of ~%d B, subscriber attached: %s",
		window, r.opts.Backlog, len(payloads[0]), perSec(r.bareRate))
	return nil
}
