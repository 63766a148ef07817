package sql

import (
	"cmp"
	"regexp"
	"strings"
	"unicode/utf8"

	"vitess.io/vitess/go/vt/sqlparser"

	"github.com/sluicehq/sluice/engine"
)

// Comparisons are binary (case-sensitive, byte order), like MySQL with a
// _bin collation. Strings compared with numbers compare as DOUBLE; strings
// compared with timestamps or dates are parsed as such.

type cmpOp uint8

const (
	opEQ cmpOp = iota
	opLT
	opGT
	opLE
	opGE
	opNE
	opNullSafeEQ
)

var cmpOps = map[sqlparser.ComparisonExprOperator]cmpOp{
	sqlparser.EqualOp: opEQ, sqlparser.LessThanOp: opLT, sqlparser.GreaterThanOp: opGT,
	sqlparser.LessEqualOp: opLE, sqlparser.GreaterEqualOp: opGE, sqlparser.NotEqualOp: opNE,
	sqlparser.NullSafeEqualOp: opNullSafeEQ,
}

var cmpSpell = map[sqlparser.ComparisonExprOperator][]string{
	sqlparser.EqualOp: {"="}, sqlparser.LessThanOp: {"<"}, sqlparser.GreaterThanOp: {">"},
	sqlparser.LessEqualOp: {"<="}, sqlparser.GreaterEqualOp: {">="}, sqlparser.NotEqualOp: {"<>", "!="},
	sqlparser.NullSafeEqualOp: {"<=>"}, sqlparser.InOp: {"in"}, sqlparser.NotInOp: {"in"},
	sqlparser.LikeOp: {"like"}, sqlparser.NotLikeOp: {"like"}, sqlparser.RegexpOp: {"regexp", "rlike"},
	sqlparser.NotRegexpOp: {"regexp", "rlike"},
}

func (c *compiler) comparison(n *sqlparser.ComparisonExpr) (*expr, error) {
	if n.Modifier != sqlparser.Missing {
		return nil, c.errorf(c.loc.here(), "ANY/ALL comparisons (subqueries) are not supported")
	}
	a, err := c.expr(n.Left)
	if err != nil {
		return nil, err
	}
	opPos := c.loc.findAny(cmpSpell[n.Operator]...)
	switch n.Operator {
	case sqlparser.InOp, sqlparser.NotInOp:
		r, err := c.inList(a, n.Right, opPos)
		if err != nil {
			return nil, err
		}
		if n.Operator == sqlparser.NotInOp {
			r = c.not(r)
		}
		r.pos = a.pos
		return r, nil
	case sqlparser.LikeOp, sqlparser.NotLikeOp:
		r, err := c.like(a, n.Right, n.Escape, opPos)
		if err != nil {
			return nil, err
		}
		if n.Operator == sqlparser.NotLikeOp {
			r = c.not(r)
		}
		r.pos = a.pos
		return r, nil
	case sqlparser.RegexpOp, sqlparser.NotRegexpOp:
		b, err := c.expr(n.Right)
		if err != nil {
			return nil, err
		}
		r, err := c.regexp(a, b, "")
		if err != nil {
			return nil, err
		}
		if n.Operator == sqlparser.NotRegexpOp {
			r = c.not(r)
		}
		r.pos = a.pos
		return r, nil
	}
	b, err := c.expr(n.Right)
	if err != nil {
		return nil, err
	}
	op, ok := cmpOps[n.Operator]
	if !ok {
		return nil, c.errorf(opPos, "unsupported comparison %s", n.Operator.ToString())
	}
	r, err := c.compare(op, a, b, opPos)
	if err != nil {
		return nil, err
	}
	r.pos = a.pos
	return r, nil
}

// compare builds a comparison of a and b.
func (c *compiler) compare(op cmpOp, a, b *expr, opPos int) (*expr, error) {
	if a.t == tComposite || b.t == tComposite {
		x := a
		if b.t == tComposite {
			x = b
		}
		return nil, c.errorf(x.pos, "cannot compare a record, array or map (%s)", x.text)
	}
	if (op == opEQ || op == opNE) && a.col != nil && a.col.inner.Kind == engine.KindEnum && b.konst && b.t == tString && !b.cv.null {
		return c.enumEquals(op, a, b.cv.s), nil
	}
	if (op == opEQ || op == opNE) && b.col != nil && b.col.inner.Kind == engine.KindEnum && a.konst && a.t == tString && !a.cv.null {
		return c.enumEquals(op, b, a.cv.s), nil
	}
	t, scale := tNull, 0
	switch {
	case a.t == tNull || b.t == tNull:
		t = tInt
	case a.t == tString && b.t == tString:
		t = tString
	case (a.t == tTime || a.t == tDate) && (b.t == tTime || b.t == tDate) && a.t != b.t:
		t = tTime
	case a.t == tTime || a.t == tDate:
		if b.t != a.t && b.t != tString {
			return nil, c.errorf(opPos, "cannot compare %s (%s) with %s (%s): convert with CAST, UNIX_TIMESTAMP or FROM_UNIXTIME", a.text, a.t, b.text, b.t)
		}
		t = a.t
	case b.t == tTime || b.t == tDate:
		if a.t != tString {
			return nil, c.errorf(opPos, "cannot compare %s (%s) with %s (%s): convert with CAST, UNIX_TIMESTAMP or FROM_UNIXTIME", a.text, a.t, b.text, b.t)
		}
		t = b.t
	case a.t == tFloat || b.t == tFloat || a.t == tString || b.t == tString:
		t = tFloat
	case a.t == tDecimal || b.t == tDecimal:
		t = tDecimal
		if a.t == tDecimal {
			scale = a.scale
		}
		if b.t == tDecimal {
			scale = max(scale, b.scale)
		}
	case a.t == tBool && b.t == tBool:
		t = tBool
	default:
		t = tInt
	}
	ca, cb := c.convert(a, t, scale), c.convert(b, t, scale)
	r := &expr{t: tBool, nullable: op != opNullSafeEQ && (a.nullable || b.nullable || ca.nullable || cb.nullable), konst: a.konst && b.konst}
	switch t {
	case tString:
		r.b = cmpFn(op, ca.s, cb.s, cb)
	case tFloat:
		r.b = cmpFn(op, ca.f, cb.f, cb)
	case tBool:
		r.b = cmpFn(op, mapFn(ca.b, boolInt), mapFn(cb.b, boolInt), nil)
	default:
		r.b = cmpFn(op, ca.i, cb.i, cb)
	}
	return c.fold(r), nil
}

// cmpFn compares two values; when the right side is a constant it is read
// once, at compile time.
func cmpFn[T cmp.Ordered](op cmpOp, fa, fb fn[T], b *expr) fn[bool] {
	if op == opNullSafeEQ {
		return func(in, out *engine.Row) (bool, bool, error) {
			x, xok, err := fa(in, out)
			if err != nil {
				return false, false, err
			}
			y, yok, err := fb(in, out)
			return xok == yok && (!xok || x == y), true, err
		}
	}
	if b != nil && b.konst {
		k, kok, _ := fb(nil, nil)
		if !kok {
			return nullFn[bool]()
		}
		switch op {
		case opEQ:
			return func(in, out *engine.Row) (bool, bool, error) { x, ok, err := fa(in, out); return ok && x == k, ok, err }
		case opNE:
			return func(in, out *engine.Row) (bool, bool, error) { x, ok, err := fa(in, out); return ok && x != k, ok, err }
		case opLT:
			return func(in, out *engine.Row) (bool, bool, error) { x, ok, err := fa(in, out); return ok && x < k, ok, err }
		case opLE:
			return func(in, out *engine.Row) (bool, bool, error) { x, ok, err := fa(in, out); return ok && x <= k, ok, err }
		case opGT:
			return func(in, out *engine.Row) (bool, bool, error) { x, ok, err := fa(in, out); return ok && x > k, ok, err }
		case opGE:
			return func(in, out *engine.Row) (bool, bool, error) { x, ok, err := fa(in, out); return ok && x >= k, ok, err }
		}
	}
	test := func(x, y T) bool { return x == y }
	switch op {
	case opNE:
		test = func(x, y T) bool { return x != y }
	case opLT:
		test = func(x, y T) bool { return x < y }
	case opLE:
		test = func(x, y T) bool { return x <= y }
	case opGT:
		test = func(x, y T) bool { return x > y }
	case opGE:
		test = func(x, y T) bool { return x >= y }
	}
	return func(in, out *engine.Row) (bool, bool, error) {
		x, ok, err := fa(in, out)
		if !ok {
			return false, false, err
		}
		y, ok, err := fb(in, out)
		if !ok {
			return false, false, err
		}
		return test(x, y), true, nil
	}
}

// enumEquals compares an enum column with a constant symbol by ordinal.
func (c *compiler) enumEquals(op cmpOp, col *expr, sym string) *expr {
	ref := col.col
	k := uint64(len(ref.inner.Symbols)) // matches no ordinal
	for i, s := range ref.inner.Symbols {
		if s == sym {
			k = uint64(i)
		}
	}
	ne := op == opNE
	_, _, get := slotExpr(ref.inner, ref.slot, ref.parents, ref.nullable)
	r := &expr{t: tBool, nullable: ref.nullable, pos: col.pos}
	if !ref.nullable {
		slot := ref.slot
		r.b = func(in, out *engine.Row) (bool, bool, error) { return (in.Slots[slot].N == k) != ne, true, nil }
		return r
	}
	r.b = func(in, out *engine.Row) (bool, bool, error) {
		s, ok := get(in)
		return ok && (s.N == k) != ne, ok, nil
	}
	return r
}

func (c *compiler) between(n *sqlparser.BetweenExpr) (*expr, error) {
	a, err := c.expr(n.Left)
	if err != nil {
		return nil, err
	}
	opPos := c.loc.find("between")
	lo, err := c.expr(n.From)
	if err != nil {
		return nil, err
	}
	c.loc.find("and")
	hi, err := c.expr(n.To)
	if err != nil {
		return nil, err
	}
	ge, err := c.compare(opGE, a, lo, opPos)
	if err != nil {
		return nil, err
	}
	le, err := c.compare(opLE, a, hi, opPos)
	if err != nil {
		return nil, err
	}
	r := c.fold(logicExpr("and", ge, le))
	if !n.IsBetween {
		r = c.not(r)
	}
	r.pos = a.pos
	return r, nil
}

func (c *compiler) inList(a *expr, right sqlparser.Expr, opPos int) (*expr, error) {
	tuple, ok := right.(sqlparser.ValTuple)
	if _, sub := right.(*sqlparser.Subquery); sub {
		return nil, c.errorf(c.loc.find("select"), "subqueries are not supported")
	}
	if !ok {
		return nil, c.errorf(opPos, "IN needs a list of values; subqueries are not supported")
	}
	c.loc.find("(")
	items := make([]*expr, 0, len(tuple))
	allConst := true
	for i, n := range tuple {
		if i > 0 {
			c.loc.find(",")
		}
		e, err := c.expr(n)
		if err != nil {
			return nil, err
		}
		items = append(items, e)
		allConst = allConst && e.konst
	}
	// Constant strings against an enum: a bit set of ordinals.
	if a.col != nil && a.col.inner.Kind == engine.KindEnum && allConst && len(a.col.inner.Symbols) <= 64 {
		var set uint64
		hasNull := false
		for _, it := range items {
			if it.cv.null {
				hasNull = true
				continue
			}
			if it.t != tString {
				set = 0
				goto general
			}
			for i, s := range a.col.inner.Symbols {
				if s == it.cv.s {
					set |= 1 << i
				}
			}
		}
		{
			ref := a.col
			_, _, get := slotExpr(ref.inner, ref.slot, ref.parents, ref.nullable)
			return &expr{t: tBool, nullable: ref.nullable || hasNull, b: func(in, out *engine.Row) (bool, bool, error) {
				s, ok := get(in)
				if !ok {
					return false, false, nil
				}
				if set&(1<<(s.N&63)) != 0 && s.N < 64 {
					return true, true, nil
				}
				return false, !hasNull, nil
			}}, nil
		}
	}
general:
	// Constant strings against a string: a set.
	if a.t == tString && allConst {
		set := make(map[string]struct{}, len(items))
		hasNull, strs := false, true
		for _, it := range items {
			switch {
			case it.cv.null:
				hasNull = true
			case it.t == tString:
				set[it.cv.s] = struct{}{}
			default:
				strs = false
			}
		}
		if strs {
			f := a.s
			return &expr{t: tBool, nullable: a.nullable || hasNull, konst: a.konst, b: func(in, out *engine.Row) (bool, bool, error) {
				s, ok, err := f(in, out)
				if !ok {
					return false, false, err
				}
				if _, found := set[s]; found {
					return true, true, nil
				}
				return false, !hasNull, nil
			}}, nil
		}
	}
	// In general x IN (a, b) is x = a OR x = b, with the same NULLs.
	var r *expr
	for _, it := range items {
		eq, err := c.compare(opEQ, a, it, it.pos)
		if err != nil {
			return nil, err
		}
		if r == nil {
			r = eq
		} else {
			r = c.fold(logicExpr("or", r, eq))
		}
	}
	return r, nil
}

func (c *compiler) like(a *expr, patNode, escNode sqlparser.Expr, opPos int) (*expr, error) {
	p, err := c.expr(patNode)
	if err != nil {
		return nil, err
	}
	esc := '\\'
	if escNode != nil {
		c.loc.find("escape")
		e, err := c.expr(escNode)
		if err != nil {
			return nil, err
		}
		if !e.konst || e.t != tString || utf8.RuneCountInString(e.cv.s) > 1 {
			return nil, c.errorf(e.pos, "ESCAPE needs a constant string of one character")
		}
		esc = 0
		if e.cv.s != "" {
			esc, _ = utf8.DecodeRuneInString(e.cv.s)
		}
	}
	for _, x := range []*expr{a, p} {
		if x.t == tComposite {
			return nil, c.errorf(x.pos, "LIKE needs a string, not a record, array or map (%s)", x.text)
		}
	}
	fs, fp := asString(a), asString(p)
	r := &expr{t: tBool, nullable: a.nullable || p.nullable, konst: a.konst && p.konst}
	if p.konst {
		if p.cv.null {
			r.b = nullFn[bool]()
			return c.fold(r), nil
		}
		pat, _, _ := fp(nil, c.scratch)
		m := compileLike(pat, esc)
		r.b = mapFn(fs, m)
		return c.fold(r), nil
	}
	r.b = func(in, out *engine.Row) (bool, bool, error) {
		s, ok, err := fs(in, out)
		if !ok {
			return false, false, err
		}
		pat, ok, err := fp(in, out)
		if !ok {
			return false, false, err
		}
		return likeMatch(s, pat, esc), true, nil
	}
	return c.fold(r), nil
}

// compileLike picks a fast matcher for common constant patterns.
func compileLike(pat string, esc rune) func(string) bool {
	special := func(s string) bool { return strings.ContainsAny(s, "%_") || (esc != 0 && strings.ContainsRune(s, esc)) }
	switch {
	case !special(pat):
		return func(s string) bool { return s == pat }
	case len(pat) >= 2 && pat[0] == '%' && pat[len(pat)-1] == '%' && !special(pat[1:len(pat)-1]):
		mid := pat[1 : len(pat)-1]
		return func(s string) bool { return strings.Contains(s, mid) }
	case pat[len(pat)-1] == '%' && !special(pat[:len(pat)-1]):
		pre := pat[:len(pat)-1]
		return func(s string) bool { return strings.HasPrefix(s, pre) }
	case pat[0] == '%' && !special(pat[1:]):
		suf := pat[1:]
		return func(s string) bool { return strings.HasSuffix(s, suf) }
	}
	return func(s string) bool { return likeMatch(s, pat, esc) }
}

// likeMatch matches s against a LIKE pattern: % any run of characters, _ one
// character, esc makes the next character literal. Greedy with one
// backtracking point, so linear in practice and never allocating.
func likeMatch(s, p string, esc rune) bool {
	si, pi := 0, 0
	backS, backP := -1, -1
	for si < len(s) {
		if pi < len(p) {
			pc, pw := utf8.DecodeRuneInString(p[pi:])
			switch {
			case pc == '%':
				pi += pw
				backS, backP = si, pi
				continue
			case pc == '_':
				_, sw := utf8.DecodeRuneInString(s[si:])
				si += sw
				pi += pw
				continue
			case pc == esc && esc != 0 && pi+pw < len(p):
				pc2, pw2 := utf8.DecodeRuneInString(p[pi+pw:])
				pc, pw = pc2, pw+pw2
			}
			sc, sw := utf8.DecodeRuneInString(s[si:])
			if sc == pc {
				si += sw
				pi += pw
				continue
			}
		}
		if backP < 0 {
			return false
		}
		_, sw := utf8.DecodeRuneInString(s[backS:])
		backS += sw
		si, pi = backS, backP
	}
	for pi < len(p) && p[pi] == '%' {
		pi++
	}
	return pi == len(p)
}

// regexp compiles REGEXP / RLIKE / REGEXP_LIKE with a constant pattern
// (Go RE2 syntax, which covers the usual MySQL ICU patterns except
// backreferences and look-around).
func (c *compiler) regexp(a, p *expr, flags string) (*expr, error) {
	if !p.konst || p.t != tString {
		if p.t == tNull {
			return &expr{t: tBool, nullable: true, konst: true, b: nullFn[bool]()}, nil
		}
		return nil, c.errorf(p.pos, "the pattern of REGEXP must be a constant string, compiled once")
	}
	if a.t == tComposite {
		return nil, c.errorf(a.pos, "REGEXP needs a string, not a record, array or map (%s)", a.text)
	}
	pat := p.cv.s
	for _, f := range flags {
		switch f {
		case 'i':
			pat = "(?i)" + pat
		case 'c':
		case 'm':
			pat = "(?m)" + pat
		case 'n':
			pat = "(?s)" + pat
		default:
			return nil, c.errorf(p.pos, "unsupported REGEXP match type %q", f)
		}
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, c.errorf(p.pos, "bad regular expression %q: %v", p.cv.s, err)
	}
	r := &expr{t: tBool, nullable: a.nullable, konst: a.konst, b: mapFn(asString(a), re.MatchString)}
	return c.fold(r), nil
}
