package sql

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine"
)

// avroType converts a parsed Avro schema to an engine.Type: just enough of
// Avro for the test schemas (named types, unions, logical types).
func avroType(t testing.TB, v any, named map[string]*engine.Type, ns string) *engine.Type {
	t.Helper()
	switch v := v.(type) {
	case string:
		prim := map[string]engine.Kind{"null": engine.KindNull, "boolean": engine.KindBool, "int": engine.KindInt, "long": engine.KindLong, "float": engine.KindFloat, "double": engine.KindDouble, "bytes": engine.KindBytes, "string": engine.KindString}
		if k, ok := prim[v]; ok {
			return &engine.Type{Kind: k, EnumDefault: -1}
		}
		if n, ok := named[v]; ok {
			return n
		}
		if n, ok := named[ns+"."+v]; ok {
			return n
		}
		t.Fatalf("unknown type %q", v)
	case []any:
		u := &engine.Type{Kind: engine.KindUnion, EnumDefault: -1}
		for _, b := range v {
			u.Branches = append(u.Branches, avroType(t, b, named, ns))
		}
		return u
	case map[string]any:
		typ, _ := v["type"].(string)
		name, _ := v["name"].(string)
		if s, ok := v["namespace"].(string); ok {
			ns = s
		}
		full := name
		if name != "" && !strings.Contains(name, ".") && ns != "" {
			full = ns + "." + name
		}
		var out *engine.Type
		switch typ {
		case "record":
			out = &engine.Type{Kind: engine.KindRecord, Name: full, EnumDefault: -1}
			named[full] = out
			for _, f := range v["fields"].([]any) {
				fm := f.(map[string]any)
				out.Fields = append(out.Fields, engine.Field{Name: fm["name"].(string), Type: avroType(t, fm["type"], named, ns)})
			}
			return out
		case "enum":
			out = &engine.Type{Kind: engine.KindEnum, Name: full, EnumDefault: -1}
			for _, s := range v["symbols"].([]any) {
				out.Symbols = append(out.Symbols, s.(string))
			}
			named[full] = out
			return out
		case "fixed":
			out = &engine.Type{Kind: engine.KindFixed, Name: full, Size: int(v["size"].(float64)), EnumDefault: -1}
			named[full] = out
		case "array":
			return &engine.Type{Kind: engine.KindArray, Items: avroType(t, v["items"], named, ns), EnumDefault: -1}
		case "map":
			return &engine.Type{Kind: engine.KindMap, Items: avroType(t, v["values"], named, ns), EnumDefault: -1}
		default:
			out = avroType(t, typ, named, ns)
			cp := *out
			out = &cp
		}
		switch v["logicalType"] {
		case "timestamp-micros":
			out.Logical = engine.TimestampMicros
		case "timestamp-millis":
			out.Logical = engine.TimestampMillis
		case "date":
			out.Logical = engine.Date
		case "uuid":
			out.Logical = engine.UUID
		case "decimal":
			out.Logical = engine.Decimal
			out.Precision = int(v["precision"].(float64))
			if s, ok := v["scale"].(float64); ok {
				out.Scale = int(s)
			}
		}
		return out
	}
	t.Fatalf("bad schema node %v", v)
	return nil
}

func loadSchema(t testing.TB, path string) *engine.Schema {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	s, err := engine.NewSchema(avroType(t, v, map[string]*engine.Type{}, ""))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func trafficSchema(t *testing.T) *engine.Schema {
	return loadSchema(t, "testdata/schemas/traffic.avsc")
}

// gen fills rows of a schema with seeded, log-like values: small sets of
// strings so that comparisons hit, IPs, some NULLs.
type gen struct {
	rng *rand.Rand
}

func newGen(seed uint64) *gen { return &gen{rng: rand.New(rand.NewPCG(seed, 1))} }

var (
	genWords = []string{"", "a", "abc", "ABC", "web-browsing", "ssl", "dns", "Hello World", "x_y%z", "10.1.2.3", "192.168.0.7", "2001:db8::1", "ünïcödé", `{"a":{"b":[1,"two",null]},"c":"d"}`}
	genIPs   = []string{"10.0.0.1", "10.255.1.9", "192.168.1.20", "172.16.5.4", "8.8.8.8", "2001:db8::7", "fe80::1", "::ffff:10.1.1.1", "not-an-ip"}
)

func (g *gen) row(s *engine.Schema) *engine.Row {
	r := engine.NewRow(s.Width())
	g.fields(s.Root, r.Slots, r, "")
	return r
}

func (g *gen) fields(rec *engine.Type, slots []engine.Slot, r *engine.Row, prefix string) {
	for _, f := range rec.Fields {
		g.value(f.Type, slots[f.Slot-1:], r, prefix+f.Name)
	}
}

func (g *gen) value(t *engine.Type, slots []engine.Slot, r *engine.Row, name string) {
	if inner, ok := t.Nullable(); ok {
		if g.rng.IntN(4) == 0 {
			slots[0].Null = true
			return
		}
		t = inner
	}
	s := &slots[0]
	switch t.Kind {
	case engine.KindBool:
		s.N = uint64(g.rng.IntN(2))
	case engine.KindInt:
		s.N = uint64(int64(g.rng.IntN(2000) - 500))
		if strings.HasSuffix(name, "port") {
			s.N = uint64([]int64{22, 53, 80, 443, 8080}[g.rng.IntN(5)])
		}
	case engine.KindLong:
		switch {
		case t.Logical.IsTimestamp():
			s.N = uint64(1700000000000000 + g.rng.Int64N(400*86400*1000000))
		case g.rng.IntN(8) == 0:
			s.N = uint64(g.rng.Int64() - math.MaxInt64/2)
		default:
			s.N = uint64(g.rng.Int64N(100000) - 1000)
		}
	case engine.KindFloat, engine.KindDouble:
		s.N = math.Float64bits(math.Round((g.rng.Float64()*200-100)*100) / 100)
	case engine.KindString, engine.KindBytes:
		if strings.HasSuffix(name, "_ip") {
			s.S = genIPs[g.rng.IntN(len(genIPs))]
		} else {
			s.S = genWords[g.rng.IntN(len(genWords))]
		}
	case engine.KindFixed:
		b := make([]byte, t.Size)
		for i := range b {
			b[i] = byte(g.rng.IntN(256))
		}
		s.S = string(b)
	case engine.KindEnum:
		s.N = uint64(g.rng.IntN(len(t.Symbols)))
		s.S = t.Symbols[s.N]
	case engine.KindRecord:
		g.fields(t, slots[1:], r, name+".")
	case engine.KindArray, engine.KindMap:
		n := g.rng.IntN(4)
		w := t.Items.Width()
		if t.Kind == engine.KindMap {
			w++
		}
		start := r.Grow(n * w)
		s.N, s.L = uint64(start), int32(n)
		for i := 0; i < n; i++ {
			el := r.Ext[start+i*w : start+(i+1)*w]
			if t.Kind == engine.KindMap {
				el[0].S = []string{"env", "team", "k", "zone"}[i]
				el = el[1:]
			}
			g.value(t.Items, el, r, name)
		}
	}
}

// render prints a row of schema s as text, for golden files.
func render(s *engine.Schema, r *engine.Row) string {
	var b strings.Builder
	for i, f := range s.Fields() {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(f.Name)
		b.WriteString("=")
		renderValue(&b, f.Type, r.Slots[f.Slot-1:], r)
	}
	return b.String()
}

func renderValue(b *strings.Builder, t *engine.Type, slots []engine.Slot, r *engine.Row) {
	s := slots[0]
	if inner, ok := t.Nullable(); ok {
		if s.Null {
			b.WriteString("NULL")
			return
		}
		t = inner
	}
	if s.Null && t.Kind != engine.KindNull {
		b.WriteString("NULL!") // null in a column typed non-nullable: a bug
		return
	}
	switch t.Kind {
	case engine.KindNull:
		b.WriteString("NULL")
	case engine.KindBool:
		b.WriteString(strconv.FormatBool(s.N != 0))
	case engine.KindInt, engine.KindLong:
		b.WriteString(strconv.FormatInt(int64(s.N), 10))
		if t.Logical != engine.NoLogical {
			fmt.Fprintf(b, "(%s)", t.Logical)
		}
	case engine.KindFloat, engine.KindDouble:
		b.WriteString(strconv.FormatFloat(math.Float64frombits(s.N), 'g', -1, 64))
	case engine.KindString:
		b.WriteString(strconv.Quote(s.S))
	case engine.KindBytes, engine.KindFixed:
		if t.Logical == engine.Decimal {
			v, _ := decodeDecimalBytes(s.S)
			b.Write(formatDecimal(nil, v, t.Scale))
			return
		}
		fmt.Fprintf(b, "x'%x'", s.S)
	case engine.KindEnum:
		fmt.Fprintf(b, "%s#%d", s.S, s.N)
	case engine.KindRecord:
		b.WriteString("{")
		for i, f := range t.Fields {
			if i > 0 {
				b.WriteString(" ")
			}
			b.WriteString(f.Name + "=")
			renderValue(b, f.Type, slots[f.Slot:], r)
		}
		b.WriteString("}")
	case engine.KindArray, engine.KindMap:
		w := t.Items.Width()
		if t.Kind == engine.KindMap {
			w++
		}
		b.WriteString("[")
		for i := 0; i < int(s.L); i++ {
			if i > 0 {
				b.WriteString(",")
			}
			el := r.Ext[int(s.N)+i*w:]
			if t.Kind == engine.KindMap {
				b.WriteString(strconv.Quote(el[0].S) + ":")
				el = el[1:]
			}
			renderValue(b, t.Items, el, r)
		}
		b.WriteString("]")
	default:
		fmt.Fprintf(b, "<%s>", t.Kind)
	}
}

// typeString prints an output schema compactly.
func typeString(t *engine.Type) string {
	if inner, ok := t.Nullable(); ok {
		return typeString(inner) + "?"
	}
	switch t.Kind {
	case engine.KindRecord:
		var parts []string
		for _, f := range t.Fields {
			parts = append(parts, f.Name+" "+typeString(f.Type))
		}
		if t.Name == "sluice.sql.Output" {
			return strings.Join(parts, ", ")
		}
		return "record{" + strings.Join(parts, ", ") + "}"
	case engine.KindArray:
		return "array<" + typeString(t.Items) + ">"
	case engine.KindMap:
		return "map<" + typeString(t.Items) + ">"
	}
	s := t.Kind.String()
	if t.Logical != engine.NoLogical {
		s += "/" + t.Logical.String()
		if t.Logical == engine.Decimal {
			s += fmt.Sprintf("(%d,%d)", t.Precision, t.Scale)
		}
	}
	return s
}
