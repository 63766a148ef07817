package sql

import (
	"errors"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf8"

	"vitess.io/vitess/go/vt/sqlparser"

	"github.com/sluicehq/sluice/engine"
)

// fold evaluates a constant expression once, at compile time, and replaces
// its closure by the value.
func (c *compiler) fold(e *expr) *expr {
	if !e.konst || e.b == nil && e.i == nil && e.f == nil && e.s == nil {
		return e
	}
	var v value
	var ok bool
	var err error
	switch e.t {
	case tBool:
		v.b, ok, err = e.b(c.scratch, c.scratch)
		e.b = constFn(v.b, ok)
	case tFloat:
		v.f, ok, err = e.f(c.scratch, c.scratch)
		e.f = constFn(v.f, ok)
	case tString:
		v.s, ok, err = e.s(c.scratch, c.scratch)
		e.s = constFn(v.s, ok)
	case tNull:
		ok = false
	default:
		v.i, ok, err = e.i(c.scratch, c.scratch)
		e.i = constFn(v.i, ok)
	}
	if err != nil {
		// Remembered and reported by expr() with the expression's position.
		e.cv = value{null: true}
		e.nullable = true
		e.foldErr = err
		return e
	}
	v.null = !ok
	e.cv = v
	e.nullable = !ok
	return e
}

func (c *compiler) colRef(col engine.Column) *colRef {
	if c.reads == nil {
		c.reads = map[string]bool{}
	}
	c.reads[col.Path] = true
	ref := &colRef{path: col.Path, typ: col.Type, inner: col.Type, slot: col.Slot, parents: col.Parents}
	if inner, ok := col.Type.Nullable(); ok {
		ref.inner, ref.nullable = inner, true
	}
	// A field of a nullable record is null when the record is.
	parts := strings.Split(col.Path, ".")
	for i := 1; i < len(parts); i++ {
		if p, ok := c.in.Lookup(strings.Join(parts[:i], ".")); ok {
			if _, isNull := p.Type.Nullable(); isNull {
				ref.nullable = true
			}
		}
	}
	return ref
}

// slotExpr builds the reading closure for a value of type t held in slot of
// the row (or of Ext when ext is set).
func slotExpr(t *engine.Type, slot int, parents []int, nullable bool) (typ, int, func(in *engine.Row) (*engine.Slot, bool)) {
	get := func(in *engine.Row) (*engine.Slot, bool) {
		for _, p := range parents {
			if in.Slots[p].Null {
				return nil, false
			}
		}
		s := &in.Slots[slot]
		return s, !s.Null
	}
	if len(parents) == 0 {
		if nullable {
			get = func(in *engine.Row) (*engine.Slot, bool) {
				s := &in.Slots[slot]
				return s, !s.Null
			}
		} else {
			get = func(in *engine.Row) (*engine.Slot, bool) { return &in.Slots[slot], true }
		}
	}
	t2, scale := sqlType(t)
	return t2, scale, get
}

// sqlType maps an engine type to the SQL type its slot is read as.
func sqlType(t *engine.Type) (typ, int) {
	switch t.Kind {
	case engine.KindNull:
		return tNull, 0
	case engine.KindBool:
		return tBool, 0
	case engine.KindInt, engine.KindLong:
		switch {
		case t.Logical == engine.Date:
			return tDate, 0
		case t.Logical.IsTimestamp():
			return tTime, 0
		}
		return tInt, 0
	case engine.KindFloat, engine.KindDouble:
		return tFloat, 0
	case engine.KindBytes, engine.KindFixed:
		if t.Logical == engine.Decimal {
			return tDecimal, t.Scale
		}
		return tString, 0
	case engine.KindString, engine.KindEnum:
		return tString, 0
	}
	return tComposite, 0
}

// readExpr turns a slot getter into a typed expression.
func readExpr(t *engine.Type, get func(in *engine.Row) (*engine.Slot, bool), nullable bool, text string) *expr {
	return readSlot(t, func(in, out *engine.Row) (*engine.Slot, bool, error) {
		s, ok := get(in)
		return s, ok, nil
	}, nullable, text)
}

// readSlot is readExpr for slots found at run time (array elements, map
// values), whose lookup may fail.
func readSlot(t *engine.Type, get func(in, out *engine.Row) (*engine.Slot, bool, error), nullable bool, text string) *expr {
	st, scale := sqlType(t)
	e := &expr{t: st, scale: scale, nullable: nullable, text: text}
	switch st {
	case tBool:
		e.b = func(in, out *engine.Row) (bool, bool, error) {
			s, ok, err := get(in, out)
			return ok && s.N != 0, ok, err
		}
	case tInt, tDate:
		e.i = func(in, out *engine.Row) (int64, bool, error) {
			s, ok, err := get(in, out)
			if !ok {
				return 0, false, err
			}
			return int64(s.N), true, nil
		}
	case tTime:
		mpu := t.Logical.MicrosPerUnit()
		e.i = func(in, out *engine.Row) (int64, bool, error) {
			s, ok, err := get(in, out)
			if !ok {
				return 0, false, err
			}
			return int64(s.N) * mpu, true, nil
		}
	case tFloat:
		e.f = func(in, out *engine.Row) (float64, bool, error) {
			s, ok, err := get(in, out)
			if !ok {
				return 0, false, err
			}
			return math.Float64frombits(s.N), true, nil
		}
	case tDecimal:
		e.i = func(in, out *engine.Row) (int64, bool, error) {
			s, ok, err := get(in, out)
			if !ok {
				return 0, false, err
			}
			v, fits := decodeDecimalBytes(s.S)
			if !fits {
				return 0, false, evalErr(text, errOutOfRange)
			}
			return v, true, nil
		}
	case tString:
		e.s = func(in, out *engine.Row) (string, bool, error) {
			s, ok, err := get(in, out)
			if !ok {
				return "", false, err
			}
			return s.S, true, nil
		}
	case tNull:
		e.nullable = true
	}
	return e
}

func (c *compiler) column(n *sqlparser.ColName) (*expr, error) {
	var parts []string
	for _, p := range []string{n.Qualifier.Qualifier.String(), n.Qualifier.Name.String(), n.Name.String()} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	pos := c.loc.find(parts[0])
	for _, p := range parts[1:] {
		c.loc.find(p)
	}
	if len(parts) > 1 && strings.EqualFold(parts[0], c.table) {
		if _, shadowed := c.in.Lookup(parts[0]); !shadowed {
			parts = parts[1:]
		}
	}
	path := strings.Join(parts, ".")
	col, ok := c.in.Lookup(path)
	if !ok {
		return nil, c.errorf(pos, "unknown column %s%s", path, c.suggest(path))
	}
	ref := c.colRef(col)
	_, _, get := slotExpr(ref.inner, ref.slot, ref.parents, ref.nullable)
	e := readExpr(ref.inner, get, ref.nullable, sqlparser.String(n))
	e.pos, e.col = pos, ref
	if e.t == tNull {
		e.i = nullFn[int64]()
	}
	return e, nil
}

// suggest names a column whose path ends like the unknown one.
func (c *compiler) suggest(path string) string {
	last := path[strings.LastIndexByte(path, '.')+1:]
	for _, p := range c.in.Paths() {
		if strings.EqualFold(p[strings.LastIndexByte(p, '.')+1:], last) && !strings.EqualFold(p, path) {
			return " (did you mean " + p + "?)"
		}
	}
	return ""
}

func (c *compiler) literal(n *sqlparser.Literal) (*expr, error) {
	pos := c.loc.find(n.Val)
	e := &expr{pos: pos, konst: true, text: sqlparser.String(n)}
	switch n.Type {
	case sqlparser.StrVal:
		e.t, e.s = tString, constFn(n.Val, true)
	case sqlparser.IntVal:
		v, err := strconv.ParseInt(n.Val, 10, 64)
		if err != nil {
			f, _ := strconv.ParseFloat(n.Val, 64)
			e.t, e.f = tFloat, constFn(f, true)
			break
		}
		e.t, e.i = tInt, constFn(v, true)
	case sqlparser.DecimalVal:
		intPart, frac, _ := strings.Cut(n.Val, ".")
		digits := strings.TrimLeft(intPart+frac, "0")
		if len(digits) > 18 || len(frac) > 18 {
			f, _ := strconv.ParseFloat(n.Val, 64)
			e.t, e.f = tFloat, constFn(f, true)
			break
		}
		v, _ := strconv.ParseInt("0"+intPart+frac, 10, 64)
		e.t, e.scale, e.i = tDecimal, len(frac), constFn(v, true)
	case sqlparser.FloatVal:
		f, err := strconv.ParseFloat(n.Val, 64)
		if err != nil {
			return nil, c.errorf(pos, "bad number %s", n.Val)
		}
		e.t, e.f = tFloat, constFn(f, true)
	case sqlparser.HexNum:
		v, err := strconv.ParseUint(n.Val[2:], 16, 64)
		if err != nil || v > math.MaxInt64 {
			return nil, c.errorf(pos, "hexadecimal number %s is out of range", n.Val)
		}
		e.t, e.i = tInt, constFn(int64(v), true)
	case sqlparser.HexVal:
		b, err := n.HexDecode()
		if err != nil {
			return nil, c.errorf(pos, "bad hexadecimal string %s", e.text)
		}
		e.t, e.s = tString, constFn(string(b), true)
	case sqlparser.DateVal:
		us, ok := parseDatetime(n.Val)
		if !ok || len(n.Val) != 10 {
			return nil, c.errorf(pos, "bad DATE literal %q: want 'YYYY-MM-DD'", n.Val)
		}
		e.t, e.i = tDate, constFn(us/microsPerDay, true)
	case sqlparser.TimestampVal:
		us, ok := parseDatetime(n.Val)
		if !ok {
			return nil, c.errorf(pos, "bad TIMESTAMP literal %q: want 'YYYY-MM-DD hh:mm:ss[.ffffff]'", n.Val)
		}
		e.t, e.i = tTime, constFn(us, true)
	default:
		return nil, c.errorf(pos, "unsupported literal %s", e.text)
	}
	return c.fold(e), nil
}

// maxExprText bounds the text of an expression kept for error messages.
const maxExprText = 120

// composeText is the text of the binary expression n from the texts of its
// compiled operands. A short expression is formatted whole; a long one is
// joined from its operands' texts, each cut to a bounded length, so that a
// chain of N operators costs O(N) and not O(N²) (formatting each node's whole
// subtree is quadratic: 10,000 '+' terms took 14 s).
func composeText(n sqlparser.Expr, a *expr, op string, b *expr) string {
	if len(a.text)+len(b.text) < maxExprText && !strings.HasSuffix(a.text, "…") && !strings.HasSuffix(b.text, "…") && a.text != "" && b.text != "" {
		return sqlparser.String(n)
	}
	cut := func(t string) string {
		if len(t) <= maxExprText/2 {
			return t
		}
		i := maxExprText / 2
		for i > 0 && !utf8.RuneStart(t[i]) {
			i--
		}
		return t[:i] + "…"
	}
	t := cut(a.text) + " " + op + " " + cut(b.text)
	if !strings.HasSuffix(t, "…") {
		t += " …" // marks the text as cut, so that a parent joins it too
	}
	return t
}

// expr compiles one expression.
func (c *compiler) expr(node sqlparser.Expr) (*expr, error) {
	e, err := c.expr1(node)
	if err != nil {
		return nil, err
	}
	if e.text == "" {
		e.text = sqlparser.String(node)
	}
	if e.foldErr != nil {
		return nil, c.errorf(e.pos, "%s: %v", e.text, errors.Unwrap(e.foldErr))
	}
	return e, nil
}

func (c *compiler) expr1(node sqlparser.Expr) (*expr, error) {
	switch n := node.(type) {
	case *sqlparser.ColName:
		return c.column(n)
	case *sqlparser.Literal:
		return c.literal(n)
	case sqlparser.BoolVal:
		pos := c.loc.findAny("true", "false")
		return c.fold(&expr{t: tBool, pos: pos, konst: true, b: constFn(bool(n), true)}), nil
	case *sqlparser.NullVal:
		pos := c.loc.find("null")
		return &expr{t: tNull, pos: pos, konst: true, nullable: true, cv: value{null: true}}, nil
	case *sqlparser.AndExpr:
		return c.logic(n, n.Left, n.Right, "and")
	case *sqlparser.OrExpr:
		return c.logic(n, n.Left, n.Right, "or")
	case *sqlparser.XorExpr:
		return c.logic(n, n.Left, n.Right, "xor")
	case *sqlparser.NotExpr:
		pos := c.loc.findAny("not", "!")
		e, err := c.boolOperand(n.Expr)
		if err != nil {
			return nil, err
		}
		r := c.not(e)
		r.pos = pos
		return r, nil
	case *sqlparser.ComparisonExpr:
		return c.comparison(n)
	case *sqlparser.BetweenExpr:
		return c.between(n)
	case *sqlparser.IsExpr:
		return c.is(n)
	case *sqlparser.BinaryExpr:
		return c.binary(n)
	case *sqlparser.UnaryExpr:
		return c.unary(n)
	case *sqlparser.CaseExpr:
		return c.caseExpr(n)
	case *sqlparser.CastExpr:
		pos := c.loc.find("cast")
		if n.Array {
			return nil, c.errorf(pos, "CAST ... ARRAY is not supported")
		}
		return c.cast(pos, n.Expr, n.Type)
	case *sqlparser.ConvertExpr:
		pos := c.loc.find("convert")
		return c.cast(pos, n.Expr, n.Type)
	case *sqlparser.CollateExpr:
		return nil, c.errorf(c.loc.here(), "COLLATE is not supported: comparisons are binary (case-sensitive)")
	case *sqlparser.Subquery, *sqlparser.ExistsExpr:
		return nil, c.errorf(c.loc.find("select"), "subqueries are not supported")
	case sqlparser.AggrFunc:
		return nil, c.errorf(c.loc.find(n.AggrName()), "aggregate function %s is not supported: pipelines are stateless (no GROUP BY); stateful SQL is a later feature", strings.ToUpper(n.AggrName()))
	case sqlparser.WindowFunc:
		return nil, c.errorf(c.loc.here(), "window functions are not supported: pipelines are stateless; stateful SQL is a later feature")
	case *sqlparser.Argument, *sqlparser.Variable:
		return nil, c.errorf(c.loc.here(), "variables and bind parameters are not supported (%s)", sqlparser.String(n))
	}
	return c.function(node)
}

// boolOperand compiles an operand of AND, OR, NOT: booleans, or numbers and
// strings taken as MySQL does (non-zero is true).
func (c *compiler) boolOperand(node sqlparser.Expr) (*expr, error) {
	e, err := c.expr(node)
	if err != nil {
		return nil, err
	}
	if e.t == tComposite {
		return nil, c.errorf(e.pos, "%s is not a boolean", e.text)
	}
	return c.convert(e, tBool, 0), nil
}

func (c *compiler) not(e *expr) *expr {
	f := e.b
	return c.fold(&expr{t: tBool, nullable: e.nullable, pos: e.pos, konst: e.konst, b: func(in, out *engine.Row) (bool, bool, error) {
		v, ok, err := f(in, out)
		return !v, ok, err
	}})
}

func (c *compiler) logic(n sqlparser.Expr, l, r sqlparser.Expr, op string) (*expr, error) {
	a, err := c.boolOperand(l)
	if err != nil {
		return nil, err
	}
	c.loc.find(op)
	b, err := c.boolOperand(r)
	if err != nil {
		return nil, err
	}
	e := logicExpr(op, a, b)
	e.text = composeText(n, a, strings.ToUpper(op), b)
	return c.fold(e), nil
}

// logicExpr applies SQL three-valued logic.
func logicExpr(op string, a, b *expr) *expr {
	fa, fb := a.b, b.b
	e := &expr{t: tBool, nullable: a.nullable || b.nullable, pos: a.pos, konst: a.konst && b.konst}
	switch op {
	case "and":
		e.b = func(in, out *engine.Row) (bool, bool, error) {
			x, xok, err := fa(in, out)
			if err != nil || (xok && !x) {
				return false, true, err
			}
			y, yok, err := fb(in, out)
			if err != nil || (yok && !y) {
				return false, true, err
			}
			return true, xok && yok, nil
		}
	case "or":
		e.b = func(in, out *engine.Row) (bool, bool, error) {
			x, xok, err := fa(in, out)
			if err != nil || (xok && x) {
				return true, true, err
			}
			y, yok, err := fb(in, out)
			if err != nil || (yok && y) {
				return true, true, err
			}
			return false, xok && yok, nil
		}
	default: // xor
		e.b = func(in, out *engine.Row) (bool, bool, error) {
			x, xok, err := fa(in, out)
			if err != nil || !xok {
				return false, false, err
			}
			y, yok, err := fb(in, out)
			return x != y, yok, err
		}
	}
	return e
}

func (c *compiler) is(n *sqlparser.IsExpr) (*expr, error) {
	e, err := c.expr(n.Left)
	if err != nil {
		return nil, err
	}
	c.loc.find("is")
	r := &expr{t: tBool, pos: e.pos, konst: e.konst}
	isNull := nullTest(e)
	switch n.Right {
	case sqlparser.IsNullOp, sqlparser.IsNotNullOp:
		want := n.Right == sqlparser.IsNullOp
		r.b = func(in, out *engine.Row) (bool, bool, error) {
			null, err := isNull(in, out)
			return null == want, true, err
		}
	default:
		if e.t == tComposite {
			return nil, c.errorf(e.pos, "%s is not a boolean", e.text)
		}
		b := asBool(e)
		want := n.Right == sqlparser.IsTrueOp || n.Right == sqlparser.IsNotFalseOp
		negate := n.Right == sqlparser.IsNotTrueOp || n.Right == sqlparser.IsNotFalseOp
		// IS TRUE: non-null and true. IS NOT FALSE: null or true.
		r.b = func(in, out *engine.Row) (bool, bool, error) {
			v, ok, err := b(in, out)
			res := ok && v == (want != negate)
			return res != negate, true, err
		}
	}
	return c.fold(r), nil
}

// nullTest reports whether e is NULL, for any type, composite included.
func nullTest(e *expr) func(in, out *engine.Row) (bool, error) {
	switch {
	case e.t == tNull:
		return func(in, out *engine.Row) (bool, error) { return true, nil }
	case e.col != nil && e.t == tComposite:
		ref := e.col
		_, _, get := slotExpr(ref.inner, ref.slot, ref.parents, ref.nullable)
		return func(in, out *engine.Row) (bool, error) { _, ok := get(in); return !ok, nil }
	case e.t == tBool:
		return func(in, out *engine.Row) (bool, error) { _, ok, err := e.b(in, out); return !ok, err }
	case e.t == tFloat:
		return func(in, out *engine.Row) (bool, error) { _, ok, err := e.f(in, out); return !ok, err }
	case e.t == tString:
		return func(in, out *engine.Row) (bool, error) { _, ok, err := e.s(in, out); return !ok, err }
	case e.i != nil:
		return func(in, out *engine.Row) (bool, error) { _, ok, err := e.i(in, out); return !ok, err }
	}
	return func(in, out *engine.Row) (bool, error) { return false, nil }
}

func (c *compiler) unary(n *sqlparser.UnaryExpr) (*expr, error) {
	switch n.Operator {
	case sqlparser.UPlusOp:
		c.loc.find("+")
		return c.expr(n.Expr)
	case sqlparser.BangOp:
		pos := c.loc.find("!")
		e, err := c.boolOperand(n.Expr)
		if err != nil {
			return nil, err
		}
		r := c.not(e)
		r.pos = pos
		return r, nil
	case sqlparser.UMinusOp:
		pos := c.loc.find("-")
		e, err := c.expr(n.Expr)
		if err != nil {
			return nil, err
		}
		text := "-" + e.text
		r := &expr{t: e.t, scale: e.scale, nullable: e.nullable, pos: pos, konst: e.konst, text: text}
		switch e.t {
		case tInt, tDecimal:
			f := e.i
			r.i = func(in, out *engine.Row) (int64, bool, error) {
				v, ok, err := f(in, out)
				if !ok {
					return 0, false, err
				}
				if v == math.MinInt64 {
					return 0, false, evalErr(text, errOutOfRange)
				}
				return -v, true, nil
			}
		case tBool:
			r.t, r.i = tInt, mapFn(asInt(e), func(v int64) int64 { return -v })
		case tFloat, tString:
			r.t, r.f = tFloat, mapFn(asFloat(e), func(v float64) float64 { return -v })
		case tNull:
			return e, nil
		default:
			return nil, c.errorf(pos, "cannot negate %s (%s)", e.text, e.t)
		}
		return c.fold(r), nil
	case sqlparser.TildaOp:
		pos := c.loc.find("~")
		e, err := c.expr(n.Expr)
		if err != nil {
			return nil, err
		}
		if !e.t.numeric() && e.t != tString && e.t != tNull {
			return nil, c.errorf(pos, "~ needs a number, not %s", e.t)
		}
		return c.fold(&expr{t: tInt, nullable: e.nullable, pos: pos, konst: e.konst, i: mapFn(asInt(e), func(v int64) int64 { return ^v })}), nil
	}
	return nil, c.errorf(c.loc.here(), "unsupported operator in %s", sqlparser.String(n))
}

var arithOps = map[sqlparser.BinaryExprOperator][]string{
	sqlparser.PlusOp: {"+"}, sqlparser.MinusOp: {"-"}, sqlparser.MultOp: {"*"}, sqlparser.DivOp: {"/"},
	sqlparser.IntDivOp: {"div"}, sqlparser.ModOp: {"%", "mod"},
	sqlparser.BitAndOp: {"&"}, sqlparser.BitOrOp: {"|"}, sqlparser.BitXorOp: {"^"},
	sqlparser.ShiftLeftOp: {"<<"}, sqlparser.ShiftRightOp: {">>"},
}

func (c *compiler) binary(n *sqlparser.BinaryExpr) (*expr, error) {
	a, err := c.expr(n.Left)
	if err != nil {
		return nil, err
	}
	spell, known := arithOps[n.Operator]
	if !known {
		return nil, c.errorf(c.loc.here(), "unsupported operator %s", n.Operator.ToString())
	}
	opPos := c.loc.findAny(spell...)
	b, err := c.expr(n.Right)
	if err != nil {
		return nil, err
	}
	for _, x := range []*expr{a, b} {
		switch x.t {
		case tComposite:
			return nil, c.errorf(x.pos, "cannot compute %s on a record, array or map (%s)", n.Operator.ToString(), x.text)
		case tTime, tDate:
			return nil, c.errorf(x.pos, "arithmetic on a timestamp or date (%s) is not supported: use UNIX_TIMESTAMP, TIMESTAMPDIFF or FROM_UNIXTIME", x.text)
		}
	}
	text := composeText(n, a, n.Operator.ToString(), b)
	r, err := arith(n.Operator, a, b, text)
	if err != nil {
		return nil, c.errorf(opPos, "%v", err)
	}
	r.pos, r.text = a.pos, text
	return c.fold(r), nil
}

// arith chooses the domain of an arithmetic operator as MySQL does: integers
// stay integers (overflow is an error), decimals keep exact scales, '/' of
// exact numbers is a decimal with 4 more digits, anything with a float or a
// string is a DOUBLE.
func arith(op sqlparser.BinaryExprOperator, a, b *expr, text string) (*expr, error) {
	r := &expr{nullable: true, konst: a.konst && b.konst}
	nullable := a.nullable || b.nullable
	switch op {
	case sqlparser.BitAndOp, sqlparser.BitOrOp, sqlparser.BitXorOp, sqlparser.ShiftLeftOp, sqlparser.ShiftRightOp:
		r.t, r.nullable = tInt, nullable
		r.i = intOp(op, asInt(a), asInt(b))
		return r, nil
	}
	t := tInt
	switch {
	case a.t == tNull && b.t == tNull:
		t = tInt
	case a.t == tFloat || b.t == tFloat || a.t == tString || b.t == tString:
		t = tFloat
	case a.t == tDecimal || b.t == tDecimal || op == sqlparser.DivOp:
		t = tDecimal
	}
	if op == sqlparser.IntDivOp {
		r.t = tInt
		if t == tInt {
			r.i = intOp(op, asInt(a), asInt(b))
		} else {
			fa, fb := asFloat(a), asFloat(b)
			r.i = func(in, out *engine.Row) (int64, bool, error) {
				x, ok, err := fa(in, out)
				if !ok {
					return 0, false, err
				}
				y, ok, err := fb(in, out)
				if !ok || y == 0 {
					return 0, false, err
				}
				return int64(x / y), true, nil
			}
		}
		return r, nil
	}
	switch t {
	case tInt:
		r.t = tInt
		r.i = intOp(op, asInt(a), asInt(b))
		r.nullable = nullable || op == sqlparser.ModOp
		if r.i == nil {
			return nil, errors.New("unsupported integer operator")
		}
		wrapErr(r, text)
	case tFloat:
		r.t = tFloat
		r.nullable = nullable || op == sqlparser.DivOp || op == sqlparser.ModOp
		r.f = floatOp(op, asFloat(a), asFloat(b))
	case tDecimal:
		sa, sb := a.scale, b.scale
		if a.t != tDecimal {
			sa = 0
		}
		if b.t != tDecimal {
			sb = 0
		}
		r.t = tDecimal
		fa, fb := asDecimal(a, sa), asDecimal(b, sb)
		switch op {
		case sqlparser.PlusOp, sqlparser.MinusOp, sqlparser.ModOp:
			s := max(sa, sb)
			r.scale, r.nullable = s, nullable || op == sqlparser.ModOp
			fa, fb = asDecimal(&expr{t: tDecimal, scale: sa, i: fa, text: a.text}, s), asDecimal(&expr{t: tDecimal, scale: sb, i: fb, text: b.text}, s)
			r.i = intOp(op, fa, fb)
		case sqlparser.MultOp:
			r.scale, r.nullable = sa+sb, nullable
			r.i = intOp(op, fa, fb)
		case sqlparser.DivOp:
			r.scale, r.nullable = sa+4, true
			r.i = decDiv(fa, fb, sb+4)
		}
		if r.scale > 18 {
			r.t, r.scale, r.i = tFloat, 0, nil
			r.f = floatOp(op, asFloat(a), asFloat(b))
			return r, nil
		}
		wrapErr(r, text)
	}
	return r, nil
}

// wrapErr names text in the overflow errors of an integer closure.
func wrapErr(r *expr, text string) {
	f := r.i
	r.i = func(in, out *engine.Row) (int64, bool, error) {
		v, ok, err := f(in, out)
		if err == errOutOfRange {
			err = evalErr(text, errors.New("BIGINT value is out of range"))
		}
		return v, ok, err
	}
}

func intOp(op sqlparser.BinaryExprOperator, fa, fb fn[int64]) fn[int64] {
	bin := func(g func(x, y int64) (int64, bool, error)) fn[int64] {
		return func(in, out *engine.Row) (int64, bool, error) {
			x, ok, err := fa(in, out)
			if !ok {
				return 0, false, err
			}
			y, ok, err := fb(in, out)
			if !ok {
				return 0, false, err
			}
			return g(x, y)
		}
	}
	switch op {
	case sqlparser.PlusOp:
		return func(in, out *engine.Row) (int64, bool, error) {
			x, ok, err := fa(in, out)
			if !ok {
				return 0, false, err
			}
			y, ok, err := fb(in, out)
			if !ok {
				return 0, false, err
			}
			s := x + y
			if (s > x) != (y > 0) {
				return 0, false, errOutOfRange
			}
			return s, true, nil
		}
	case sqlparser.MinusOp:
		return bin(func(x, y int64) (int64, bool, error) {
			s := x - y
			if (s < x) != (y > 0) {
				return 0, false, errOutOfRange
			}
			return s, true, nil
		})
	case sqlparser.MultOp:
		return bin(func(x, y int64) (int64, bool, error) {
			hi, lo := bits.Mul64(absU(x), absU(y))
			neg := (x < 0) != (y < 0)
			limit := uint64(math.MaxInt64) + boolU(neg)
			if hi != 0 || lo > limit {
				return 0, false, errOutOfRange
			}
			if neg {
				return int64(-lo), true, nil
			}
			return int64(lo), true, nil
		})
	case sqlparser.IntDivOp:
		return bin(func(x, y int64) (int64, bool, error) {
			if y == 0 {
				return 0, false, nil
			}
			if x == math.MinInt64 && y == -1 {
				return 0, false, errOutOfRange
			}
			return x / y, true, nil
		})
	case sqlparser.ModOp:
		return bin(func(x, y int64) (int64, bool, error) {
			if y == 0 {
				return 0, false, nil
			}
			if y == -1 {
				return 0, true, nil
			}
			return x % y, true, nil
		})
	case sqlparser.BitAndOp:
		return bin(func(x, y int64) (int64, bool, error) { return x & y, true, nil })
	case sqlparser.BitOrOp:
		return bin(func(x, y int64) (int64, bool, error) { return x | y, true, nil })
	case sqlparser.BitXorOp:
		return bin(func(x, y int64) (int64, bool, error) { return x ^ y, true, nil })
	case sqlparser.ShiftLeftOp:
		return bin(func(x, y int64) (int64, bool, error) {
			if y < 0 || y > 63 {
				return 0, true, nil
			}
			return int64(uint64(x) << y), true, nil
		})
	case sqlparser.ShiftRightOp:
		return bin(func(x, y int64) (int64, bool, error) {
			if y < 0 || y > 63 {
				return 0, true, nil
			}
			return int64(uint64(x) >> y), true, nil
		})
	}
	return nil
}

// absU is |x| as an unsigned number, exact for math.MinInt64.
func absU(x int64) uint64 {
	if x < 0 {
		return -uint64(x)
	}
	return uint64(x)
}

func boolU(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func floatOp(op sqlparser.BinaryExprOperator, fa, fb fn[float64]) fn[float64] {
	var g func(x, y float64) (float64, bool)
	switch op {
	case sqlparser.PlusOp:
		g = func(x, y float64) (float64, bool) { return x + y, true }
	case sqlparser.MinusOp:
		g = func(x, y float64) (float64, bool) { return x - y, true }
	case sqlparser.MultOp:
		g = func(x, y float64) (float64, bool) { return x * y, true }
	case sqlparser.DivOp:
		g = func(x, y float64) (float64, bool) { return x / y, y != 0 }
	default: // ModOp
		g = func(x, y float64) (float64, bool) { return math.Mod(x, y), y != 0 }
	}
	return func(in, out *engine.Row) (float64, bool, error) {
		x, ok, err := fa(in, out)
		if !ok {
			return 0, false, err
		}
		y, ok, err := fb(in, out)
		if !ok {
			return 0, false, err
		}
		v, ok := g(x, y)
		if ok && (math.IsInf(v, 0) || math.IsNaN(v)) {
			return 0, false, errOutOfRange
		}
		return v, ok, nil
	}
}

// decDiv divides unscaled decimals: x (scale sa) / y (scale sb) with the
// result at scale sa+4, computed as x·10^(sb+4)/y rounded half away from zero.
func decDiv(fa, fb fn[int64], up int) fn[int64] {
	return func(in, out *engine.Row) (int64, bool, error) {
		x, ok, err := fa(in, out)
		if !ok {
			return 0, false, err
		}
		y, ok, err := fb(in, out)
		if !ok || y == 0 {
			return 0, false, err
		}
		neg := (x < 0) != (y < 0)
		ux, uy := absU(x), absU(y)
		if up > 18 {
			return 0, false, errOutOfRange
		}
		hi, lo := bits.Mul64(ux, uint64(pow10[up]))
		if hi >= uy {
			return 0, false, errOutOfRange
		}
		q, rem := bits.Div64(hi, lo, uy)
		if rem >= uy-rem {
			q++
		}
		if q > math.MaxInt64+boolU(neg) {
			return 0, false, errOutOfRange
		}
		if neg {
			return int64(-q), true, nil
		}
		return int64(q), true, nil
	}
}
