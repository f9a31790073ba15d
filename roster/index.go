package roster

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
	others  map[typedValue]*Employee // pins and fingerprints
}

// NewIndex builds the index of r, which must have passed Validate (when
// two employees hold one credential, the first is found). The index
// keeps its own copy of the employees: changing r later does not change
// it. NewIndex(nil) is nil.
func NewIndex(r *Roster) *Index {
	if r == nil {
		return nil
	}
	ncred, ncard := 0, 0
	for i := range r.Employees {
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
	}
	creds := make([]Credential, 0, ncred) // one backing array for all copies
	for i := range r.Employees {
		e := &x.emps[i]
		*e = r.Employees[i]
		start := len(creds)
		creds = append(creds, e.Credentials...)
		e.Credentials = creds[start:len(creds):len(creds)]
		if _, dup := x.byID[e.ID]; !dup {
			x.byID[e.ID] = e
		}
		for _, c := range e.Credentials {
			if c.Type == Card {
				if k, ok := hex40(c.Value); ok {
					if _, dup := x.cards[k]; !dup {
						x.cards[k] = e
					}
				}
				continue
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

// Employee returns the employee with the given roster id, or nil. The
// employee is shared: do not modify it.
func (x *Index) Employee(id string) *Employee {
	if x == nil {
		return nil
	}
	return x.byID[id]
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
