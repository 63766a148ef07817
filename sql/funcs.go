package sql

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash/crc32"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	"vitess.io/vitess/go/vt/sqlparser"

	"github.com/sluicehq/sluice/engine"
)

// builtin is a built-in function: its arity and its planner.
type builtin struct {
	min, max int // max < 0: variadic
	plan     func(c *compiler, pos int, args []*expr) (*expr, error)
}

// builtins is built per compile: a value, not a global registry.
func builtins() map[string]builtin {
	return map[string]builtin{
		"coalesce": {1, -1, func(c *compiler, pos int, a []*expr) (*expr, error) { return c.branches(pos, nil, a, nil, "COALESCE") }},
		"ifnull":   {2, 2, func(c *compiler, pos int, a []*expr) (*expr, error) { return c.branches(pos, nil, a, nil, "IFNULL") }},
		"if": {3, 3, func(c *compiler, pos int, a []*expr) (*expr, error) {
			if a[0].t == tComposite {
				return nil, c.errorf(a[0].pos, "IF needs a condition, not a record, array or map")
			}
			return c.branches(pos, []*expr{c.convert(a[0], tBool, 0)}, a[1:2], a[2], "IF")
		}},
		"nullif": {2, 2, planNullif},

		"lower":            {1, 1, strMap(lower)},
		"lcase":            {1, 1, strMap(lower)},
		"upper":            {1, 1, strMap(upper)},
		"ucase":            {1, 1, strMap(upper)},
		"length":           {1, 1, strInt(func(s string) int64 { return int64(len(s)) })},
		"octet_length":     {1, 1, strInt(func(s string) int64 { return int64(len(s)) })},
		"char_length":      {1, 1, strInt(func(s string) int64 { return int64(utf8.RuneCountInString(s)) })},
		"character_length": {1, 1, strInt(func(s string) int64 { return int64(utf8.RuneCountInString(s)) })},
		"concat":           {1, -1, planConcat},
		"concat_ws":        {2, -1, planConcatWS},
		"replace":          {3, 3, planReplace},
		"left":             {2, 2, planLeftRight(true)},
		"right":            {2, 2, planLeftRight(false)},
		"split_part":       {3, 3, planSplitPart},
		"substring_index":  {3, 3, planSubstringIndex},
		"instr": {2, 2, func(c *compiler, pos int, a []*expr) (*expr, error) {
			return c.locate(pos, []*expr{a[1], a[0]})
		}},
		"locate":    {2, 3, func(c *compiler, pos int, a []*expr) (*expr, error) { return c.locate(pos, a) }},
		"substring": {2, 3, func(c *compiler, pos int, a []*expr) (*expr, error) { return c.substr(pos, a) }},
		"substr":    {2, 3, func(c *compiler, pos int, a []*expr) (*expr, error) { return c.substr(pos, a) }},

		"md5": {1, 1, hashHex(func(b []byte, s string) []byte { h := md5.Sum(engine.UnsafeBytes(s)); return hex.AppendEncode(b, h[:]) })},
		"sha1": {1, 1, hashHex(func(b []byte, s string) []byte {
			h := sha1.Sum(engine.UnsafeBytes(s))
			return hex.AppendEncode(b, h[:])
		})},
		"sha": {1, 1, hashHex(func(b []byte, s string) []byte {
			h := sha1.Sum(engine.UnsafeBytes(s))
			return hex.AppendEncode(b, h[:])
		})},
		"sha2":   {2, 2, planSHA2},
		"crc32":  {1, 1, strInt(func(s string) int64 { return int64(crc32.ChecksumIEEE(engine.UnsafeBytes(s))) })},
		"hash64": {1, 1, planHash64},

		"unix_timestamp": {1, 1, planUnixTimestamp},
		"from_unixtime":  {1, 2, planFromUnixtime},
		"date_format":    {2, 2, planDateFormat},
		"date": {1, 1, func(c *compiler, pos int, a []*expr) (*expr, error) {
			if err := c.wantTime(a[0]); err != nil {
				return nil, err
			}
			return c.withPos(c.convert(a[0], tDate, 0), pos), nil
		}},
		"timestamp": {1, 1, func(c *compiler, pos int, a []*expr) (*expr, error) {
			if err := c.wantTime(a[0]); err != nil {
				return nil, err
			}
			return c.withPos(c.convert(a[0], tTime, 0), pos), nil
		}},

		"inet_aton":    {1, 1, strNullInt(inetAton)},
		"inet_ntoa":    {1, 1, planInetNtoa},
		"inet6_aton":   {1, 1, planInet6Aton},
		"inet6_ntoa":   {1, 1, planInet6Ntoa},
		"cidr_match":   {2, -1, planCIDRMatch},
		"is_ipv4":      {1, 1, strBool(isIPv4)},
		"is_ipv6":      {1, 1, strBool(isIPv6)},
		"json_unquote": {1, 1, planJSONUnquote},
		"json_valid":   {1, 1, strBool(jsonValid)},

		"element_at": {2, 2, planElementAt},
		"hex": {1, 1, func(c *compiler, pos int, a []*expr) (*expr, error) {
			if a[0].t == tInt {
				return c.fold(&expr{t: tString, nullable: a[0].nullable, konst: a[0].konst, s: mapStrFn(a[0].i, func(b []byte, v int64) []byte {
					return strconv.AppendUint(b, uint64(v), 16)
				})}), nil
			}
			return hashHex(func(b []byte, s string) []byte { return hex.AppendEncode(b, engine.UnsafeBytes(s)) })(c, pos, a)
		}},

		"abs":      {1, 1, planAbs},
		"floor":    {1, 1, floatInt(math.Floor)},
		"ceil":     {1, 1, floatInt(math.Ceil)},
		"ceiling":  {1, 1, floatInt(math.Ceil)},
		"round":    {1, 2, planRound},
		"greatest": {2, -1, planExtreme(opGT)},
		"least":    {2, -1, planExtreme(opLT)},
		"mod": {2, 2, func(c *compiler, pos int, a []*expr) (*expr, error) {
			r, err := arith(sqlparser.ModOp, a[0], a[1], "MOD")
			if err != nil {
				return nil, c.errorf(pos, "%v", err)
			}
			return c.withPos(c.fold(r), pos), nil
		}},
	}
}

var nondeterministic = map[string]bool{"now": true, "rand": true, "uuid": true, "sysdate": true, "current_timestamp": true, "curdate": true, "curtime": true, "utc_timestamp": true, "unix_timestamp": true}

func (c *compiler) withPos(e *expr, pos int) *expr {
	if e.pos != pos {
		r := *e
		r.pos, r.col = pos, nil
		return &r
	}
	return e
}

// args compiles function arguments in source order.
func (c *compiler) args(nodes []sqlparser.Expr) ([]*expr, error) {
	args := make([]*expr, 0, len(nodes))
	for i, n := range nodes {
		if i > 0 {
			c.loc.find(",")
		}
		e, err := c.expr(n)
		if err != nil {
			return nil, err
		}
		args = append(args, e)
	}
	return args, nil
}

func (c *compiler) function(node sqlparser.Expr) (*expr, error) {
	switch n := node.(type) {
	case *sqlparser.FuncExpr:
		name := n.Name.Lowered()
		pos := c.loc.find(n.Name.String())
		if !n.Qualifier.IsEmpty() {
			return nil, c.errorf(pos, "unknown function %s.%s", n.Qualifier.String(), n.Name.String())
		}
		b, isBuiltin := builtins()[name]
		udf, isUDF := c.funcs.lookup(name)
		if !isBuiltin && !isUDF {
			if name == "unix_timestamp" || nondeterministic[name] {
				return nil, c.errorf(pos, "%s() is not supported: results must depend only on the record (use the record's own time columns)", strings.ToUpper(name))
			}
			return nil, c.errorf(pos, "unknown function %s", strings.ToUpper(name))
		}
		c.loc.find("(")
		args, err := c.args(n.Exprs)
		if err != nil {
			return nil, err
		}
		if !isBuiltin {
			return udf.plan(c, pos, strings.ToUpper(name), args, sqlparser.String(n))
		}
		if len(args) < b.min || (b.max >= 0 && len(args) > b.max) {
			want := b.min
			switch {
			case b.max < 0:
				return nil, c.errorf(pos, "%s takes at least %d arguments, got %d", strings.ToUpper(name), want, len(args))
			case b.max != b.min:
				return nil, c.errorf(pos, "%s takes %d to %d arguments, got %d", strings.ToUpper(name), b.min, b.max, len(args))
			}
			return nil, c.errorf(pos, "%s takes %d argument(s), got %d", strings.ToUpper(name), want, len(args))
		}
		if name != "element_at" && name != "coalesce" && name != "ifnull" {
			for _, a := range args {
				if a.t == tComposite {
					return nil, c.errorf(a.pos, "%s cannot take a record, array or map (%s); use ELEMENT_AT or a field", strings.ToUpper(name), a.text)
				}
			}
		}
		e, err := b.plan(c, pos, args)
		if err != nil {
			return nil, err
		}
		e = c.withPos(e, pos)
		e.text = sqlparser.String(n)
		return e, nil
	case *sqlparser.SubstrExpr:
		pos := c.loc.findAny("substring", "substr", "mid")
		nodes := []sqlparser.Expr{n.Name, n.From}
		if n.To != nil {
			nodes = append(nodes, n.To)
		}
		args, err := c.args(nodes)
		if err != nil {
			return nil, err
		}
		return c.substr(pos, args)
	case *sqlparser.TrimFuncExpr:
		return c.trim(n)
	case *sqlparser.LocateExpr:
		pos := c.loc.findAny("locate", "position")
		nodes := []sqlparser.Expr{n.SubStr, n.Str}
		if n.Pos != nil {
			nodes = append(nodes, n.Pos)
		}
		args, err := c.args(nodes)
		if err != nil {
			return nil, err
		}
		return c.locate(pos, args)
	case *sqlparser.ExtractFuncExpr:
		pos := c.loc.find("extract")
		return c.extract(pos, n)
	case *sqlparser.TimestampDiffExpr:
		pos := c.loc.find("timestampdiff")
		return c.timestampDiff(pos, n)
	case *sqlparser.JSONExtractExpr:
		pos := c.loc.findAny("json_extract", "->", "->>")
		args, err := c.args(append([]sqlparser.Expr{n.JSONDoc}, n.PathList...))
		if err != nil {
			return nil, err
		}
		if args[0].pos < pos {
			pos = args[0].pos
		}
		return c.jsonExtract(pos, args, sqlparser.String(n))
	case *sqlparser.JSONUnquoteExpr:
		pos := c.loc.here()
		a, err := c.expr(n.JSONValue)
		if err != nil {
			return nil, err
		}
		if a.pos < pos {
			pos = a.pos
		}
		return planJSONUnquote(c, pos, []*expr{a})
	case *sqlparser.RegexpLikeExpr:
		pos := c.loc.find("regexp_like")
		nodes := []sqlparser.Expr{n.Expr, n.Pattern}
		if n.MatchType != nil {
			nodes = append(nodes, n.MatchType)
		}
		args, err := c.args(nodes)
		if err != nil {
			return nil, err
		}
		flags := ""
		if len(args) == 3 {
			if !args[2].konst || args[2].t != tString {
				return nil, c.errorf(args[2].pos, "the match type of REGEXP_LIKE must be a constant string")
			}
			flags = args[2].cv.s
		}
		r, err := c.regexp(args[0], args[1], flags)
		if err != nil {
			return nil, err
		}
		return c.withPos(r, pos), nil
	case *sqlparser.CurTimeFuncExpr:
		return nil, c.errorf(c.loc.find(n.Name.String()), "%s is not supported: results must depend only on the record", strings.ToUpper(n.Name.String()))
	case *sqlparser.IntervalDateExpr:
		return nil, c.errorf(c.loc.here(), "date arithmetic with INTERVAL is not supported yet: use UNIX_TIMESTAMP and FROM_UNIXTIME")
	}
	return nil, c.errorf(c.loc.here(), "unsupported expression %s", sqlparser.String(node))
}

// --- helpers to build typed functions ---

func (c *compiler) strArg(e *expr) fn[string] { return asString(e) }

func strMap(g func(b []byte, s string) ([]byte, bool)) func(c *compiler, pos int, a []*expr) (*expr, error) {
	return func(c *compiler, pos int, a []*expr) (*expr, error) {
		f := asString(a[0])
		r := &expr{t: tString, nullable: a[0].nullable, konst: a[0].konst}
		r.s = func(in, out *engine.Row) (string, bool, error) {
			s, ok, err := f(in, out)
			if !ok {
				return "", false, err
			}
			start := len(out.Arena)
			b, changed := g(out.Arena, s)
			if !changed {
				out.Arena = b[:start]
				return s, true, nil
			}
			out.Arena = b
			return engine.UnsafeString(out.Arena[start:]), true, nil
		}
		return c.fold(r), nil
	}
}

// lower appends the lower-case form of s when it differs from s.
func lower(b []byte, s string) ([]byte, bool) {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf && (s[i] < 'A' || s[i] > 'Z') {
		i++
	}
	if i == len(s) {
		return b, false
	}
	b = append(b, s[:i]...)
	for _, r := range s[i:] {
		b = utf8.AppendRune(b, unicode.ToLower(r))
	}
	return b, true
}

func upper(b []byte, s string) ([]byte, bool) {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf && (s[i] < 'a' || s[i] > 'z') {
		i++
	}
	if i == len(s) {
		return b, false
	}
	b = append(b, s[:i]...)
	for _, r := range s[i:] {
		b = utf8.AppendRune(b, unicode.ToUpper(r))
	}
	return b, true
}

func strInt(g func(string) int64) func(c *compiler, pos int, a []*expr) (*expr, error) {
	return func(c *compiler, pos int, a []*expr) (*expr, error) {
		return c.fold(&expr{t: tInt, nullable: a[0].nullable, konst: a[0].konst, i: mapFn(asString(a[0]), g)}), nil
	}
}

func strNullInt(g func(string) (int64, bool)) func(c *compiler, pos int, a []*expr) (*expr, error) {
	return func(c *compiler, pos int, a []*expr) (*expr, error) {
		return c.fold(&expr{t: tInt, nullable: true, konst: a[0].konst, i: mapNullFn(asString(a[0]), g)}), nil
	}
}

func strBool(g func(string) bool) func(c *compiler, pos int, a []*expr) (*expr, error) {
	return func(c *compiler, pos int, a []*expr) (*expr, error) {
		return c.fold(&expr{t: tBool, nullable: a[0].nullable, konst: a[0].konst, b: mapFn(asString(a[0]), g)}), nil
	}
}

func hashHex(g func(b []byte, s string) []byte) func(c *compiler, pos int, a []*expr) (*expr, error) {
	return func(c *compiler, pos int, a []*expr) (*expr, error) {
		return c.fold(&expr{t: tString, nullable: a[0].nullable, konst: a[0].konst, s: mapStrFn(asString(a[0]), g)}), nil
	}
}

func konst(a []*expr) bool {
	for _, e := range a {
		if !e.konst {
			return false
		}
	}
	return true
}

func anyNullable(a []*expr) bool {
	for _, e := range a {
		if e.nullable {
			return true
		}
	}
	return false
}

func planNullif(c *compiler, pos int, a []*expr) (*expr, error) {
	eq, err := c.compare(opEQ, a[0], a[1], pos)
	if err != nil {
		return nil, err
	}
	// NULLIF(a, b) = CASE WHEN a = b THEN NULL ELSE a END
	r, err := c.branches(pos, []*expr{eq}, []*expr{{t: tNull, nullable: true, konst: true}}, a[0], "NULLIF")
	if err != nil {
		return nil, err
	}
	r.nullable = true
	return r, nil
}

func planConcat(c *compiler, pos int, a []*expr) (*expr, error) {
	fs := make([]fn[string], len(a))
	for i, e := range a {
		fs[i] = asString(e)
	}
	r := &expr{t: tString, nullable: anyNullable(a), konst: konst(a)}
	r.s = func(in, out *engine.Row) (string, bool, error) {
		// Arguments may compute into the arena themselves: collect first.
		start := len(out.Arena)
		var parts [8]string
		ps := parts[:0]
		for _, f := range fs {
			s, ok, err := f(in, out)
			if !ok {
				return "", false, err
			}
			ps = append(ps, s)
		}
		mid := len(out.Arena)
		for _, s := range ps {
			out.Arena = append(out.Arena, s...)
		}
		_ = start
		return engine.UnsafeString(out.Arena[mid:]), true, nil
	}
	return c.fold(r), nil
}

func planConcatWS(c *compiler, pos int, a []*expr) (*expr, error) {
	sep := asString(a[0])
	fs := make([]fn[string], len(a)-1)
	for i, e := range a[1:] {
		fs[i] = asString(e)
	}
	r := &expr{t: tString, nullable: a[0].nullable, konst: konst(a)}
	r.s = func(in, out *engine.Row) (string, bool, error) {
		sp, ok, err := sep(in, out)
		if !ok {
			return "", false, err
		}
		var parts [8]string
		ps := parts[:0]
		for _, f := range fs {
			s, ok, err := f(in, out)
			if err != nil {
				return "", false, err
			}
			if ok { // CONCAT_WS skips NULLs
				ps = append(ps, s)
			}
		}
		mid := len(out.Arena)
		for i, s := range ps {
			if i > 0 {
				out.Arena = append(out.Arena, sp...)
			}
			out.Arena = append(out.Arena, s...)
		}
		return engine.UnsafeString(out.Arena[mid:]), true, nil
	}
	return c.fold(r), nil
}

func planReplace(c *compiler, pos int, a []*expr) (*expr, error) {
	fs, ff, ft := asString(a[0]), asString(a[1]), asString(a[2])
	r := &expr{t: tString, nullable: anyNullable(a), konst: konst(a)}
	r.s = func(in, out *engine.Row) (string, bool, error) {
		s, ok, err := fs(in, out)
		if !ok {
			return "", false, err
		}
		from, ok, err := ff(in, out)
		if !ok {
			return "", false, err
		}
		to, ok, err := ft(in, out)
		if !ok {
			return "", false, err
		}
		if from == "" || !strings.Contains(s, from) {
			return s, true, nil
		}
		start := len(out.Arena)
		for {
			i := strings.Index(s, from)
			if i < 0 {
				break
			}
			out.Arena = append(out.Arena, s[:i]...)
			out.Arena = append(out.Arena, to...)
			s = s[i+len(from):]
		}
		out.Arena = append(out.Arena, s...)
		return engine.UnsafeString(out.Arena[start:]), true, nil
	}
	return c.fold(r), nil
}

// runeOffset is the byte offset of the n-th character of s (len(s) when s is
// shorter).
func runeOffset(s string, n int64) int {
	if n <= 0 {
		return 0
	}
	for i := range s {
		if n == 0 {
			return i
		}
		n--
	}
	return len(s)
}

func strIntFn(a, b *expr) (fn[string], fn[int64]) { return asString(a), asInt(b) }

func planLeftRight(left bool) func(c *compiler, pos int, a []*expr) (*expr, error) {
	return func(c *compiler, pos int, a []*expr) (*expr, error) {
		fs, fnn := strIntFn(a[0], a[1])
		r := &expr{t: tString, nullable: anyNullable(a), konst: konst(a)}
		r.s = func(in, out *engine.Row) (string, bool, error) {
			s, ok, err := fs(in, out)
			if !ok {
				return "", false, err
			}
			n, ok, err := fnn(in, out)
			if !ok {
				return "", false, err
			}
			if left {
				return s[:runeOffset(s, n)], true, nil
			}
			chars := int64(utf8.RuneCountInString(s))
			if n >= chars {
				return s, true, nil
			}
			if n <= 0 {
				return "", true, nil
			}
			return s[runeOffset(s, chars-n):], true, nil
		}
		return c.fold(r), nil
	}
}

func (c *compiler) substr(pos int, a []*expr) (*expr, error) {
	for _, e := range a {
		if e.t == tComposite {
			return nil, c.errorf(e.pos, "SUBSTRING cannot take a record, array or map (%s)", e.text)
		}
	}
	fs, fp := asString(a[0]), asInt(a[1])
	var fl fn[int64]
	if len(a) == 3 {
		fl = asInt(a[2])
	}
	r := &expr{t: tString, nullable: anyNullable(a), konst: konst(a), pos: pos}
	r.s = func(in, out *engine.Row) (string, bool, error) {
		s, ok, err := fs(in, out)
		if !ok {
			return "", false, err
		}
		p, ok, err := fp(in, out)
		if !ok {
			return "", false, err
		}
		n := int64(math.MaxInt64)
		if fl != nil {
			if n, ok, err = fl(in, out); !ok {
				return "", false, err
			}
		}
		// MySQL: 1-based; negative counts from the end; 0 or past the end is ''.
		if p == 0 || n <= 0 {
			return "", true, nil
		}
		if p < 0 {
			chars := int64(utf8.RuneCountInString(s))
			if -p > chars {
				return "", true, nil
			}
			p = chars + p + 1
		}
		s = s[runeOffset(s, p-1):]
		return s[:runeOffset(s, n)], true, nil
	}
	return c.fold(r), nil
}

func (c *compiler) locate(pos int, a []*expr) (*expr, error) {
	for _, e := range a {
		if e.t == tComposite {
			return nil, c.errorf(e.pos, "LOCATE cannot take a record, array or map (%s)", e.text)
		}
	}
	fsub, fs := asString(a[0]), asString(a[1])
	var fp fn[int64]
	if len(a) == 3 {
		fp = asInt(a[2])
	}
	r := &expr{t: tInt, nullable: anyNullable(a), konst: konst(a), pos: pos}
	r.i = func(in, out *engine.Row) (int64, bool, error) {
		sub, ok, err := fsub(in, out)
		if !ok {
			return 0, false, err
		}
		s, ok, err := fs(in, out)
		if !ok {
			return 0, false, err
		}
		start := int64(1)
		if fp != nil {
			if start, ok, err = fp(in, out); !ok {
				return 0, false, err
			}
			if start < 1 {
				return 0, true, nil
			}
		}
		off := runeOffset(s, start-1)
		if off == len(s) && sub != "" || int64(utf8.RuneCountInString(s))+1 < start {
			return 0, true, nil
		}
		i := strings.Index(s[off:], sub)
		if i < 0 {
			return 0, true, nil
		}
		return start + int64(utf8.RuneCountInString(s[off:off+i])), true, nil
	}
	return c.fold(r), nil
}

func (c *compiler) trim(n *sqlparser.TrimFuncExpr) (*expr, error) {
	var pos int
	var mode sqlparser.TrimType
	switch n.TrimFuncType {
	case sqlparser.LTrimType:
		pos, mode = c.loc.find("ltrim"), sqlparser.LeadingTrimType
	case sqlparser.RTrimType:
		pos, mode = c.loc.find("rtrim"), sqlparser.TrailingTrimType
	default:
		pos, mode = c.loc.find("trim"), n.Type
		if mode == sqlparser.NoTrimType {
			mode = sqlparser.BothTrimType
		}
	}
	var rem *expr
	if n.TrimArg != nil {
		var err error
		if rem, err = c.expr(n.TrimArg); err != nil {
			return nil, err
		}
	}
	s, err := c.expr(n.StringArg)
	if err != nil {
		return nil, err
	}
	if s.t == tComposite {
		return nil, c.errorf(s.pos, "TRIM cannot take a record, array or map (%s)", s.text)
	}
	fs := asString(s)
	frem := fn[string](constFn(" ", true))
	args := []*expr{s}
	if rem != nil {
		frem = asString(rem)
		args = append(args, rem)
	}
	lead, trail := mode != sqlparser.TrailingTrimType, mode != sqlparser.LeadingTrimType
	r := &expr{t: tString, nullable: anyNullable(args), konst: konst(args), pos: pos}
	r.s = func(in, out *engine.Row) (string, bool, error) {
		v, ok, err := fs(in, out)
		if !ok {
			return "", false, err
		}
		rm, ok, err := frem(in, out)
		if !ok {
			return "", false, err
		}
		if rm == "" {
			return v, true, nil
		}
		for lead && strings.HasPrefix(v, rm) {
			v = v[len(rm):]
		}
		for trail && strings.HasSuffix(v, rm) {
			v = v[:len(v)-len(rm)]
		}
		return v, true, nil
	}
	return c.fold(r), nil
}

func planSplitPart(c *compiler, pos int, a []*expr) (*expr, error) {
	fs, fd, fi := asString(a[0]), asString(a[1]), asInt(a[2])
	r := &expr{t: tString, nullable: anyNullable(a), konst: konst(a)}
	r.s = func(in, out *engine.Row) (string, bool, error) {
		s, ok, err := fs(in, out)
		if !ok {
			return "", false, err
		}
		d, ok, err := fd(in, out)
		if !ok {
			return "", false, err
		}
		i, ok, err := fi(in, out)
		if !ok {
			return "", false, err
		}
		return splitPart(s, d, i), true, nil
	}
	return c.fold(r), nil
}

// splitPart is PostgreSQL's split_part: the i-th (1-based; negative from the
// end) field of s split by d, ” when there is none.
func splitPart(s, d string, i int64) string {
	if d == "" {
		if i == 1 || i == -1 {
			return s
		}
		return ""
	}
	if i > 0 {
		for ; i > 1; i-- {
			j := strings.Index(s, d)
			if j < 0 {
				return ""
			}
			s = s[j+len(d):]
		}
		if j := strings.Index(s, d); j >= 0 {
			return s[:j]
		}
		return s
	}
	if i < 0 {
		for ; i < -1; i++ {
			j := strings.LastIndex(s, d)
			if j < 0 {
				return ""
			}
			s = s[:j]
		}
		if j := strings.LastIndex(s, d); j >= 0 {
			return s[j+len(d):]
		}
		return s
	}
	return ""
}

func planSubstringIndex(c *compiler, pos int, a []*expr) (*expr, error) {
	fs, fd, fi := asString(a[0]), asString(a[1]), asInt(a[2])
	r := &expr{t: tString, nullable: anyNullable(a), konst: konst(a)}
	r.s = func(in, out *engine.Row) (string, bool, error) {
		s, ok, err := fs(in, out)
		if !ok {
			return "", false, err
		}
		d, ok, err := fd(in, out)
		if !ok {
			return "", false, err
		}
		n, ok, err := fi(in, out)
		if !ok {
			return "", false, err
		}
		if d == "" || n == 0 {
			return "", true, nil
		}
		if n > 0 {
			off := 0
			for ; n > 0; n-- {
				j := strings.Index(s[off:], d)
				if j < 0 {
					return s, true, nil
				}
				off += j + len(d)
			}
			return s[:off-len(d)], true, nil
		}
		end := len(s)
		for ; n < 0; n++ {
			j := strings.LastIndex(s[:end], d)
			if j < 0 {
				return s, true, nil
			}
			end = j
		}
		return s[end+len(d):], true, nil
	}
	return c.fold(r), nil
}

func planSHA2(c *compiler, pos int, a []*expr) (*expr, error) {
	if !a[1].konst || a[1].t != tInt {
		return nil, c.errorf(a[1].pos, "the bit length of SHA2 must be a constant: 224, 256, 384 or 512")
	}
	var g func(b []byte, s string) []byte
	switch a[1].cv.i {
	case 224:
		g = func(b []byte, s string) []byte {
			h := sha256.Sum224(engine.UnsafeBytes(s))
			return hex.AppendEncode(b, h[:])
		}
	case 0, 256:
		g = func(b []byte, s string) []byte {
			h := sha256.Sum256(engine.UnsafeBytes(s))
			return hex.AppendEncode(b, h[:])
		}
	case 384:
		g = func(b []byte, s string) []byte {
			h := sha512.Sum384(engine.UnsafeBytes(s))
			return hex.AppendEncode(b, h[:])
		}
	case 512:
		g = func(b []byte, s string) []byte {
			h := sha512.Sum512(engine.UnsafeBytes(s))
			return hex.AppendEncode(b, h[:])
		}
	default:
		return nil, c.errorf(a[1].pos, "SHA2 bit length must be 224, 256, 384 or 512, not %d", a[1].cv.i)
	}
	return hashHex(g)(c, pos, a[:1])
}

// planHash64 is a stable 64-bit hash for sampling: XXH64 (seed 0) of the
// value's bytes (strings) or of its 8 little-endian bytes (integers),
// shifted right by one so that it is never negative: HASH64(x) % 100 < 5
// keeps a stable 5 %.
func planHash64(c *compiler, pos int, a []*expr) (*expr, error) {
	e := a[0]
	r := &expr{t: tInt, nullable: e.nullable, konst: e.konst}
	switch e.t {
	case tInt, tTime, tDate, tBool:
		r.i = mapFn(asInt(e), func(v int64) int64 {
			var b [8]byte
			for i := range b {
				b[i] = byte(v >> (8 * i))
			}
			return int64(xxhash.Sum64(b[:]) >> 1)
		})
	default:
		r.i = mapFn(asString(e), func(s string) int64 { return int64(xxhash.Sum64String(s) >> 1) })
	}
	return c.fold(r), nil
}

func planAbs(c *compiler, pos int, a []*expr) (*expr, error) {
	e := a[0]
	r := &expr{t: e.t, scale: e.scale, nullable: e.nullable, konst: e.konst}
	switch e.t {
	case tInt, tDecimal:
		text := e.text
		r.i = func(in, out *engine.Row) (int64, bool, error) {
			v, ok, err := e.i(in, out)
			if !ok {
				return 0, false, err
			}
			if v == math.MinInt64 {
				return 0, false, evalErr(text, errOutOfRange)
			}
			return abs(v), true, nil
		}
	case tNull:
		return e, nil
	default:
		r.t, r.f = tFloat, mapFn(asFloat(e), math.Abs)
	}
	return c.fold(r), nil
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// floatInt is FLOOR/CEIL: integers stay integers, others round to BIGINT.
func floatInt(g func(float64) float64) func(c *compiler, pos int, a []*expr) (*expr, error) {
	return func(c *compiler, pos int, a []*expr) (*expr, error) {
		e := a[0]
		if e.t == tInt || e.t == tNull {
			return e, nil
		}
		return c.fold(&expr{t: tInt, nullable: e.nullable, konst: e.konst, i: mapFn(asFloat(e), func(f float64) int64 { return roundFloatToInt(g(f)) })}), nil
	}
}

func planRound(c *compiler, pos int, a []*expr) (*expr, error) {
	e := a[0]
	d := int64(0)
	if len(a) == 2 {
		if !a[1].konst || a[1].t != tInt {
			return nil, c.errorf(a[1].pos, "the digits of ROUND must be a constant integer")
		}
		d = a[1].cv.i
	}
	switch e.t {
	case tInt, tNull:
		return e, nil
	case tDecimal:
		if d >= int64(e.scale) {
			return e, nil
		}
		d = max(d, 0)
		r := c.convert(e, tDecimal, int(d))
		return r, nil
	}
	m := math.Pow(10, float64(d))
	return c.fold(&expr{t: tFloat, nullable: e.nullable, konst: e.konst, f: mapFn(asFloat(e), func(f float64) float64 { return math.Round(f*m) / m })}), nil
}

func planExtreme(op cmpOp) func(c *compiler, pos int, a []*expr) (*expr, error) {
	return func(c *compiler, pos int, a []*expr) (*expr, error) {
		t, scale, ok := unify(a...)
		if !ok || t == tComposite {
			return nil, c.errorf(pos, "GREATEST/LEAST cannot take records, arrays or maps")
		}
		conv := make([]*expr, len(a))
		for i, e := range a {
			conv[i] = c.convert(e, t, scale)
		}
		r := &expr{t: t, scale: scale, nullable: anyNullable(a), konst: konst(a)}
		switch t {
		case tFloat:
			r.f = extreme(op, conv, func(e *expr) fn[float64] { return e.f })
		case tString:
			r.s = extreme(op, conv, func(e *expr) fn[string] { return e.s })
		case tBool:
			r.t, r.i = tInt, extreme(op, conv, func(e *expr) fn[int64] { return asInt(e) })
		case tNull:
			return &expr{t: tNull, nullable: true, konst: true}, nil
		default:
			r.i = extreme(op, conv, func(e *expr) fn[int64] { return e.i })
		}
		return c.fold(r), nil
	}
}

func extreme[T int64 | float64 | string](op cmpOp, es []*expr, get func(*expr) fn[T]) fn[T] {
	fs := make([]fn[T], len(es))
	for i, e := range es {
		fs[i] = get(e)
	}
	return func(in, out *engine.Row) (T, bool, error) {
		var best T
		for i, f := range fs {
			v, ok, err := f(in, out)
			if !ok {
				return best, false, err
			}
			if i == 0 || (op == opGT && v > best) || (op == opLT && v < best) {
				best = v
			}
		}
		return best, true, nil
	}
}
