package avro

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/linkedin/goavro/v2"
	"github.com/sluicehq/sluice/bench/gen"
	"github.com/sluicehq/sluice/engine"
	wire "github.com/sluicehq/sluice/engine/avro"
)

// resolveNative applies the specification's resolution rules to a value that
// goavro decoded with the writer schema w, giving what a reader of schema r
// sees. It is the reference the compiled program is compared with: goavro
// itself has no schema resolution.
func resolveNative(t *testing.T, w, r *engine.Type, v any) any {
	t.Helper()
	if w.Kind == engine.KindUnion {
		if v == nil {
			return resolveNative(t, &engine.Type{Kind: engine.KindNull}, r, nil)
		}
		for k, inner := range v.(map[string]any) {
			for _, b := range w.Branches {
				if goavroName(b) == k {
					return resolveNative(t, b, r, inner)
				}
			}
		}
		t.Fatalf("no writer branch for %v", v)
	}
	if r.Kind == engine.KindUnion {
		i := branchFor(w, r)
		b := r.Branches[i]
		if b.Kind == engine.KindNull {
			return nil
		}
		return map[string]any{goavroName(b): resolveNative(t, w, b, v)}
	}
	switch r.Kind {
	case engine.KindRecord:
		in := v.(map[string]any)
		out := make(map[string]any)
		for _, rf := range r.Fields {
			found := false
			for _, wf := range w.Fields {
				if wf.Name == rf.Name {
					out[rf.Name] = resolveNative(t, wf.Type, rf.Type, in[wf.Name])
					found = true
				}
			}
			if !found {
				dv, err := decodeJSON(rf.Default)
				if err != nil {
					t.Fatal(err)
				}
				bin, err := encodeDefault(nil, rf.Type, dv)
				if err != nil {
					t.Fatal(err)
				}
				codec, err := goavro.NewCodec(string(schemaJSON(rf.Type)))
				if err != nil {
					t.Fatal(err)
				}
				nv, _, err := codec.NativeFromBinary(bin)
				if err != nil {
					t.Fatal(err)
				}
				out[rf.Name] = nv
			}
		}
		return out
	case engine.KindLong:
		if x, ok := v.(int32); ok {
			return int64(x)
		}
	case engine.KindFloat:
		switch x := v.(type) {
		case int32:
			return float32(x)
		case int64:
			return float32(x)
		}
	case engine.KindDouble:
		switch x := v.(type) {
		case int32:
			return float64(x)
		case int64:
			return float64(x)
		case float32:
			return float64(x)
		}
	case engine.KindString:
		if x, ok := v.([]byte); ok {
			return string(x)
		}
	case engine.KindBytes:
		if x, ok := v.(string); ok {
			return []byte(x)
		}
	case engine.KindEnum:
		s := v.(string)
		for _, sym := range r.Symbols {
			if sym == s {
				return s
			}
		}
		return r.Symbols[r.EnumDefault]
	case engine.KindArray:
		in := v.([]any)
		out := make([]any, len(in))
		for i, e := range in {
			out[i] = resolveNative(t, w.Items, r.Items, e)
		}
		return out
	case engine.KindMap:
		in := v.(map[string]any)
		out := make(map[string]any, len(in))
		for k, e := range in {
			out[k] = resolveNative(t, w.Items, r.Items, e)
		}
		return out
	}
	return v
}

func TestAvroEvolution(t *testing.T) {
	rawV1, v1 := readSchema(t, "traffic.avsc")
	_, v2 := readSchema(t, "traffic_v2.avsc")

	t.Run("reader-v2-writer-v1", func(t *testing.T) {
		codec, err := goavro.NewCodec(string(rawV1))
		if err != nil {
			t.Fatal(err)
		}
		p, err := Compile(v1, v2)
		if err != nil {
			t.Fatal(err)
		}
		g := gen.New(3)
		row := engine.NewRow(p.Width())
		var buf []byte
		for i := 0; i < 300; i++ {
			buf = g.AppendAvro(buf[:0])
			native, _, err := codec.NativeFromBinary(buf)
			if err != nil {
				t.Fatal(err)
			}
			want := resolveNative(t, v1, v2, native)
			row.Reset(p.Width())
			if err := p.Decode(buf, row); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, any(rowNative(v2, row)), cmpOpts...); diff != "" {
				t.Fatalf("record %d (-want +got):\n%s", i, diff)
			}
		}
	})

	t.Run("reader-v1-writer-v2-rejected", func(t *testing.T) {
		_, err := Compile(v2, v1)
		if err == nil {
			t.Fatal("compiled an incompatible pair")
		}
		var ce *CompatError
		if !errors.As(err, &ce) {
			t.Fatalf("error %v is not a *CompatError", err)
		}
		for _, want := range []string{"field repeat_count: writer long cannot be promoted to reader int", "field vsys: missing from the writer schema"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	})

	cases := []struct {
		name           string
		writer, reader string
		data           []byte
		want           map[string]any
		wantErr        string
	}{
		{
			name:   "reorder-skip-default",
			writer: `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"gone","type":{"type":"array","items":"string"}},{"name":"b","type":"string"}]}`,
			reader: `{"type":"record","name":"R","fields":[{"name":"b","type":"string"},{"name":"a","type":"long"},{"name":"c","type":{"type":"map","values":"int"},"default":{"x":1}},{"name":"d","type":["null","string"],"default":null}]}`,
			data:   cat(wire.AppendLong(nil, 7), wire.AppendLong(nil, 2), wire.AppendString(nil, "p"), wire.AppendString(nil, "q"), []byte{0}, wire.AppendString(nil, "hi")),
			want:   map[string]any{"a": int64(7), "b": "hi", "c": map[string]any{"x": int32(1)}, "d": nil},
		},
		{
			name:   "promotions",
			writer: `{"type":"record","name":"R","fields":[{"name":"i","type":"int"},{"name":"l","type":"long"},{"name":"f","type":"float"},{"name":"s","type":"string"},{"name":"b","type":"bytes"}]}`,
			reader: `{"type":"record","name":"R","fields":[{"name":"i","type":"double"},{"name":"l","type":"float"},{"name":"f","type":"double"},{"name":"s","type":"bytes"},{"name":"b","type":"string"}]}`,
			data:   cat(wire.AppendLong(nil, -3), wire.AppendLong(nil, 1<<40+1), wire.AppendFloat(nil, 1.5), wire.AppendString(nil, "str"), wire.AppendString(nil, "byt")),
			want:   map[string]any{"i": float64(-3), "l": float32(1<<40 + 1), "f": 1.5, "s": []byte("str"), "b": "byt"},
		},
		{
			name:   "enum-default",
			writer: `{"type":"record","name":"R","fields":[{"name":"e","type":{"type":"enum","name":"E","symbols":["A","NEW","B"]}}]}`,
			reader: `{"type":"record","name":"R","fields":[{"name":"e","type":{"type":"enum","name":"E","symbols":["B","A","UNKNOWN"],"default":"UNKNOWN"}}]}`,
			data:   wire.AppendLong(nil, 1),
			want:   map[string]any{"e": "UNKNOWN"},
		},
		{
			name:   "non-union-to-union",
			writer: `{"type":"record","name":"R","fields":[{"name":"u","type":"int"}]}`,
			reader: `{"type":"record","name":"R","fields":[{"name":"u","type":["null","string","long"]}]}`,
			data:   wire.AppendLong(nil, 9),
			want:   map[string]any{"u": map[string]any{"long": int64(9)}},
		},
		{
			name:   "union-to-non-union",
			writer: `{"type":"record","name":"R","fields":[{"name":"u","type":["int","long"]}]}`,
			reader: `{"type":"record","name":"R","fields":[{"name":"u","type":"double"}]}`,
			data:   cat(wire.AppendLong(nil, 1), wire.AppendLong(nil, 5)),
			want:   map[string]any{"u": float64(5)},
		},
		{
			name:   "field-alias",
			writer: `{"type":"record","name":"R","fields":[{"name":"old","type":"string"}]}`,
			reader: `{"type":"record","name":"R","fields":[{"name":"new","type":"string","aliases":["old"]}]}`,
			data:   wire.AppendString(nil, "v"),
			want:   map[string]any{"new": "v"},
		},
		{
			name:    "enum-symbol-missing",
			writer:  `{"type":"record","name":"R","fields":[{"name":"e","type":{"type":"enum","name":"E","symbols":["A","Z"]}}]}`,
			reader:  `{"type":"record","name":"R","fields":[{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}}]}`,
			wantErr: "field e: writer enum symbol Z is not in reader enum E, which has no default",
		},
		{
			name:    "union-branch-unmatched",
			writer:  `{"type":"record","name":"R","fields":[{"name":"u","type":["null","boolean"]}]}`,
			reader:  `{"type":"record","name":"R","fields":[{"name":"u","type":["null","string"]}]}`,
			wantErr: "field u: writer boolean matches no branch of the reader union",
		},
		{
			name:    "fixed-size",
			writer:  `{"type":"record","name":"R","fields":[{"name":"f","type":{"type":"fixed","name":"F","size":4}}]}`,
			reader:  `{"type":"record","name":"R","fields":[{"name":"f","type":{"type":"fixed","name":"F","size":8}}]}`,
			wantErr: "field f: writer fixed F has size 4, reader's has size 8",
		},
		{
			name:    "nested-record-name",
			writer:  `{"type":"record","name":"R","fields":[{"name":"n","type":{"type":"record","name":"A","fields":[]}}]}`,
			reader:  `{"type":"record","name":"R","fields":[{"name":"n","type":{"type":"record","name":"B","fields":[]}}]}`,
			wantErr: "field n: writer record A and reader record B have different names",
		},
		{
			name:    "double-to-float",
			writer:  `{"type":"record","name":"R","fields":[{"name":"x","type":{"type":"record","name":"In","fields":[{"name":"d","type":"double"}]}}]}`,
			reader:  `{"type":"record","name":"R","fields":[{"name":"x","type":{"type":"record","name":"In","fields":[{"name":"d","type":"float"}]}}]}`,
			wantErr: "field x.d: writer double cannot be promoted to reader float",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, err := ParseSchema([]byte(tc.writer))
			if err != nil {
				t.Fatal(err)
			}
			r, err := ParseSchema([]byte(tc.reader))
			if err != nil {
				t.Fatal(err)
			}
			p, err := Compile(w, r)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			row := engine.NewRow(p.Width())
			if err := p.Decode(tc.data, row); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, rowNative(r, row), cmpOpts...); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
