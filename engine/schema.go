package engine

import (
	"fmt"
	"strings"
)

// Kind is the physical type of a value. The kinds follow Avro's, because Avro is
// the wire format sluice reads and writes most, and every other format (JSON,
// CSV, BigQuery protos) can be derived from them.
type Kind uint8

// Kinds. Part of the checkpoint and encoder contracts: never renumber.
const (
	KindNull Kind = iota
	KindBool
	KindInt    // 32-bit signed; stored as int64
	KindLong   // 64-bit signed
	KindFloat  // 32-bit IEEE; stored as float64
	KindDouble // 64-bit IEEE
	KindBytes
	KindString
	KindFixed
	KindEnum
	KindRecord
	KindArray
	KindMap
	KindUnion
)

var kindNames = [...]string{"null", "boolean", "int", "long", "float", "double", "bytes", "string", "fixed", "enum", "record", "array", "map", "union"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Logical refines a Kind the way Avro logical types do. The slot keeps the raw
// value of the underlying kind (milliseconds for *-millis, microseconds for
// *-micros, days for Date, the unscaled two's-complement bytes for Decimal).
type Logical uint8

// Logical types. Never renumber.
const (
	NoLogical       Logical = iota
	Decimal                 // Bytes or Fixed; Precision and Scale set
	UUID                    // String
	Date                    // Int: days since 1970-01-01
	TimeMillis              // Int: milliseconds after midnight
	TimeMicros              // Long: microseconds after midnight
	TimestampMillis         // Long: milliseconds since the epoch, UTC
	TimestampMicros         // Long: microseconds since the epoch, UTC
	LocalTimestampMillis
	LocalTimestampMicros
	Duration // Fixed(12): months, days, milliseconds as little-endian uint32s
)

var logicalNames = [...]string{"", "decimal", "uuid", "date", "time-millis", "time-micros", "timestamp-millis", "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros", "duration"}

func (l Logical) String() string {
	if int(l) < len(logicalNames) {
		return logicalNames[l]
	}
	return fmt.Sprintf("logical(%d)", l)
}

// IsTimestamp reports whether l is one of the timestamp logical types.
func (l Logical) IsTimestamp() bool {
	return l >= TimestampMillis && l <= LocalTimestampMicros
}

// MicrosPerUnit is the number of microseconds in one unit of a time or
// timestamp value of logical type l (1000 for *-millis, 1 for *-micros, 0 for
// anything else).
func (l Logical) MicrosPerUnit() int64 {
	switch l {
	case TimeMillis, TimestampMillis, LocalTimestampMillis:
		return 1000
	case TimeMicros, TimestampMicros, LocalTimestampMicros:
		return 1
	}
	return 0
}

// Type describes a value. Types are built once (from an Avro schema or by the
// SQL planner) and are immutable afterwards; they are shared freely between
// goroutines.
type Type struct {
	Kind    Kind
	Logical Logical
	Name    string // full name of a named type (record, enum, fixed)
	Doc     string

	Fields   []Field  // Record
	Symbols  []string // Enum
	Size     int      // Fixed
	Items    *Type    // Array items and Map values (map keys are strings)
	Branches []*Type  // Union, in declaration order

	Precision, Scale int // Decimal

	// EnumDefault is the index of the enum's default symbol, or -1.
	EnumDefault int

	width int // slots taken by a value of this type; computed by Layout
}

// Field is one field of a record.
type Field struct {
	Name    string
	Aliases []string
	Doc     string
	Type    *Type
	// Default is the field's default as JSON text, nil when the field has none.
	Default []byte
	// Slot is the offset of the field's first slot from the first slot of the
	// enclosing record's fields. Set by Layout.
	Slot int
}

// Nullable reports whether t is a union of null and exactly one other type, the
// form most schemas use for an optional value. It returns the other branch.
func (t *Type) Nullable() (*Type, bool) {
	if t.Kind != KindUnion || len(t.Branches) != 2 {
		return nil, false
	}
	switch {
	case t.Branches[0].Kind == KindNull && t.Branches[1].Kind != KindUnion:
		return t.Branches[1], true
	case t.Branches[1].Kind == KindNull && t.Branches[0].Kind != KindUnion:
		return t.Branches[0], true
	}
	return nil, false
}

// NullIndex returns the index of the null branch of a union, or -1.
func (t *Type) NullIndex() int {
	for i, b := range t.Branches {
		if b.Kind == KindNull {
			return i
		}
	}
	return -1
}

// Width is the number of slots a value of t occupies in a Row:
//
//   - null, primitives, enum, fixed, array and map: 1
//   - a nested record: 1 (its own null flag) + the widths of its fields
//   - a nullable union [null, T]: the width of T (null sets T's first slot's Null)
//   - any other union: 1 (the branch index in N) + the widths of its non-null branches
//
// Array and map elements do not take slots of the row itself: they live in
// Row.Ext, each element taking Width(items) slots (map entries one more, for the key).
func (t *Type) Width() int {
	if t.width == 0 {
		t.layout()
	}
	return t.width
}

// FieldsWidth is the number of slots taken by the fields of record t, without
// the record's own slot: the width of a top-level row.
func (t *Type) FieldsWidth() int {
	return t.Width() - 1
}

func (t *Type) layout() {
	switch t.Kind {
	case KindRecord:
		w := 0
		for i := range t.Fields {
			t.Fields[i].Slot = 1 + w
			w += t.Fields[i].Type.Width()
		}
		t.width = 1 + w
	case KindUnion:
		if inner, ok := t.Nullable(); ok {
			t.width = inner.Width()
			return
		}
		w := 1
		for _, b := range t.Branches {
			if b.Kind != KindNull {
				w += b.Width()
			}
		}
		t.width = w
	case KindArray, KindMap:
		t.Items.Width()
		t.width = 1
	default:
		t.width = 1
	}
}

// BranchSlot returns the offset, from the union's own slot, of the first slot of
// branch i of a (non-nullable-shortcut) union, or -1 for the null branch.
func (t *Type) BranchSlot(i int) int {
	if t.Branches[i].Kind == KindNull {
		return -1
	}
	off := 1
	for j := 0; j < i; j++ {
		if t.Branches[j].Kind != KindNull {
			off += t.Branches[j].Width()
		}
	}
	return off
}

// Schema is the type of the rows of a stream: a record whose fields are the
// columns. It resolves column paths such as "src_location.country" to slots.
type Schema struct {
	Root    *Type
	columns map[string]Column
	names   []string // column paths in slot order
}

// Column is one addressable value of a schema: a top-level field, or a field of
// a nested record reached through a path of names.
type Column struct {
	Path string
	Type *Type
	Slot int // index in Row.Slots
	// Parents are the slots of the enclosing nested records, outermost first: a
	// column is null when any of them is.
	Parents []int
}

// NewSchema lays out root, which must be a record, and indexes its columns.
func NewSchema(root *Type) (*Schema, error) {
	if root == nil || root.Kind != KindRecord {
		return nil, fmt.Errorf("engine: a row schema must be a record")
	}
	s := &Schema{Root: root, columns: make(map[string]Column)}
	root.Width()
	s.index(root, "", -1, nil)
	return s, nil
}

// MustSchema is NewSchema for schemas known to be records (tests, built-ins).
func MustSchema(root *Type) *Schema {
	s, err := NewSchema(root)
	if err != nil {
		panic(err)
	}
	return s
}

// index records every field reachable through nested records (not through
// unions, arrays or maps). base is the slot of the record's own slot, so that
// field slots are base+Field.Slot; for the root it is -1.
func (s *Schema) index(rec *Type, prefix string, base int, parents []int) {
	for _, f := range rec.Fields {
		slot := base + f.Slot
		path := prefix + f.Name
		c := Column{Path: path, Type: f.Type, Slot: slot, Parents: parents}
		s.columns[strings.ToLower(path)] = c
		s.names = append(s.names, path)
		inner := f.Type
		if n, ok := f.Type.Nullable(); ok {
			inner = n
		}
		if inner.Kind == KindRecord {
			ps := append(append([]int(nil), parents...), slot)
			s.index(inner, path+".", slot, ps)
		}
	}
}

// Width is the number of slots of a row of this schema.
func (s *Schema) Width() int { return s.Root.FieldsWidth() }

// Fields are the top-level columns, in order.
func (s *Schema) Fields() []Field { return s.Root.Fields }

// Lookup finds a column by its dotted path, case-insensitively (as SQL does).
func (s *Schema) Lookup(path string) (Column, bool) {
	c, ok := s.columns[strings.ToLower(path)]
	return c, ok
}

// Paths lists every addressable column path in slot order.
func (s *Schema) Paths() []string { return s.names }
