package sql

import (
	"strings"

	"vitess.io/vitess/go/vt/sqlparser"

	"github.com/sluicehq/sluice/engine"
)

// choose builds "the value of the first branch whose condition holds, else
// els", the shape of CASE, IF, COALESCE and IFNULL, over values already
// converted to one type.
func choose[T any](conds []fn[bool], vals []fn[T], els fn[T]) fn[T] {
	if len(conds) == 1 {
		cond, val := conds[0], vals[0]
		return func(in, out *engine.Row) (T, bool, error) {
			ok, notNull, err := cond(in, out)
			if err != nil {
				var zero T
				return zero, false, err
			}
			if ok && notNull {
				return val(in, out)
			}
			return els(in, out)
		}
	}
	return func(in, out *engine.Row) (T, bool, error) {
		for i, cond := range conds {
			ok, notNull, err := cond(in, out)
			if err != nil {
				var zero T
				return zero, false, err
			}
			if ok && notNull {
				return vals[i](in, out)
			}
		}
		return els(in, out)
	}
}

// coalesce returns the first non-null value.
func coalesce[T any](vals []fn[T]) fn[T] {
	return func(in, out *engine.Row) (T, bool, error) {
		for _, f := range vals {
			v, ok, err := f(in, out)
			if ok || err != nil {
				return v, ok, err
			}
		}
		var zero T
		return zero, false, nil
	}
}

// branches unifies the result expressions of CASE-like constructs and builds
// the expression from conds (nil for COALESCE).
func (c *compiler) branches(pos int, conds []*expr, vals []*expr, els *expr, what string) (*expr, error) {
	all := append(append([]*expr(nil), vals...), els)
	if els == nil {
		all = vals
	}
	t, scale, ok := unify(all...)
	if !ok {
		return nil, c.errorf(pos, "%s mixes records, arrays or maps with other values", what)
	}
	if t == tComposite {
		return nil, c.errorf(pos, "%s cannot return a record, array or map", what)
	}
	if t == tNull {
		return &expr{t: tNull, nullable: true, pos: pos, konst: true, cv: value{null: true}}, nil
	}
	r := &expr{t: t, scale: scale, pos: pos, konst: true}
	nullEls := els == nil || els.t == tNull
	if els == nil {
		els = &expr{t: tNull, nullable: true}
	}
	conv := make([]*expr, len(vals))
	for i, v := range vals {
		conv[i] = c.convert(v, t, scale)
		r.konst = r.konst && v.konst
		r.nullable = r.nullable || conv[i].nullable
	}
	ce := c.convert(els, t, scale)
	r.konst = r.konst && els.konst
	var cf []fn[bool] // stays nil for COALESCE
	if conds != nil {
		cf = make([]fn[bool], len(conds))
	}
	for i, cd := range conds {
		cf[i] = cd.b
		r.konst = r.konst && cd.konst
	}
	if conds == nil {
		// COALESCE: null only when every value may be null.
		r.nullable = ce.nullable || nullEls
		for _, v := range conv {
			r.nullable = r.nullable && v.nullable
		}
	} else {
		r.nullable = r.nullable || ce.nullable || nullEls
	}
	switch t {
	case tBool:
		r.b = build(cf, conv, ce, func(e *expr) fn[bool] { return e.b })
	case tFloat:
		r.f = build(cf, conv, ce, func(e *expr) fn[float64] { return e.f })
	case tString:
		r.s = build(cf, conv, ce, func(e *expr) fn[string] { return e.s })
	default:
		r.i = build(cf, conv, ce, func(e *expr) fn[int64] { return e.i })
	}
	return c.fold(r), nil
}

func build[T any](conds []fn[bool], vals []*expr, els *expr, get func(*expr) fn[T]) fn[T] {
	fs := make([]fn[T], len(vals))
	for i, v := range vals {
		fs[i] = get(v)
	}
	if conds == nil {
		return coalesce(append(fs, get(els)))
	}
	return choose(conds, fs, get(els))
}

func (c *compiler) caseExpr(n *sqlparser.CaseExpr) (*expr, error) {
	pos := c.loc.find("case")
	var subject *expr
	if n.Expr != nil {
		var err error
		if subject, err = c.expr(n.Expr); err != nil {
			return nil, err
		}
	}
	var conds, vals []*expr
	for _, w := range n.Whens {
		wpos := c.loc.find("when")
		cond, err := c.expr(w.Cond)
		if err != nil {
			return nil, err
		}
		if subject != nil {
			if cond, err = c.compare(opEQ, subject, cond, wpos); err != nil {
				return nil, err
			}
		} else if cond.t != tBool && cond.t != tNull {
			if cond.t == tComposite {
				return nil, c.errorf(cond.pos, "WHEN needs a condition, not a record, array or map")
			}
		}
		conds = append(conds, c.convert(cond, tBool, 0))
		c.loc.find("then")
		v, err := c.expr(w.Val)
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
	}
	var els *expr
	if n.Else != nil {
		c.loc.find("else")
		var err error
		if els, err = c.expr(n.Else); err != nil {
			return nil, err
		}
	}
	c.loc.find("end")
	return c.branches(pos, conds, vals, els, "CASE")
}

// cast implements CAST(x AS t) and CONVERT(x, t).
func (c *compiler) cast(pos int, node sqlparser.Expr, ct *sqlparser.ConvertType) (*expr, error) {
	e, err := c.expr(node)
	if err != nil {
		return nil, err
	}
	if e.t == tComposite {
		return nil, c.errorf(e.pos, "cannot CAST a record, array or map (%s)", e.text)
	}
	var t typ
	scale := 0
	switch strings.ToLower(ct.Type) {
	case "signed", "signed integer", "unsigned", "unsigned integer", "integer", "int", "bigint":
		t = tInt
	case "char", "nchar", "varchar", "binary", "text":
		t = tString
	case "double", "float", "real":
		t = tFloat
	case "decimal", "numeric":
		t = tDecimal
		if ct.Scale != nil {
			scale = *ct.Scale
		}
		if scale > 18 {
			return nil, c.errorf(pos, "DECIMAL scale %d is too large: at most 18", scale)
		}
	case "date":
		t = tDate
	case "datetime", "timestamp":
		t = tTime
	case "boolean", "bool":
		t = tBool
	default:
		return nil, c.errorf(pos, "CAST to %s is not supported: use SIGNED, UNSIGNED, CHAR, BINARY, DOUBLE, DECIMAL(p,s), DATE or DATETIME", ct.Type)
	}
	r := c.convert(e, t, scale)
	if r == e {
		r = &expr{}
		*r = *e
		r.col = nil
	}
	r.pos = pos
	return r, nil
}
