package sql

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"vitess.io/vitess/go/vt/sqlparser"

	"github.com/sluicehq/sluice/engine"
)

// Option configures Compile.
type Option func(*options)

type options struct {
	funcs *Registry
}

// WithRegistry makes the user functions of r callable from the SQL (default:
// none). Built-in functions take precedence over user functions of the same
// name.
func WithRegistry(r *Registry) Option { return func(o *options) { o.funcs = r } }

// TableName is the only table a pipeline's SQL reads.
const TableName = "input"

// Limits of a pipeline's SQL. Compilation is linear in the size of the text,
// but a statement past these is a mistake (a generated file, a paste gone
// wrong), and it would hold a worker's start for seconds.
const (
	// MaxTextBytes bounds the text of a statement.
	MaxTextBytes = 256 << 10
	// MaxTokens bounds its tokens (words, literals, operators).
	MaxTokens = 50_000
)

// Program is a compiled SELECT: a filter and a projection from rows of the
// input schema to rows of Output(). It is immutable and safe for concurrent
// use; it implements engine.Transform.
type Program struct {
	text    string
	inWidth int
	output  *engine.Schema
	width   int
	where   fn[bool]
	whereSQ string
	cols    []outCol
	copyExt bool     // output copies arrays or maps, whose elements live in in.Ext
	reads   []string // input column paths read, sorted
}

type outCol struct {
	name  string
	write func(in, out *engine.Row) error
}

var _ engine.Transform = (*Program)(nil)

// Output is the schema of the rows Eval writes.
func (p *Program) Output() *engine.Schema { return p.output }

// Columns lists the input columns the program reads anywhere (SELECT,
// WHERE, function arguments), sorted, as paths Schema.Lookup takes; a nested
// record read whole is its own path, and SELECT * lists every top-level
// column. It implements engine.ColumnReader: a decoder may skip the rest.
func (p *Program) Columns() []string { return p.reads }

// String returns the SQL text the program was compiled from.
func (p *Program) String() string { return p.text }

// Eval filters and projects one row. When the WHERE clause keeps the row,
// it resets out to the output width and writes the output columns into it;
// strings in out alias in (for copied columns) or out.Arena (for computed
// ones), so out is valid while in is and until out is reset. keep is false
// when the WHERE clause is false or NULL; out's slots are then left as they
// were (the WHERE only uses out.Arena as scratch), so that a row the filter
// drops costs no clearing of the output row. An error wraps
// *engine.EvalError and names the failing expression.
func (p *Program) Eval(in, out *engine.Row) (keep bool, err error) {
	if len(in.Slots) < p.inWidth {
		return false, fmt.Errorf("sql: input row has %d slots, the schema %d", len(in.Slots), p.inWidth)
	}
	if p.where != nil {
		out.Arena = out.Arena[:0]
		v, ok, err := p.where(in, out)
		if err != nil {
			return false, fmt.Errorf("sql: where: %w", err)
		}
		if !ok || !v {
			return false, nil
		}
	}
	out.Reset(p.width)
	if p.copyExt {
		out.Ext = append(out.Ext, in.Ext...)
	}
	for i := range p.cols {
		if err := p.cols[i].write(in, out); err != nil {
			return false, fmt.Errorf("sql: column %s: %w", p.cols[i].name, err)
		}
	}
	return true, nil
}

// Compile parses text, a single SELECT over the table "input", checks it
// against the input schema and compiles it. Errors in the text are *Error,
// with the offset of the offending token.
func Compile(text string, input *engine.Schema, opts ...Option) (*Program, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if input == nil {
		return nil, errors.New("sql: compile: no input schema")
	}
	if len(text) > MaxTextBytes {
		return nil, newError(text, 0, "the statement is %d bytes, over the limit of %d KiB", len(text), MaxTextBytes>>10)
	}
	parser, err := sqlparser.New(sqlparser.Options{})
	if err != nil {
		return nil, fmt.Errorf("sql: compile: %w", err)
	}
	c := &compiler{
		text:    text,
		in:      input,
		loc:     newLocator(parser, text),
		funcs:   o.funcs,
		scratch: &engine.Row{},
		table:   TableName,
	}
	if n := len(c.loc.toks); n > MaxTokens {
		return nil, newError(text, c.loc.toks[MaxTokens].pos, "the statement has %d tokens, over the limit of %d", n, MaxTokens)
	}
	stmt, err := parser.ParseStrictDDL(text)
	if err != nil {
		return nil, c.syntaxError(err)
	}
	return c.program(stmt)
}

type compiler struct {
	reads   map[string]bool // input column paths the program reads
	text    string
	in      *engine.Schema
	loc     *locator
	funcs   *Registry
	scratch *engine.Row // evaluates constants at compile time
	table   string      // the name the query gives to input (its alias)
}

func (c *compiler) errorf(offset int, format string, args ...any) error {
	return newError(c.text, offset, format, args...)
}

func (c *compiler) syntaxError(err error) error {
	var pe sqlparser.PositionedErr
	if errors.As(err, &pe) {
		msg := pe.Err
		if pe.Near != "" {
			msg += fmt.Sprintf(" near '%s'", pe.Near)
		}
		return c.errorf(c.loc.syntaxOffset(pe.Pos), "%s", msg)
	}
	msg := err.Error()
	if errors.Is(err, sqlparser.ErrEmpty) || strings.TrimSpace(c.text) == "" {
		msg = "empty SQL: expected SELECT ... FROM input"
	}
	return c.errorf(c.loc.here(), "%s", msg)
}

func (c *compiler) program(stmt sqlparser.Statement) (*Program, error) {
	sel, ok := stmt.(*sqlparser.Select)
	if !ok {
		switch stmt.(type) {
		case *sqlparser.Union:
			return nil, c.errorf(c.loc.find("union"), "UNION is not supported: a pipeline runs one SELECT over input")
		}
		return nil, c.errorf(0, "only SELECT ... FROM input [WHERE ...] is supported")
	}
	if err := c.checkUnsupported(sel); err != nil {
		return nil, err
	}
	if err := c.from(sel); err != nil {
		return nil, err
	}
	c.loc.cur = 0
	c.loc.find("select")
	p := &Program{text: c.text, inWidth: c.in.Width()}
	var fields []engine.Field
	seen := map[string]int{}
	for i, se := range sel.SelectExprs.Exprs {
		if err := c.selectExpr(p, i, se, &fields, seen); err != nil {
			return nil, err
		}
	}
	if sel.Where != nil {
		c.loc.find("where")
		e, err := c.expr(sel.Where.Expr)
		if err != nil {
			return nil, err
		}
		switch e.t {
		case tBool:
		case tNull:
			e = c.convert(e, tBool, 0)
		default:
			return nil, c.errorf(e.pos, "WHERE must be a boolean condition, not %s (%s); compare it, e.g. %s <> 0", e.t, e.text, e.text)
		}
		p.where = e.b
		p.whereSQ = e.text
	}
	root := &engine.Type{Kind: engine.KindRecord, Name: "sluice.sql.Output", Fields: fields, EnumDefault: -1}
	out, err := engine.NewSchema(root)
	if err != nil {
		return nil, fmt.Errorf("sql: output schema: %w", err)
	}
	p.output = out
	p.width = out.Width()
	for path := range c.reads {
		p.reads = append(p.reads, path)
	}
	slices.Sort(p.reads)
	// The writers were built with the slots of the output fields; check that
	// the layout agrees (it is computed by the same rules).
	return p, nil
}

func (c *compiler) checkUnsupported(sel *sqlparser.Select) error {
	const later = "is not supported: pipelines run stateless SELECT ... FROM input [WHERE ...]; stateful SQL is a later feature"
	switch {
	case sel.With != nil:
		return c.errorf(c.loc.find("with"), "WITH %s", later)
	case sel.Distinct:
		return c.errorf(c.loc.find("distinct"), "DISTINCT %s", later)
	case sel.GroupBy != nil:
		return c.errorf(c.loc.find("group"), "GROUP BY %s", later)
	case sel.Having != nil:
		return c.errorf(c.loc.find("having"), "HAVING %s", later)
	case len(sel.Windows) > 0:
		return c.errorf(c.loc.find("window"), "WINDOW %s", later)
	case len(sel.OrderBy) > 0:
		return c.errorf(c.loc.find("order"), "ORDER BY %s", later)
	case sel.Limit != nil:
		return c.errorf(c.loc.find("limit"), "LIMIT %s", later)
	case sel.Into != nil:
		return c.errorf(c.loc.find("into"), "SELECT ... INTO is not supported")
	case sel.Lock != sqlparser.NoLock:
		return c.errorf(c.loc.find("for"), "locking clauses are not supported")
	}
	return nil
}

func (c *compiler) from(sel *sqlparser.Select) error {
	c.loc.cur = 0
	fromPos := c.loc.find("from")
	if len(sel.From) == 0 {
		return c.errorf(len(c.text), "missing FROM input")
	}
	if len(sel.From) > 1 {
		return c.errorf(c.loc.find(","), "joins are not supported: a pipeline reads one stream, FROM input")
	}
	switch t := sel.From[0].(type) {
	case *sqlparser.JoinTableExpr:
		return c.errorf(c.loc.find("join"), "JOIN is not supported: a pipeline reads one stream, FROM input")
	case *sqlparser.AliasedTableExpr:
		switch te := t.Expr.(type) {
		case *sqlparser.DerivedTable:
			return c.errorf(c.loc.find("select"), "subqueries are not supported")
		case sqlparser.TableName:
			name := te.Name.String()
			pos := c.loc.find(name)
			if !te.Qualifier.IsEmpty() || !strings.EqualFold(name, TableName) {
				return c.errorf(pos, "unknown table %s: the table of a pipeline is always %s", sqlparser.String(te), TableName)
			}
			if !t.As.IsEmpty() {
				c.table = t.As.String()
			}
			return nil
		}
	}
	return c.errorf(fromPos, "only FROM input is supported")
}

func (c *compiler) selectExpr(p *Program, i int, se sqlparser.SelectExpr, fields *[]engine.Field, seen map[string]int) error {
	addField := func(name string, t *engine.Type, pos int) (slot int, err error) {
		key := strings.ToLower(name)
		if _, dup := seen[key]; dup {
			return 0, c.errorf(pos, "duplicate output column %s: give one of them another name with AS", name)
		}
		seen[key] = len(*fields)
		slot = 0
		for _, f := range *fields {
			slot += f.Type.Width()
		}
		*fields = append(*fields, engine.Field{Name: name, Type: t})
		return slot, nil
	}
	switch se := se.(type) {
	case *sqlparser.StarExpr:
		pos := c.loc.here()
		if !se.TableName.IsEmpty() {
			pos = c.loc.find(se.TableName.Name.String())
			if !strings.EqualFold(se.TableName.Name.String(), c.table) || !se.TableName.Qualifier.IsEmpty() {
				return c.errorf(pos, "unknown table %s in %s.*", sqlparser.String(se.TableName), sqlparser.String(se.TableName))
			}
		}
		c.loc.find("*")
		first := -1
		for _, f := range c.in.Fields() {
			col, _ := c.in.Lookup(f.Name)
			ref := c.colRef(col)
			slot, err := addField(f.Name, ref.typ, pos)
			if err != nil {
				return err
			}
			if first < 0 {
				first = slot
			}
			p.copyExt = p.copyExt || hasExt(ref.inner)
		}
		// The input's top-level fields are laid out as the output's: one copy.
		w := c.in.Width()
		p.cols = append(p.cols, outCol{name: "*", write: func(in, out *engine.Row) error {
			copy(out.Slots[first:first+w], in.Slots[:w])
			return nil
		}})
		return nil
	case *sqlparser.AliasedExpr:
		e, err := c.expr(se.Expr)
		if err != nil {
			return err
		}
		name := se.As.String()
		pos := e.pos
		if name != "" {
			pos = c.loc.find(name)
		} else if col, ok := se.Expr.(*sqlparser.ColName); ok && e.col != nil {
			name = col.Name.String()
		} else {
			name = "f" + strconv.Itoa(i) + "_"
		}
		if e.col != nil && e.col.inner.Kind != engine.KindNull {
			t := e.col.typ
			if e.col.nullable {
				t = nullable(e.col.inner)
			}
			slot, err := addField(name, t, pos)
			if err != nil {
				return err
			}
			p.cols = append(p.cols, outCol{name: name, write: copyWriter(e.col, slot)})
			p.copyExt = p.copyExt || hasExt(e.col.inner)
			return nil
		}
		if e.t == tComposite {
			return c.errorf(e.pos, "cannot compute on a record, array or map value (%s); select the column itself or one of its fields", e.text)
		}
		t := outputType(e)
		slot, err := addField(name, t, pos)
		if err != nil {
			return err
		}
		p.cols = append(p.cols, outCol{name: name, write: scalarWriter(e, slot)})
		return nil
	}
	return c.errorf(c.loc.here(), "unsupported select expression %s", sqlparser.String(se))
}

func nullable(t *engine.Type) *engine.Type {
	if _, ok := t.Nullable(); ok {
		return t
	}
	return &engine.Type{Kind: engine.KindUnion, Branches: []*engine.Type{{Kind: engine.KindNull}, t}, EnumDefault: -1}
}

// hasExt reports whether a value of t keeps elements in Row.Ext.
func hasExt(t *engine.Type) bool {
	switch t.Kind {
	case engine.KindArray, engine.KindMap:
		return true
	case engine.KindRecord:
		for _, f := range t.Fields {
			if hasExt(f.Type) {
				return true
			}
		}
	case engine.KindUnion:
		for _, b := range t.Branches {
			if hasExt(b) {
				return true
			}
		}
	}
	return false
}

// outputType is the engine type of a computed column.
func outputType(e *expr) *engine.Type {
	var t *engine.Type
	switch e.t {
	case tBool:
		t = &engine.Type{Kind: engine.KindBool}
	case tInt:
		t = &engine.Type{Kind: engine.KindLong}
	case tFloat:
		t = &engine.Type{Kind: engine.KindDouble}
	case tDecimal:
		t = &engine.Type{Kind: engine.KindBytes, Logical: engine.Decimal, Precision: 18, Scale: e.scale}
	case tString:
		t = &engine.Type{Kind: engine.KindString}
	case tTime:
		t = &engine.Type{Kind: engine.KindLong, Logical: engine.TimestampMicros}
	case tDate:
		t = &engine.Type{Kind: engine.KindInt, Logical: engine.Date}
	default: // tNull: a column that is always NULL
		return &engine.Type{Kind: engine.KindNull, EnumDefault: -1}
	}
	t.EnumDefault = -1
	if e.nullable {
		return nullable(t)
	}
	return t
}

// copyWriter copies a column's slots (and, through Program.copyExt, its
// array and map elements, whose Ext indexes stay valid because out.Ext starts
// as a copy of in.Ext).
func copyWriter(ref *colRef, slot int) func(in, out *engine.Row) error {
	from, w, parents := ref.slot, ref.inner.Width(), ref.parents
	if len(parents) == 0 && w == 1 {
		return func(in, out *engine.Row) error {
			out.Slots[slot] = in.Slots[from]
			return nil
		}
	}
	return func(in, out *engine.Row) error {
		for _, p := range parents {
			if in.Slots[p].Null {
				out.Slots[slot].Null = true
				return nil
			}
		}
		copy(out.Slots[slot:slot+w], in.Slots[from:from+w])
		return nil
	}
}

// elemWriter copies an array element or map value found at run time.
func scalarWriter(e *expr, slot int) func(in, out *engine.Row) error {
	switch e.t {
	case tBool:
		f := e.b
		return func(in, out *engine.Row) error {
			v, ok, err := f(in, out)
			s := &out.Slots[slot]
			switch {
			case err != nil:
				return err
			case !ok:
				s.Null = true
			case v:
				s.N = 1
			}
			return nil
		}
	case tInt, tTime, tDate:
		f := e.i
		return func(in, out *engine.Row) error {
			v, ok, err := f(in, out)
			if err != nil {
				return err
			}
			s := &out.Slots[slot]
			s.N, s.Null = uint64(v), !ok
			return nil
		}
	case tFloat:
		f := e.f
		return func(in, out *engine.Row) error {
			v, ok, err := f(in, out)
			if err != nil {
				return err
			}
			out.SetFloat(slot, v)
			out.Slots[slot].Null = !ok
			return nil
		}
	case tDecimal:
		f := e.i
		return func(in, out *engine.Row) error {
			v, ok, err := f(in, out)
			if err != nil {
				return err
			}
			if !ok {
				out.Slots[slot].Null = true
				return nil
			}
			start := len(out.Arena)
			out.Arena = appendDecimalBytes(out.Arena, v)
			out.Slots[slot].S = engine.UnsafeString(out.Arena[start:])
			return nil
		}
	case tString:
		f := e.s
		return func(in, out *engine.Row) error {
			v, ok, err := f(in, out)
			if err != nil {
				return err
			}
			s := &out.Slots[slot]
			s.S, s.Null = v, !ok
			return nil
		}
	}
	return func(in, out *engine.Row) error {
		out.Slots[slot].Null = true
		return nil
	}
}

// appendDecimalBytes appends v as Avro encodes a decimal: big-endian two's
// complement in the fewest bytes.
func appendDecimalBytes(b []byte, v int64) []byte {
	n := 8
	for n > 1 {
		top := v >> (8*(n-1) - 1) // the bits that would be dropped, and the new sign bit
		if top != 0 && top != -1 {
			break
		}
		n--
	}
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// decodeDecimalBytes reads a big-endian two's complement decimal of at most
// 8 significant bytes.
func decodeDecimalBytes(s string) (int64, bool) {
	if len(s) == 0 {
		return 0, true
	}
	var v int64
	if s[0]&0x80 != 0 {
		v = -1
	}
	for i := 0; i < len(s); i++ {
		if i < len(s)-8 {
			if (v == -1 && s[i] != 0xff) || (v == 0 && s[i] != 0) {
				return 0, false
			}
			continue
		}
		v = v<<8 | int64(s[i])
	}
	return v, true
}
