package jsonrow

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sluicehq/sluice/bench/gen"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/source/avro"
)

func traffic(t testing.TB) *engine.Type {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "schemas", "traffic.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	typ, err := avro.ParseSchema(raw)
	if err != nil {
		t.Fatal(err)
	}
	return typ
}

// jsonOf writes a generated record as a JSON line: timestamps as RFC 3339,
// optional fields null or bare, the hash as a string of code points.
func jsonOf(t testing.TB, r *gen.Record) []byte {
	m := r.Native()
	for k, v := range m {
		if w, ok := v.(map[string]any); ok && len(w) == 1 && k != "labels" {
			for _, inner := range w {
				m[k] = inner
			}
		}
	}
	for _, loc := range []string{"src_location", "dst_location"} {
		l := m[loc].(map[string]any)
		for k, v := range l {
			if w, ok := v.(map[string]any); ok {
				for _, inner := range w {
					l[k] = inner
				}
			}
		}
	}
	if r.PayloadHash != nil {
		rs := make([]rune, 32)
		for i, b := range r.PayloadHash {
			rs[i] = rune(b)
		}
		m["payload_hash"] = string(rs)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJSONRowMatchesAvro(t *testing.T) {
	typ := traffic(t)
	d, err := New(typ)
	if err != nil {
		t.Fatal(err)
	}
	p, err := avro.Compile(typ, typ)
	if err != nil {
		t.Fatal(err)
	}
	g := gen.New(4)
	for i := 0; i < 300; i++ {
		rec := g.Next()
		want := engine.NewRow(p.Width())
		if err := p.Decode(rec.AppendAvro(nil), want); err != nil {
			t.Fatal(err)
		}
		line := jsonOf(t, rec)
		got := engine.NewRow(p.Width())
		if err := d.Decode(&engine.Record{Value: line}, got); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if diff := cmp.Diff(want.Slots, got.Slots); diff != "" {
			t.Fatalf("%s\nslots (-avro +json):\n%s", line, diff)
		}
		if diff := cmp.Diff(want.Ext, got.Ext); diff != "" {
			t.Fatalf("%s\next (-avro +json):\n%s", line, diff)
		}
	}
}

func TestJSONRowCases(t *testing.T) {
	schema := `{"type":"record","name":"R","fields":[
	 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
	 {"name":"d","type":{"type":"int","logicalType":"date"},"default":3},
	 {"name":"u","type":["null","int","string"]},
	 {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","OTHER"],"default":"OTHER"}},
	 {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":6,"scale":2},"default":"\u0000"}]}`
	typ, err := avro.ParseSchema([]byte(schema))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(typ)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, line string
		want       []engine.Slot
		wantErr    error
		field      string
	}{
		{"rfc3339-and-defaults", `{"ts":"2026-01-01T00:00:01.5Z","u":null,"e":"B"}`,
			[]engine.Slot{{N: 1767225601500}, {N: 3}, {Null: true}, {}, {}, {N: 1, S: "B"}, {S: "\x00"}}, nil, ""},
		{"union-bare-and-tagged", `{"ts":5,"d":"1970-01-11","u":{"string":"x"},"e":"ZZ","dec":-1.5}`,
			[]engine.Slot{{N: 5}, {N: 10}, {N: 2}, {}, {S: "x"}, {N: 2, S: "OTHER"}, {S: "\xff\x6a"}}, nil, ""},
		{"union-bare-int", `{"ts":5,"u":7,"e":"A"}`,
			[]engine.Slot{{N: 5}, {N: 3}, {N: 1}, {N: 7}, {}, {N: 0, S: "A"}, {S: "\x00"}}, nil, ""},
		{"missing", `{"e":"A","u":null}`, nil, ErrMissing, "ts"},
		{"wrong-type", `{"ts":true,"u":null,"e":"A"}`, nil, ErrType, "ts"},
		{"syntax", `{"ts":`, nil, ErrSyntax, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := engine.NewRow(d.Schema().Width())
			err := d.Decode(&engine.Record{Value: []byte(tc.line)}, row)
			if tc.wantErr != nil {
				var de *engine.DecodeError
				if !errors.As(err, &de) || !errors.Is(err, tc.wantErr) || de.Field != tc.field {
					t.Fatalf("error %v, want a DecodeError at %q wrapping %v", err, tc.field, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, row.Slots); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzJSONRow(f *testing.F) {
	typ := traffic(f)
	d, err := New(typ)
	if err != nil {
		f.Fatal(err)
	}
	g := gen.New(8)
	for i := 0; i < 3; i++ {
		f.Add(jsonOf(f, g.Next()))
	}
	f.Add([]byte(`{"tags":[1,2],"labels":{"a":null}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		row := engine.NewRow(d.Schema().Width())
		err := d.Decode(&engine.Record{Value: line}, row)
		if err != nil {
			var de *engine.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a DecodeError", err)
			}
		}
	})
}
