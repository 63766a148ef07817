package avro

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/sluicehq/sluice/engine"
)

// Canonical returns the Parsing Canonical Form of t (Avro specification,
// "Parsing Canonical Form for Schemas"): full names, only the attributes that
// matter for reading (name, type, fields, symbols, items, values, size) in
// that order, no logical types, defaults or docs, no whitespace, and a named
// type written in full only where it first appears.
func Canonical(t *engine.Type) []byte {
	w := &schemaWriter{seen: make(map[*engine.Type]bool), canonical: true}
	w.typ(t)
	return w.buf.Bytes()
}

// SchemaJSON returns t as an Avro schema in the layout of the Parsing
// Canonical Form (same attribute order, full names, no whitespace) but keeping
// what a reader needs to see the same values: logical types with precision
// and scale, field defaults and aliases, enum defaults. ParseSchema of the
// result yields a type equal to t, except for docs, which are dropped.
func SchemaJSON(t *engine.Type) []byte {
	w := &schemaWriter{seen: make(map[*engine.Type]bool)}
	w.typ(t)
	return w.buf.Bytes()
}

// Fingerprint is the 64-bit Rabin fingerprint (CRC-64-AVRO) of t's Parsing
// Canonical Form, as the specification defines it; the "header" writer
// schema mode names schemas by it.
func Fingerprint(t *engine.Type) uint64 {
	return Rabin(Canonical(t))
}

// rabinEmpty is the CRC-64-AVRO polynomial and initial value. Part of the
// format, never change.
const rabinEmpty uint64 = 0xc15d213aa4d7a795

// Rabin computes the CRC-64-AVRO fingerprint of b. Its 256-entry table is
// rebuilt on every call (a few microseconds), so that the package keeps no
// global state; fingerprints are computed once per schema, never per record.
func Rabin(b []byte) uint64 {
	var table [256]uint64
	for i := range table {
		fp := uint64(i)
		for j := 0; j < 8; j++ {
			fp = (fp >> 1) ^ (rabinEmpty & -(fp & 1))
		}
		table[i] = fp
	}
	fp := rabinEmpty
	for _, c := range b {
		fp = (fp >> 8) ^ table[byte(fp)^c]
	}
	return fp
}

type schemaWriter struct {
	buf       bytes.Buffer
	seen      map[*engine.Type]bool
	canonical bool
}

func (w *schemaWriter) str(s string) {
	b, _ := json.Marshal(s) // a string always marshals
	w.buf.Write(b)
}

func (w *schemaWriter) key(k string) {
	w.str(k)
	w.buf.WriteByte(':')
}

func (w *schemaWriter) logical(t *engine.Type) {
	if w.canonical || t.Logical == engine.NoLogical {
		return
	}
	w.buf.WriteString(`,"logicalType":`)
	w.str(t.Logical.String())
	if t.Logical == engine.Decimal {
		w.buf.WriteString(`,"precision":` + strconv.Itoa(t.Precision) + `,"scale":` + strconv.Itoa(t.Scale))
	}
}

func (w *schemaWriter) typ(t *engine.Type) {
	switch t.Kind {
	case engine.KindRecord, engine.KindEnum, engine.KindFixed:
		if w.seen[t] {
			w.str(t.Name)
			return
		}
		w.seen[t] = true
	}
	switch t.Kind {
	case engine.KindUnion:
		w.buf.WriteByte('[')
		for i, b := range t.Branches {
			if i > 0 {
				w.buf.WriteByte(',')
			}
			w.typ(b)
		}
		w.buf.WriteByte(']')
	case engine.KindRecord:
		w.buf.WriteString(`{"name":`)
		w.str(t.Name)
		w.buf.WriteString(`,"type":"record","fields":[`)
		for i, f := range t.Fields {
			if i > 0 {
				w.buf.WriteByte(',')
			}
			w.buf.WriteString(`{"name":`)
			w.str(f.Name)
			w.buf.WriteString(`,"type":`)
			w.typ(f.Type)
			if !w.canonical {
				if f.Default != nil {
					w.buf.WriteString(`,"default":`)
					w.buf.Write(f.Default)
				}
				if len(f.Aliases) > 0 {
					w.buf.WriteString(`,"aliases":[`)
					for j, a := range f.Aliases {
						if j > 0 {
							w.buf.WriteByte(',')
						}
						w.str(a)
					}
					w.buf.WriteByte(']')
				}
			}
			w.buf.WriteByte('}')
		}
		w.buf.WriteString(`]}`)
	case engine.KindEnum:
		w.buf.WriteString(`{"name":`)
		w.str(t.Name)
		w.buf.WriteString(`,"type":"enum","symbols":[`)
		for i, s := range t.Symbols {
			if i > 0 {
				w.buf.WriteByte(',')
			}
			w.str(s)
		}
		w.buf.WriteByte(']')
		if !w.canonical && t.EnumDefault >= 0 && t.EnumDefault < len(t.Symbols) {
			w.buf.WriteString(`,"default":`)
			w.str(t.Symbols[t.EnumDefault])
		}
		w.buf.WriteByte('}')
	case engine.KindFixed:
		w.buf.WriteString(`{"name":`)
		w.str(t.Name)
		w.buf.WriteString(`,"type":"fixed","size":` + strconv.Itoa(t.Size))
		w.logical(t)
		w.buf.WriteByte('}')
	case engine.KindArray:
		w.buf.WriteString(`{"type":"array","items":`)
		w.typ(t.Items)
		w.buf.WriteByte('}')
	case engine.KindMap:
		w.buf.WriteString(`{"type":"map","values":`)
		w.typ(t.Items)
		w.buf.WriteByte('}')
	default:
		if w.canonical || t.Logical == engine.NoLogical {
			w.str(t.Kind.String())
			return
		}
		w.buf.WriteString(`{"type":`)
		w.str(t.Kind.String())
		w.logical(t)
		w.buf.WriteByte('}')
	}
}
