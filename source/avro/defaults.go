package avro

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/sluicehq/sluice/engine"
	wire "github.com/sluicehq/sluice/engine/avro"
)

// encodeDefault appends the Avro binary encoding of the JSON default v (as
// decoded by encoding/json with UseNumber) for type t. The default of a union
// is for its first branch (Avro 1.11); other branches are tried after it, as
// Avro 1.12 allows.
func encodeDefault(dst []byte, t *engine.Type, v any) ([]byte, error) {
	switch t.Kind {
	case engine.KindNull:
		if v != nil {
			return nil, fmt.Errorf("null default must be null")
		}
		return dst, nil
	case engine.KindBool:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("boolean default must be true or false")
		}
		if b {
			return append(dst, 1), nil
		}
		return append(dst, 0), nil
	case engine.KindInt, engine.KindLong:
		n, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s default must be a number", t.Kind)
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			f, ferr := strconv.ParseFloat(n.String(), 64)
			if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<63 {
				return nil, fmt.Errorf("%s default %s is not an integer", t.Kind, n)
			}
			i = int64(f)
		}
		if t.Kind == engine.KindInt && (i < math.MinInt32 || i > math.MaxInt32) {
			return nil, fmt.Errorf("int default %d out of range", i)
		}
		return wire.AppendLong(dst, i), nil
	case engine.KindFloat, engine.KindDouble:
		var f float64
		switch v := v.(type) {
		case json.Number:
			var err error
			if f, err = strconv.ParseFloat(v.String(), 64); err != nil {
				return nil, fmt.Errorf("%s default: %w", t.Kind, err)
			}
		case string: // "NaN", "Infinity", "-Infinity", as Java writes them
			switch v {
			case "NaN":
				f = math.NaN()
			case "Infinity":
				f = math.Inf(1)
			case "-Infinity":
				f = math.Inf(-1)
			default:
				return nil, fmt.Errorf("%s default must be a number", t.Kind)
			}
		default:
			return nil, fmt.Errorf("%s default must be a number", t.Kind)
		}
		if t.Kind == engine.KindFloat {
			return wire.AppendFloat(dst, float32(f)), nil
		}
		return wire.AppendDouble(dst, f), nil
	case engine.KindString:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("string default must be a string")
		}
		return wire.AppendString(dst, s), nil
	case engine.KindBytes, engine.KindFixed:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s default must be a string", t.Kind)
		}
		b := make([]byte, 0, len(s))
		for _, r := range s {
			if r > 255 {
				return nil, fmt.Errorf("%s default has code point %U above 255", t.Kind, r)
			}
			b = append(b, byte(r))
		}
		if t.Kind == engine.KindFixed {
			if len(b) != t.Size {
				return nil, fmt.Errorf("fixed default has %d bytes, want %d", len(b), t.Size)
			}
			return append(dst, b...), nil
		}
		return wire.AppendString(dst, string(b)), nil
	case engine.KindEnum:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("enum default must be a string")
		}
		for i, sym := range t.Symbols {
			if sym == s {
				return wire.AppendLong(dst, int64(i)), nil
			}
		}
		return nil, fmt.Errorf("enum default %q is not a symbol of %s", s, t.Name)
	case engine.KindArray:
		a, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("array default must be an array")
		}
		if len(a) > 0 {
			dst = wire.AppendLong(dst, int64(len(a)))
			for _, e := range a {
				var err error
				if dst, err = encodeDefault(dst, t.Items, e); err != nil {
					return nil, err
				}
			}
		}
		return append(dst, 0), nil
	case engine.KindMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("map default must be an object")
		}
		if len(m) > 0 {
			dst = wire.AppendLong(dst, int64(len(m)))
			for _, k := range sortedKeys(m) {
				dst = wire.AppendString(dst, k)
				var err error
				if dst, err = encodeDefault(dst, t.Items, m[k]); err != nil {
					return nil, err
				}
			}
		}
		return append(dst, 0), nil
	case engine.KindRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record default must be an object")
		}
		for _, f := range t.Fields {
			fv, ok := m[f.Name]
			if !ok {
				if f.Default == nil {
					return nil, fmt.Errorf("record default lacks field %s, which has no default", f.Name)
				}
				var err error
				if fv, err = decodeJSON(f.Default); err != nil {
					return nil, err
				}
			}
			var err error
			if dst, err = encodeDefault(dst, f.Type, fv); err != nil {
				return nil, fmt.Errorf("field %s: %w", f.Name, err)
			}
		}
		return dst, nil
	case engine.KindUnion:
		var first error
		for i, b := range t.Branches {
			out, err := encodeDefault(wire.AppendLong(dst, int64(i)), b, v)
			if err == nil {
				return out, nil
			}
			if first == nil {
				first = err
			}
		}
		return nil, first
	}
	return nil, fmt.Errorf("no default possible for %s", t.Kind)
}

func decodeJSON(raw []byte) (any, error) {
	var v any
	dec := json.NewDecoder(bytesReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("default: %w", err)
	}
	return v, nil
}
