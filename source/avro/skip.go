package avro

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"unsafe"

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
// fastPlan runs the common encodings without a call: lengths and union
// indexes of one byte, varints of up to nine bytes found eight bytes at a
// time. Anything else (a longer length, a varint of ten bytes or near the
// end of the input, a bad index, a truncation) hands that instruction to
// slowOp and skipSlow, which read it exactly and name the field in their
// errors.
type skipCode uint8

const (
	skVarints   skipCode = iota // n varints: int, long, enum
	skBytes                     // n length-prefixed values: string, bytes
	skFixed                     // n bytes: boolean, float, double, fixed
	skOptVarint                 // union of null and an int, long or enum
	skOptBytes                  // union of null and a string or bytes
	skStrs                      // n of skBytes and skOptBytes: bit k of mask set if the k-th is a union
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
	slot     int32  // the d codes: the slot written (dOp: the base)
	mask     uint32 // skStrs: which values are unions
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
	op       *op          // the d codes: the op compiled for the value
	enum     []enumTarget // dEnum: op's table
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
		if k := len(plan) - 1; k >= 0 && (plan[k].code == skStrs || plan[k].code == skOptBytes) {
			return appendStr(plan, false, plan[k].nul, plan[k].val, path)
		}
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
			// A nullable union of one simple value has its own codes (a
			// string joins an skStrs run), so that the loop skips it
			// without a nested plan.
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
		if k := len(plan) - 1; o.code == skOptBytes && k >= 0 {
			switch plan[k].code {
			case skBytes, skStrs, skOptBytes:
				return appendStr(plan, true, o.nul, o.val, path)
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

// appendStr appends a string (or bytes) value, a union of null and one if
// opt, to the plan whose last instruction is an skBytes, skOptBytes or
// skStrs, making it an skStrs: one instruction for a run of both, which the
// records of many schemas interleave. The unions of one skStrs have the
// same branch order (nul, val); a value that does not fit starts another.
func appendStr(plan []skipOp, opt bool, nul, val uint8, path string) []skipOp {
	k := len(plan) - 1
	last := &plan[k]
	fits := last.n < 32
	if opt && (last.code == skOptBytes || last.code == skStrs) && (last.nul != nul || last.val != val) {
		fits = false
	}
	if !fits {
		if !opt {
			return append(plan, skipOp{code: skBytes, n: 1, x: &skipExtra{paths: []string{path}}})
		}
		return append(plan, skipOp{code: skOptBytes, nul: nul, val: val, x: &skipExtra{paths: []string{path},
			branches: optBranches(nul, skipOp{code: skBytes, n: 1, x: &skipExtra{paths: []string{path}}})}})
	}
	switch last.code {
	case skBytes:
		last.nul, last.val = nul, val
	case skOptBytes:
		last.n, last.mask = 1, 1
	}
	last.code = skStrs
	if opt {
		last.mask |= 1 << last.n
	}
	last.n++
	last.x = &skipExtra{paths: append(last.x.paths[:len(last.x.paths):len(last.x.paths)], path)}
	return plan
}

// optBranches is the branches of a union of null and the value read by v,
// the null branch first when nul is 0.
func optBranches(nul uint8, v skipOp) [][]skipOp {
	if nul == 0 {
		return [][]skipOp{nil, {v}}
	}
	return [][]skipOp{{v}, nil}
}

// skipPlan reads past the values of plan at buf[pos:] and returns the
// position after them. It writes nothing; an error is an *engine.DecodeError
// naming the field.
func skipPlan(buf []byte, pos int, plan []skipOp) (int, error) {
	return runPlan(buf, pos, plan, nil)
}

// runPlan is skipPlan for plans that also decode (a projected program's):
// their d instructions write m's row. It alternates between fastPlan, which
// runs instructions until one needs more than its fast path, and slowOp,
// which runs that one exactly.
func runPlan(buf []byte, pos int, plan []skipOp, m *machine) (int, error) {
	var slots []engine.Slot
	if m != nil {
		slots = m.row.Slots
	}
	for {
		i, p := fastPlan(buf, pos, plan, slots)
		if i == len(plan) {
			return p, nil
		}
		var err error
		if pos, err = slowOp(buf, p, &plan[i], m); err != nil {
			return pos, err
		}
		plan = plan[i+1:]
	}
}

// fastPlan runs the instructions of plan from buf[pos:] while their fast
// paths apply and returns how many it ran, with the position after them: at
// an instruction it cannot finish (a long length, a varint near the end of
// the input or of more than eight bytes, a union index it does not know, a
// value out of range, a truncation) it stops at that instruction's start,
// for slowOp to run it exactly. It calls nothing, so that its state stays in
// registers from one instruction to the next, and it reads the input
// through at and word, each read checked against len(buf) once by the
// instruction (0 <= pos <= len(buf) holds throughout).
func fastPlan(buf []byte, pos int, plan []skipOp, slots []engine.Slot) (int, int) {
	if pos < 0 || pos > len(buf) {
		return 0, pos
	}
	base := unsafe.Pointer(unsafe.SliceData(buf))
	for i := range plan {
		o := &plan[i]
		switch o.code {
		case skBytes:
			// Lengths of one byte: each value is checked against the end
			// only by the next one's read, and the last one after the run.
			p := pos
			for k := o.n; k > 0; k-- {
				if p >= len(buf) {
					return i, pos
				}
				b := at(base, p)
				if b&0x81 != 0 {
					return i, pos
				}
				p += 1 + int(b>>1)
			}
			if p > len(buf) {
				return i, pos
			}
			pos = p
		case skStrs:
			// Like skBytes, and each union like skOptBytes.
			p := pos
			mask := o.mask
			for k := o.n; k > 0; k-- {
				if len(buf)-p < 2 {
					return i, pos
				}
				b := at(base, p)
				if mask&1 == 0 {
					if b&0x81 != 0 {
						return i, pos
					}
					p += 1 + int(b>>1)
				} else {
					// Both ends computed, one chosen without a branch: the
					// index is not predictable.
					l := at(base, p+1)
					if b != o.nul && (b != o.val || l&0x81 != 0) {
						return i, pos
					}
					v := p + 2 + int(l>>1)
					p++
					if b == o.val {
						p = v
					}
				}
				mask >>= 1
			}
			if p > len(buf) {
				return i, pos
			}
			pos = p
		case skVarints:
			// Eight bytes at a time: the clear top bits of a word mark the
			// last byte of each varint in it. A word without one starts a
			// varint of nine bytes or more: nine (a long over 2^55, such as
			// a hash) ends at the next byte, ten are left to slowOp, which
			// checks them for overflow.
			p := pos
			for n := o.n; n > 0; n-- {
				if len(buf)-p < 9 {
					return i, pos
				}
				ends := ^word(base, p) & 0x8080808080808080
				if ends == 0 {
					if at(base, p+8) >= 0x80 {
						return i, pos
					}
					p += 9
					continue
				}
				for n > 1 && ends&(ends-1) != 0 {
					ends &= ends - 1
					n--
				}
				p += bits.TrailingZeros64(ends)>>3 + 1
			}
			pos = p
		case skFixed:
			if int(o.n) > len(buf)-pos {
				return i, pos
			}
			pos += int(o.n)
		case skOptBytes:
			// Without a branch on which branch it is: nulls and values
			// alternate unpredictably.
			if len(buf)-pos < 2 {
				return i, pos
			}
			b, l := at(base, pos), at(base, pos+1)
			isVal := int((b ^ o.nul) >> 1) // 1 for val, 0 for nul (when b is either)
			n := 1 + (-isVal & (1 + int(l>>1)))
			if b&^2 != 0 || int(l&0x81)&-isVal != 0 || n > len(buf)-pos {
				return i, pos
			}
			pos += n
		case skOptVarint:
			if len(buf)-pos < 9 {
				return i, pos
			}
			b := at(base, pos)
			if b == o.nul {
				pos++
				continue
			}
			ends := ^word(base, pos+1) & 0x8080808080808080
			if b != o.val || ends == 0 {
				return i, pos
			}
			pos += bits.TrailingZeros64(ends)>>3 + 2
		case skOptFixed:
			if pos >= len(buf) {
				return i, pos
			}
			if b := at(base, pos); b == o.nul {
				pos++
			} else if b == o.val && int(o.n) < len(buf)-pos {
				pos += 1 + int(o.n)
			} else {
				return i, pos
			}
		case dLong, dInt, dEnum:
			// A varint of one byte, or of up to eight found and decoded
			// eight bytes at a time, without a branch on its length.
			if len(buf)-pos < 8 {
				return i, pos
			}
			start := pos
			w := word(base, pos)
			ends := ^w & 0x8080808080808080
			if ends == 0 {
				return i, pos
			}
			u := compact7(w & (ends ^ (ends - 1)))
			pos += bits.TrailingZeros64(ends)>>3 + 1
			v := wire.Unzag(u)
			// Each d instruction writes its whole slot, so that Decode
			// need not clear it first (Program.planClear).
			switch o.code {
			case dLong:
				slots[o.slot] = engine.Slot{N: uint64(v)}
			case dInt:
				if v != int64(int32(v)) {
					return i, start // for slowOp to report
				}
				slots[o.slot] = engine.Slot{N: uint64(v)}
			default:
				if uint64(v) >= uint64(len(o.x.enum)) {
					return i, start
				}
				e := &o.x.enum[v]
				slots[o.slot] = engine.Slot{N: e.n, S: e.sym}
			}
		case dBytes:
			if pos >= len(buf) {
				return i, pos
			}
			b := at(base, pos)
			n := int(b >> 1)
			if b&0x81 != 0 || n >= len(buf)-pos {
				return i, pos
			}
			var str string
			if n > 0 { // n > 0: pos+1 is in buf
				str = unsafe.String((*byte)(unsafe.Add(base, pos+1)), n)
			}
			slots[o.slot] = engine.Slot{S: str}
			pos += 1 + n
		default:
			return i, pos
		}
	}
	return len(plan), pos
}

// at is the byte at pos from base, which the caller has checked is in its
// slice: fastPlan's reads, without a bounds check per byte.
func at(base unsafe.Pointer, pos int) byte { return *(*byte)(unsafe.Add(base, pos)) }

// word is the eight bytes at pos from base, little-endian, all of which the
// caller has checked are in its slice.
func word(base unsafe.Pointer, pos int) uint64 {
	return binary.LittleEndian.Uint64((*[8]byte)(unsafe.Add(base, pos))[:])
}

// slowOp runs one instruction exactly from buf[pos:], whatever the encoding
// of its values, and names the field in its error.
func slowOp(buf []byte, pos int, o *skipOp, m *machine) (int, error) {
	switch o.code {
	case dLong, dInt, dEnum:
		u, p, err := wire.Uvarint(buf, pos)
		if err != nil {
			return p, fieldErr(o.x.paths[0], err)
		}
		v := wire.Unzag(u)
		s := &m.row.Slots[o.slot]
		switch o.code {
		case dLong:
			*s = engine.Slot{N: uint64(v)}
		case dInt:
			if v < math.MinInt32 || v > math.MaxInt32 {
				return p, fieldErr(o.x.paths[0], ErrIntOverflow)
			}
			*s = engine.Slot{N: uint64(v)}
		default:
			if v < 0 || v >= int64(len(o.x.enum)) {
				return p, fieldErr(o.x.paths[0], fmt.Errorf("%w: %d of %d symbols", ErrEnumIndex, v, len(o.x.enum)))
			}
			*s = engine.Slot{N: o.x.enum[v].n, S: o.x.enum[v].sym}
		}
		return p, nil
	case dBytes:
		m.pos = pos
		str, err := m.bytes()
		if err != nil {
			return m.pos, fieldErr(o.x.paths[0], err)
		}
		m.row.Slots[o.slot] = engine.Slot{S: str}
		return m.pos, nil
	case dOp:
		m.pos = pos
		err := m.run(unsafeOne(o.x.op), int(o.slot), false)
		return m.pos, err
	}
	return skipSlow(buf, pos, o, 0)
}

// compact7 packs the low seven bits of each byte of x, low byte first, into
// one number: the value of a varint whose bytes x holds (and nothing above
// them), in three shift-and-merge steps instead of one per byte.
func compact7(x uint64) uint64 {
	x &= 0x7f7f7f7f7f7f7f7f
	x = x&0x007f007f007f007f | x&0x7f007f007f007f00>>1
	x = x&0x00003fff00003fff | x&0x3fff00003fff0000>>2
	return x&0x000000000fffffff | x&0x0fffffff00000000>>4
}

// writesSlot reports whether o is a d instruction that writes its slot whole.
func (o *skipOp) writesSlot() bool {
	switch o.code {
	case dLong, dInt, dEnum, dBytes:
		return true
	}
	return false
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
			d.x.enum = o.x.enum
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
	case skStrs:
		for ; k < int(o.n); k++ {
			if o.mask>>k&1 != 0 {
				u, p, err := wire.Uvarint(buf, pos)
				if err != nil {
					return p, fieldErr(x.paths[k], err)
				}
				if v := wire.Unzag(u); v != 0 && v != 1 {
					return p, fieldErr(x.paths[k], fmt.Errorf("%w: %d of 2 branches", ErrUnionIndex, v))
				}
				pos = p
				if uint8(2*wire.Unzag(u)) == o.nul {
					continue
				}
			}
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
