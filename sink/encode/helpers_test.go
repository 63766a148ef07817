package encode

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine"
)

// parseSchema turns Avro schema JSON into an engine.Type: a small test-side
// parser, so that these tests do not depend on the source package.
func parseSchema(t testing.TB, js string) *engine.Type {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(js), &v); err != nil {
		t.Fatal(err)
	}
	p := &schemaParser{named: map[string]*engine.Type{}}
	typ, err := p.parse(v, "")
	if err != nil {
		t.Fatal(err)
	}
	return typ
}

type schemaParser struct{ named map[string]*engine.Type }

func fullName(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

var logicals = map[string]engine.Logical{"decimal": engine.Decimal, "uuid": engine.UUID, "date": engine.Date,
	"time-millis": engine.TimeMillis, "time-micros": engine.TimeMicros, "timestamp-millis": engine.TimestampMillis,
	"timestamp-micros": engine.TimestampMicros, "local-timestamp-millis": engine.LocalTimestampMillis,
	"local-timestamp-micros": engine.LocalTimestampMicros, "duration": engine.Duration}

var kinds = map[string]engine.Kind{"null": engine.KindNull, "boolean": engine.KindBool, "int": engine.KindInt,
	"long": engine.KindLong, "float": engine.KindFloat, "double": engine.KindDouble, "bytes": engine.KindBytes,
	"string": engine.KindString}

func (p *schemaParser) parse(v any, ns string) (*engine.Type, error) {
	switch v := v.(type) {
	case string:
		if k, ok := kinds[v]; ok {
			return &engine.Type{Kind: k, EnumDefault: -1}, nil
		}
		if t, ok := p.named[fullName(v, ns)]; ok {
			return t, nil
		}
		if t, ok := p.named[v]; ok {
			return t, nil
		}
		return nil, fmt.Errorf("unknown type %q", v)
	case []any:
		u := &engine.Type{Kind: engine.KindUnion, EnumDefault: -1}
		for _, b := range v {
			bt, err := p.parse(b, ns)
			if err != nil {
				return nil, err
			}
			u.Branches = append(u.Branches, bt)
		}
		return u, nil
	case map[string]any:
		typ, _ := v["type"].(string)
		name, _ := v["name"].(string)
		if n, ok := v["namespace"].(string); ok {
			ns = n
		}
		name = fullName(name, ns)
		if i := strings.LastIndexByte(name, '.'); i >= 0 {
			ns = name[:i]
		}
		t := &engine.Type{EnumDefault: -1}
		switch typ {
		case "record":
			t.Kind, t.Name = engine.KindRecord, name
			p.named[name] = t
			for _, f := range v["fields"].([]any) {
				fm := f.(map[string]any)
				ft, err := p.parse(fm["type"], ns)
				if err != nil {
					return nil, err
				}
				fd := engine.Field{Name: fm["name"].(string), Type: ft}
				if d, ok := fm["default"]; ok {
					fd.Default, _ = json.Marshal(d)
				}
				t.Fields = append(t.Fields, fd)
			}
		case "enum":
			t.Kind, t.Name = engine.KindEnum, name
			for _, s := range v["symbols"].([]any) {
				t.Symbols = append(t.Symbols, s.(string))
			}
			p.named[name] = t
		case "fixed":
			t.Kind, t.Name, t.Size = engine.KindFixed, name, int(v["size"].(float64))
			p.named[name] = t
		case "array", "map":
			t.Kind = engine.KindArray
			k := "items"
			if typ == "map" {
				t.Kind, k = engine.KindMap, "values"
			}
			it, err := p.parse(v[k], ns)
			if err != nil {
				return nil, err
			}
			t.Items = it
		default:
			k, ok := kinds[typ]
			if !ok {
				return p.parse(typ, ns)
			}
			t.Kind = k
		}
		if l, ok := v["logicalType"].(string); ok {
			t.Logical = logicals[l]
			if p, ok := v["precision"].(float64); ok {
				t.Precision = int(p)
			}
			if s, ok := v["scale"].(float64); ok {
				t.Scale = int(s)
			}
		}
		return t, nil
	}
	return nil, fmt.Errorf("bad schema %v", v)
}

// gen fills rows with random values of a type and returns the same values in
// "plain" form, the common ground the tests compare decoded output in:
//
//	null → nil; boolean → bool; int, long, date, time-*, timestamp-* → int64
//	(raw units); float, double → float64; bytes, fixed → string; string,
//	enum symbol → string; decimal → its decimal string; record, map →
//	map[string]any; array → []any; union → the branch's value
type gen struct {
	r *rand.Rand
	// depth bounds nesting in arrays and maps.
	depth int
}

var words = []string{"", "a", "deny", "ALLOW", "10.0.0.1", "quote\"d", "comma,sep", "line\nbreak", "tab\t", "ünïcödé", "emoji 🎉", "<html>&", "back\\slash", " lead", "\x01ctl", "\u2028sep"}

func (g *gen) str() string {
	if g.r.IntN(4) == 0 {
		b := make([]byte, g.r.IntN(20))
		for i := range b {
			b[i] = byte(' ' + g.r.IntN(95))
		}
		return string(b)
	}
	return words[g.r.IntN(len(words))]
}

// fill writes a random value of t at slots[i] (row gives Ext) and returns it in plain form.
func (g *gen) fill(t *engine.Type, row *engine.Row, ext bool, i int) any {
	slot := func() *engine.Slot {
		if ext {
			return &row.Ext[i]
		}
		return &row.Slots[i]
	}
	switch t.Kind {
	case engine.KindNull:
		slot().Null = true
		return nil
	case engine.KindBool:
		b := g.r.IntN(2) == 1
		if b {
			slot().N = 1
		}
		return b
	case engine.KindInt:
		var v int64
		switch t.Logical {
		case engine.Date:
			v = g.r.Int64N(40000) - 10000
		case engine.TimeMillis:
			v = g.r.Int64N(86400000)
		default:
			v = int64(int32(g.r.Uint32()))
			if g.r.IntN(3) == 0 {
				v = g.r.Int64N(200) - 100
			}
		}
		slot().N = uint64(v)
		return v
	case engine.KindLong:
		var v int64
		switch {
		case t.Logical == engine.TimeMicros:
			v = g.r.Int64N(86400000000)
		case t.Logical.IsTimestamp():
			v = g.r.Int64N(4e9) * 1000 / int64(max(1, int(t.Logical.MicrosPerUnit())))
			v += g.r.Int64N(1000)
		default:
			v = int64(g.r.Uint64())
			if g.r.IntN(3) == 0 {
				v = g.r.Int64N(2000) - 1000
			}
		}
		slot().N = uint64(v)
		return v
	case engine.KindFloat:
		f := float64(float32(g.r.NormFloat64() * 1000))
		slot().N = math.Float64bits(f)
		return f
	case engine.KindDouble:
		f := g.r.NormFloat64() * math.Pow(10, float64(g.r.IntN(30)-15))
		slot().N = math.Float64bits(f)
		return f
	case engine.KindString:
		s := g.str()
		slot().S = s
		return s
	case engine.KindBytes, engine.KindFixed:
		n := g.r.IntN(12)
		if t.Kind == engine.KindFixed {
			n = t.Size
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(g.r.Uint32())
		}
		slot().S = string(b)
		if t.Logical == engine.Decimal {
			return decimalString(b, t.Scale)
		}
		return string(b)
	case engine.KindEnum:
		k := g.r.IntN(len(t.Symbols))
		s := slot()
		s.N, s.S = uint64(k), t.Symbols[k]
		return t.Symbols[k]
	case engine.KindRecord:
		m := map[string]any{}
		base := i
		for _, f := range t.Fields {
			m[f.Name] = g.fill(f.Type, row, ext, base+f.Slot)
		}
		return m
	case engine.KindArray, engine.KindMap:
		n := 0
		if g.depth < 3 {
			n = g.r.IntN(4)
		}
		w := t.Items.Width()
		if t.Kind == engine.KindMap {
			w++
		}
		start := row.Grow(n * w)
		s := slot()
		s.N, s.L = uint64(start), int32(n)
		g.depth++
		defer func() { g.depth-- }()
		if t.Kind == engine.KindArray {
			a := []any{}
			for j := 0; j < n; j++ {
				a = append(a, g.fill(t.Items, row, true, start+j*w))
			}
			return a
		}
		m := map[string]any{}
		for j := 0; j < n; j++ {
			k := fmt.Sprintf("k%d%s", j, g.str())
			row.Ext[start+j*w].S = k
			m[k] = g.fill(t.Items, row, true, start+j*w+1)
		}
		return m
	case engine.KindUnion:
		if inner, ok := t.Nullable(); ok {
			if g.r.IntN(3) == 0 {
				slot().Null = true
				return nil
			}
			return g.fill(inner, row, ext, i)
		}
		b := g.r.IntN(len(t.Branches))
		slot().N = uint64(b)
		if t.Branches[b].Kind == engine.KindNull {
			return nil
		}
		return g.fill(t.Branches[b], row, ext, i+t.BranchSlot(b))
	}
	panic("kind " + t.Kind.String())
}

// row returns a random row of schema s and its plain value.
func (g *gen) row(s *engine.Schema, row *engine.Row) map[string]any {
	row.Reset(s.Width())
	return g.fill(s.Root, row, false, -1).(map[string]any)
}

func decimalString(b []byte, scale int) string {
	x := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		x.Sub(x, new(big.Int).Lsh(big.NewInt(1), uint(len(b)*8)))
	}
	return new(big.Rat).SetFrac(x, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)).FloatString(scale)
}
