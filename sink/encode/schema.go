package encode

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/engine"
)

// AvroSchema returns the Avro schema of t as JSON. Named types (records, enums,
// fixed) are defined where first met and referenced by full name afterwards;
// a type without a name is named after its path below "sluice.Row"; names and
// field names that Avro would reject are rewritten with underscores (the
// binary encoding does not depend on them). Defaults (Field.Default) are kept
// as given.
func AvroSchema(t *engine.Type) ([]byte, error) {
	w := schemaWriter{defined: map[string]*engine.Type{}}
	if err := w.write(t, "sluice.Row"); err != nil {
		return nil, err
	}
	return w.buf, nil
}

type schemaWriter struct {
	buf     []byte
	defined map[string]*engine.Type
}

func (w *schemaWriter) str(s string) { w.buf = appendJSONString(w.buf, s) }

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
		parts[i] = avroName(p)
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

// avroName rewrites s into [A-Za-z_][A-Za-z0-9_]*.
func avroName(s string) string {
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
		if t.Logical == engine.NoLogical {
			w.str(t.Kind.String())
			return nil
		}
		w.buf = append(w.buf, `{"type":`...)
		w.str(t.Kind.String())
		w.logical(t)
		w.buf = append(w.buf, '}')
	case engine.KindFixed:
		name, done := w.name(t, path)
		if done {
			w.str(name)
			return nil
		}
		w.buf = append(w.buf, `{"type":"fixed","name":`...)
		w.str(name)
		w.key("size")
		w.buf = strconv.AppendInt(w.buf, int64(t.Size), 10)
		w.logical(t)
		w.buf = append(w.buf, '}')
	case engine.KindEnum:
		name, done := w.name(t, path)
		if done {
			w.str(name)
			return nil
		}
		w.buf = append(w.buf, `{"type":"enum","name":`...)
		w.str(name)
		w.doc(t.Doc)
		w.key("symbols")
		w.buf = append(w.buf, '[')
		for i, s := range t.Symbols {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.str(avroName(s))
		}
		w.buf = append(w.buf, ']')
		// 0 is both the zero value and the first symbol: only a later
		// default needs saying (a reader falls back to it alone).
		if t.EnumDefault > 0 && t.EnumDefault < len(t.Symbols) {
			w.key("default")
			w.str(avroName(t.Symbols[t.EnumDefault]))
		}
		w.buf = append(w.buf, '}')
	case engine.KindRecord:
		name, done := w.name(t, path)
		if done {
			w.str(name)
			return nil
		}
		w.buf = append(w.buf, `{"type":"record","name":`...)
		w.str(name)
		w.doc(t.Doc)
		w.key("fields")
		w.buf = append(w.buf, '[')
		for i, f := range t.Fields {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.buf = append(w.buf, `{"name":`...)
			w.str(avroName(f.Name))
			w.doc(f.Doc)
			w.key("type")
			if err := w.write(f.Type, name+"_"+avroName(f.Name)); err != nil {
				return err
			}
			if f.Default != nil {
				if !json.Valid(f.Default) {
					return fmt.Errorf("encode: field %s: default %q is not JSON", f.Name, f.Default)
				}
				w.key("default")
				w.buf = append(w.buf, f.Default...)
			}
			if len(f.Aliases) > 0 {
				w.key("aliases")
				w.buf = append(w.buf, '[')
				for j, a := range f.Aliases {
					if j > 0 {
						w.buf = append(w.buf, ',')
					}
					w.str(avroName(a))
				}
				w.buf = append(w.buf, ']')
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
		return fmt.Errorf("encode: %s: no Avro schema for kind %s", path, t.Kind)
	}
	return nil
}

func (w *schemaWriter) doc(d string) {
	if d != "" {
		w.key("doc")
		w.str(d)
	}
}

func (w *schemaWriter) logical(t *engine.Type) {
	if t.Logical == engine.NoLogical {
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
