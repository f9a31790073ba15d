package roster

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Index answers "who holds this credential?" from memory. It is built
// once from a validated roster and never changes, so any number of
// goroutines may read it without locks; a new roster means a new Index
// (swap it in with an atomic.Pointer). A nil *Index is an empty roster.
//
// Cards are keyed by number, not by string: a card credential is ten hex
// digits (see CardKeys), so its 40-bit value is its key, and a read is
// looked up under its own value and under the ten hex digits that spell
// the decimal of its last four bytes. A lookup allocates nothing.
type Index struct {
	version int64
	emps    []Employee
	byID    map[string]*Employee
	cards   map[uint64]*Employee
	others  map[typedValue]*Employee // pins, fingerprints, UIDs, Wiegand numbers
	// Projections of EM cards that other formats read: the last three
	// bytes (a 26-bit Wiegand read) and the last four (the decimal a
	// keyboard wedge types). Several holders make a read ambiguous.
	em24 map[uint32]holders
	em32 map[uint32]holders
	// The access groups, by name, with their windows compiled.
	groups map[string]*AccessGroup
}

// holders is the first employee under a key, and whether another holds
// it too.
type holders struct {
	e         *Employee
	ambiguous bool
}

func addHolder(m map[uint32]holders, k uint32, e *Employee) {
	h, ok := m[k]
	switch {
	case !ok:
		m[k] = holders{e: e}
	case h.e != e:
		h.ambiguous = true
		m[k] = h
	}
}

// NewIndex builds the index of r, which must have passed Validate (when
// two employees hold one credential, the first is found). The index
// keeps its own copy of the employees and access groups: changing r
// later does not change it. It compiles the groups' windows itself, as
// a roster loaded from the store has not been through Validate; a group
// whose windows do not compile (a roster that would fail Validate) is
// outside every window. NewIndex(nil) is nil.
func NewIndex(r *Roster) *Index {
	if r == nil {
		return nil
	}
	ncred, ncard, ncodes := 0, 0, 0
	for i := range r.Employees {
		ncodes += len(r.Employees[i].JobCodes)
		ncred += len(r.Employees[i].Credentials)
		for _, c := range r.Employees[i].Credentials {
			if c.Type == Card {
				ncard++
			}
		}
	}
	x := &Index{
		version: r.Version,
		emps:    make([]Employee, len(r.Employees)),
		byID:    make(map[string]*Employee, len(r.Employees)),
		cards:   make(map[uint64]*Employee, ncard),
		others:  make(map[typedValue]*Employee, ncred-ncard),
		em24:    make(map[uint32]holders, ncard),
		em32:    make(map[uint32]holders, ncard),
		groups:  make(map[string]*AccessGroup, len(r.AccessGroups)),
	}
	for i := range r.AccessGroups {
		g := &AccessGroup{
			Name:    r.AccessGroups[i].Name,
			Readers: slices.Clone(r.AccessGroups[i].Readers),
			Windows: slices.Clone(r.AccessGroups[i].Windows),
		}
		if err := g.compile(); err != nil {
			g.spans = nil // not a validated roster: outside every window
		}
		if _, dup := x.groups[g.Name]; !dup {
			x.groups[g.Name] = g
		}
	}
	creds := make([]Credential, 0, ncred) // one backing array for all copies
	var codes []string
	if ncodes > 0 {
		codes = make([]string, 0, ncodes)
	}
	for i := range r.Employees {
		e := &x.emps[i]
		*e = r.Employees[i]
		start := len(creds)
		creds = append(creds, e.Credentials...)
		e.Credentials = creds[start:len(creds):len(creds)]
		if e.JobCodes != nil {
			start := len(codes)
			codes = append(codes, e.JobCodes...)
			e.JobCodes = codes[start:len(codes):len(codes)]
		}
		if _, dup := x.byID[e.ID]; !dup {
			x.byID[e.ID] = e
		}
		for _, c := range e.Credentials {
			if c.Type == Card {
				if k, ok := otherCardKey(c.Value); ok {
					if _, dup := x.others[k]; !dup {
						x.others[k] = e
					}
					continue
				}
				if k, ok := hex40(c.Value); ok {
					if _, dup := x.cards[k]; !dup {
						x.cards[k] = e
					}
					addHolder(x.em24, uint32(k)&0xFFFFFF, e)
					addHolder(x.em32, uint32(k), e)
					// Ten decimal digits are also the number printed on
					// an EM card (its last four bytes), as an EM read
					// matches them: project that reading too.
					if n, ok := decimal32(c.Value); ok && uint32(k) != n {
						addHolder(x.em24, n&0xFFFFFF, e)
						addHolder(x.em32, n, e)
					}
				}
				continue
			}
			if c.Type == Fingerprint && !e.BiometricConsent {
				continue // no consent: the finger is not processed
			}
			k := typedValue{c.Type, c.Value}
			if _, dup := x.others[k]; !dup {
				x.others[k] = e
			}
		}
	}
	return x
}

// Lookup returns the employee who holds the credential, or nil. value is
// as a reader sends it: for a card ten hex digits, found under its hex
// form and under the decimal of its last four bytes, exactly as CardKeys
// says. The employee is shared: do not modify it.
func (x *Index) Lookup(typ, value string) *Employee {
	if x == nil {
		return nil
	}
	if typ != Card {
		return x.others[typedValue{typ, value}]
	}
	read, ok := hex40(value)
	if !ok {
		return nil // every card credential is ten hex digits
	}
	if e := x.cards[read]; e != nil {
		return e
	}
	return x.cards[decimalAsHex40(uint32(read))]
}

// Find returns the employee who holds the credential a read presents, or
// nil. format is the read's card format (reader.Format*: "em4100",
// "uid", "wiegand26", "wiegand34", "wiegand37", "typed", "raw"; empty is
// em4100). ambiguous is true, with a nil employee, when the read matches
// credentials of two employees (a 26-bit read of two EM cards that share
// their last three bytes): the read is denied, never guessed.
func (x *Index) Find(typ, format, value string) (e *Employee, ambiguous bool) {
	if x == nil {
		return nil, false
	}
	if typ != Card {
		return x.others[typedValue{typ, value}], false
	}
	switch format {
	case "", "em4100":
		return x.Lookup(Card, value), false
	case "uid":
		if !isUID(value) {
			return nil, false
		}
		return x.other(strings.ToUpper(value)), false
	case "wiegand26", "wiegand34", "wiegand37":
		fac, card, ok := facilityCard(value)
		if !ok {
			return nil, false
		}
		direct := x.other(fmt.Sprintf("%d:%d", fac, card))
		// Only a 26-bit read is also an EM card's last three bytes.
		if bits, ok := wiegand26(fac, card); ok && format == "wiegand26" {
			return merge(direct, x.em24[bits])
		}
		return direct, false
	case "typed":
		return x.typed(value)
	}
	return nil, false
}

// other is the holder of a card value that is not an EM card's, in its
// canonical spelling (a UID, a Wiegand number).
func (x *Index) other(v string) *Employee {
	k, ok := otherCardKey(v)
	if !ok {
		return nil
	}
	return x.others[k]
}

// typed finds what a keyboard wedge typed: most type an EM card's
// ten-digit decimal, some its hex, a UID or facility:card.
func (x *Index) typed(v string) (*Employee, bool) {
	v = strings.TrimSpace(v)
	if isDigits(v) && len(v) <= 10 {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n > math.MaxUint32 {
			return x.Lookup(Card, v), false // ten digits, not a decimal: an EM card's hex
		}
		// The decimal of an EM card: a decimal credential holds it
		// (kept as ten digits, which are also an EM card's hex), or an
		// EM card whose last four bytes are n.
		return merge(x.cards[decimalAsHex40(uint32(n))], x.em32[uint32(n)])
	}
	c, ok := normalizeCard(v)
	if !ok {
		return nil, false
	}
	if _, ok := otherCardKey(c); ok {
		return x.other(c), false
	}
	return x.Lookup(Card, c), false
}

// merge combines the exact holder of a read with the holders of the EM
// cards it projects onto.
func merge(direct *Employee, h holders) (*Employee, bool) {
	switch {
	case h.ambiguous:
		return nil, true
	case h.e == nil:
		return direct, false
	case direct == nil || direct == h.e:
		return h.e, false
	}
	return nil, true
}

// Employee returns the employee with the given roster id, or nil. The
// employee is shared: do not modify it.
func (x *Index) Employee(id string) *Employee {
	if x == nil {
		return nil
	}
	return x.byID[id]
}

// Each calls fn for every employee, in roster order. The employees are
// shared: do not modify them.
func (x *Index) Each(fn func(*Employee)) {
	if x == nil {
		return
	}
	for i := range x.emps {
		fn(&x.emps[i])
	}
}

// Group returns the access group with the given name, or nil: for "",
// for a name the roster does not have, and for a nil Index. A nil group
// allows every reader at any time (see AccessGroup), which is what an
// employee without access_group gets; the roster check makes sure that
// every access_group names a group. The group is shared: do not modify
// it.
func (x *Index) Group(name string) *AccessGroup {
	if x == nil || name == "" {
		return nil
	}
	return x.groups[name]
}

// Version is the roster's version; 0 for a nil Index.
func (x *Index) Version() int64 {
	if x == nil {
		return 0
	}
	return x.version
}

// Len is the number of employees; 0 for a nil Index.
func (x *Index) Len() int {
	if x == nil {
		return 0
	}
	return len(x.emps)
}
