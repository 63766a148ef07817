package encode

import (
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/engine"
)

// Encoder appends the encoding of one row to a buffer.
//
// Append is called from any number of goroutines; it reads row and never keeps
// it or its strings. It returns dst extended by the encoding. On error dst is
// returned at its original length, so a caller may skip the row and go on.
type Encoder interface {
	Append(dst []byte, row *engine.Row) ([]byte, error)
}

// Formats the sinks accept in their `format` setting.
const (
	FormatJSON = "json"
	FormatCSV  = "csv"
	FormatAvro = "avro"
)

// New returns the encoder of a format name: json, csv or avro.
func New(format string, schema *engine.Schema) (Encoder, error) {
	switch format {
	case FormatJSON:
		return NewJSON(schema)
	case FormatCSV:
		return NewCSV(schema)
	case FormatAvro:
		return NewAvro(schema)
	}
	return nil, fmt.Errorf("encode: unknown format %q (expected json, csv or avro)", format)
}

// ErrInvalid marks a row whose values cannot be encoded with its schema (an
// enum ordinal beyond the symbols, a fixed value of the wrong size, a null in
// a non-null Avro field, a dangling array index).
var ErrInvalid = errors.New("invalid value")

// ValueError is a value that cannot be encoded, with the path of its field.
type ValueError struct {
	Path string
	Msg  string
}

func (e *ValueError) Error() string { return fmt.Sprintf("encode: field %s: %s", e.Path, e.Msg) }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValueError) Unwrap() error { return ErrInvalid }

// node is the compiled form of a type: what an encoder needs without looking
// at the engine.Type again on the hot path.
type node struct {
	t       *engine.Type
	kind    engine.Kind
	logical engine.Logical
	path    string

	// Record: fields at the record's header slot + field.slot.
	fields []field

	// Array and map: the element and its width in Ext (map entries include
	// the key slot).
	items     *node
	elemWidth int

	// Nullable union [null, T]: inner is T, in T's slots; nullIdx and valIdx
	// are the branch indexes written in Avro.
	inner           *node
	nullIdx, valIdx int

	// General union: the branches and the offsets of their first slots from
	// the union's slot (-1 for null).
	branches []*node
	offsets  []int
}

type field struct {
	name string
	slot int // offset from the record's header slot
	n    *node
	// jsonKey is `"name":`, escaped once.
	jsonKey []byte
}

// compile builds the node tree of t. Types reached twice (a named record used
// by two fields) get a node per use, which keeps paths exact.
func compile(t *engine.Type, path string) *node {
	t.Width()
	n := &node{t: t, kind: t.Kind, logical: t.Logical, path: path}
	switch t.Kind {
	case engine.KindRecord:
		for _, f := range t.Fields {
			p := f.Name
			if path != "" {
				p = path + "." + f.Name
			}
			key := appendJSONString(nil, f.Name)
			key = append(key, ':')
			n.fields = append(n.fields, field{name: f.Name, slot: f.Slot, n: compile(f.Type, p), jsonKey: key})
		}
	case engine.KindArray, engine.KindMap:
		n.items = compile(t.Items, path+"[]")
		n.elemWidth = t.Items.Width()
		if t.Kind == engine.KindMap {
			n.elemWidth++
		}
	case engine.KindUnion:
		if inner, ok := t.Nullable(); ok {
			n.inner = compile(inner, path)
			n.nullIdx = t.NullIndex()
			n.valIdx = 1 - n.nullIdx
			return n
		}
		for i, b := range t.Branches {
			n.branches = append(n.branches, compile(b, path))
			n.offsets = append(n.offsets, t.BranchSlot(i))
		}
	}
	return n
}

func (n *node) errorf(format string, args ...any) error {
	return &ValueError{Path: n.path, Msg: fmt.Sprintf(format, args...)}
}

// elems returns the slots of the elements of the array or map in s.
func (n *node) elems(row *engine.Row, s *engine.Slot) ([]engine.Slot, error) {
	if s.L < 0 {
		return nil, n.errorf("negative element count %d", s.L)
	}
	end := s.N + uint64(s.L)*uint64(n.elemWidth)
	if s.N > uint64(len(row.Ext)) || end > uint64(len(row.Ext)) || end < s.N {
		return nil, n.errorf("elements %d+%d beyond the row's %d extension slots", s.N, s.L, len(row.Ext))
	}
	return row.Ext[s.N:end:end], nil
}

// branch returns the branch chosen by a general union in slots[i], its node
// and the index of its first slot; null is reported with ok and a nil node.
func (n *node) branch(slots []engine.Slot, i int) (b int, bn *node, at int, err error) {
	s := &slots[i]
	if s.Null {
		for j, x := range n.branches {
			if x.kind == engine.KindNull {
				return j, nil, -1, nil
			}
		}
		return 0, nil, 0, n.errorf("null in a union without a null branch")
	}
	if s.N >= uint64(len(n.branches)) {
		return 0, nil, 0, n.errorf("union branch %d out of range (%d branches)", s.N, len(n.branches))
	}
	b = int(s.N)
	if n.branches[b].kind == engine.KindNull {
		return b, nil, -1, nil
	}
	return b, n.branches[b], i + n.offsets[b], nil
}
