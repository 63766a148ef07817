package encode

import (
	"encoding/base64"
	"math"
	"strconv"

	"github.com/sluicehq/sluice/engine"
)

// JSON encodes a row as one JSON object (see the package documentation for
// the form of each type). It is safe for concurrent use.
type JSON struct {
	root *node
}

// NewJSON compiles the JSON encoder of schema.
func NewJSON(schema *engine.Schema) (*JSON, error) {
	return &JSON{root: compile(schema.Root, "")}, nil
}

// Append implements Encoder.
func (e *JSON) Append(dst []byte, row *engine.Row) ([]byte, error) {
	start := len(dst)
	dst, err := appendJSONRecord(dst, e.root, row, row.Slots, -1)
	if err != nil {
		return dst[:start], err
	}
	return dst, nil
}

// AppendValue appends the JSON of the value of type t at slots[i] (a slot of
// row.Slots or row.Ext). It is used for CSV cells that hold arrays and maps.
func appendJSONRecord(dst []byte, n *node, row *engine.Row, slots []engine.Slot, base int) ([]byte, error) {
	dst = append(dst, '{')
	var err error
	for k := range n.fields {
		f := &n.fields[k]
		if k > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, f.jsonKey...)
		if dst, err = appendJSONValue(dst, f.n, row, slots, base+f.slot); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

func appendJSONValue(dst []byte, n *node, row *engine.Row, slots []engine.Slot, i int) ([]byte, error) {
	if i < 0 || i >= len(slots) {
		return dst, n.errorf("slot %d beyond the row's %d slots", i, len(slots))
	}
	s := &slots[i]
	if s.Null && n.kind != engine.KindUnion {
		return append(dst, "null"...), nil
	}
	switch n.kind {
	case engine.KindNull:
		return append(dst, "null"...), nil
	case engine.KindBool:
		if s.N != 0 {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case engine.KindInt, engine.KindLong:
		if isTime(n.logical) {
			dst = append(dst, '"')
			dst = appendTime(dst, n.logical, int64(s.N))
			return append(dst, '"'), nil
		}
		return strconv.AppendInt(dst, int64(s.N), 10), nil
	case engine.KindFloat, engine.KindDouble:
		bits := 64
		if n.kind == engine.KindFloat {
			bits = 32
		}
		mark := len(dst)
		dst, ok := appendFloat(dst, math.Float64frombits(s.N), bits)
		if !ok {
			// quote the special value
			dst = append(dst, 0, 0)
			copy(dst[mark+1:], dst[mark:len(dst)-2])
			dst[mark] = '"'
			dst[len(dst)-1] = '"'
		}
		return dst, nil
	case engine.KindString:
		return appendJSONString(dst, s.S), nil
	case engine.KindBytes, engine.KindFixed:
		switch n.logical {
		case engine.Decimal:
			dst = append(dst, '"')
			dst = appendDecimal(dst, s.S, n.t.Scale)
			return append(dst, '"'), nil
		case engine.Duration:
			m, d, ms, ok := duration(s.S)
			if !ok {
				return dst, n.errorf("duration of %d bytes, want 12", len(s.S))
			}
			dst = append(dst, `{"months":`...)
			dst = strconv.AppendUint(dst, uint64(m), 10)
			dst = append(dst, `,"days":`...)
			dst = strconv.AppendUint(dst, uint64(d), 10)
			dst = append(dst, `,"millis":`...)
			dst = strconv.AppendUint(dst, uint64(ms), 10)
			return append(dst, '}'), nil
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, engine.UnsafeBytes(s.S))
		return append(dst, '"'), nil
	case engine.KindEnum:
		sym := s.S
		if sym == "" {
			if s.N >= uint64(len(n.t.Symbols)) {
				return dst, n.errorf("enum ordinal %d out of range (%d symbols)", s.N, len(n.t.Symbols))
			}
			sym = n.t.Symbols[s.N]
		}
		return appendJSONString(dst, sym), nil
	case engine.KindRecord:
		return appendJSONRecord(dst, n, row, slots, i)
	case engine.KindArray:
		el, err := n.elems(row, s)
		if err != nil {
			return dst, err
		}
		dst = append(dst, '[')
		for j := 0; j < int(s.L); j++ {
			if j > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendJSONValue(dst, n.items, row, el, j*n.elemWidth); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case engine.KindMap:
		el, err := n.elems(row, s)
		if err != nil {
			return dst, err
		}
		dst = append(dst, '{')
		for j := 0; j < int(s.L); j++ {
			if j > 0 {
				dst = append(dst, ',')
			}
			at := j * n.elemWidth
			dst = appendJSONString(dst, el[at].S)
			dst = append(dst, ':')
			if dst, err = appendJSONValue(dst, n.items, row, el, at+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case engine.KindUnion:
		if n.inner != nil {
			if s.Null {
				return append(dst, "null"...), nil
			}
			return appendJSONValue(dst, n.inner, row, slots, i)
		}
		_, bn, at, err := n.branch(slots, i)
		if err != nil {
			return dst, err
		}
		if bn == nil {
			return append(dst, "null"...), nil
		}
		return appendJSONValue(dst, bn, row, slots, at)
	}
	return dst, n.errorf("unsupported kind %s", n.kind)
}
