package gpioline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/host/v3/gpioioctl"
)

// The character-device backend: periph.io's gpioioctl, the Linux GPIO
// v2 ioctl interface, which is what current Raspberry Pi OS offers (it
// has no sysfs GPIO) on every Pi model, the Pi 5 included. It cannot be
// tested without hardware, so it is kept to a thin translation.
//
// Edge times: periph v3.8.5's LineSet.WaitForEdge reads the kernel's
// gpio_v2_line_event, whose timestamp_ns it drops, returning only the
// line and the edge. The edges are stamped here when WaitForEdge
// returns. Their order is the kernel's, exact; their times carry the
// scheduling delay of this goroutine, and edges read from a backlog are
// stamped closer together than they happened. See README.md.

// charDevPoll bounds one WaitForEdge, so that Close is noticed.
const charDevPoll = 100 * time.Millisecond

var (
	periphOnce sync.Once
	periphErr  error
)

// CharDev is a GPIO character device opened through periph.
type CharDev struct {
	chip  *gpioioctl.GPIOChip
	epoch time.Time

	mu     sync.Mutex
	reqs   map[interface{ Close() error }]struct{}
	closed bool
}

var _ Chip = (*CharDev)(nil)

// OpenCharDev opens the GPIO character device at path, e.g.
// "/dev/gpiochip0".
func OpenCharDev(path string) (*CharDev, error) {
	periphOnce.Do(func() { _, periphErr = driverreg.Init() })
	if periphErr != nil {
		return nil, fmt.Errorf("gpioline: periph: %w", periphErr)
	}
	want := path
	if p, err := filepath.EvalSymlinks(path); err == nil {
		want = p
	}
	if _, err := os.Stat(want); err != nil {
		return nil, fmt.Errorf("gpioline: %w", err)
	}
	for _, c := range gpioioctl.Chips {
		p := c.Path()
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		if p == want {
			return &CharDev{chip: c, epoch: time.Now(), reqs: make(map[interface{ Close() error }]struct{})}, nil
		}
	}
	return nil, fmt.Errorf("gpioline: %s: no such GPIO chip (periph found %d)", path, len(gpioioctl.Chips))
}

func (d *CharDev) track(r interface{ Close() error }) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		r.Close()
		return fmt.Errorf("gpioline: %s: %w", d.chip.Path(), ErrClosed)
	}
	d.reqs[r] = struct{}{}
	return nil
}

func (d *CharDev) untrack(r interface{ Close() error }) {
	d.mu.Lock()
	delete(d.reqs, r)
	d.mu.Unlock()
}

func (d *CharDev) line(name string) (*gpioioctl.GPIOLine, error) {
	l := d.chip.ByName(name)
	if l == nil {
		return nil, fmt.Errorf("gpioline: %s has no line %q", d.chip.Path(), name)
	}
	return l, nil
}

// Watch requests lines as inputs with pull-ups, reporting both edges.
func (d *CharDev) Watch(lines []string) (Edges, error) {
	index := make(map[int]int, len(lines))
	for i, name := range lines {
		l, err := d.line(name)
		if err != nil {
			return nil, err
		}
		index[l.Number()] = i
	}
	ls, err := d.chip.LineSet(gpioioctl.LineInput, gpio.BothEdges, gpio.PullUp, lines...)
	if err != nil {
		return nil, fmt.Errorf("gpioline: %s: watch %v: %w", d.chip.Path(), lines, err)
	}
	w := &charDevEdges{ls: ls, d: d, index: index, ch: make(chan Edge, simEdgeBuffer), done: make(chan struct{})}
	w.wg.Go(w.pump)
	if err := d.track(w); err != nil {
		return nil, err
	}
	return w, nil
}

type charDevEdges struct {
	ls    *gpioioctl.LineSet
	d     *CharDev
	index map[int]int // chip line offset -> index in the request
	ch    chan Edge
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	mu  sync.Mutex
	err error
}

// pump waits for edges, a bounded wait at a time so that it notices
// done; it alone touches ls until it returns, and then closes it.
func (w *charDevEdges) pump() {
	defer close(w.ch)
	defer w.ls.Close()
	for {
		select {
		case <-w.done:
			return
		default:
		}
		n, edge, err := w.ls.WaitForEdge(charDevPoll)
		at := time.Since(w.d.epoch)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			w.mu.Lock()
			w.err = fmt.Errorf("gpioline: %s: wait for edge: %w", w.d.chip.Path(), err)
			w.mu.Unlock()
			return
		}
		i, ok := w.index[n]
		if !ok || edge == gpio.NoEdge {
			continue
		}
		select {
		case w.ch <- Edge{Line: i, Rising: edge == gpio.RisingEdge, At: at}:
		case <-w.done:
			return
		}
	}
}

func (w *charDevEdges) C() <-chan Edge { return w.ch }

func (w *charDevEdges) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *charDevEdges) Close() error {
	w.once.Do(func() {
		close(w.done)
		w.wg.Wait()
		w.d.untrack(w)
	})
	return nil
}

// Inputs requests lines as inputs with pull-ups.
func (d *CharDev) Inputs(lines []string) (Inputs, error) {
	ls, err := d.chip.LineSet(gpioioctl.LineInput, gpio.NoEdge, gpio.PullUp, lines...)
	if err != nil {
		return nil, fmt.Errorf("gpioline: %s: inputs %v: %w", d.chip.Path(), lines, err)
	}
	in := &charDevInputs{ls: ls, d: d}
	if err := d.track(in); err != nil {
		return nil, err
	}
	return in, nil
}

type charDevInputs struct {
	ls   *gpioioctl.LineSet
	d    *CharDev
	once sync.Once
}

// Read reads every line in one ioctl; bit i of periph's value is line i
// of the request.
func (in *charDevInputs) Read() (uint64, error) {
	v, err := in.ls.Read(0)
	if err != nil {
		return 0, fmt.Errorf("gpioline: %s: read: %w", in.d.chip.Path(), err)
	}
	return uint64(v), nil
}

func (in *charDevInputs) Close() error {
	var err error
	in.once.Do(func() {
		err = in.ls.Close()
		in.d.untrack(in)
	})
	return err
}

// Output requests a line as an open-drain output. periph's request
// flags have no open-drain bit, so it is emulated: released is an input
// with pull-up, low is an output driving low.
func (d *CharDev) Output(name string) (Out, error) {
	l, err := d.line(name)
	if err != nil {
		return nil, err
	}
	o := &charDevOut{l: l, d: d}
	if err := o.Set(true); err != nil {
		return nil, err
	}
	if err := d.track(o); err != nil {
		return nil, err
	}
	return o, nil
}

type charDevOut struct {
	l    *gpioioctl.GPIOLine
	d    *CharDev
	once sync.Once
}

func (o *charDevOut) Set(high bool) error {
	var err error
	if high {
		err = o.l.In(gpio.PullUp, gpio.NoEdge)
	} else {
		err = o.l.Out(gpio.Low)
	}
	if err != nil {
		return fmt.Errorf("gpioline: %s: set %s: %w", o.d.chip.Path(), o.l.Name(), err)
	}
	return nil
}

func (o *charDevOut) Close() error {
	o.once.Do(func() {
		o.l.Close()
		o.d.untrack(o)
	})
	return nil
}

// Close releases every line requested through d. The chip itself stays
// open: periph opens each chip once per process.
func (d *CharDev) Close() error {
	d.mu.Lock()
	d.closed = true
	reqs := make([]interface{ Close() error }, 0, len(d.reqs))
	for r := range d.reqs {
		reqs = append(reqs, r)
	}
	d.mu.Unlock()
	var errs []error
	for _, r := range reqs {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}
