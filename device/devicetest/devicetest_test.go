package devicetest_test

import (
	"slices"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/punchclock/punchclock/device/devicetest"
)

func TestClock(t *testing.T) {
	c := devicetest.NewClock()
	var got []string
	at := func(name string) func() {
		return func() { got = append(got, name+"@"+c.Elapsed().String()) }
	}
	c.AfterFunc(2*time.Second, at("b"))
	c.AfterFunc(time.Second, func() {
		at("a")()
		c.AfterFunc(500*time.Millisecond, at("a+")) // due within the same Advance
	})
	stopped := c.AfterFunc(1500*time.Millisecond, at("never"))
	c.AfterFunc(2*time.Second, at("b2")) // same time as b: in scheduling order
	if !stopped.Stop() {
		t.Error("Stop of a pending timer returned false")
	}
	if stopped.Stop() {
		t.Error("second Stop returned true")
	}
	c.Advance(999 * time.Millisecond)
	if len(got) != 0 {
		t.Errorf("fired early: %v", got)
	}
	c.Advance(5 * time.Second)
	want := []string{"a@1s", "a+@1.5s", "b@2s", "b2@2s"}
	if !slices.Equal(got, want) {
		t.Errorf("fired %v, want %v", got, want)
	}
	if c.Elapsed() != 5999*time.Millisecond || c.Pending() != 0 {
		t.Errorf("elapsed %v, pending %d", c.Elapsed(), c.Pending())
	}
}

func TestPin(t *testing.T) {
	p := devicetest.NewPin("GPIO4")
	for _, l := range []gpio.Level{gpio.High, gpio.High, gpio.Low, gpio.High, gpio.Low} {
		p.Out(l)
	}
	if p.Rises() != 2 || p.Level() != gpio.Low || len(p.History()) != 5 || p.Name() != "GPIO4" {
		t.Errorf("rises %d, level %v, history %v", p.Rises(), p.Level(), p.History())
	}
}
