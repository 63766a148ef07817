package encode

import (
	"encoding/base64"
	"math"
	"strconv"

	"github.com/sluicehq/sluice/engine"
)

// CSV encodes a row as one RFC 4180 record, one field per leaf column (see
// the package documentation). It is safe for concurrent use.
type CSV struct {
	cols   []column
	header []byte
}

type column struct {
	path    string
	slot    int
	parents []int // header slots of the enclosing records: null when any is
	n       *node
}

// NewCSV compiles the CSV encoder of schema.
func NewCSV(schema *engine.Schema) (*CSV, error) {
	e := &CSV{}
	e.flatten(compile(schema.Root, ""), -1, nil)
	for i, c := range e.cols {
		if i > 0 {
			e.header = append(e.header, ',')
		}
		e.header = appendCSVField(e.header, c.path)
	}
	e.header = append(e.header, '\r', '\n')
	return e, nil
}

func (e *CSV) flatten(rec *node, base int, parents []int) {
	for _, f := range rec.fields {
		slot := base + f.slot
		n := f.n
		if n.inner != nil && n.inner.kind == engine.KindRecord {
			n = n.inner
		}
		if n.kind == engine.KindRecord {
			e.flatten(n, slot, append(parents[:len(parents):len(parents)], slot))
			continue
		}
		e.cols = append(e.cols, column{path: n.path, slot: slot, parents: parents, n: f.n})
	}
}

// Header appends the header record: the columns' dotted paths, then CRLF.
func (e *CSV) Header(dst []byte) []byte { return append(dst, e.header...) }

// Columns returns the number of fields of each record.
func (e *CSV) Columns() int { return len(e.cols) }

// Append implements Encoder. The record ends with CRLF.
func (e *CSV) Append(dst []byte, row *engine.Row) ([]byte, error) {
	start := len(dst)
	var err error
	for k := range e.cols {
		c := &e.cols[k]
		if k > 0 {
			dst = append(dst, ',')
		}
		null := false
		for _, p := range c.parents {
			if p < len(row.Slots) && row.Slots[p].Null {
				null = true
				break
			}
		}
		if null {
			continue
		}
		if dst, err = appendCSVCell(dst, c.n, row, row.Slots, c.slot); err != nil {
			return dst[:start], err
		}
	}
	return append(dst, '\r', '\n'), nil
}

// appendCSVCell appends the field for the value at slots[i], quoted when needed.
func appendCSVCell(dst []byte, n *node, row *engine.Row, slots []engine.Slot, i int) ([]byte, error) {
	if i < 0 || i >= len(slots) {
		return dst, n.errorf("slot %d beyond the row's %d slots", i, len(slots))
	}
	s := &slots[i]
	if n.kind == engine.KindUnion {
		if n.inner != nil {
			if s.Null {
				return dst, nil
			}
			return appendCSVCell(dst, n.inner, row, slots, i)
		}
		_, bn, at, err := n.branch(slots, i)
		if err != nil || bn == nil {
			return dst, err
		}
		return appendCSVCell(dst, bn, row, slots, at)
	}
	if s.Null {
		return dst, nil
	}
	mark := len(dst)
	switch n.kind {
	case engine.KindNull:
		return dst, nil
	case engine.KindBool:
		if s.N != 0 {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case engine.KindInt, engine.KindLong:
		if isTime(n.logical) {
			return appendTime(dst, n.logical, int64(s.N)), nil
		}
		return strconv.AppendInt(dst, int64(s.N), 10), nil
	case engine.KindFloat, engine.KindDouble:
		bits := 64
		if n.kind == engine.KindFloat {
			bits = 32
		}
		dst, _ = appendFloat(dst, math.Float64frombits(s.N), bits)
		return dst, nil
	case engine.KindString:
		if s.S == "" {
			return append(dst, '"', '"'), nil
		}
		dst = append(dst, s.S...)
		return quoteCSV(dst, mark), nil
	case engine.KindEnum:
		if s.S != "" {
			return quoteCSV(append(dst, s.S...), mark), nil
		}
		if s.N >= uint64(len(n.t.Symbols)) {
			return dst, n.errorf("enum ordinal %d out of range (%d symbols)", s.N, len(n.t.Symbols))
		}
		return quoteCSV(append(dst, n.t.Symbols[s.N]...), mark), nil
	case engine.KindBytes, engine.KindFixed:
		switch n.logical {
		case engine.Decimal:
			return appendDecimal(dst, s.S, n.t.Scale), nil
		case engine.Duration:
			dst, err := appendJSONValue(dst, n, row, slots, i)
			return quoteCSV(dst, mark), err
		}
		if s.S == "" {
			return append(dst, '"', '"'), nil
		}
		return base64.StdEncoding.AppendEncode(dst, engine.UnsafeBytes(s.S)), nil
	}
	// records inside unions, arrays and maps: JSON text in one field
	dst, err := appendJSONValue(dst, n, row, slots, i)
	if err != nil {
		return dst[:mark], err
	}
	return quoteCSV(dst, mark), nil
}

// appendCSVField appends s as a CSV field.
func appendCSVField(dst []byte, s string) []byte {
	mark := len(dst)
	return quoteCSV(append(dst, s...), mark)
}

// quoteCSV quotes dst[mark:] in place when RFC 4180 requires it (a comma, a
// double quote, CR or LF) or when it starts with a space, which some readers
// trim.
func quoteCSV(dst []byte, mark int) []byte {
	cell := dst[mark:]
	need, quotes := len(cell) > 0 && (cell[0] == ' ' || cell[0] == '\t'), 0
	for _, c := range cell {
		switch c {
		case '"':
			quotes++
			need = true
		case ',', '\r', '\n':
			need = true
		}
	}
	if !need {
		return dst
	}
	n := len(cell)
	dst = append(dst, make([]byte, 2+quotes)...)
	j := len(dst) - 1
	dst[j] = '"'
	j--
	for i := n - 1; i >= 0; i-- {
		c := dst[mark+i]
		dst[j] = c
		j--
		if c == '"' {
			dst[j] = '"'
			j--
		}
	}
	dst[j] = '"'
	return dst
}
