package avro

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/engine"
)

// SchemaError is an Avro schema that cannot be parsed. Path names where in the
// schema the problem is (field names and type names, dotted).
type SchemaError struct {
	Path string
	Msg  string
}

func (e *SchemaError) Error() string {
	if e.Path == "" {
		return "avro schema: " + e.Msg
	}
	return "avro schema: " + e.Path + ": " + e.Msg
}

// ParseSchema parses an Avro schema (JSON) into a Type. Named types are
// resolved by full name with namespaces inherited as the specification says;
// a name used twice yields the same *engine.Type. Field defaults are kept as
// JSON text in Field.Default, enum defaults in Type.EnumDefault. A logical
// type on a base type that does not allow it is ignored (the specification's
// rule), so the value keeps its base type. Recursive types are rejected: the
// row layout (engine.Type.Width) gives every value a fixed number of slots.
func ParseSchema(schema []byte) (*engine.Type, error) {
	dec := json.NewDecoder(bytes.NewReader(schema))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &SchemaError{Msg: "invalid JSON: " + err.Error()}
	}
	if dec.More() {
		return nil, &SchemaError{Msg: "trailing data after the schema"}
	}
	p := &parser{names: make(map[string]*engine.Type), open: make(map[*engine.Type]bool)}
	t, err := p.parse(v, "", "")
	if err != nil {
		return nil, err
	}
	t.Width() // lay out once, before the type is shared between goroutines
	return t, nil
}

type parser struct {
	names map[string]*engine.Type
	open  map[*engine.Type]bool // records whose fields are being parsed
}

var errNotLogical = errors.New("not a valid logical type")

func primitive(name string) (engine.Kind, bool) {
	switch name {
	case "null":
		return engine.KindNull, true
	case "boolean":
		return engine.KindBool, true
	case "int":
		return engine.KindInt, true
	case "long":
		return engine.KindLong, true
	case "float":
		return engine.KindFloat, true
	case "double":
		return engine.KindDouble, true
	case "bytes":
		return engine.KindBytes, true
	case "string":
		return engine.KindString, true
	}
	return 0, false
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func (p *parser) parse(v any, ns, path string) (*engine.Type, error) {
	switch v := v.(type) {
	case string:
		return p.ref(v, ns, path)
	case []any:
		u := &engine.Type{Kind: engine.KindUnion, EnumDefault: -1}
		seen := make(map[string]bool)
		for i, b := range v {
			bt, err := p.parse(b, ns, path)
			if err != nil {
				return nil, err
			}
			if bt.Kind == engine.KindUnion {
				return nil, &SchemaError{Path: path, Msg: fmt.Sprintf("union branch %d is itself a union", i)}
			}
			key := branchKey(bt)
			if seen[key] {
				return nil, &SchemaError{Path: path, Msg: fmt.Sprintf("union has two branches of type %s", key)}
			}
			seen[key] = true
			u.Branches = append(u.Branches, bt)
		}
		if len(u.Branches) == 0 {
			return nil, &SchemaError{Path: path, Msg: "empty union"}
		}
		return u, nil
	case map[string]any:
		return p.object(v, ns, path)
	}
	return nil, &SchemaError{Path: path, Msg: fmt.Sprintf("a type must be a string, an object or an array, not %T", v)}
}

// branchKey is what makes union branches distinct: the full name of a named
// type, the kind otherwise.
func branchKey(t *engine.Type) string {
	switch t.Kind {
	case engine.KindRecord, engine.KindEnum, engine.KindFixed:
		return t.Name
	}
	return t.Kind.String()
}

func (p *parser) ref(name, ns, path string) (*engine.Type, error) {
	if k, ok := primitive(name); ok {
		return &engine.Type{Kind: k, EnumDefault: -1}, nil
	}
	full := name
	if !strings.Contains(name, ".") && ns != "" {
		full = ns + "." + name
	}
	t, ok := p.names[full]
	if !ok {
		t, ok = p.names[name]
	}
	if !ok {
		return nil, &SchemaError{Path: path, Msg: fmt.Sprintf("unknown type %q", name)}
	}
	if p.open[t] {
		return nil, &SchemaError{Path: path, Msg: fmt.Sprintf("recursive type %s: rows have a fixed layout", t.Name)}
	}
	return t, nil
}

func str(m map[string]any, key string) (string, bool, error) {
	v, ok := m[key]
	if !ok {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", true, fmt.Errorf("%q must be a string", key)
	}
	return s, true, nil
}

func intAttr(m map[string]any, key string) (int, bool) {
	n, ok := m[key].(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(n.String())
	if err != nil {
		return 0, false
	}
	return i, true
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// define registers a named type and returns its full name and the namespace
// its children inherit.
func (p *parser) define(t *engine.Type, m map[string]any, ns, path string) (string, error) {
	name, _, err := str(m, "name")
	if err != nil || name == "" {
		return "", &SchemaError{Path: path, Msg: "a named type needs a \"name\" string"}
	}
	space, hasSpace, err := str(m, "namespace")
	if err != nil {
		return "", &SchemaError{Path: path, Msg: err.Error()}
	}
	full := name
	if !strings.Contains(name, ".") {
		switch {
		case hasSpace && space != "":
			full = space + "." + name
		case !hasSpace && ns != "":
			full = ns + "." + name
		}
	}
	for _, part := range strings.Split(full, ".") {
		if !validName(part) {
			return "", &SchemaError{Path: path, Msg: fmt.Sprintf("invalid name %q", full)}
		}
	}
	if _, ok := primitive(full); ok {
		return "", &SchemaError{Path: path, Msg: fmt.Sprintf("name %q is a primitive type", full)}
	}
	if _, dup := p.names[full]; dup {
		return "", &SchemaError{Path: path, Msg: fmt.Sprintf("type %s defined twice", full)}
	}
	t.Name = full
	p.names[full] = t
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[:i], nil
	}
	return "", nil
}

func (p *parser) object(m map[string]any, ns, path string) (*engine.Type, error) {
	tv, ok := m["type"]
	if !ok {
		return nil, &SchemaError{Path: path, Msg: "missing \"type\""}
	}
	typ, isStr := tv.(string)
	if !isStr {
		// {"type": {...}} or {"type": [...]}: a wrapped type.
		return p.parse(tv, ns, path)
	}
	doc, _, _ := str(m, "doc")
	t := &engine.Type{Doc: doc, EnumDefault: -1}
	switch typ {
	case "record", "error":
		t.Kind = engine.KindRecord
		inner, err := p.define(t, m, ns, path)
		if err != nil {
			return nil, err
		}
		fields, ok := m["fields"].([]any)
		if !ok {
			return nil, &SchemaError{Path: join(path, t.Name), Msg: "a record needs a \"fields\" array"}
		}
		p.open[t] = true
		seen := make(map[string]bool)
		for _, fv := range fields {
			fm, ok := fv.(map[string]any)
			if !ok {
				return nil, &SchemaError{Path: path, Msg: "a field must be an object"}
			}
			f, err := p.field(fm, inner, path)
			if err != nil {
				return nil, err
			}
			if seen[f.Name] {
				return nil, &SchemaError{Path: join(path, f.Name), Msg: "field defined twice"}
			}
			seen[f.Name] = true
			t.Fields = append(t.Fields, f)
		}
		delete(p.open, t)
		return t, nil
	case "enum":
		t.Kind = engine.KindEnum
		if _, err := p.define(t, m, ns, path); err != nil {
			return nil, err
		}
		syms, ok := m["symbols"].([]any)
		if !ok {
			return nil, &SchemaError{Path: join(path, t.Name), Msg: "an enum needs a \"symbols\" array"}
		}
		seen := make(map[string]bool)
		for _, s := range syms {
			sym, ok := s.(string)
			if !ok || !validName(sym) || seen[sym] {
				return nil, &SchemaError{Path: join(path, t.Name), Msg: fmt.Sprintf("invalid or repeated enum symbol %v", s)}
			}
			seen[sym] = true
			t.Symbols = append(t.Symbols, sym)
		}
		if d, ok, err := str(m, "default"); err != nil {
			return nil, &SchemaError{Path: join(path, t.Name), Msg: err.Error()}
		} else if ok {
			t.EnumDefault = -1
			for i, s := range t.Symbols {
				if s == d {
					t.EnumDefault = i
				}
			}
			if t.EnumDefault < 0 {
				return nil, &SchemaError{Path: join(path, t.Name), Msg: fmt.Sprintf("enum default %q is not a symbol", d)}
			}
		}
		return t, nil
	case "fixed":
		t.Kind = engine.KindFixed
		if _, err := p.define(t, m, ns, path); err != nil {
			return nil, err
		}
		size, ok := intAttr(m, "size")
		if !ok || size < 0 {
			return nil, &SchemaError{Path: join(path, t.Name), Msg: "a fixed needs a non-negative integer \"size\""}
		}
		t.Size = size
		p.logical(t, m)
		return t, nil
	case "array", "map":
		key := "items"
		t.Kind = engine.KindArray
		if typ == "map" {
			key, t.Kind = "values", engine.KindMap
		}
		iv, ok := m[key]
		if !ok {
			return nil, &SchemaError{Path: path, Msg: fmt.Sprintf("%s needs %q", typ, key)}
		}
		it, err := p.parse(iv, ns, path+"[]")
		if err != nil {
			return nil, err
		}
		t.Items = it
		return t, nil
	}
	k, ok := primitive(typ)
	if !ok {
		// {"type": "SomeNamedType"}: a reference.
		return p.ref(typ, ns, path)
	}
	t.Kind = k
	p.logical(t, m)
	return t, nil
}

// logical sets t's logical type from the schema object, or leaves it unset
// when the annotation is unknown or invalid for the base type.
func (p *parser) logical(t *engine.Type, m map[string]any) {
	lt, _, err := str(m, "logicalType")
	if err != nil || lt == "" {
		return
	}
	var l engine.Logical
	switch lt {
	case "decimal":
		if t.Kind != engine.KindBytes && t.Kind != engine.KindFixed {
			return
		}
		prec, ok := intAttr(m, "precision")
		if !ok || prec <= 0 {
			return
		}
		scale := 0
		if _, has := m["scale"]; has {
			if scale, ok = intAttr(m, "scale"); !ok {
				return
			}
		}
		if scale < 0 || scale > prec {
			return
		}
		if t.Kind == engine.KindFixed && (t.Size > 64 || float64(prec) > maxDecimalDigits(t.Size)) {
			return
		}
		t.Logical, t.Precision, t.Scale = engine.Decimal, prec, scale
		return
	case "uuid":
		if t.Kind == engine.KindString {
			l = engine.UUID
		}
	case "date":
		if t.Kind == engine.KindInt {
			l = engine.Date
		}
	case "time-millis":
		if t.Kind == engine.KindInt {
			l = engine.TimeMillis
		}
	case "time-micros":
		if t.Kind == engine.KindLong {
			l = engine.TimeMicros
		}
	case "timestamp-millis", "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros":
		if t.Kind == engine.KindLong {
			switch lt {
			case "timestamp-millis":
				l = engine.TimestampMillis
			case "timestamp-micros":
				l = engine.TimestampMicros
			case "local-timestamp-millis":
				l = engine.LocalTimestampMillis
			default:
				l = engine.LocalTimestampMicros
			}
		}
	case "duration":
		if t.Kind == engine.KindFixed && t.Size == 12 {
			l = engine.Duration
		}
	}
	t.Logical = l
}

// maxDecimalDigits is floor(log10(2^(8n-1)-1)): the most decimal digits a
// two's-complement number of n bytes always holds.
func maxDecimalDigits(n int) float64 {
	// log10(2) * (8n-1), floored.
	d := 0.30102999566398120 * float64(8*n-1)
	return float64(int(d))
}

func (p *parser) field(m map[string]any, ns, path string) (engine.Field, error) {
	name, _, err := str(m, "name")
	if err != nil || !validName(name) {
		return engine.Field{}, &SchemaError{Path: path, Msg: fmt.Sprintf("invalid field name %v", m["name"])}
	}
	fpath := join(path, name)
	tv, ok := m["type"]
	if !ok {
		return engine.Field{}, &SchemaError{Path: fpath, Msg: "a field needs a \"type\""}
	}
	ft, err := p.parse(tv, ns, fpath)
	if err != nil {
		return engine.Field{}, err
	}
	f := engine.Field{Name: name, Type: ft}
	f.Doc, _, _ = str(m, "doc")
	if al, ok := m["aliases"].([]any); ok {
		for _, a := range al {
			if s, ok := a.(string); ok {
				f.Aliases = append(f.Aliases, s)
			}
		}
	}
	if dv, ok := m["default"]; ok {
		raw, err := json.Marshal(dv)
		if err != nil {
			return engine.Field{}, &SchemaError{Path: fpath, Msg: "default: " + err.Error()}
		}
		if _, err := encodeDefault(nil, ft, dv); err != nil {
			return engine.Field{}, &SchemaError{Path: fpath, Msg: "invalid default: " + err.Error()}
		}
		f.Default = raw
	}
	return f, nil
}
