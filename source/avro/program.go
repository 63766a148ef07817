package avro

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/engine"
)

// CompatError is a (writer, reader) schema pair that cannot be resolved: Field
// is the path of the reader field (or writer field) concerned, Rule says which
// rule of the specification's schema resolution fails.
type CompatError struct {
	Field string
	Rule  string
}

func (e *CompatError) Error() string {
	if e.Field == "" {
		return "avro resolution: " + e.Rule
	}
	return "avro resolution: field " + e.Field + ": " + e.Rule
}

// DefaultMaxElements is the default bound on the array and map element slots
// one record may fill (Row.Ext), which keeps a hostile block count from
// allocating without bound.
const DefaultMaxElements = 1 << 20

type opcode uint8

const (
	opSetNull opcode = iota // writer null: mark slot null (N = aux for a general union)
	opBool
	opInt   // writer int → reader int or long
	opLong  // writer long → reader long
	opIntF  // writer int → reader float
	opIntD  // writer int → reader double
	opLongF // writer long → reader float
	opLongD // writer long → reader double
	opFloat // writer float → reader float or double
	opDouble
	opBytes // writer bytes or string → reader bytes or string
	opFixed // aux = size
	opEnum
	opRecord
	opArray // aux = reader element width
	opMap   // aux = reader entry width (1 + value width)
	opUnion // writer union: branches[index]
	opBranch
	opSkip     // placeholder of a field that failed to compile
	opDefault  // a reader field the writer lacks: elem decodes def
	opSkipPlan // writer fields outside a projection or the reader: x.plan
)

// op reads one writer value and writes one reader value at base+slot, where
// base is the slot of the enclosing record's own (header) slot, -1 at the top.
// What only rare or error paths need lives behind x, to keep ops small.
type op struct {
	code opcode
	slot int32
	aux  int32
	sub  []op // record fields; writer union branches
	elem *op  // array/map element, branch value, default value
	x    *opExtra
}

type opExtra struct {
	path  string
	min   int64 // array/map: minimum encoded size of an element, 0 if it can be empty
	enum  []enumTarget
	wtype *engine.Type // skip: the writer's type
	def   []byte
	plan  []skipOp // opSkipPlan
}

func (o *op) path() string {
	if o.x == nil {
		return ""
	}
	return o.x.path
}

type enumTarget struct {
	n   uint64
	sym string
}

// Program decodes the Avro binary encoding of values of one writer schema into
// rows of one reader schema. It is immutable once compiled and safe for
// concurrent use.
type Program struct {
	writer, reader *engine.Type
	fields         []op
	width          int
	maxExt         int
	proj           *projection
	// stop is how many of fields Decode runs: with a projection, the ops
	// after the last one that writes a projected column are not run.
	stop int
	// clear lists the slots a projected program may write (every slot of
	// each top-level field it decodes), which DecodePrefix clears itself
	// before each record instead of having the whole row cleared.
	clear []int32
	// plan is a projected program's fields[:stop] as one flat plan, without
	// the skips after its last decoded value; planClear is clear without
	// the slots that plan's scalar instructions write whole, which Decode
	// need not clear first; whole says the plan walks the entire record, so
	// that Decode checks that nothing follows.
	plan      []skipOp
	planClear []int32
	whole     bool
}

// CompileOption configures Compile.
type CompileOption func(*compileOptions)

type compileOptions struct {
	maxExt int
	proj   *projection
}

// WithMaxElements bounds the array and map element slots (Row.Ext) that one
// record may fill; a record over it is a DecodeError (default
// DefaultMaxElements).
func WithMaxElements(n int) CompileOption {
	return func(o *compileOptions) { o.maxExt = n }
}

// WithProjection restricts decoding to the reader columns at paths ("src_ip",
// "src_location.country"; a record's path selects all of it) and those under
// them: every other writer field is skipped at the wire level (strings by
// their length, numbers by their varint, fixed-size values by their size,
// nested records field by field) without touching its slots, which keep
// whatever Reset left there. Compatibility is still checked for every field,
// so a projection never changes which writer schemas compile. With no paths,
// nothing is decoded.
//
// Decode stops reading after the last projected field: the bytes after it are
// not validated, so a record damaged only there decodes (as with any
// columnar reader that prunes columns). DecodePrefix still walks the whole
// record, since its caller needs the record's length. Default: every column
// is decoded.
//
// A projected program prepares the row itself: Decode and DecodePrefix clear
// the slots of the top-level fields they decode and Row.Ext, and touch no
// other slot, so a row reused from record to record needs no Reset (which
// clears every slot) between them.
func WithProjection(paths ...string) CompileOption {
	return func(o *compileOptions) { o.proj = newProjection(paths) }
}

// projection is the set of reader paths a Program decodes.
type projection struct {
	whole map[string]bool // paths decoded with everything under them
	under map[string]bool // proper ancestors of those paths
}

func newProjection(paths []string) *projection {
	pr := &projection{whole: map[string]bool{}, under: map[string]bool{}}
	for _, path := range paths {
		pr.whole[path] = true
		for i := strings.IndexByte(path, '.'); i >= 0; {
			pr.under[path[:i]] = true
			j := strings.IndexByte(path[i+1:], '.')
			if j < 0 {
				break
			}
			i += 1 + j
		}
	}
	return pr
}

// wants reports whether the reader field at path is decoded.
func (pr *projection) wants(path string) bool {
	if pr == nil || pr.under[path] {
		return true
	}
	for p := path; ; {
		if pr.whole[p] {
			return true
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

// Compile builds the program that reads values written with writer into rows
// of reader, resolving the two schemas as the Avro specification says. Both
// must be records. Every incompatibility is reported at once, each as a
// *CompatError naming the field and the rule.
func Compile(writer, reader *engine.Type, opts ...CompileOption) (*Program, error) {
	if writer == nil || reader == nil || writer.Kind != engine.KindRecord || reader.Kind != engine.KindRecord {
		return nil, &CompatError{Rule: "writer and reader schemas must be records"}
	}
	o := compileOptions{maxExt: DefaultMaxElements}
	for _, opt := range opts {
		opt(&o)
	}
	p := &Program{writer: writer, reader: reader, width: reader.FieldsWidth(), maxExt: o.maxExt, proj: o.proj}
	c := &compiler{proj: p.proj}
	p.fields = c.record(writer, reader, "")
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	p.stop = len(p.fields)
	if p.proj != nil {
		p.fields, p.stop = cutProjected(p.fields)
		p.plan = flatPlan(nil, p.fields[:p.stop], -1)
		// Nothing after the last decoded value need be read.
		n := len(p.plan)
		for n > 0 && p.plan[n-1].code < dLong {
			n--
		}
		p.whole = p.stop == len(p.fields) && n == len(p.plan)
		p.plan = p.plan[:n:n]
		written := map[int32]bool{}
		for _, o := range p.plan {
			if o.writesSlot() {
				written[o.slot] = true
			}
		}
		for _, f := range reader.Fields {
			if p.proj.wants(f.Name) {
				for i := range f.Type.Width() {
					slot := int32(f.Slot - 1 + i) // top-level base is -1
					p.clear = append(p.clear, slot)
					if !written[slot] {
						p.planClear = append(p.planClear, slot)
					}
				}
			}
		}
	}
	return p, nil
}

// Reader is the reader schema.
func (p *Program) Reader() *engine.Type { return p.reader }

// Writer is the writer schema.
func (p *Program) Writer() *engine.Type { return p.writer }

type compiler struct {
	errs []error
	proj *projection
}

func (c *compiler) fail(path, format string, args ...any) op {
	c.errs = append(c.errs, &CompatError{Field: path, Rule: fmt.Sprintf(format, args...)})
	return op{code: opSkip, x: &opExtra{path: path, wtype: &engine.Type{Kind: engine.KindNull}}}
}

func shortName(n string) string {
	if i := strings.LastIndexByte(n, '.'); i >= 0 {
		return n[i+1:]
	}
	return n
}

func describe(t *engine.Type) string {
	switch t.Kind {
	case engine.KindRecord, engine.KindEnum, engine.KindFixed:
		return t.Kind.String() + " " + t.Name
	}
	return t.Kind.String()
}

// record compiles the fields of a record; slots are relative to the record's
// own slot.
func (c *compiler) record(w, r *engine.Type, path string) []op {
	r.Width()
	used := make([]bool, len(r.Fields))
	var ops []op
	for _, wf := range w.Fields {
		fpath := join(path, wf.Name)
		ri := -1
		for i, rf := range r.Fields {
			if rf.Name == wf.Name {
				ri = i
				break
			}
		}
		if ri < 0 {
			for i, rf := range r.Fields {
				for _, a := range rf.Aliases {
					if a == wf.Name && !used[i] {
						ri = i
					}
				}
			}
		}
		if ri < 0 {
			ops = appendSkip(ops, wf.Type, fpath)
			continue
		}
		used[ri] = true
		rf := r.Fields[ri]
		rpath := join(path, rf.Name)
		o := c.value(wf.Type, rf.Type, int32(rf.Slot), rpath)
		if !c.proj.wants(rpath) {
			ops = appendSkip(ops, wf.Type, fpath)
			continue
		}
		ops = append(ops, o)
	}
	for i, rf := range r.Fields {
		if used[i] {
			continue
		}
		fpath := join(path, rf.Name)
		if rf.Default == nil {
			c.fail(fpath, "missing from the writer schema and has no default in the reader schema")
			continue
		}
		v, err := decodeJSON(rf.Default)
		var def []byte
		if err == nil {
			def, err = encodeDefault(nil, rf.Type, v)
		}
		if err != nil {
			c.fail(fpath, "invalid default: %v", err)
			continue
		}
		inner := c.value(rf.Type, rf.Type, int32(rf.Slot), fpath)
		if !c.proj.wants(fpath) {
			continue
		}
		ops = append(ops, op{code: opDefault, elem: &inner, x: &opExtra{def: def, path: fpath}})
	}
	return ops
}

// cutProjected moves the reader defaults of a projected program first (they
// read no input) and returns how many ops reach the last projected column:
// Decode stops there instead of walking the rest of the record.
func cutProjected(ops []op) ([]op, int) {
	var defs, rest []op
	for _, o := range ops {
		if o.code == opDefault {
			defs = append(defs, o)
		} else {
			rest = append(rest, o)
		}
	}
	ops = append(defs, rest...)
	stop := len(defs)
	for i := len(defs); i < len(ops); i++ {
		if !ops[i].skips() {
			stop = i + 1
		}
	}
	return ops, stop
}

// skips reports whether o only reads past input, writing no slot.
func (o *op) skips() bool {
	switch o.code {
	case opSkip, opSkipPlan:
		return true
	case opUnion:
		for i := range o.sub {
			if !o.sub[i].skips() {
				return false
			}
		}
		return true
	}
	return false
}

// appendSkip appends the op that reads past a value of writer type t: its
// instructions join those of a skip op just before, so that the writer
// fields between two decoded ones are one skip plan (see skipPlan).
func appendSkip(ops []op, t *engine.Type, path string) []op {
	if k := len(ops) - 1; k >= 0 && ops[k].code == opSkipPlan {
		ops[k].x.plan = appendSkipPlan(ops[k].x.plan, t, path)
		return ops
	}
	plan := appendSkipPlan(nil, t, path)
	if len(plan) == 0 {
		return ops
	}
	return append(ops, op{code: opSkipPlan, x: &opExtra{path: path, plan: plan}})
}

// branchFor picks the reader union branch a writer value of type w is read
// into: the first branch of the same type (same name for named types), else
// the first it can be promoted to.
func branchFor(w, r *engine.Type) int {
	for i, b := range r.Branches {
		if b.Kind == w.Kind {
			switch b.Kind {
			case engine.KindRecord, engine.KindEnum, engine.KindFixed:
				if shortName(b.Name) != shortName(w.Name) {
					continue
				}
			}
			return i
		}
	}
	for i, b := range r.Branches {
		if promotable(w.Kind, b.Kind) {
			return i
		}
	}
	return -1
}

func promotable(w, r engine.Kind) bool {
	switch w {
	case engine.KindInt:
		return r == engine.KindLong || r == engine.KindFloat || r == engine.KindDouble
	case engine.KindLong:
		return r == engine.KindFloat || r == engine.KindDouble
	case engine.KindFloat:
		return r == engine.KindDouble
	case engine.KindString:
		return r == engine.KindBytes
	case engine.KindBytes:
		return r == engine.KindString
	}
	return false
}

func (c *compiler) value(w, r *engine.Type, slot int32, path string) op {
	if w.Kind == engine.KindUnion {
		o := op{code: opUnion, slot: slot, x: &opExtra{path: path}}
		for _, b := range w.Branches {
			o.sub = append(o.sub, c.value(b, r, slot, path))
		}
		return o
	}
	if r.Kind == engine.KindUnion {
		i := branchFor(w, r)
		if i < 0 {
			return c.fail(path, "writer %s matches no branch of the reader union", describe(w))
		}
		rb := r.Branches[i]
		if _, ok := r.Nullable(); ok {
			if rb.Kind == engine.KindNull {
				return op{code: opSetNull, slot: slot}
			}
			return c.value(w, rb, slot, path)
		}
		if rb.Kind == engine.KindNull {
			return op{code: opSetNull, slot: slot, aux: int32(i)}
		}
		inner := c.value(w, rb, slot+int32(r.BranchSlot(i)), path)
		return op{code: opBranch, slot: slot, aux: int32(i), elem: &inner}
	}
	mismatch := func() op {
		if w.Kind == engine.KindLong && r.Kind == engine.KindInt || w.Kind == engine.KindDouble && r.Kind == engine.KindFloat {
			return c.fail(path, "writer %s cannot be promoted to reader %s (a narrowing conversion)", describe(w), describe(r))
		}
		return c.fail(path, "writer %s cannot be read as reader %s", describe(w), describe(r))
	}
	o := op{slot: slot, x: &opExtra{path: path}}
	switch r.Kind {
	case engine.KindNull:
		if w.Kind != engine.KindNull {
			return mismatch()
		}
		o.code = opSetNull
	case engine.KindBool:
		if w.Kind != engine.KindBool {
			return mismatch()
		}
		o.code = opBool
	case engine.KindInt, engine.KindLong:
		switch {
		case w.Kind == engine.KindInt:
			o.code = opInt
		case w.Kind == engine.KindLong && r.Kind == engine.KindLong:
			o.code = opLong
		default:
			return mismatch()
		}
	case engine.KindFloat, engine.KindDouble:
		dbl := r.Kind == engine.KindDouble
		switch w.Kind {
		case engine.KindInt:
			o.code = opIntF
			if dbl {
				o.code = opIntD
			}
		case engine.KindLong:
			o.code = opLongF
			if dbl {
				o.code = opLongD
			}
		case engine.KindFloat:
			o.code = opFloat
		case engine.KindDouble:
			if !dbl {
				return mismatch()
			}
			o.code = opDouble
		default:
			return mismatch()
		}
	case engine.KindString, engine.KindBytes:
		if w.Kind != engine.KindString && w.Kind != engine.KindBytes {
			return mismatch()
		}
		o.code = opBytes
	case engine.KindFixed:
		if w.Kind != engine.KindFixed {
			return mismatch()
		}
		if shortName(w.Name) != shortName(r.Name) {
			return c.fail(path, "writer fixed %s and reader fixed %s have different names", w.Name, r.Name)
		}
		if w.Size != r.Size {
			return c.fail(path, "writer fixed %s has size %d, reader's has size %d", w.Name, w.Size, r.Size)
		}
		o.code, o.aux = opFixed, int32(r.Size)
	case engine.KindEnum:
		if w.Kind != engine.KindEnum {
			return mismatch()
		}
		if shortName(w.Name) != shortName(r.Name) {
			return c.fail(path, "writer enum %s and reader enum %s have different names", w.Name, r.Name)
		}
		o.code = opEnum
		for _, ws := range w.Symbols {
			ri := -1
			for i, rs := range r.Symbols {
				if rs == ws {
					ri = i
				}
			}
			if ri < 0 {
				ri = r.EnumDefault
			}
			if ri < 0 {
				return c.fail(path, "writer enum symbol %s is not in reader enum %s, which has no default", ws, r.Name)
			}
			o.x.enum = append(o.x.enum, enumTarget{n: uint64(ri), sym: r.Symbols[ri]})
		}
	case engine.KindRecord:
		if w.Kind != engine.KindRecord {
			return mismatch()
		}
		if shortName(w.Name) != shortName(r.Name) {
			return c.fail(path, "writer record %s and reader record %s have different names", w.Name, r.Name)
		}
		o.code = opRecord
		o.sub = c.record(w, r, path)
	case engine.KindArray, engine.KindMap:
		if w.Kind != r.Kind {
			return mismatch()
		}
		// Elements are decoded whole: SQL reads an array or map as one column.
		proj := c.proj
		c.proj = nil
		var elem op
		if r.Kind == engine.KindArray {
			o.code, o.aux = opArray, int32(r.Items.Width())
			elem = c.value(w.Items, r.Items, 0, path+"[]")
		} else {
			o.code, o.aux = opMap, int32(1+r.Items.Width())
			elem = c.value(w.Items, r.Items, 1, path+"{}")
		}
		c.proj = proj
		o.elem = &elem
		o.x.min = int64(minSize(w.Items))
		if r.Kind == engine.KindMap {
			o.x.min++
		}
	default:
		return mismatch()
	}
	return o
}

// minSize is the fewest bytes a value of t takes in the binary encoding.
func minSize(t *engine.Type) int {
	switch t.Kind {
	case engine.KindNull:
		return 0
	case engine.KindFloat:
		return 4
	case engine.KindDouble:
		return 8
	case engine.KindFixed:
		return t.Size
	case engine.KindRecord:
		n := 0
		for _, f := range t.Fields {
			n += minSize(f.Type)
			if n > 1<<20 {
				return n
			}
		}
		return n
	case engine.KindUnion:
		m := -1
		for _, b := range t.Branches {
			if s := minSize(b); m < 0 || s < m {
				m = s
			}
		}
		return 1 + m
	}
	return 1
}

// fixedSize is the size of every value of t when it is constant, else -1.
func fixedSize(t *engine.Type) int {
	switch t.Kind {
	case engine.KindNull:
		return 0
	case engine.KindBool:
		return 1
	case engine.KindFloat:
		return 4
	case engine.KindDouble:
		return 8
	case engine.KindFixed:
		return t.Size
	case engine.KindRecord:
		n := 0
		for _, f := range t.Fields {
			s := fixedSize(f.Type)
			if s < 0 {
				return -1
			}
			n += s
		}
		return n
	}
	return -1
}
