package gpioline

import (
	"errors"
	"testing"
)

// go-rpio must refuse the Pi 5 (its registers are not where go-rpio
// writes) and anything that is not a Pi 1 to 4.
func TestRPIOSupportedBoards(t *testing.T) {
	for compat, want := range map[string]bool{
		"raspberrypi,4-model-b\x00brcm,bcm2711\x00":    true,
		"raspberrypi,3-model-b\x00brcm,bcm2837\x00":    true,
		"raspberrypi,model-zero-w\x00brcm,bcm2835\x00": true,
		"raspberrypi,2-model-b\x00brcm,bcm2836\x00":    true,
		"raspberrypi,5-model-b\x00brcm,bcm2712\x00":    false,
		"brcm,bcm2711\x00brcm,bcm2712\x00":             false,
		"qemu,virt\x00":                                false,
		"":                                             false,
		"raspberrypi,4-model-b\x00brcm,bcm27110\x00":   false,
	} {
		if got := rpioSupported([]byte(compat)); got != want {
			t.Errorf("rpioSupported(%q) = %v", compat, got)
		}
	}
}

func TestRPIOLineNames(t *testing.T) {
	for name, want := range map[string]int{"GPIO0": 0, "GPIO17": 17, "GPIO53": 53} {
		if n, err := bcmNumber(name); err != nil || n != want {
			t.Errorf("bcmNumber(%q) = %d, %v", name, n, err)
		}
	}
	for _, name := range []string{"GPIO54", "GPIO-1", "GPIO017", "GPIO", "gpio17", "17", "GPIO1x"} {
		if _, err := bcmNumber(name); err == nil {
			t.Errorf("bcmNumber(%q) accepted", name)
		}
	}
}

// Not a Pi: OpenRPIO refuses before touching any memory.
func TestRPIORefusesThisMachine(t *testing.T) {
	if c, err := OpenRPIO(); err == nil {
		c.Close()
		t.Skip("this machine is a Raspberry Pi 1 to 4")
	} else if !errors.Is(err, ErrUnsupportedBoard) {
		t.Fatalf("OpenRPIO = %v", err)
	}
	if _, err := (&RPIO{}).Watch([]string{"GPIO4"}); !errors.Is(err, ErrNoEdges) {
		t.Fatalf("Watch = %v", err)
	}
}
