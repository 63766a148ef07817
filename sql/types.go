package sql

import (
	"math"
	"strconv"

	"github.com/sluicehq/sluice/engine"
)

// typ is the SQL type of a compiled expression. Every engine type maps to one
// of them when read (see columnExpr) and back to an engine type when written
// (see outputType).
type typ uint8

const (
	tNull      typ = iota // the NULL literal, before it meets a type
	tBool                 // slot N = 0 or 1
	tInt                  // int64
	tFloat                // float64
	tDecimal              // int64 unscaled, expr.scale digits after the point
	tString               // string, bytes, fixed, enum symbol, uuid
	tTime                 // timestamp: microseconds since the epoch, UTC
	tDate                 // days since the epoch
	tComposite            // record, array, map, union: copied, indexed, never computed on
)

var typNames = [...]string{"NULL", "BOOLEAN", "BIGINT", "DOUBLE", "DECIMAL", "STRING", "TIMESTAMP", "DATE", "COMPOSITE"}

func (t typ) String() string { return typNames[t] }

func (t typ) numeric() bool { return t == tBool || t == tInt || t == tFloat || t == tDecimal }

// fn evaluates an expression over an input row. ok is false for NULL. out is
// the output row, whose Arena holds strings the expression computes. err is
// non-nil only for the failures MySQL does not turn into NULL; it wraps
// *engine.EvalError naming the expression.
type fn[T any] func(in, out *engine.Row) (v T, ok bool, err error)

// expr is a compiled expression: its type and exactly the closure that
// matches it (b for tBool, i for tInt/tDecimal/tTime/tDate, f for tFloat, s
// for tString).
type expr struct {
	t        typ
	scale    int  // tDecimal
	nullable bool // may evaluate to NULL
	pos      int  // offset of the expression's first token
	text     string

	b fn[bool]
	i fn[int64]
	f fn[float64]
	s fn[string]

	// konst is set for expressions that read no column: they are folded at
	// compile time into cv.
	konst bool
	cv    value

	// col is set for a direct column reference (or an array element or map
	// value), which the projection copies slot for slot.
	col *colRef

	// elem is set for an array element or map value read with -> or ->>,
	// which are typed values rather than JSON text.
	elem bool

	// foldErr is the error a constant raised when folded.
	foldErr error
}

// value is a constant, held by type.
type value struct {
	null bool
	b    bool
	i    int64
	f    float64
	s    string
}

// colRef describes where a column's value lives.
type colRef struct {
	path    string
	typ     *engine.Type // the column's type as declared (maybe a nullable union)
	inner   *engine.Type // typ without its nullable union
	slot    int
	parents []int
	// nullable is true when the value can be null: a nullable union, or a
	// field of a nullable record.
	nullable bool
}

var pow10 = func() (p [19]int64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return
}()

// formatDecimal appends unscaled/10^scale in plain notation.
func formatDecimal(b []byte, unscaled int64, scale int) []byte {
	if scale == 0 {
		return strconv.AppendInt(b, unscaled, 10)
	}
	neg := unscaled < 0
	u := uint64(unscaled)
	if neg {
		u = -u
		b = append(b, '-')
	}
	var digits [24]byte
	d := strconv.AppendUint(digits[:0], u, 10)
	for len(d) <= scale {
		d = append([]byte{'0'}, d...) // rare: |value| < 1; small
	}
	b = append(b, d[:len(d)-scale]...)
	b = append(b, '.')
	return append(b, d[len(d)-scale:]...)
}

// formatFloat appends f the way MySQL prints a DOUBLE: shortest
// representation, integers without a fraction.
func formatFloat(b []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// parseNumberPrefix parses the longest numeric prefix of s as MySQL does when
// it converts a string to a number: leading spaces skipped, "12abc" is 12, a
// string with no numeric prefix is 0.
func parseNumberPrefix(s string) float64 {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n') {
		i++
	}
	start := i
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			digits++
		}
	}
	if digits == 0 {
		return 0
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && s[j] >= '0' && s[j] <= '9' {
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			i = j
		}
	}
	f, err := strconv.ParseFloat(s[start:i], 64)
	if err != nil {
		// Only range errors are possible here; ParseFloat returns ±Inf.
		return f
	}
	return f
}

// parseIntPrefix is parseNumberPrefix for integer casts: MySQL's CAST(s AS
// SIGNED) takes the integer prefix ("12.7abc" is 12), saturating.
func parseIntPrefix(s string) int64 {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n') {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	var u uint64
	over := false
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		d := uint64(s[i] - '0')
		if u > (math.MaxUint64-d)/10 {
			over = true
			continue
		}
		u = u*10 + d
	}
	switch {
	case neg && (over || u > 1<<63):
		return math.MinInt64
	case neg:
		return -int64(u)
	case over || u > math.MaxInt64:
		return math.MaxInt64
	}
	return int64(u)
}

// roundFloatToInt rounds half away from zero and saturates, as MySQL's
// conversion of a DOUBLE to BIGINT does.
func roundFloatToInt(f float64) int64 {
	r := math.Round(f)
	switch {
	case math.IsNaN(r):
		return 0
	case r >= math.MaxInt64:
		return math.MaxInt64
	case r <= math.MinInt64:
		return math.MinInt64
	}
	return int64(r)
}

// rescale multiplies an unscaled decimal by 10^d, reporting overflow.
func rescale(v int64, d int) (int64, bool) {
	if d == 0 {
		return v, true
	}
	if d > 18 {
		return 0, v == 0
	}
	m := pow10[d]
	r := v * m
	if v != 0 && (r/m != v) {
		return 0, false
	}
	return r, true
}

// roundDiv divides a by b (b > 0... or < 0) rounding half away from zero.
func roundDiv(a, b int64) int64 {
	q, r := a/b, a%b
	if r != 0 {
		ar, ab := r, b
		if ar < 0 {
			ar = -ar
		}
		if ab < 0 {
			ab = -ab
		}
		if ar >= ab-ar { // 2|r| >= |b|
			if (a < 0) != (b < 0) {
				q--
			} else {
				q++
			}
		}
	}
	return q
}
