package sql

import (
	"math"
	"strings"

	"vitess.io/vitess/go/vt/sqlparser"

	"github.com/sluicehq/sluice/engine"
)

// wantTime checks that e can be read as a timestamp.
func (c *compiler) wantTime(e *expr) error {
	switch e.t {
	case tTime, tDate, tString, tNull:
		return nil
	}
	return c.errorf(e.pos, "%s is %s, not a timestamp, date or string", e.text, e.t)
}

// planUnixTimestamp is UNIX_TIMESTAMP(t): whole seconds since the epoch
// (MySQL returns a DECIMAL when t has a fraction; sluice truncates toward
// negative infinity and returns BIGINT).
func planUnixTimestamp(c *compiler, pos int, a []*expr) (*expr, error) {
	if err := c.wantTime(a[0]); err != nil {
		return nil, err
	}
	t := c.convert(a[0], tTime, 0)
	return c.fold(&expr{t: tInt, nullable: t.nullable, konst: t.konst, i: mapFn(t.i, func(us int64) int64 { return floorDiv(us, microsPerSecond) })}), nil
}

func planFromUnixtime(c *compiler, pos int, a []*expr) (*expr, error) {
	e := a[0]
	if !e.t.numeric() && e.t != tString && e.t != tNull {
		return nil, c.errorf(e.pos, "FROM_UNIXTIME needs a number of seconds, not %s", e.t)
	}
	var r *expr
	if e.t == tInt || e.t == tBool {
		r = &expr{t: tTime, nullable: e.nullable, konst: e.konst, i: mapNullFn(asInt(e), func(s int64) (int64, bool) {
			if s < 0 || s > math.MaxInt64/microsPerSecond {
				return 0, false
			}
			return s * microsPerSecond, true
		})}
	} else {
		r = &expr{t: tTime, nullable: true, konst: e.konst, i: mapNullFn(asFloat(e), func(s float64) (int64, bool) {
			us := math.Round(s * microsPerSecond)
			if us < 0 || us >= math.MaxInt64 || math.IsNaN(us) {
				return 0, false
			}
			return int64(us), true
		})}
	}
	r = c.fold(r)
	if len(a) == 2 {
		return planDateFormat(c, pos, []*expr{r, a[1]})
	}
	return r, nil
}

func planDateFormat(c *compiler, pos int, a []*expr) (*expr, error) {
	if err := c.wantTime(a[0]); err != nil {
		return nil, err
	}
	if !a[1].konst || a[1].t != tString {
		return nil, c.errorf(a[1].pos, "the format of DATE_FORMAT must be a constant string")
	}
	df, err := compileDateFormat(a[1].cv.s)
	if err != nil {
		return nil, c.errorf(a[1].pos, "%v", err)
	}
	t := c.convert(a[0], tTime, 0)
	return c.fold(&expr{t: tString, nullable: t.nullable, konst: t.konst, s: mapStrFn(t.i, df.append)}), nil
}

func (c *compiler) extract(pos int, n *sqlparser.ExtractFuncExpr) (*expr, error) {
	e, err := c.expr(n.Expr)
	if err != nil {
		return nil, err
	}
	if err := c.wantTime(e); err != nil {
		return nil, err
	}
	var g func(us int64) int64
	switch n.IntervalType {
	case sqlparser.IntervalYear:
		g = func(us int64) int64 { return int64(utc(us).Year()) }
	case sqlparser.IntervalQuarter:
		g = func(us int64) int64 { return int64(utc(us).Month()+2) / 3 }
	case sqlparser.IntervalMonth:
		g = func(us int64) int64 { return int64(utc(us).Month()) }
	case sqlparser.IntervalDay:
		g = func(us int64) int64 { return int64(utc(us).Day()) }
	case sqlparser.IntervalHour:
		g = func(us int64) int64 { return int64(utc(us).Hour()) }
	case sqlparser.IntervalMinute:
		g = func(us int64) int64 { return int64(utc(us).Minute()) }
	case sqlparser.IntervalSecond:
		g = func(us int64) int64 { return int64(utc(us).Second()) }
	case sqlparser.IntervalMicrosecond:
		g = func(us int64) int64 { return floorMod(us, microsPerSecond) }
	default:
		return nil, c.errorf(pos, "EXTRACT(%s ...) is not supported: use YEAR, QUARTER, MONTH, DAY, HOUR, MINUTE, SECOND or MICROSECOND", strings.ToUpper(n.IntervalType.ToString()))
	}
	t := c.convert(e, tTime, 0)
	return c.fold(&expr{t: tInt, nullable: t.nullable, konst: t.konst, pos: pos, i: mapFn(t.i, g)}), nil
}

func (c *compiler) timestampDiff(pos int, n *sqlparser.TimestampDiffExpr) (*expr, error) {
	args, err := c.args([]sqlparser.Expr{n.Expr1, n.Expr2})
	if err != nil {
		return nil, err
	}
	for _, e := range args {
		if err := c.wantTime(e); err != nil {
			return nil, err
		}
	}
	var div int64
	months := int64(0)
	switch n.Unit {
	case sqlparser.IntervalMicrosecond:
		div = 1
	case sqlparser.IntervalSecond:
		div = microsPerSecond
	case sqlparser.IntervalMinute:
		div = 60 * microsPerSecond
	case sqlparser.IntervalHour:
		div = 3600 * microsPerSecond
	case sqlparser.IntervalDay:
		div = microsPerDay
	case sqlparser.IntervalWeek:
		div = 7 * microsPerDay
	case sqlparser.IntervalMonth:
		months = 1
	case sqlparser.IntervalQuarter:
		months = 3
	case sqlparser.IntervalYear:
		months = 12
	default:
		return nil, c.errorf(pos, "TIMESTAMPDIFF(%s, ...) is not supported", strings.ToUpper(n.Unit.ToString()))
	}
	a, b := c.convert(args[0], tTime, 0), c.convert(args[1], tTime, 0)
	fa, fb := a.i, b.i
	r := &expr{t: tInt, nullable: a.nullable || b.nullable, konst: a.konst && b.konst, pos: pos}
	r.i = func(in, out *engine.Row) (int64, bool, error) {
		x, ok, err := fa(in, out)
		if !ok {
			return 0, false, err
		}
		y, ok, err := fb(in, out)
		if !ok {
			return 0, false, err
		}
		if months != 0 {
			return monthsBetween(x, y) / months, true, nil
		}
		return (y - x) / div, true, nil
	}
	return c.fold(r), nil
}
