package avro

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/engine"
)

// RowName is the name given to a root record that has none (a type built by
// the SQL planner); nested unnamed types are named after their path below it.
const RowName = "sluice.Row"

// Canonical returns the Parsing Canonical Form of t (Avro specification,
// "Parsing Canonical Form for Schemas"): full names, only the attributes that
// matter for reading (name, type, fields, symbols, items, values, size) in
// that order, no logical types, defaults, aliases or docs, no whitespace,
// and a named type written in full only where it first appears.
func Canonical(t *engine.Type) []byte {
	w := schemaWriter{defined: map[string]*engine.Type{}, canonical: true}
	_ = w.write(t, RowName) // only a default that is not JSON fails, and canonical form has none
	return w.buf
}

// Schema returns t as an Avro schema (JSON) in the layout of the Parsing
// Canonical Form (same attribute order, full names, no whitespace) but
// keeping what a reader needs to see the same values: docs, logical types
// with precision and scale, field defaults (Field.Default, as given) and
// aliases, enum defaults. Named types (records, enums, fixed) are defined
// where first met and referenced by full name afterwards; a type without a
// name is named after its path below RowName; names, symbols and aliases
// that Avro would reject are rewritten with underscores (the binary encoding
// does not depend on them). A schema that the decoder in source/avro parsed
// comes back as a type equal to t.
func Schema(t *engine.Type) ([]byte, error) {
	w := schemaWriter{defined: map[string]*engine.Type{}}
	if err := w.write(t, RowName); err != nil {
		return nil, err
	}
	return w.buf, nil
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

// schemaWriter writes both forms: canonical drops everything but what
// reading needs.
type schemaWriter struct {
	buf       []byte
	defined   map[string]*engine.Type
	canonical bool
}

// str writes s as a JSON string, with <, > and & kept as they are (a schema
// is never embedded in HTML).
func (w *schemaWriter) str(s string) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	w.buf = append(w.buf, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
}

func (w *schemaWriter) key(k string) {
	w.buf = append(w.buf, ',')
	w.str(k)
	w.buf = append(w.buf, ':')
}

// name returns the full name t is written under, and whether it is already
// defined (so that only a reference is due).
func (w *schemaWriter) name(t *engine.Type, fallback string) (string, bool) {
	name := t.Name
	if name == "" {
		name = fallback
	}
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = Name(p)
	}
	name = strings.Join(parts, ".")
	for i := 2; ; i++ {
		prev, ok := w.defined[name]
		if !ok {
			w.defined[name] = t
			return name, false
		}
		if prev == t {
			return name, true
		}
		// Two different types under one name: keep both, renamed.
		name = strings.Join(parts, ".") + "_" + strconv.Itoa(i)
	}
}

// define writes a reference to the named type t when it is already defined
// and returns false; otherwise it opens t's definition, {"name":N,"type":K,
// and returns its full name.
func (w *schemaWriter) define(t *engine.Type, path string) (string, bool) {
	name, done := w.name(t, path)
	if done {
		w.str(name)
		return name, false
	}
	w.buf = append(w.buf, `{"name":`...)
	w.str(name)
	w.buf = append(w.buf, `,"type":`...)
	w.str(t.Kind.String())
	return name, true
}

// Name rewrites s into a valid Avro name, [A-Za-z_][A-Za-z0-9_]*: every
// other byte becomes '_', and a leading digit gets a '_' in front.
func Name(s string) string {
	ok := s != ""
	for i := 0; i < len(s) && ok; i++ {
		c := s[i]
		ok = c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9'
	}
	if ok {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] >= '0' && b[0] <= '9' {
		b = append([]byte{'_'}, b...)
	}
	return string(b)
}

func (w *schemaWriter) write(t *engine.Type, path string) error {
	switch t.Kind {
	case engine.KindNull, engine.KindBool, engine.KindInt, engine.KindLong, engine.KindFloat, engine.KindDouble, engine.KindBytes, engine.KindString:
		if w.canonical || t.Logical == engine.NoLogical {
			w.str(t.Kind.String())
			return nil
		}
		w.buf = append(w.buf, `{"type":`...)
		w.str(t.Kind.String())
		w.logical(t)
		w.buf = append(w.buf, '}')
	case engine.KindFixed:
		if _, ok := w.define(t, path); !ok {
			return nil
		}
		w.buf = append(w.buf, `,"size":`...)
		w.buf = strconv.AppendInt(w.buf, int64(t.Size), 10)
		w.logical(t)
		w.buf = append(w.buf, '}')
	case engine.KindEnum:
		if _, ok := w.define(t, path); !ok {
			return nil
		}
		w.doc(t.Doc)
		w.key("symbols")
		w.names(t.Symbols)
		if !w.canonical && t.EnumDefault >= 0 && t.EnumDefault < len(t.Symbols) {
			w.key("default")
			w.str(Name(t.Symbols[t.EnumDefault]))
		}
		w.buf = append(w.buf, '}')
	case engine.KindRecord:
		name, ok := w.define(t, path)
		if !ok {
			return nil
		}
		w.doc(t.Doc)
		w.key("fields")
		w.buf = append(w.buf, '[')
		for i, f := range t.Fields {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.buf = append(w.buf, `{"name":`...)
			w.str(Name(f.Name))
			w.doc(f.Doc)
			w.key("type")
			if err := w.write(f.Type, name+"_"+Name(f.Name)); err != nil {
				return err
			}
			if !w.canonical && f.Default != nil {
				if !json.Valid(f.Default) {
					return fmt.Errorf("avro schema: field %s: default %q is not JSON", f.Name, f.Default)
				}
				w.key("default")
				w.buf = append(w.buf, f.Default...)
			}
			if !w.canonical && len(f.Aliases) > 0 {
				w.key("aliases")
				w.names(f.Aliases)
			}
			w.buf = append(w.buf, '}')
		}
		w.buf = append(w.buf, "]}"...)
	case engine.KindArray, engine.KindMap:
		if t.Kind == engine.KindArray {
			w.buf = append(w.buf, `{"type":"array","items":`...)
		} else {
			w.buf = append(w.buf, `{"type":"map","values":`...)
		}
		if err := w.write(t.Items, path+"_item"); err != nil {
			return err
		}
		w.buf = append(w.buf, '}')
	case engine.KindUnion:
		w.buf = append(w.buf, '[')
		for i, b := range t.Branches {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			if err := w.write(b, path+"_"+strconv.Itoa(i)); err != nil {
				return err
			}
		}
		w.buf = append(w.buf, ']')
	default:
		return fmt.Errorf("avro schema: %s: no Avro schema for kind %s", path, t.Kind)
	}
	return nil
}

// names writes a JSON array of names (enum symbols, aliases), each made
// valid by Name.
func (w *schemaWriter) names(ns []string) {
	w.buf = append(w.buf, '[')
	for i, n := range ns {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.str(Name(n))
	}
	w.buf = append(w.buf, ']')
}

func (w *schemaWriter) doc(d string) {
	if d != "" && !w.canonical {
		w.key("doc")
		w.str(d)
	}
}

func (w *schemaWriter) logical(t *engine.Type) {
	if w.canonical || t.Logical == engine.NoLogical {
		return
	}
	w.key("logicalType")
	w.str(t.Logical.String())
	if t.Logical == engine.Decimal {
		w.key("precision")
		w.buf = strconv.AppendInt(w.buf, int64(t.Precision), 10)
		w.key("scale")
		w.buf = strconv.AppendInt(w.buf, int64(t.Scale), 10)
	}
}
