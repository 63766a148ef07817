package avro

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"

	"github.com/sluicehq/sluice/engine"
	wire "github.com/sluicehq/sluice/engine/avro"
)

// A skip plan reads past writer values without decoding them: the fields a
// projection leaves out and the writer fields the reader lacks. It is a flat
// slice of small instructions, compiled once from the writer types and run by
// one tight loop (skipPlan) that writes nothing. Nested records are
// flattened into their fields, and runs of like values are merged, so the
// loop's work is proportional to the values, not to the schema's shape.
//
// The loop's fast path handles the common encodings without a call: lengths
// and union indexes of one byte, varints of up to eight bytes found eight
// bytes at a time. Anything else (a longer length, a varint near the end of
// the input, a bad index, a truncation) hands the rest of the instruction to
// skipSlow, which reads it exactly and names the field in its error.
type skipCode uint8

const (
	skVarints   skipCode = iota // n varints: int, long, enum
	skBytes                     // n length-prefixed values: string, bytes
	skFixed                     // n bytes: boolean, float, double, fixed
	skOptVarint                 // union of null and an int, long or enum
	skOptBytes                  // union of null and a string or bytes
	skOptFixed                  // union of null and n bytes
	skUnion                     // any other union: x.branches[index]
	skBlocks                    // array or map: blocks of x.elem values

	// A projected program's whole record is one plan: the values it
	// decodes are instructions too, writing Row.Slots[slot].
	dLong  // long or int into a long slot
	dInt   // int into an int slot: range checked
	dEnum  // x.op's enum table
	dBytes // string or bytes
	dOp    // any other value: x.op run by the tree interpreter, base slot
)

// skipOp is one instruction of a skip plan. For the skOpt codes, the union
// index byte (zig-zag encoded) is nul for the null branch and val for the
// other. What only the slow path needs lives behind x.
type skipOp struct {
	code     skipCode
	nul, val uint8
	n        int32
	slot     int32 // the d codes: the slot written (dOp: the base)
	x        *skipExtra
}

type skipExtra struct {
	// paths names each value of a run (skVarints, skBytes), each field of
	// an skFixed run (sizes gives their sizes), or the one value otherwise.
	paths    []string
	sizes    []int32
	branches [][]skipOp // skUnion and the skOpt codes: the plan of each branch
	elem     []skipOp   // skBlocks: one element (a map entry starts with its key)
	min      int64      // skBlocks: fewest bytes of an element
	fixed    int64      // skBlocks: bytes of every element when constant, else -1
	isMap    bool
	op       *op // the d codes: the op compiled for the value
}

// appendSkipPlan appends the instructions that read past a value of writer
// type t at path, merging them into the last instruction where they extend
// its run.
func appendSkipPlan(plan []skipOp, t *engine.Type, path string) []skipOp {
	run := func(code skipCode, n int32) []skipOp {
		if k := len(plan) - 1; k >= 0 && plan[k].code == code {
			o := &plan[k]
			o.n += n
			o.x.paths = append(o.x.paths, path)
			if code == skFixed {
				o.x.sizes = append(o.x.sizes, n)
			}
			return plan
		}
		x := &skipExtra{paths: []string{path}}
		if code == skFixed {
			x.sizes = []int32{n}
		}
		return append(plan, skipOp{code: code, n: n, x: x})
	}
	switch t.Kind {
	case engine.KindNull:
		return plan
	case engine.KindBool, engine.KindFloat, engine.KindDouble, engine.KindFixed:
		if n := fixedSize(t); n > 0 {
			return run(skFixed, int32(n))
		}
		return plan
	case engine.KindInt, engine.KindLong, engine.KindEnum:
		return run(skVarints, 1)
	case engine.KindString, engine.KindBytes:
		return run(skBytes, 1)
	case engine.KindRecord:
		for _, f := range t.Fields {
			plan = appendSkipPlan(plan, f.Type, join(path, f.Name))
		}
		return plan
	case engine.KindUnion:
		x := &skipExtra{paths: []string{path}}
		for _, b := range t.Branches {
			x.branches = append(x.branches, appendSkipPlan(nil, b, path))
		}
		o := skipOp{code: skUnion, x: x}
		if len(t.Branches) == 2 {
			// A nullable union of one simple value has its own codes, so
			// that the loop skips it without a nested plan.
			for nul := 0; nul < 2; nul++ {
				val := 1 - nul
				if t.Branches[nul].Kind != engine.KindNull || len(x.branches[val]) != 1 {
					continue
				}
				b := x.branches[val][0]
				switch {
				case b.code == skVarints && b.n == 1:
					o.code = skOptVarint
				case b.code == skBytes && b.n == 1:
					o.code = skOptBytes
				case b.code == skFixed:
					o.code, o.n = skOptFixed, b.n
				default:
					continue
				}
				o.nul, o.val = uint8(2*nul), uint8(2*val)
			}
		}
		return append(plan, o)
	case engine.KindArray, engine.KindMap:
		x := &skipExtra{paths: []string{path}, min: int64(minSize(t.Items)), fixed: int64(fixedSize(t.Items))}
		if t.Kind == engine.KindMap {
			x.isMap = true
			x.min++
			x.fixed = -1
			x.elem = appendSkipPlan(x.elem, &engine.Type{Kind: engine.KindString}, path+"{}")
			x.elem = appendSkipPlan(x.elem, t.Items, path+"{}")
		} else {
			x.elem = appendSkipPlan(nil, t.Items, path+"[]")
		}
		return append(plan, skipOp{code: skBlocks, x: x})
	}
	panic(fmt.Sprintf("avro: skip plan of %v", t.Kind))
}

// skipPlan reads past the values of plan at buf[pos:] and returns the
// position after them. It writes nothing; an error is an *engine.DecodeError
// naming the field.
func skipPlan(buf []byte, pos int, plan []skipOp) (int, error) {
	return runPlan(buf, pos, plan, nil)
}

// runPlan is skipPlan for plans that also decode (a projected program's):
// their d instructions write m's row.
func runPlan(buf []byte, pos int, plan []skipOp, m *machine) (int, error) {
	var err error
next:
	for i := range plan {
		o := &plan[i]
		switch o.code {
		case skBytes:
			for k := int32(0); k < o.n; k++ {
				if pos < len(buf) {
					b := buf[pos]
					if n := 1 + int(b>>1); b&0x81 == 0 && n <= len(buf)-pos {
						pos += n
						continue
					}
				}
				if pos, err = skipSlow(buf, pos, o, int(k)); err != nil {
					return pos, err
				}
				continue next
			}
		case skVarints:
			// Eight bytes at a time: the clear top bits of a word mark the
			// last byte of each varint in it.
			for n := int(o.n); n > 0; {
				if len(buf)-pos >= 8 {
					ends := ^binary.LittleEndian.Uint64(buf[pos:]) & 0x8080808080808080
					if c := bits.OnesCount64(ends); c >= n {
						for ; n > 1; n-- {
							ends &= ends - 1
						}
						pos += bits.TrailingZeros64(ends)>>3 + 1
						continue next
					} else if c > 0 {
						pos += (63-bits.LeadingZeros64(ends))>>3 + 1
						n -= c
						continue
					}
				}
				if pos, err = skipSlow(buf, pos, o, int(o.n)-n); err != nil {
					return pos, err
				}
				continue next
			}
		case skFixed:
			if int(o.n) > len(buf)-pos {
				return skipSlow(buf, pos, o, 0)
			}
			pos += int(o.n)
		case skOptBytes:
			// Without a branch on which branch it is: nulls and values
			// alternate unpredictably.
			if len(buf)-pos >= 2 {
				b, l := buf[pos], buf[pos+1]
				isVal := int((b ^ o.nul) >> 1) // 1 for val, 0 for nul (when b is either)
				n := 1 + (-isVal & (1 + int(l>>1)))
				if b&^2 == 0 && int(l&0x81)&-isVal == 0 && n <= len(buf)-pos {
					pos += n
					continue
				}
			}
			if pos, err = skipSlow(buf, pos, o, 0); err != nil {
				return pos, err
			}
		case skOptVarint:
			if pos < len(buf) {
				if b := buf[pos]; b == o.nul {
					pos++
					continue
				} else if b == o.val && len(buf)-pos >= 9 {
					ends := ^binary.LittleEndian.Uint64(buf[pos+1:]) & 0x8080808080808080
					if ends != 0 {
						pos += bits.TrailingZeros64(ends)>>3 + 2
						continue
					}
				}
			}
			if pos, err = skipSlow(buf, pos, o, 0); err != nil {
				return pos, err
			}
		case skOptFixed:
			if pos < len(buf) {
				if b := buf[pos]; b == o.nul {
					pos++
					continue
				} else if b == o.val && int(o.n) < len(buf)-pos {
					pos += 1 + int(o.n)
					continue
				}
			}
			if pos, err = skipSlow(buf, pos, o, 0); err != nil {
				return pos, err
			}
		case dLong, dInt, dEnum:
			var v int64
			if pos < len(buf) && buf[pos] < 0x80 {
				b := buf[pos]
				pos++
				v = int64(b>>1) ^ -int64(b&1)
			} else {
				u, p, err := wire.Uvarint(buf, pos)
				if err != nil {
					return p, fieldErr(o.x.paths[0], err)
				}
				pos = p
				v = wire.Unzag(u)
			}
			s := &m.row.Slots[o.slot]
			switch o.code {
			case dLong:
				s.N = uint64(v)
			case dInt:
				if v < math.MinInt32 || v > math.MaxInt32 {
					return pos, fieldErr(o.x.paths[0], ErrIntOverflow)
				}
				s.N = uint64(v)
			default:
				enum := o.x.op.x.enum
				if v < 0 || v >= int64(len(enum)) {
					return pos, fieldErr(o.x.paths[0], fmt.Errorf("%w: %d of %d symbols", ErrEnumIndex, v, len(enum)))
				}
				s.N, s.S = enum[v].n, enum[v].sym
			}
		case dBytes:
			if pos < len(buf) {
				b := buf[pos]
				if n := int(b >> 1); b&0x81 == 0 && n < len(buf)-pos {
					m.row.Slots[o.slot].S = engine.UnsafeString(buf[pos+1 : pos+1+n])
					pos += 1 + n
					continue
				}
			}
			m.pos = pos
			str, err := m.bytes()
			if err != nil {
				return m.pos, fieldErr(o.x.paths[0], err)
			}
			m.row.Slots[o.slot].S = str
			pos = m.pos
		case dOp:
			m.pos = pos
			if err := m.run(unsafeOne(o.x.op), int(o.slot), false); err != nil {
				return m.pos, err
			}
			pos = m.pos
		default:
			if pos, err = skipSlow(buf, pos, o, 0); err != nil {
				return pos, err
			}
		}
	}
	return pos, nil
}

// flatPlan compiles the ops of a record whose own slot is base (-1 at the
// top) into one plan: skip plans inline, nested records flattened, the
// common scalars as d instructions and any other op as dOp.
func flatPlan(plan []skipOp, ops []op, base int32) []skipOp {
	for i := range ops {
		o := &ops[i]
		slot := base + o.slot
		d := skipOp{slot: slot, x: &skipExtra{paths: []string{o.path()}, op: o}}
		switch o.code {
		case opSkipPlan:
			plan = append(plan, o.x.plan...)
			continue
		case opRecord:
			plan = flatPlan(plan, o.sub, slot)
			continue
		case opLong:
			d.code = dLong
		case opInt:
			d.code = dInt
		case opEnum:
			d.code = dEnum
		case opBytes:
			d.code = dBytes
		default:
			d.code, d.slot = dOp, base
		}
		plan = append(plan, d)
	}
	return plan
}

// skipSlow reads past the values of o from its k-th on, exactly: any
// encoding the fast path leaves, every error with the field's path.
func skipSlow(buf []byte, pos int, o *skipOp, k int) (int, error) {
	x := o.x
	switch o.code {
	case skVarints:
		for ; k < int(o.n); k++ {
			_, p, err := wire.Uvarint(buf, pos)
			if err != nil {
				return p, fieldErr(x.paths[k], err)
			}
			pos = p
		}
	case skBytes:
		for ; k < int(o.n); k++ {
			p, err := skipLength(buf, pos)
			if err != nil {
				return p, fieldErr(x.paths[k], err)
			}
			pos = p
		}
	case skFixed:
		for i, n := range x.sizes {
			if int(n) > len(buf)-pos {
				return pos, fieldErr(x.paths[i], ErrTruncated)
			}
			pos += int(n)
		}
	case skUnion, skOptVarint, skOptBytes, skOptFixed:
		u, p, err := wire.Uvarint(buf, pos)
		if err != nil {
			return p, fieldErr(x.paths[0], err)
		}
		if v := wire.Unzag(u); v < 0 || v >= int64(len(x.branches)) {
			return p, fieldErr(x.paths[0], fmt.Errorf("%w: %d of %d branches", ErrUnionIndex, v, len(x.branches)))
		}
		return skipPlan(buf, p, x.branches[wire.Unzag(u)])
	case skBlocks:
		return skipBlocks(buf, pos, x)
	}
	return pos, nil
}

// skipLength reads past one length-prefixed value.
func skipLength(buf []byte, pos int) (int, error) {
	u, p, err := wire.Uvarint(buf, pos)
	if err != nil {
		return p, err
	}
	n := wire.Unzag(u)
	if n < 0 {
		return p, ErrNegativeLength
	}
	if n > int64(len(buf)-p) {
		return p, ErrTruncated
	}
	return p + int(n), nil
}

// skipBlocks reads past the blocks of an array or map: a block with its byte
// size is jumped, one of constant-size elements too, any other walked
// element by element.
func skipBlocks(buf []byte, pos int, x *skipExtra) (int, error) {
	path := x.paths[0]
	for {
		u, p, err := wire.Uvarint(buf, pos)
		if err != nil {
			return p, fieldErr(path, err)
		}
		pos = p
		c := wire.Unzag(u)
		if c == 0 {
			return pos, nil
		}
		if c < 0 {
			if c == math.MinInt64 {
				return pos, fieldErr(path, ErrBlockCount)
			}
			u, p, err := wire.Uvarint(buf, pos)
			if err != nil {
				return p, fieldErr(path, err)
			}
			pos = p
			size := wire.Unzag(u)
			if size < 0 || size > int64(len(buf)-pos) {
				return pos, fieldErr(path, ErrTruncated)
			}
			pos += int(size) // the byte size lets a reader jump the block
			continue
		}
		if x.min > 0 && c > int64(len(buf)-pos)/x.min {
			return pos, fieldErr(path, ErrBlockCount)
		}
		if x.fixed >= 0 {
			// c*fixed ≤ the bytes left, by the check above (min = fixed).
			pos += int(c * x.fixed)
			continue
		}
		for ; c > 0; c-- {
			if pos, err = skipPlan(buf, pos, x.elem); err != nil {
				return pos, err
			}
		}
	}
}
