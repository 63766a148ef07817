package avro

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/sluicehq/sluice/engine"
	wire "github.com/sluicehq/sluice/engine/avro"
)

// Errors of malformed input, wrapped in *engine.DecodeError with the field path.
var (
	ErrTruncated      = wire.ErrTruncated
	ErrVarintOverflow = wire.ErrVarintOverflow
	ErrIntOverflow    = errors.New("int value out of 32-bit range")
	ErrNegativeLength = errors.New("negative length")
	ErrUnionIndex     = errors.New("union branch index out of range")
	ErrEnumIndex      = errors.New("enum index out of range")
	ErrTooManyElems   = errors.New("array or map elements over the limit")
	ErrTrailing       = errors.New("trailing bytes after the record")
	ErrBlockCount     = errors.New("block count larger than the bytes left")
)

// machine is the state of one decode: the input and the row written.
type machine struct {
	buf    []byte
	pos    int
	row    *engine.Row
	maxExt int
}

func (m *machine) varint() (uint64, error) {
	u, n, err := wire.Uvarint(m.buf, m.pos)
	m.pos = n
	return u, err
}

func (m *machine) long() (int64, error) {
	// Fast path: a one-byte varint.
	if m.pos < len(m.buf) {
		if b := m.buf[m.pos]; b < 0x80 {
			m.pos++
			return int64(b>>1) ^ -int64(b&1), nil
		}
	}
	u, err := m.varint()
	return wire.Unzag(u), err
}

func (m *machine) int() (int64, error) {
	v, err := m.long()
	if err == nil && (v < math.MinInt32 || v > math.MaxInt32) {
		return 0, ErrIntOverflow
	}
	return v, err
}

// length reads a length and checks it against the bytes left.
func (m *machine) length() (int, error) {
	n, err := m.long()
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, ErrNegativeLength
	}
	if n > int64(len(m.buf)-m.pos) {
		return 0, ErrTruncated
	}
	return int(n), nil
}

func (m *machine) bytes() (string, error) {
	n, err := m.length()
	if err != nil {
		return "", err
	}
	s := engine.UnsafeString(m.buf[m.pos : m.pos+n])
	m.pos += n
	return s, nil
}

func fieldErr(path string, err error) error {
	return &engine.DecodeError{Field: path, Err: err}
}

// Decode decodes one record, which must fill data exactly (unless the program
// is projected: see Project), into row. row must have been Reset to the
// reader schema's width (Program.Width), except by a projected program, which
// clears what it writes itself; its strings alias data. An error is an
// *engine.DecodeError naming the field.
func (p *Program) Decode(data []byte, row *engine.Row) error {
	if p.proj != nil {
		// Projected: one flat plan, and nothing after the last projected
		// field is read.
		p.prepare(row, p.planClear)
		m := machine{buf: data, row: row, maxExt: p.maxExt}
		n, err := runPlan(data, 0, p.plan, &m)
		if err == nil && p.whole && n != len(data) {
			return &engine.DecodeError{Err: fmt.Errorf("%w: %d of %d bytes", ErrTrailing, len(data)-n, len(data))}
		}
		return err
	}
	n, err := p.DecodePrefix(data, row)
	if err == nil && n != len(data) {
		return &engine.DecodeError{Err: fmt.Errorf("%w: %d of %d bytes", ErrTrailing, len(data)-n, len(data))}
	}
	return err
}

// DecodePrefix decodes one record from the start of data into row and returns
// the number of bytes it took.
func (p *Program) DecodePrefix(data []byte, row *engine.Row) (int, error) {
	if p.proj != nil {
		p.prepare(row, p.clear)
	} else if len(row.Slots) < p.width {
		row.Reset(p.width)
	}
	m := machine{buf: data, row: row, maxExt: p.maxExt}
	if err := m.run(p.fields, -1, false); err != nil {
		return m.pos, err
	}
	return m.pos, nil
}

// prepare clears what a projected program may write in row: Ext and the
// slots of clear (those of its fields that it may not write whole). The
// other slots are left as they are.
func (p *Program) prepare(row *engine.Row, clear []int32) {
	if len(row.Slots) < p.width {
		row.Reset(p.width)
		return
	}
	row.Ext = row.Ext[:0]
	slots := row.Slots[:p.width]
	for _, i := range clear {
		slots[i] = engine.Slot{}
	}
}

// Width is the number of slots of a row of the reader schema.
func (p *Program) Width() int { return p.width }

// run executes ops. The hot scalar cases are inline in the loop, with the
// input position in a local (written back around calls); a value that holds
// others recurses. A writer union re-dispatches its branch's op in place.
func (m *machine) run(ops []op, base int, ext bool) error {
	buf, pos := m.buf, m.pos
	dst := m.slots(ext)
	for i := range ops {
		o := &ops[i]
	again:
		switch o.code {
		case opLong, opInt, opEnum, opUnion:
			var v int64
			if pos < len(buf) && buf[pos] < 0x80 {
				b := buf[pos]
				pos++
				v = int64(b>>1) ^ -int64(b&1)
			} else {
				u, p, err := wire.Uvarint(buf, pos)
				if err != nil {
					return fieldErr(o.path(), err)
				}
				pos = p
				v = wire.Unzag(u)
			}
			switch o.code {
			case opLong:
				dst[base+int(o.slot)].N = uint64(v)
			case opInt:
				if v < math.MinInt32 || v > math.MaxInt32 {
					return fieldErr(o.path(), ErrIntOverflow)
				}
				dst[base+int(o.slot)].N = uint64(v)
			case opEnum:
				if v < 0 || v >= int64(len(o.x.enum)) {
					return fieldErr(o.path(), fmt.Errorf("%w: %d of %d symbols", ErrEnumIndex, v, len(o.x.enum)))
				}
				e := &o.x.enum[v]
				s := &dst[base+int(o.slot)]
				s.N, s.S = e.n, e.sym
			default: // opUnion
				if v < 0 || v >= int64(len(o.sub)) {
					return fieldErr(o.path(), fmt.Errorf("%w: %d of %d branches", ErrUnionIndex, v, len(o.sub)))
				}
				o = &o.sub[v]
				goto again
			}
		case opBytes:
			var n int64
			if pos < len(buf) && buf[pos] < 0x80 {
				b := buf[pos]
				pos++
				n = int64(b>>1) ^ -int64(b&1)
			} else {
				u, p, err := wire.Uvarint(buf, pos)
				if err != nil {
					return fieldErr(o.path(), err)
				}
				pos = p
				n = wire.Unzag(u)
			}
			if n < 0 {
				return fieldErr(o.path(), ErrNegativeLength)
			}
			if n > int64(len(buf)-pos) {
				return fieldErr(o.path(), ErrTruncated)
			}
			dst[base+int(o.slot)].S = engine.UnsafeString(buf[pos : pos+int(n)])
			pos += int(n)
		case opSetNull:
			dst[base+int(o.slot)] = engine.Slot{Null: true, N: uint64(o.aux)}
		case opBool:
			if pos >= len(buf) {
				return fieldErr(o.path(), ErrTruncated)
			}
			dst[base+int(o.slot)].N = uint64(buf[pos] & 1)
			pos++
		case opDouble:
			if len(buf)-pos < 8 {
				return fieldErr(o.path(), ErrTruncated)
			}
			dst[base+int(o.slot)].N = binary.LittleEndian.Uint64(buf[pos:])
			pos += 8
		case opFloat:
			if len(buf)-pos < 4 {
				return fieldErr(o.path(), ErrTruncated)
			}
			dst[base+int(o.slot)].N = math.Float64bits(float64(math.Float32frombits(binary.LittleEndian.Uint32(buf[pos:]))))
			pos += 4
		case opRecord:
			m.pos = pos
			if err := m.run(o.sub, base+int(o.slot), ext); err != nil {
				return err
			}
			pos = m.pos
			dst = m.slots(ext)
		default:
			m.pos = pos
			if err := m.other(o, base, ext); err != nil {
				return err
			}
			pos = m.pos
			dst = m.slots(ext)
		}
	}
	m.pos = pos
	return nil
}

// other executes the ops that are rare on hot paths.
func (m *machine) other(o *op, base int, ext bool) error {
	switch o.code {
	case opSkipPlan:
		pos, err := skipPlan(m.buf, m.pos, o.x.plan)
		m.pos = pos
		return err
	case opSkip:
		if err := m.skip(o.x.wtype); err != nil {
			return fieldErr(o.path(), err)
		}
		return nil
	case opDefault:
		buf, pos := m.buf, m.pos
		m.buf, m.pos = o.x.def, 0
		err := m.run(unsafeOne(o.elem), base, ext)
		m.buf, m.pos = buf, pos
		return err
	case opArray, opMap:
		return m.elements(o, base, ext)
	case opBranch:
		m.slots(ext)[base+int(o.slot)].N = uint64(o.aux)
		return m.run(unsafeOne(o.elem), base, ext)
	case opIntF, opIntD, opLongF, opLongD:
		v, err := m.long()
		if err != nil {
			return fieldErr(o.path(), err)
		}
		if (o.code == opIntF || o.code == opIntD) && (v < math.MinInt32 || v > math.MaxInt32) {
			return fieldErr(o.path(), ErrIntOverflow)
		}
		f := float64(v)
		if o.code == opIntF || o.code == opLongF {
			f = float64(float32(v))
		}
		m.slots(ext)[base+int(o.slot)].N = math.Float64bits(f)
	case opFixed:
		n := int(o.aux)
		if len(m.buf)-m.pos < n {
			return fieldErr(o.path(), ErrTruncated)
		}
		m.slots(ext)[base+int(o.slot)].S = engine.UnsafeString(m.buf[m.pos : m.pos+n])
		m.pos += n
	}
	return nil
}

func (m *machine) slots(ext bool) []engine.Slot {
	if ext {
		return m.row.Ext
	}
	return m.row.Slots
}

// unsafeOne views one op as a slice of one, without allocating.
func unsafeOne(o *op) []op { return unsafe.Slice(o, 1) }

// blockCount reads the count of the next block of an array or map, reading
// and checking the byte size that follows a negative count.
func (m *machine) blockCount(o *op) (int, error) {
	c, err := m.long()
	if err != nil {
		return 0, err
	}
	if c < 0 {
		if c == math.MinInt64 {
			return 0, ErrBlockCount
		}
		c = -c
		size, err := m.long()
		if err != nil {
			return 0, err
		}
		if size < 0 || size > int64(len(m.buf)-m.pos) {
			return 0, ErrTruncated
		}
	}
	if o.x.min > 0 && c > int64(len(m.buf)-m.pos)/o.x.min {
		return 0, ErrBlockCount
	}
	if c > int64(m.maxExt) {
		return 0, ErrTooManyElems
	}
	return int(c), nil
}

// elements decodes an array or map into Row.Ext. Elements of one value must be
// contiguous, but decoding an element may append nested elements after them;
// so a value's region is reserved with room to grow and moved (a plain copy,
// since nested elements are addressed by absolute Ext index) when a later
// block does not fit.
func (m *machine) elements(o *op, base int, ext bool) error {
	w := int(o.aux)
	start, n, capN := 0, 0, 0
	for {
		c, err := m.blockCount(o)
		if err != nil {
			return fieldErr(o.path(), err)
		}
		if c == 0 {
			break
		}
		if n+c > capN {
			r := m.row
			newCap := max(2*capN, n+c)
			if start+capN*w == len(r.Ext) && capN > 0 {
				if len(r.Ext)+(newCap-capN)*w > m.maxExt {
					return fieldErr(o.path(), ErrTooManyElems)
				}
				r.Grow((newCap - capN) * w)
			} else {
				if len(r.Ext)+newCap*w > m.maxExt {
					return fieldErr(o.path(), ErrTooManyElems)
				}
				ns := r.Grow(newCap * w)
				copy(r.Ext[ns:], r.Ext[start:start+n*w])
				start = ns
			}
			capN = newCap
		}
		for i := 0; i < c; i++ {
			e := start + (n+i)*w
			if o.code == opMap {
				k, err := m.bytes()
				if err != nil {
					return fieldErr(o.path(), err)
				}
				m.row.Ext[e].S = k
			}
			if err := m.run(unsafeOne(o.elem), e, true); err != nil {
				return err
			}
		}
		n += c
	}
	dst := m.row.Slots
	if ext {
		dst = m.row.Ext
	}
	s := &dst[base+int(o.slot)]
	s.N, s.L = uint64(start), int32(n)
	return nil
}

// skip reads past a value of writer type t.
func (m *machine) skip(t *engine.Type) error {
	switch t.Kind {
	case engine.KindNull:
	case engine.KindBool:
		return m.advance(1)
	case engine.KindInt, engine.KindLong, engine.KindEnum:
		_, err := m.long()
		return err
	case engine.KindFloat:
		return m.advance(4)
	case engine.KindDouble:
		return m.advance(8)
	case engine.KindFixed:
		return m.advance(t.Size)
	case engine.KindBytes, engine.KindString:
		_, err := m.bytes()
		return err
	case engine.KindRecord:
		for _, f := range t.Fields {
			if err := m.skip(f.Type); err != nil {
				return err
			}
		}
	case engine.KindUnion:
		v, err := m.long()
		if err != nil {
			return err
		}
		if v < 0 || v >= int64(len(t.Branches)) {
			return ErrUnionIndex
		}
		return m.skip(t.Branches[v])
	case engine.KindArray, engine.KindMap:
		min, fixed := int64(minSize(t.Items)), int64(fixedSize(t.Items))
		if t.Kind == engine.KindMap {
			min, fixed = min+1, -1
		}
		for {
			c, err := m.long()
			if err != nil {
				return err
			}
			if c == 0 {
				return nil
			}
			if c < 0 {
				if c == math.MinInt64 {
					return ErrBlockCount
				}
				c = -c
				size, err := m.long()
				if err != nil {
					return err
				}
				if size < 0 || size > int64(len(m.buf)-m.pos) {
					return ErrTruncated
				}
				m.pos += int(size) // the byte size lets a reader jump the block
				continue
			}
			if min > 0 && c > int64(len(m.buf)-m.pos)/min {
				return ErrBlockCount
			}
			if fixed >= 0 {
				if fixed > 0 && c > int64(len(m.buf)-m.pos)/fixed {
					return ErrTruncated
				}
				m.pos += int(c * fixed)
				continue
			}
			for i := int64(0); i < c; i++ {
				if t.Kind == engine.KindMap {
					if _, err := m.bytes(); err != nil {
						return err
					}
				}
				if err := m.skip(t.Items); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (m *machine) advance(n int) error {
	if n < 0 || len(m.buf)-m.pos < n {
		return ErrTruncated
	}
	m.pos += n
	return nil
}

// Skip returns the length of the one value of type t at the start of data: how
// the object container file reader splits a block into records.
func Skip(t *engine.Type, data []byte) (int, error) {
	m := machine{buf: data}
	if err := m.skip(t); err != nil {
		return m.pos, err
	}
	return m.pos, nil
}
