package sql

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"vitess.io/vitess/go/vt/sqlparser"

	"github.com/sluicehq/sluice/engine"
)

// A windowed GROUP BY is compiled into two stateless programs around an
// aggregation state:
//
//	pre   SELECT <window time> AS __t, <key_0> AS __k0, ..., <argument_0> AS __a0, ...
//	      FROM input WHERE <the query's WHERE>
//	post  SELECT <the SELECT list, aggregates replaced by __aI, keys by __kJ>
//	      FROM input WHERE <HAVING, likewise rewritten>
//
// pre runs over each input row and yields the window time, the group key and
// the aggregate arguments in typed slots; the state folds them into the
// accumulators of the row's windows; when a window closes, its accumulators
// and key fill a row of the post schema (window_start, window_end, __kJ,
// __aI) and post computes the output row from it. Both programs are compiled
// by the same compiler as a stateless query, so every expression, function
// and type rule is the same.

// windowKind is how records are assigned to windows.
type windowKind uint8

const (
	tumbling windowKind = iota
	hopping
	session
)

// windowSpec is the window of a GROUP BY, in microseconds.
type windowSpec struct {
	kind  windowKind
	size  int64 // tumbling, hopping
	slide int64 // hopping
	gap   int64 // session
}

// aggKind is an aggregate function.
type aggKind uint8

const (
	aggCountStar aggKind = iota
	aggCount
	aggCountDistinct
	aggSum
	aggMin
	aggMax
	aggAvg
	aggAnyValue
	aggApproxDistinct
)

// aggSpec is one aggregate of the query.
type aggSpec struct {
	kind aggKind
	arg  typ // the SQL type of the argument (tNull for COUNT(*))
	// scale of a decimal argument
	scale int
	text  string // as written, lower case, to match repeats
}

// Aggregation is a compiled windowed GROUP BY. It is immutable and safe for
// concurrent use; each task folds rows into its own state (NewAggregate).
// It implements engine.Aggregator.
type Aggregation struct {
	text   string
	pre    *Program
	when   *Program // the window time alone, for rows the WHERE rejects
	post   *Program
	postIn *engine.Schema // window_start, window_end, __kJ..., __aI...
	win    windowSpec
	keys   int
	// keyCodes encode the key slots (groupkey.go).
	keyCodes []keyCode
	aggs     []aggSpec
	reads    []string
}

var _ engine.Aggregator = (*Aggregation)(nil)

// Output is the schema of the rows the aggregation emits.
func (a *Aggregation) Output() *engine.Schema { return a.post.Output() }

// Columns lists the input columns the aggregation reads (engine.ColumnReader).
func (a *Aggregation) Columns() []string { return a.reads }

// String returns the SQL text.
func (a *Aggregation) String() string { return a.text }

// Eval is not how an aggregation runs: a row yields output only when its
// window closes (NewAggregate). It reports an error.
func (a *Aggregation) Eval(in, out *engine.Row) (bool, error) {
	return false, errors.New("sql: a windowed GROUP BY runs through NewAggregate, not Eval")
}

// CompileTransform compiles a pipeline's SQL: a stateless SELECT into a
// *Program, a windowed GROUP BY into an *Aggregation.
func CompileTransform(text string, input *engine.Schema, opts ...Option) (engine.Transform, error) {
	if input == nil {
		return nil, errors.New("sql: compile: no input schema")
	}
	if len(text) > MaxTextBytes {
		return Compile(text, input, opts...) // reports the limit
	}
	parser, err := sqlparser.New(sqlparser.Options{})
	if err != nil {
		return nil, fmt.Errorf("sql: compile: %w", err)
	}
	stmt, err := parser.ParseStrictDDL(text)
	if err != nil {
		return Compile(text, input, opts...) // reports the syntax error with its position
	}
	sel, ok := stmt.(*sqlparser.Select)
	if !ok || (sel.GroupBy == nil && sel.Having == nil && !hasAggregate(sel)) {
		return Compile(text, input, opts...)
	}
	c := &compiler{text: text, in: input, loc: newLocator(parser, text), scratch: &engine.Row{}, table: TableName}
	return c.aggregation(sel, opts)
}

func hasAggregate(sel *sqlparser.Select) bool {
	found := false
	for _, se := range sel.SelectExprs.Exprs {
		_ = sqlparser.Walk(func(n sqlparser.SQLNode) (bool, error) {
			if isAggregate(n) {
				found = true
				return false, nil
			}
			return true, nil
		}, se)
	}
	return found
}

func isAggregate(n sqlparser.SQLNode) bool {
	switch n := n.(type) {
	case sqlparser.AggrFunc:
		return true
	case *sqlparser.FuncExpr:
		return n.Name.Lowered() == "approx_count_distinct"
	}
	return false
}

// Names of the window bounds in the SELECT list and HAVING.
const (
	colWindowStart = "window_start"
	colWindowEnd   = "window_end"
)

func (c *compiler) aggregation(sel *sqlparser.Select, opts []Option) (*Aggregation, error) {
	groupPos := c.loc.find("group")
	if sel.GroupBy == nil {
		return nil, c.errorf(c.loc.find("select"), "aggregates need a windowed GROUP BY: add GROUP BY TUMBLE(<event time column>, '1 minute') (or HOP, SESSION); an aggregate over an unbounded stream never ends")
	}
	for _, check := range []struct {
		bad  bool
		word string
		msg  string
	}{
		{sel.With != nil, "with", "WITH is not supported"},
		{sel.Distinct, "distinct", "SELECT DISTINCT is not supported; GROUP BY the columns instead"},
		{len(sel.Windows) > 0, "window", "WINDOW is not supported"},
		{len(sel.OrderBy) > 0, "order", "ORDER BY is not supported: windows are emitted as they close"},
		{sel.Limit != nil, "limit", "LIMIT is not supported"},
		{sel.Into != nil, "into", "SELECT ... INTO is not supported"},
	} {
		if check.bad {
			c.loc.cur = 0
			return nil, c.errorf(c.loc.find(check.word), "%s", check.msg)
		}
	}
	a := &Aggregation{text: c.text}
	var (
		winTime sqlparser.Expr
		keys    []sqlparser.Expr
	)
	for _, g := range sel.GroupBy.Exprs {
		f, ok := g.(*sqlparser.FuncExpr)
		if ok {
			switch name := f.Name.Lowered(); name {
			case "tumble", "hop", "session":
				if winTime != nil {
					return nil, c.errorf(c.locateFrom(groupPos, name), "GROUP BY has two windows; a query has one")
				}
				spec, err := c.windowSpec(f, c.locateFrom(groupPos, name))
				if err != nil {
					return nil, err
				}
				a.win = spec
				winTime = f.Exprs[0]
				continue
			}
		}
		keys = append(keys, g)
	}
	if winTime == nil {
		return nil, c.errorf(groupPos, "GROUP BY needs a window over the event time, e.g. GROUP BY TUMBLE(time_generated, '1 minute'), src_ip: without one, the state of a group never closes and grows without bound")
	}
	a.keys = len(keys)
	keyText := make([]string, len(keys))
	for i, k := range keys {
		keyText[i] = strings.ToLower(sqlparser.String(k))
	}

	// Rewrite the SELECT list and HAVING over the post schema, collecting
	// the aggregates.
	var aggArgs []sqlparser.Expr
	aggIndex := map[string]int{}
	var rewriteErr error
	rewrite := func(e sqlparser.Expr, where int) sqlparser.Expr {
		return sqlparser.Rewrite(sqlparser.CloneExpr(e), func(cur *sqlparser.Cursor) bool {
			if rewriteErr != nil {
				return false
			}
			node := cur.Node()
			if ex, ok := node.(sqlparser.Expr); ok {
				txt := strings.ToLower(sqlparser.String(ex))
				for i, kt := range keyText {
					if txt == kt {
						cur.Replace(sqlparser.NewColName("__k" + strconv.Itoa(i)))
						return false
					}
				}
			}
			if !isAggregate(node) {
				if col, ok := node.(*sqlparser.ColName); ok {
					name := col.Name.Lowered()
					if col.Qualifier.IsEmpty() && (name == colWindowStart || name == colWindowEnd || strings.HasPrefix(name, "__")) {
						return true
					}
					rewriteErr = c.errorf(c.locateFrom(where, col.Name.String()), "column %s must be in GROUP BY or inside an aggregate: a window emits one row per group", sqlparser.String(col))
					return false
				}
				return true
			}
			spec, arg, err := c.aggSpec(node, where)
			if err != nil {
				rewriteErr = err
				return false
			}
			idx, ok := aggIndex[spec.text]
			if !ok {
				idx = len(a.aggs)
				aggIndex[spec.text] = idx
				a.aggs = append(a.aggs, spec)
				aggArgs = append(aggArgs, arg)
			}
			cur.Replace(sqlparser.NewColName("__a" + strconv.Itoa(idx)))
			return false
		}, nil).(sqlparser.Expr)
	}
	c.loc.cur = 0
	selPos := c.loc.find("select")
	post := &sqlparser.Select{From: sqlparser.TableExprs{&sqlparser.AliasedTableExpr{Expr: sqlparser.NewTableName(TableName)}}}
	post.SelectExprs = &sqlparser.SelectExprs{}
	for i, se := range sel.SelectExprs.Exprs {
		ae, ok := se.(*sqlparser.AliasedExpr)
		if !ok {
			return nil, c.errorf(selPos, "SELECT * cannot be used with GROUP BY: name the keys and aggregates")
		}
		as := ae.As
		if as.IsEmpty() {
			if col, ok := ae.Expr.(*sqlparser.ColName); ok {
				as = col.Name
			} else {
				as = sqlparser.NewIdentifierCI("f" + strconv.Itoa(i) + "_")
			}
		}
		e := rewrite(ae.Expr, selPos)
		if rewriteErr != nil {
			return nil, rewriteErr
		}
		post.SelectExprs.Exprs = append(post.SelectExprs.Exprs, &sqlparser.AliasedExpr{Expr: e, As: as})
	}
	if sel.Having != nil {
		c.loc.cur = 0
		e := rewrite(sel.Having.Expr, c.loc.find("having"))
		if rewriteErr != nil {
			return nil, rewriteErr
		}
		post.Where = sqlparser.NewWhere(sqlparser.WhereClause, e)
	}

	// pre: the window time, the keys and the aggregate arguments over input.
	pre := &sqlparser.Select{From: sel.From, Where: sel.Where, SelectExprs: &sqlparser.SelectExprs{}}
	add := func(e sqlparser.Expr, name string) {
		pre.SelectExprs.Exprs = append(pre.SelectExprs.Exprs, &sqlparser.AliasedExpr{Expr: e, As: sqlparser.NewIdentifierCI(name)})
	}
	add(winTime, "__t")
	for i, k := range keys {
		add(k, "__k"+strconv.Itoa(i))
	}
	for i, arg := range aggArgs {
		if arg == nil {
			arg = sqlparser.NewIntLiteral("1")
		}
		add(arg, "__a"+strconv.Itoa(i))
	}
	preText := sqlparser.String(pre)
	p, err := Compile(preText, c.in, opts...)
	if err != nil {
		return nil, c.subError(err, preText, groupPos)
	}
	a.pre = p
	a.reads = p.reads
	whenText := sqlparser.String(&sqlparser.Select{From: sel.From, SelectExprs: &sqlparser.SelectExprs{Exprs: pre.SelectExprs.Exprs[:1]}})
	if a.when, err = Compile(whenText, c.in, opts...); err != nil {
		return nil, c.subError(err, whenText, groupPos)
	}
	fields := p.Output().Fields()
	if t, _ := sqlType(baseType(fields[0].Type)); t != tTime {
		return nil, c.errorf(c.locateFrom(groupPos, "("), "the window's column must be a timestamp (the pipeline's event_time), not %s", t)
	}
	postFields := []engine.Field{
		{Name: colWindowStart, Type: &engine.Type{Kind: engine.KindLong, Logical: engine.TimestampMicros, EnumDefault: -1}},
		{Name: colWindowEnd, Type: &engine.Type{Kind: engine.KindLong, Logical: engine.TimestampMicros, EnumDefault: -1}},
	}
	for i := range keys {
		f := fields[1+i]
		if f.Type.Width() != 1 {
			return nil, c.errorf(groupPos, "GROUP BY %s: a record cannot be a group key; group by its fields", keyText[i])
		}
		if k := baseType(f.Type).Kind; k == engine.KindArray || k == engine.KindMap {
			return nil, c.errorf(groupPos, "GROUP BY %s: an array or map cannot be a group key", keyText[i])
		}
		postFields = append(postFields, engine.Field{Name: "__k" + strconv.Itoa(i), Type: f.Type})
		a.keyCodes = append(a.keyCodes, keyCodeOf(baseType(f.Type)))
	}
	for i := range a.aggs {
		f := fields[1+len(keys)+i]
		spec := &a.aggs[i]
		spec.arg, spec.scale = sqlType(baseType(f.Type))
		if spec.kind == aggCountStar {
			spec.arg = tNull
		}
		t, err := c.aggType(spec, f.Type, selPos)
		if err != nil {
			return nil, err
		}
		postFields = append(postFields, engine.Field{Name: "__a" + strconv.Itoa(i), Type: t})
	}
	root := &engine.Type{Kind: engine.KindRecord, Name: "sluice.sql.Window", Fields: postFields, EnumDefault: -1}
	if a.postIn, err = engine.NewSchema(root); err != nil {
		return nil, fmt.Errorf("sql: window schema: %w", err)
	}
	postText := sqlparser.String(post)
	if a.post, err = Compile(postText, a.postIn, opts...); err != nil {
		return nil, c.subError(err, postText, selPos)
	}
	return a, nil
}

// locate finds the next token spelled val from offset from, or returns from.
func (c *compiler) locateFrom(from int, val string) int {
	save := c.loc.cur
	defer func() { c.loc.cur = save }()
	c.loc.cur = 0
	for c.loc.cur < len(c.loc.toks) && c.loc.toks[c.loc.cur].pos < from {
		c.loc.cur++
	}
	if pos := c.loc.find(val); pos >= from {
		return pos
	}
	return from
}

// subError reports an error found compiling a generated program at a
// position of the query's own text: the token the message names when it can
// be found, else at.
func (c *compiler) subError(err error, gen string, at int) error {
	var se *Error
	if !errors.As(err, &se) {
		return err
	}
	msg := strings.ReplaceAll(se.Msg, "__t", "the window column")
	if se.Offset < len(gen) {
		word := gen[se.Offset:]
		if i := strings.IndexAny(word, " ,()"); i > 0 {
			word = word[:i]
		}
		if !strings.HasPrefix(word, "__") {
			at = c.locateFrom(at, word)
		}
	}
	return c.errorf(at, "%s", msg)
}

// windowSpec reads TUMBLE(col, 'size'), HOP(col, 'slide', 'size') or
// SESSION(col, 'gap').
func (c *compiler) windowSpec(f *sqlparser.FuncExpr, pos int) (windowSpec, error) {
	name := strings.ToUpper(f.Name.String())
	want := map[string]int{"TUMBLE": 2, "HOP": 3, "SESSION": 2}[name]
	usage := map[string]string{
		"TUMBLE":  "TUMBLE(<event time column>, '<size>')",
		"HOP":     "HOP(<event time column>, '<slide>', '<size>')",
		"SESSION": "SESSION(<event time column>, '<gap>')",
	}[name]
	if len(f.Exprs) != want {
		return windowSpec{}, c.errorf(pos, "%s takes %d arguments: %s, e.g. '1 minute' or '30s'", name, want, usage)
	}
	var ds []int64
	for _, arg := range f.Exprs[1:] {
		lit, ok := arg.(*sqlparser.Literal)
		if !ok || lit.Type != sqlparser.StrVal {
			return windowSpec{}, c.errorf(pos, "%s: an interval is a string such as '1 minute', '10 seconds' or '1m30s': %s", name, usage)
		}
		d, err := parseInterval(lit.Val)
		if err != nil {
			return windowSpec{}, c.errorf(c.locateFrom(pos, lit.Val), "%s: %v", name, err)
		}
		ds = append(ds, d)
	}
	switch name {
	case "TUMBLE":
		return windowSpec{kind: tumbling, size: ds[0]}, nil
	case "HOP":
		if ds[1]%ds[0] != 0 {
			return windowSpec{}, c.errorf(pos, "HOP: the size (%s) must be a multiple of the slide (%s)", time.Duration(ds[1]*1000), time.Duration(ds[0]*1000))
		}
		return windowSpec{kind: hopping, slide: ds[0], size: ds[1]}, nil
	}
	return windowSpec{kind: session, gap: ds[0]}, nil
}

// parseInterval reads '<n> <unit>' (MySQL's units MICROSECOND to DAY,
// singular or plural, any case) or a Go duration ('90s', '1m30s') into
// microseconds; it must be positive.
func parseInterval(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		if d < time.Microsecond {
			return 0, fmt.Errorf("interval %q must be at least 1 microsecond", s)
		}
		return int64(d / time.Microsecond), nil
	}
	num, unit, ok := strings.Cut(s, " ")
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if !ok || err != nil || n <= 0 {
		return 0, fmt.Errorf("interval %q: want '<positive integer> <unit>' (e.g. '1 minute') or a duration such as '90s'", s)
	}
	units := map[string]int64{"microsecond": 1, "millisecond": 1000, "second": 1e6, "minute": 60e6, "hour": 3600e6, "day": 86400e6}
	u := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(unit)), "s")
	m, ok := units[u]
	if !ok {
		return 0, fmt.Errorf("interval %q: unknown unit %q (microsecond, millisecond, second, minute, hour or day)", s, unit)
	}
	if n > (1<<62)/m {
		return 0, fmt.Errorf("interval %q is too long", s)
	}
	return n * m, nil
}

// aggSpec reads one aggregate call; arg is its argument (nil for COUNT(*)).
func (c *compiler) aggSpec(node sqlparser.SQLNode, where int) (aggSpec, sqlparser.Expr, error) {
	spec := aggSpec{text: strings.ToLower(sqlparser.String(node))}
	one := func(name string, e sqlparser.Expr, distinct bool) (sqlparser.Expr, error) {
		if distinct {
			return nil, c.errorf(c.locateFrom(where, name), "%s(DISTINCT ...) is not supported; only COUNT takes DISTINCT", strings.ToUpper(name))
		}
		return e, nil
	}
	var arg sqlparser.Expr
	var err error
	switch n := node.(type) {
	case *sqlparser.CountStar:
		spec.kind = aggCountStar
	case *sqlparser.Count:
		if len(n.Args) != 1 {
			return spec, nil, c.errorf(c.locateFrom(where, "count"), "COUNT takes one argument")
		}
		spec.kind, arg = aggCount, n.Args[0]
		if n.Distinct {
			spec.kind = aggCountDistinct
		}
	case *sqlparser.Sum:
		spec.kind = aggSum
		arg, err = one("sum", n.Arg, n.Distinct)
	case *sqlparser.Min:
		spec.kind = aggMin
		arg, err = one("min", n.Arg, n.Distinct)
	case *sqlparser.Max:
		spec.kind = aggMax
		arg, err = one("max", n.Arg, n.Distinct)
	case *sqlparser.Avg:
		spec.kind = aggAvg
		arg, err = one("avg", n.Arg, n.Distinct)
	case *sqlparser.AnyValue:
		spec.kind, arg = aggAnyValue, n.Arg
	case *sqlparser.FuncExpr:
		if len(n.Exprs) != 1 {
			return spec, nil, c.errorf(c.locateFrom(where, n.Name.String()), "APPROX_COUNT_DISTINCT takes one argument")
		}
		spec.kind, arg = aggApproxDistinct, n.Exprs[0]
	case sqlparser.AggrFunc:
		return spec, nil, c.errorf(c.locateFrom(where, n.AggrName()), "aggregate function %s is not supported; use COUNT, SUM, MIN, MAX, AVG, ANY_VALUE or APPROX_COUNT_DISTINCT", strings.ToUpper(n.AggrName()))
	}
	if arg != nil {
		_ = sqlparser.Walk(func(n sqlparser.SQLNode) (bool, error) {
			if isAggregate(n) && err == nil {
				err = c.errorf(c.locateFrom(where, strings.ToLower(spec.text[:strings.IndexByte(spec.text, '(')])), "aggregates cannot be nested")
			}
			return err == nil, nil
		}, arg)
	}
	return spec, arg, err
}

// aggType is the type of an aggregate's result, given its argument's.
func (c *compiler) aggType(spec *aggSpec, argType *engine.Type, pos int) (*engine.Type, error) {
	long := &engine.Type{Kind: engine.KindLong, EnumDefault: -1}
	double := nullable(&engine.Type{Kind: engine.KindDouble, EnumDefault: -1})
	switch spec.kind {
	case aggCountStar, aggCount, aggCountDistinct, aggApproxDistinct:
		if spec.kind != aggCountStar && spec.arg == tComposite {
			return nil, c.errorf(c.locateFrom(pos, spec.text), "%s: cannot count records, arrays or maps", spec.text)
		}
		return long, nil
	case aggAvg:
		if !spec.arg.numeric() {
			return nil, c.errorf(c.locateFrom(pos, "avg"), "%s: AVG needs a number, not %s", spec.text, spec.arg)
		}
		return double, nil
	case aggSum:
		switch spec.arg {
		case tBool, tInt:
			return nullable(long), nil
		case tFloat:
			return double, nil
		case tDecimal:
			return nullable(&engine.Type{Kind: engine.KindBytes, Logical: engine.Decimal, Precision: 18, Scale: spec.scale, EnumDefault: -1}), nil
		}
		return nil, c.errorf(c.locateFrom(pos, "sum"), "%s: SUM needs a number, not %s", spec.text, spec.arg)
	}
	// MIN, MAX, ANY_VALUE keep their argument's type (a single slot).
	if argType.Width() != 1 || spec.arg == tComposite {
		return nil, c.errorf(c.locateFrom(pos, spec.text), "%s: records, arrays and maps are not supported", spec.text)
	}
	return nullable(baseType(argType)), nil
}

// baseType is t without its null branch.
func baseType(t *engine.Type) *engine.Type {
	if inner, ok := t.Nullable(); ok {
		return inner
	}
	return t
}
