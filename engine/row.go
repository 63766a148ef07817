package engine

import (
	"math"
	"unsafe"
)

// Slot holds one value of a row. Which fields are meaningful depends on the
// Type the schema gives the slot:
//
//	Bool                 N = 0 or 1
//	Int, Long            N = uint64(int64 value)
//	Float, Double        N = math.Float64bits(value)
//	Bytes, String, Fixed S = the bytes (may alias the bundle's fetch buffer)
//	Enum                 N = ordinal, S = symbol (the schema's own string)
//	Union (non-nullable) N = branch index
//	Array, Map           N = index of the first element in Row.Ext, L = count
//	Record (nested)      only Null is meaningful
//
// Null marks a null value (a null union branch or a null nested record).
type Slot struct {
	N    uint64
	S    string
	L    int32
	Null bool
}

// Row is one record as typed slots: the data path never uses map[string]any
// and never boxes a value in an interface. A Row is reused from record to
// record: Reset clears it without freeing its memory.
//
// A Row is owned by one goroutine at a time. Strings in it may alias memory that
// outlives the row (a fetched Kafka batch) or the row's own Arena; anything
// that must outlive the call it was handed to must be copied.
type Row struct {
	Slots []Slot
	// Ext holds the elements of arrays and maps, addressed by Slot.N and Slot.L.
	// An element of width w takes w consecutive slots; a map entry takes one
	// more before them, whose S is the key.
	Ext []Slot
	// Arena backs strings computed for this row (by SQL functions, for example).
	Arena []byte
	// Origin is the input record the row was computed from. The runtime sets
	// it on every row it hands to a Writer, so that a row the destination
	// rejects later can be dead-lettered with its topic, partition and offset.
	// Reset leaves it alone.
	Origin Origin
}

// NewRow returns a row with width slots.
func NewRow(width int) *Row {
	return &Row{Slots: make([]Slot, width)}
}

// Reset prepares the row for a new record of width slots, keeping its memory.
func (r *Row) Reset(width int) {
	if cap(r.Slots) < width {
		r.Slots = make([]Slot, width)
	} else {
		r.Slots = r.Slots[:width]
		clear(r.Slots)
	}
	r.Ext = r.Ext[:0]
	r.Arena = r.Arena[:0]
}

// Grow appends n zeroed slots to Ext and returns the index of the first.
func (r *Row) Grow(n int) int {
	start := len(r.Ext)
	if cap(r.Ext)-start < n {
		ext := make([]Slot, start, 2*cap(r.Ext)+n)
		copy(ext, r.Ext)
		r.Ext = ext
	}
	r.Ext = r.Ext[:start+n]
	clear(r.Ext[start:])
	return start
}

// ElemSlots returns the slots of the elements of the array or map in slot s,
// where each element takes width slots.
func (r *Row) ElemSlots(s *Slot, width int) []Slot {
	n := uint64(int(s.L) * width)
	return r.Ext[s.N : s.N+n : s.N+n]
}

// String stores b in the row's arena and returns it as a string that stays
// valid until the row is Reset.
func (r *Row) String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	start := len(r.Arena)
	r.Arena = append(r.Arena, b...)
	return unsafe.String(&r.Arena[start], len(b))
}

// Int returns the integer in slot i.
func (r *Row) Int(i int) int64 { return int64(r.Slots[i].N) }

// Float returns the floating-point number in slot i.
func (r *Row) Float(i int) float64 { return math.Float64frombits(r.Slots[i].N) }

// Bool returns the boolean in slot i.
func (r *Row) Bool(i int) bool { return r.Slots[i].N != 0 }

// Str returns the string or bytes in slot i.
func (r *Row) Str(i int) string { return r.Slots[i].S }

// IsNull reports whether slot i is null.
func (r *Row) IsNull(i int) bool { return r.Slots[i].Null }

// SetInt stores v in slot i.
func (r *Row) SetInt(i int, v int64) { r.Slots[i] = Slot{N: uint64(v)} }

// SetFloat stores v in slot i.
func (r *Row) SetFloat(i int, v float64) { r.Slots[i] = Slot{N: math.Float64bits(v)} }

// SetBool stores v in slot i.
func (r *Row) SetBool(i int, v bool) {
	var n uint64
	if v {
		n = 1
	}
	r.Slots[i] = Slot{N: n}
}

// SetStr stores v in slot i.
func (r *Row) SetStr(i int, v string) { r.Slots[i] = Slot{S: v} }

// SetNull marks slot i null.
func (r *Row) SetNull(i int) { r.Slots[i] = Slot{Null: true} }

// UnsafeBytes returns the bytes of a string without copying. The caller must not
// modify them.
func UnsafeBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// UnsafeString returns b as a string without copying. b must not change while the string
// is in use.
func UnsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
