// Package drivers is the one place that lists the reader drivers this
// build knows. Adding a driver is a folder under reader/ and a line here;
// nothing else names a driver.
package drivers

import (
	"slices"

	"github.com/punchclock/punchclock/reader"
	"github.com/punchclock/punchclock/reader/hid"
	"github.com/punchclock/punchclock/reader/keypad"
	"github.com/punchclock/punchclock/reader/osdp"
	"github.com/punchclock/punchclock/reader/pn532"
	"github.com/punchclock/punchclock/reader/r30x"
	"github.com/punchclock/punchclock/reader/rdm6300"
	"github.com/punchclock/punchclock/reader/wiegand"
)

// All lists every driver, in the order the documentation lists them.
var All = []reader.Driver{
	rdm6300.Driver,
	pn532.Driver,
	r30x.Driver,
	osdp.Driver,
	wiegand.Driver,
	keypad.Driver,
	hid.Driver,
}

// Lookup returns the driver called name.
func Lookup(name string) (reader.Driver, bool) {
	i := slices.IndexFunc(All, func(d reader.Driver) bool { return d.Name == name })
	if i < 0 {
		return reader.Driver{}, false
	}
	return All[i], true
}

// Names lists the drivers' names.
func Names() []string {
	names := make([]string, len(All))
	for i, d := range All {
		names[i] = d.Name
	}
	return names
}
