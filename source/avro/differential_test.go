package avro

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	havro "github.com/hamba/avro/v2"
	"github.com/linkedin/goavro/v2"
	"github.com/sluicehq/sluice/bench/gen"
	"github.com/sluicehq/sluice/engine"
	wire "github.com/sluicehq/sluice/engine/avro"
)

func readSchema(t testing.TB, name string) ([]byte, *engine.Type) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "schemas", name))
	if err != nil {
		t.Fatal(err)
	}
	typ, err := ParseSchema(b)
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return b, typ
}

var cmpOpts = []cmp.Option{
	cmp.Comparer(func(a, b *big.Rat) bool { return a.Cmp(b) == 0 }),
	cmpopts.EquateNaNs(),
	cmpopts.EquateEmpty(),
}

// differential decodes data with goavro and with p and compares.
func differential(t *testing.T, codec *goavro.Codec, p *Program, row *engine.Row, data []byte) {
	t.Helper()
	want, rest, err := codec.NativeFromBinary(data)
	if err != nil {
		t.Fatalf("goavro: %v", err)
	}
	if len(rest) != 0 {
		t.Fatalf("goavro left %d bytes", len(rest))
	}
	row.Reset(p.Width())
	if err := p.Decode(data, row); err != nil {
		t.Fatalf("decode %x: %v", data, err)
	}
	got := rowNative(p.Reader(), row)
	if diff := cmp.Diff(want, any(got), cmpOpts...); diff != "" {
		t.Fatalf("row differs from goavro (-want +got):\n%s\nschema %s", diff, codec.Schema())
	}
}

func TestAvroDifferential(t *testing.T) {
	t.Run("traffic", func(t *testing.T) {
		raw, typ := readSchema(t, "traffic.avsc")
		codec, err := goavro.NewCodec(string(raw))
		if err != nil {
			t.Fatal(err)
		}
		p, err := Compile(typ, typ)
		if err != nil {
			t.Fatal(err)
		}
		g := gen.New(1)
		row := engine.NewRow(p.Width())
		var buf []byte
		for i := 0; i < 500; i++ {
			buf = g.AppendAvro(buf[:0])
			differential(t, codec, p, row, buf)
		}
	})
	t.Run("generator-native", func(t *testing.T) {
		// The generator's native form is what goavro decodes from its bytes.
		raw, _ := readSchema(t, "traffic.avsc")
		codec, err := goavro.NewCodec(string(raw))
		if err != nil {
			t.Fatal(err)
		}
		g := gen.New(2)
		for i := 0; i < 200; i++ {
			rec := g.Next()
			got, _, err := codec.NativeFromBinary(rec.AppendAvro(nil))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(any(rec.Native()), got, cmpOpts...); diff != "" {
				t.Fatalf("record %d (-want +got):\n%s", i, diff)
			}
		}
	})
	for seed := int64(1); seed <= 100; seed++ {
		t.Run(fmt.Sprintf("random-%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewSource(seed))
			rg := &randSchema{r: r}
			schema := rg.record(0)
			typ, err := ParseSchema([]byte(schema))
			if err != nil {
				t.Fatalf("parse %s: %v", schema, err)
			}
			codec, err := goavro.NewCodec(schema)
			if err != nil {
				t.Fatalf("goavro %s: %v", schema, err)
			}
			// The schema written back parses to the same layout.
			again, err := ParseSchema(schemaJSON(typ))
			if err != nil {
				t.Fatalf("reparse %s: %v", schemaJSON(typ), err)
			}
			if diff := cmp.Diff(string(schemaJSON(typ)), string(schemaJSON(again))); diff != "" {
				t.Fatalf("SchemaJSON round trip (-want +got):\n%s", diff)
			}
			// goavro's canonical form mishandles namespaces; hamba's is the
			// reference, for schemas without logical types (which it keeps).
			hs, err := havro.ParseWithCache(schema, "", &havro.SchemaCache{})
			if err != nil {
				t.Fatalf("hamba %s: %v", schema, err)
			}
			hfp, err := hs.FingerprintUsing(havro.CRC64Avro)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := wire.Fingerprint(typ), binary.BigEndian.Uint64(hfp); got != want && !strings.Contains(schema, "logicalType") {
				t.Fatalf("fingerprint %x, hamba %x; canonical %s vs %s", got, want, wire.Canonical(typ), hs.String())
			}
			p, err := Compile(typ, typ)
			if err != nil {
				t.Fatal(err)
			}
			row := engine.NewRow(p.Width())
			for i := 0; i < 50; i++ {
				data := randValue(r, typ, nil)
				differential(t, codec, p, row, data)
			}
		})
	}
}

// randSchema writes random Avro schemas of the kinds goavro can also decode.
type randSchema struct {
	r *rand.Rand
	n int
}

func (g *randSchema) name(prefix string) string {
	g.n++
	return fmt.Sprintf("%s%d", prefix, g.n)
}

func (g *randSchema) record(depth int) string {
	nf := 1 + g.r.Intn(6)
	s := fmt.Sprintf(`{"type":"record","name":%q,"fields":[`, g.name("R"))
	for i := 0; i < nf; i++ {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf(`{"name":"f%d","type":%s}`, i, g.typ(depth+1, true))
	}
	return s + "]}"
}

func (g *randSchema) typ(depth int, unionOK bool) string {
	k := g.r.Intn(24)
	if depth > 3 && k >= 14 {
		k %= 14
	}
	switch k {
	case 0:
		return `"null"`
	case 1:
		return `"boolean"`
	case 2:
		return `"int"`
	case 3:
		return `"long"`
	case 4:
		return `"float"`
	case 5:
		return `"double"`
	case 6:
		return `"bytes"`
	case 7:
		return `"string"`
	case 8:
		return fmt.Sprintf(`{"type":"fixed","name":%q,"size":%d}`, g.name("F"), 1+g.r.Intn(19))
	case 9:
		return fmt.Sprintf(`{"type":"enum","name":%q,"symbols":["A","B","C","D"]}`, g.name("E"))
	case 10:
		return `{"type":"long","logicalType":"timestamp-micros"}`
	case 11:
		return []string{`{"type":"long","logicalType":"timestamp-millis"}`, `{"type":"int","logicalType":"date"}`,
			`{"type":"int","logicalType":"time-millis"}`, `{"type":"long","logicalType":"time-micros"}`}[g.r.Intn(4)]
	case 12:
		if g.r.Intn(2) == 0 {
			return fmt.Sprintf(`{"type":"fixed","name":%q,"size":8,"logicalType":"decimal","precision":12,"scale":3}`, g.name("D"))
		}
		return `{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}`
	case 13:
		return `{"type":"string","logicalType":"uuid"}`
	case 14, 15:
		return g.record(depth)
	case 16, 17:
		return fmt.Sprintf(`{"type":"array","items":%s}`, g.typ(depth+1, true))
	case 18:
		return fmt.Sprintf(`{"type":"map","values":%s}`, g.typ(depth+1, true))
	default:
		if !unionOK {
			return `"string"`
		}
		// A union: nullable or general, distinct branch kinds.
		kinds := []string{`"boolean"`, `"int"`, `"long"`, `"float"`, `"double"`, `"bytes"`, `"string"`}
		g.r.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
		var br []string
		if g.r.Intn(3) > 0 {
			br = append(br, `"null"`)
		}
		nb := 1 + g.r.Intn(3)
		if nb > 1 || len(br) == 0 {
			if g.r.Intn(2) == 0 && depth < 4 {
				br = append(br, g.record(depth))
				nb--
			}
		}
		br = append(br, kinds[:nb]...)
		g.r.Shuffle(len(br), func(i, j int) { br[i], br[j] = br[j], br[i] })
		s := "["
		for i, b := range br {
			if i > 0 {
				s += ","
			}
			s += b
		}
		return s + "]"
	}
}

// randValue appends a random binary value of t, using both positive and
// negative (sized) block counts.
func randValue(r *rand.Rand, t *engine.Type, dst []byte) []byte {
	switch t.Kind {
	case engine.KindNull:
		return dst
	case engine.KindBool:
		return append(dst, byte(r.Intn(2)))
	case engine.KindInt:
		v := int64(int32(r.Uint32()))
		if r.Intn(2) == 0 {
			v = int64(r.Intn(200) - 100)
		}
		return wire.AppendLong(dst, v)
	case engine.KindLong:
		v := int64(r.Uint64())
		if r.Intn(2) == 0 {
			v = int64(r.Intn(2000) - 1000)
		}
		if t.Logical == engine.TimestampMillis || t.Logical == engine.TimestampMicros {
			v = 1_700_000_000_000_000/int64(t.Logical.MicrosPerUnit()) + int64(r.Intn(1e9))
		}
		return wire.AppendLong(dst, v)
	case engine.KindFloat:
		return wire.AppendFloat(dst, float32(r.NormFloat64()*1000))
	case engine.KindDouble:
		if r.Intn(10) == 0 {
			return wire.AppendDouble(dst, math.Inf(1))
		}
		return wire.AppendDouble(dst, r.NormFloat64()*1e6)
	case engine.KindBytes:
		b := make([]byte, r.Intn(9))
		r.Read(b)
		return wire.AppendString(dst, string(b))
	case engine.KindString:
		const letters = "abcdefghijklmnopqrstuvwxyzé"
		n := r.Intn(12)
		s := ""
		for i := 0; i < n; i++ {
			s += string(letters[r.Intn(26)])
		}
		return wire.AppendString(dst, s)
	case engine.KindFixed:
		b := make([]byte, t.Size)
		r.Read(b)
		return append(dst, b...)
	case engine.KindEnum:
		return wire.AppendLong(dst, int64(r.Intn(len(t.Symbols))))
	case engine.KindRecord:
		for _, f := range t.Fields {
			dst = randValue(r, f.Type, dst)
		}
		return dst
	case engine.KindUnion:
		i := r.Intn(len(t.Branches))
		return randValue(r, t.Branches[i], wire.AppendLong(dst, int64(i)))
	case engine.KindArray, engine.KindMap:
		blocks := r.Intn(3)
		for b := 0; b < blocks; b++ {
			n := 1 + r.Intn(3)
			var body []byte
			for i := 0; i < n; i++ {
				if t.Kind == engine.KindMap {
					body = wire.AppendString(body, fmt.Sprintf("k%d_%d", b, i))
				}
				body = randValue(r, t.Items, body)
			}
			if r.Intn(2) == 0 {
				dst = wire.AppendLong(wire.AppendLong(dst, int64(-n)), int64(len(body)))
			} else {
				dst = wire.AppendLong(dst, int64(n))
			}
			dst = append(dst, body...)
		}
		return append(dst, 0)
	}
	return dst
}
