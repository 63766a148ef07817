package encode

import (
	"encoding/binary"
	"math"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/avro"
)

// Avro encodes a row as an Avro binary datum of the schema's root record. It
// is safe for concurrent use.
type Avro struct {
	root *node
}

// NewAvro compiles the Avro binary encoder of schema.
func NewAvro(schema *engine.Schema) (*Avro, error) {
	return &Avro{root: compile(schema.Root, "")}, nil
}

// Append implements Encoder.
func (e *Avro) Append(dst []byte, row *engine.Row) ([]byte, error) {
	start := len(dst)
	dst, err := appendAvroRecord(dst, e.root, row, row.Slots, -1)
	if err != nil {
		return dst[:start], err
	}
	return dst, nil
}

func appendAvroRecord(dst []byte, n *node, row *engine.Row, slots []engine.Slot, base int) ([]byte, error) {
	var err error
	for k := range n.fields {
		f := &n.fields[k]
		if dst, err = appendAvroValue(dst, f.n, row, slots, base+f.slot); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

func appendAvroValue(dst []byte, n *node, row *engine.Row, slots []engine.Slot, i int) ([]byte, error) {
	if i < 0 || i >= len(slots) {
		return dst, n.errorf("slot %d beyond the row's %d slots", i, len(slots))
	}
	s := &slots[i]
	if s.Null && n.kind != engine.KindUnion && n.kind != engine.KindNull && n.kind != engine.KindRecord {
		return dst, n.errorf("null for a value of non-null type %s", n.kind)
	}
	switch n.kind {
	case engine.KindNull:
		return dst, nil
	case engine.KindBool:
		if s.N != 0 {
			return append(dst, 1), nil
		}
		return append(dst, 0), nil
	case engine.KindInt:
		v := int64(s.N)
		if v != int64(int32(v)) {
			return dst, n.errorf("%d overflows an Avro int", v)
		}
		return avro.AppendLong(dst, v), nil
	case engine.KindLong:
		return avro.AppendLong(dst, int64(s.N)), nil
	case engine.KindFloat:
		return avro.AppendFloat(dst, float32(math.Float64frombits(s.N))), nil
	case engine.KindDouble:
		return binary.LittleEndian.AppendUint64(dst, s.N), nil
	case engine.KindBytes, engine.KindString:
		return avro.AppendString(dst, s.S), nil
	case engine.KindFixed:
		if len(s.S) != n.t.Size {
			return dst, n.errorf("fixed value of %d bytes, want %d", len(s.S), n.t.Size)
		}
		return append(dst, s.S...), nil
	case engine.KindEnum:
		if s.N >= uint64(len(n.t.Symbols)) {
			return dst, n.errorf("enum ordinal %d out of range (%d symbols)", s.N, len(n.t.Symbols))
		}
		return avro.AppendLong(dst, int64(s.N)), nil
	case engine.KindRecord:
		return appendAvroRecord(dst, n, row, slots, i)
	case engine.KindArray, engine.KindMap:
		el, err := n.elems(row, s)
		if err != nil {
			return dst, err
		}
		if s.L > 0 {
			dst = avro.AppendLong(dst, int64(s.L))
			for j := 0; j < int(s.L); j++ {
				at := j * n.elemWidth
				if n.kind == engine.KindMap {
					dst = avro.AppendString(dst, el[at].S)
					at++
				}
				if dst, err = appendAvroValue(dst, n.items, row, el, at); err != nil {
					return dst, err
				}
			}
		}
		return append(dst, 0), nil
	case engine.KindUnion:
		if n.inner != nil {
			if s.Null {
				return avro.AppendLong(dst, int64(n.nullIdx)), nil
			}
			dst = avro.AppendLong(dst, int64(n.valIdx))
			return appendAvroValue(dst, n.inner, row, slots, i)
		}
		b, bn, at, err := n.branch(slots, i)
		if err != nil {
			return dst, err
		}
		dst = avro.AppendLong(dst, int64(b))
		if bn == nil {
			return dst, nil
		}
		return appendAvroValue(dst, bn, row, slots, at)
	}
	return dst, n.errorf("unsupported kind %s", n.kind)
}
