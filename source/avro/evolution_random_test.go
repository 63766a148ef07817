package avro

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/linkedin/goavro/v2"
	"github.com/sluicehq/sluice/engine"
)

// evolve returns a reader schema derived from writer t the ways schemas evolve:
// fields dropped, reordered, added with defaults, promoted (int→long→double,
// float→double, string↔bytes) and made nullable. Named types are renamed
// apart so that the reader's names do not collide with the writer's.
func evolve(r *rand.Rand, t *engine.Type, seen map[*engine.Type]*engine.Type) *engine.Type {
	if c, ok := seen[t]; ok {
		return c
	}
	c := *t
	c.Fields, c.Branches = nil, nil
	switch t.Kind {
	case engine.KindRecord:
		seen[t] = &c
		for _, f := range t.Fields {
			if r.Intn(6) == 0 {
				continue // dropped: the writer's value is skipped
			}
			f.Type = evolve(r, f.Type, seen)
			c.Fields = append(c.Fields, f)
		}
		r.Shuffle(len(c.Fields), func(i, j int) { c.Fields[i], c.Fields[j] = c.Fields[j], c.Fields[i] })
		if r.Intn(2) == 0 {
			c.Fields = append(c.Fields, engine.Field{Name: "added", Type: &engine.Type{Kind: engine.KindLong, EnumDefault: -1}, Default: []byte("42")})
		}
		if r.Intn(2) == 0 {
			c.Fields = append(c.Fields, engine.Field{Name: "added_opt", Type: &engine.Type{Kind: engine.KindUnion, EnumDefault: -1,
				Branches: []*engine.Type{{Kind: engine.KindNull, EnumDefault: -1}, {Kind: engine.KindString, EnumDefault: -1}}}, Default: []byte("null")})
		}
		return &c
	case engine.KindUnion:
		for _, b := range t.Branches {
			if b.Kind < engine.KindFixed { // promoting a branch may collide with another
				c.Branches = append(c.Branches, b)
				continue
			}
			c.Branches = append(c.Branches, evolve(r, b, seen))
		}
		return &c
	case engine.KindArray, engine.KindMap:
		c.Items = evolve(r, t.Items, seen)
		return &c
	case engine.KindInt:
		if t.Logical == engine.NoLogical && r.Intn(2) == 0 {
			c.Kind = []engine.Kind{engine.KindLong, engine.KindDouble, engine.KindFloat}[r.Intn(3)]
		}
	case engine.KindLong:
		if t.Logical == engine.NoLogical && r.Intn(3) == 0 {
			c.Kind = engine.KindDouble
		}
	case engine.KindFloat:
		if r.Intn(2) == 0 {
			c.Kind = engine.KindDouble
		}
	case engine.KindString:
		if t.Logical == engine.NoLogical && r.Intn(3) == 0 {
			c.Kind = engine.KindBytes
		}
	case engine.KindBytes:
		if t.Logical == engine.NoLogical && r.Intn(3) == 0 {
			c.Kind = engine.KindString
		}
	}
	seen[t] = &c
	return &c
}

func TestAvroEvolutionRandom(t *testing.T) {
	for seed := int64(1); seed <= 60; seed++ {
		t.Run(fmt.Sprintf("random-%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewSource(seed))
			schema := (&randSchema{r: r}).record(0)
			w, err := ParseSchema([]byte(schema))
			if err != nil {
				t.Fatal(err)
			}
			// Through JSON, so the reader is laid out afresh.
			rtext := schemaJSON(evolve(r, w, map[*engine.Type]*engine.Type{}))
			rd, err := ParseSchema(rtext)
			if err != nil {
				t.Fatalf("reader %s: %v", rtext, err)
			}
			p, err := Compile(w, rd)
			if err != nil {
				t.Fatalf("writer %s\nreader %s\n%v", schema, rtext, err)
			}
			codec, err := goavro.NewCodec(schema)
			if err != nil {
				t.Fatal(err)
			}
			row := engine.NewRow(p.Width())
			for i := 0; i < 30; i++ {
				data := randValue(r, w, nil)
				native, _, err := codec.NativeFromBinary(data)
				if err != nil {
					t.Fatal(err)
				}
				want := resolveNative(t, w, rd, native)
				row.Reset(p.Width())
				if err := p.Decode(data, row); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, any(rowNative(rd, row)), cmpOpts...); diff != "" {
					t.Fatalf("writer %s\nreader %s\n(-want +got):\n%s", schema, rtext, diff)
				}
			}
		})
	}
}
