package sql

import (
	"errors"
	"math"
	"strconv"

	"github.com/sluicehq/sluice/engine"
)

// Conversions between SQL types follow MySQL's implicit and CAST rules:
// strings become numbers by their numeric prefix ("12abc" is 12, "abc" is 0),
// numbers become strings in their shortest form, timestamps become
// 'YYYY-MM-DD hh:mm:ss[.ffffff]' strings or YYYYMMDDhhmmss numbers, and a
// string that is not a valid date or timestamp becomes NULL.

var errOutOfRange = errors.New("value is out of range")

func evalErr(text string, err error) error { return &engine.EvalError{Expr: text, Err: err} }

func nullFn[T any]() fn[T] {
	return func(in, out *engine.Row) (T, bool, error) {
		var zero T
		return zero, false, nil
	}
}

func constFn[T any](v T, ok bool) fn[T] {
	return func(in, out *engine.Row) (T, bool, error) { return v, ok, nil }
}

// mapFn applies a total function to a non-null value.
func mapFn[A, B any](f fn[A], g func(A) B) fn[B] {
	return func(in, out *engine.Row) (B, bool, error) {
		a, ok, err := f(in, out)
		if !ok {
			var zero B
			return zero, false, err
		}
		return g(a), true, nil
	}
}

// mapNullFn applies a partial function to a non-null value: !ok is NULL.
func mapNullFn[A, B any](f fn[A], g func(A) (B, bool)) fn[B] {
	return func(in, out *engine.Row) (B, bool, error) {
		a, ok, err := f(in, out)
		if !ok {
			var zero B
			return zero, false, err
		}
		b, ok := g(a)
		return b, ok, nil
	}
}

// mapStrFn computes a string into out.Arena.
func mapStrFn[A any](f fn[A], g func(b []byte, v A) []byte) fn[string] {
	return func(in, out *engine.Row) (string, bool, error) {
		a, ok, err := f(in, out)
		if !ok {
			return "", false, err
		}
		start := len(out.Arena)
		out.Arena = g(out.Arena, a)
		return engine.UnsafeString(out.Arena[start:]), true, nil
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func asInt(e *expr) fn[int64] {
	switch e.t {
	case tInt:
		return e.i
	case tBool:
		return mapFn(e.b, boolInt)
	case tFloat:
		return mapFn(e.f, roundFloatToInt)
	case tDecimal:
		d := pow10[e.scale]
		return mapFn(e.i, func(v int64) int64 { return roundDiv(v, d) })
	case tString:
		return mapFn(e.s, parseIntPrefix)
	case tTime:
		return mapFn(e.i, timeNumber)
	case tDate:
		return mapFn(e.i, func(d int64) int64 { return timeNumber(d*microsPerDay) / 1000000 })
	}
	return nullFn[int64]()
}

func asFloat(e *expr) fn[float64] {
	switch e.t {
	case tFloat:
		return e.f
	case tInt:
		return mapFn(e.i, func(v int64) float64 { return float64(v) })
	case tBool:
		return mapFn(e.b, func(b bool) float64 { return float64(boolInt(b)) })
	case tDecimal:
		d := float64(pow10[e.scale])
		return mapFn(e.i, func(v int64) float64 { return float64(v) / d })
	case tString:
		return mapFn(e.s, parseNumberPrefix)
	case tTime, tDate:
		i := asInt(e)
		return mapFn(i, func(v int64) float64 { return float64(v) })
	}
	return nullFn[float64]()
}

func asDecimal(e *expr, scale int) fn[int64] {
	text := e.text
	switch e.t {
	case tDecimal:
		switch {
		case e.scale == scale:
			return e.i
		case e.scale > scale:
			d := pow10[e.scale-scale]
			return mapFn(e.i, func(v int64) int64 { return roundDiv(v, d) })
		}
		f, up := e.i, scale-e.scale
		return func(in, out *engine.Row) (int64, bool, error) {
			v, ok, err := f(in, out)
			if !ok {
				return 0, false, err
			}
			r, fits := rescale(v, up)
			if !fits {
				return 0, false, evalErr(text, errOutOfRange)
			}
			return r, true, nil
		}
	case tInt, tBool, tTime, tDate:
		return asDecimal(&expr{t: tDecimal, i: asInt(e), text: text}, scale)
	case tFloat, tString:
		f, m := asFloat(e), float64(pow10[scale])
		return func(in, out *engine.Row) (int64, bool, error) {
			v, ok, err := f(in, out)
			if !ok {
				return 0, false, err
			}
			r := math.Round(v * m)
			if math.IsNaN(r) || r >= math.MaxInt64 || r <= math.MinInt64 {
				return 0, false, evalErr(text, errOutOfRange)
			}
			return int64(r), true, nil
		}
	}
	return nullFn[int64]()
}

func asString(e *expr) fn[string] {
	switch e.t {
	case tString:
		return e.s
	case tInt:
		return mapStrFn(e.i, func(b []byte, v int64) []byte { return strconv.AppendInt(b, v, 10) })
	case tBool:
		return mapFn(e.b, func(v bool) string {
			if v {
				return "1"
			}
			return "0"
		})
	case tFloat:
		return mapStrFn(e.f, formatFloat)
	case tDecimal:
		s := e.scale
		return mapStrFn(e.i, func(b []byte, v int64) []byte { return formatDecimal(b, v, s) })
	case tTime:
		return mapStrFn(e.i, appendTimestamp)
	case tDate:
		return mapStrFn(e.i, appendDate)
	}
	return nullFn[string]()
}

func asBool(e *expr) fn[bool] {
	switch e.t {
	case tBool:
		return e.b
	case tInt, tDecimal, tTime, tDate:
		return mapFn(e.i, func(v int64) bool { return v != 0 })
	case tFloat:
		return mapFn(e.f, func(v float64) bool { return v != 0 })
	case tString:
		return mapFn(e.s, func(s string) bool { return parseNumberPrefix(s) != 0 })
	}
	return nullFn[bool]()
}

func asTime(e *expr) fn[int64] {
	switch e.t {
	case tTime:
		return e.i
	case tDate:
		return mapFn(e.i, func(d int64) int64 { return d * microsPerDay })
	case tString:
		return mapNullFn(e.s, parseDatetime)
	case tInt, tBool, tDecimal, tFloat:
		return mapNullFn(asInt(e), numberTime)
	}
	return nullFn[int64]()
}

func asDate(e *expr) fn[int64] {
	switch e.t {
	case tDate:
		return e.i
	}
	return mapFn(asTime(e), func(us int64) int64 { return floorDiv(us, microsPerDay) })
}

// convert returns e converted to type t (scale for tDecimal). A conversion
// that cannot fail keeps e's nullability; conversions to dates and
// timestamps may produce NULL.
func (c *compiler) convert(e *expr, t typ, scale int) *expr {
	if e.t == t && (t != tDecimal || e.scale == scale) {
		return e
	}
	r := &expr{t: t, scale: scale, nullable: e.nullable, pos: e.pos, text: e.text, konst: e.konst}
	switch t {
	case tBool:
		r.b = asBool(e)
	case tInt:
		r.i = asInt(e)
	case tFloat:
		r.f = asFloat(e)
	case tDecimal:
		r.i = asDecimal(e, scale)
	case tString:
		r.s = asString(e)
	case tTime:
		r.i = asTime(e)
		r.nullable = r.nullable || e.t == tString || e.t.numeric()
	case tDate:
		r.i = asDate(e)
		r.nullable = r.nullable || e.t == tString || e.t.numeric()
	case tNull:
		return e
	}
	if e.t == tNull {
		r.nullable = true
		switch t {
		case tBool:
			r.b = nullFn[bool]()
		case tFloat:
			r.f = nullFn[float64]()
		case tString:
			r.s = nullFn[string]()
		default:
			r.i = nullFn[int64]()
		}
	}
	return c.fold(r)
}

// unify finds the type that values of all of es convert to, as CASE,
// COALESCE and IN do: numbers widen int → decimal → double, a string mixed
// with numbers makes strings, dates widen to timestamps.
func unify(es ...*expr) (typ, int, bool) {
	t, scale := tNull, 0
	for _, e := range es {
		et := e.t
		if et == tNull {
			continue
		}
		if e.t == tDecimal {
			scale = max(scale, e.scale)
		}
		switch {
		case t == tNull || t == et:
			t = et
		case et == tComposite || t == tComposite:
			return 0, 0, false
		case t.numeric() && et.numeric():
			t = max(t, et) // bool < int < float < decimal in declaration order...
			if t == tFloat || et == tFloat {
				t = tFloat
			}
		case (t == tTime || t == tDate) && (et == tTime || et == tDate):
			t = tTime
		default:
			t = tString
		}
	}
	if t == tDecimal && scale > 18 {
		t = tFloat
	}
	return t, scale, true
}
