package store

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"sync"
)

// Records are stored deflated with a preset dictionary: an event is
// 200-odd bytes of JSON whose field names, values and id prefix repeat
// in every record, so a dictionary holding them brings it to a fraction.
// The dictionary is made once per database (it holds the device and
// database ids of the record ids) and kept in the meta bucket, so that
// records stay readable whatever the configuration says later.
// Decompression gives back the exact bytes that were compressed: a
// record is published byte for byte as it was first published.
//
// Codecs (byte 1 of a stored record's value):
const (
	codecRaw     = 0
	codecDeflate = 1
)

var kDict = []byte("deflate_dict")

// makeDict returns the dictionary of a new database. Deflate looks for
// matches nearest the end first: the most common strings go last.
func makeDict(deviceID, dbID string) []byte {
	prefix := deviceID + "-" + dbID + "-"
	return []byte(`"flags":["clock_unsynced"],"flags":["no_payroll_no"],"reason":"unknown_credential","credential_value":"0A00` +
		`"reason":"outside_contract","reason":"double_in","reason":"double_out","direction":"","decision":"denied",` +
		`{"id":"` + prefix + `s1","device_id":"` + deviceID + `","employee_id":"","payroll_no":"","department":"","in":"2026-01-01T08:00:00+01:00",` +
		`"out":"2026-01-01T17:00:00+01:00","in_reader":"front","out_reader":"front","duration_s":28800,"flags":[],` +
		`"in_event":"` + prefix + `e1","out_event":"` + prefix + `e2"}` +
		`{"id":"` + prefix + `e2","device_id":"` + deviceID + `","at":"2026-01-01T08:00:00.000+01:00","reader":"front",` +
		`"employee_id":"","credential_type":"card","direction":"out","decision":"accepted","reason":""}` +
		`{"id":"` + prefix + `e1","device_id":"` + deviceID + `","at":"2026-01-01T08:00:00+01:00","reader":"front",` +
		`"employee_id":"","credential_type":"card","direction":"in","decision":"accepted","reason":""}`)
}

// codec compresses and decompresses records with one database's
// dictionary. It is safe for concurrent use.
type codec struct {
	dict    []byte
	writers sync.Pool // *flate.Writer
	readers sync.Pool // io.ReadCloser that is a flate.Resetter
}

func newCodec(dict []byte) *codec { return &codec{dict: dict} }

// compress returns the deflated payload, or nil when deflating does not
// make it smaller.
func (c *codec) compress(payload []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(payload))
	w, _ := c.writers.Get().(*flate.Writer)
	if w == nil {
		var err error
		if w, err = flate.NewWriterDict(&buf, flate.BestCompression, c.dict); err != nil {
			return nil // cannot happen with a valid level
		}
	} else {
		w.Reset(&buf)
	}
	defer c.writers.Put(w)
	if _, err := w.Write(payload); err != nil {
		return nil
	}
	if err := w.Close(); err != nil || buf.Len() >= len(payload) {
		return nil
	}
	return buf.Bytes()
}

func (c *codec) decompress(seq uint64, z []byte) ([]byte, error) {
	r, _ := c.readers.Get().(io.ReadCloser)
	if r == nil {
		r = flate.NewReaderDict(bytes.NewReader(z), c.dict)
	} else if err := r.(flate.Resetter).Reset(bytes.NewReader(z), c.dict); err != nil {
		return nil, fmt.Errorf("%w: record %d: %v", ErrCorrupt, seq, err)
	}
	defer c.readers.Put(r)
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%w: record %d: %v", ErrCorrupt, seq, err)
	}
	return out, nil
}
