package avro

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sluicehq/sluice/bench/gen"
	"github.com/sluicehq/sluice/engine"
	wire "github.com/sluicehq/sluice/engine/avro"
	"github.com/sluicehq/sluice/engine/enginetest"
)

// TestSchemaGolden pins the canonical form, the fingerprint and SchemaJSON of
// the canonical schemas; -update rewrites testdata/golden.
func TestSchemaGolden(t *testing.T) {
	for _, name := range []string{"traffic.avsc", "traffic_v2.avsc"} {
		t.Run(name, func(t *testing.T) {
			_, typ := readSchema(t, name)
			got := fmt.Sprintf("canonical: %s\nfingerprint: %016x\nschema: %s\n", wire.Canonical(typ), wire.Fingerprint(typ), schemaJSON(typ))
			path := filepath.Join("testdata", "golden", strings.TrimSuffix(name, ".avsc")+".txt")
			enginetest.Golden(t, path, []byte(got))
			again, err := ParseSchema(schemaJSON(typ))
			if err != nil {
				t.Fatal(err)
			}
			if wire.Fingerprint(again) != wire.Fingerprint(typ) || string(schemaJSON(again)) != string(schemaJSON(typ)) {
				t.Error("SchemaJSON does not parse back to the same schema")
			}
		})
	}
}

func TestRabinVectors(t *testing.T) {
	// Values from the Avro specification's test suite (Java SchemaNormalization).
	for _, tc := range []struct {
		schema string
		want   int64
	}{
		{`"null"`, 7195948357588979594},
		{`"boolean"`, -6970731678124411036},
		{`"int"`, 8247732601305521295},
		{`"string"`, -8142146995180207161},
	} {
		t.Run(tc.schema, func(t *testing.T) {
			if got := int64(wire.Rabin([]byte(tc.schema))); got != tc.want {
				t.Errorf("wire.Rabin(%s) = %d, want %d", tc.schema, got, tc.want)
			}
		})
	}
}

func TestParseSchemaErrors(t *testing.T) {
	for _, tc := range []struct{ name, schema, want string }{
		{"json", `{`, "invalid JSON"},
		{"unknown-type", `{"type":"record","name":"R","fields":[{"name":"a","type":"Nope"}]}`, `a: unknown type "Nope"`},
		{"recursive", `{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}`, "recursive type L"},
		{"dup-union", `["int","int"]`, "two branches of type int"},
		{"bad-default", `{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":"x"}]}`, "a: invalid default"},
		{"enum-default", `{"type":"enum","name":"E","symbols":["A"],"default":"B"}`, "enum default"},
		{"dup-name", `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"fixed","name":"F","size":1}},{"name":"b","type":{"type":"fixed","name":"F","size":1}}]}`, "defined twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSchema([]byte(tc.schema))
			var se *SchemaError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a SchemaError saying %q", err, tc.want)
			}
		})
	}
}

func TestLogicalTypes(t *testing.T) {
	typ, err := ParseSchema([]byte(everySchema))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range typ.Fields {
		if f.Type.Logical != engine.NoLogical {
			got[f.Name] = f.Type.Logical.String()
		}
	}
	want := map[string]string{"dec": "decimal", "dur": "duration", "ts": "timestamp-millis", "lts": "local-timestamp-micros", "dt": "date"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// An invalid logical type is ignored, the base type kept.
	bad, err := ParseSchema([]byte(`{"type":"string","logicalType":"timestamp-millis"}`))
	if err != nil || bad.Logical != engine.NoLogical || bad.Kind != engine.KindString {
		t.Errorf("invalid logical type: %+v, %v", bad, err)
	}
}

// TestDecodeAllocs checks the steady state allocates nothing, in every mode.
func TestDecodeAllocs(t *testing.T) {
	raw, v1 := readSchema(t, "traffic.avsc")
	_, v2 := readSchema(t, "traffic_v2.avsc")
	srv, _ := fakeRegistry(t, map[int]string{1: string(raw)})
	reg, err := NewDecoder(v2, ModeRegistry, WithRegistryURL(srv.URL, srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	own, err := NewDecoder(v1, ModeReader)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := NewDecoder(v2, ModeHeader)
	if err != nil {
		t.Fatal(err)
	}
	if err := hdr.Register(v1); err != nil {
		t.Fatal(err)
	}
	fp := binary.LittleEndian.AppendUint64(nil, wire.Fingerprint(v1))
	g := gen.New(12)
	body := g.AppendAvro(nil)
	for _, tc := range []struct {
		name string
		d    *Decoder
		rec  *engine.Record
	}{
		{"reader", own, &engine.Record{Value: body}},
		{"registry-evolved", reg, &engine.Record{Value: framed(1, body)}},
		{"header-json", hdr, &engine.Record{Value: body, Headers: []engine.Header{{Key: HeaderKey, Value: raw}}}},
		{"header-fingerprint", hdr, &engine.Record{Value: body, Headers: []engine.Header{{Key: HeaderKey, Value: fp}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := engine.NewRow(tc.d.Schema().Width())
			if err := tc.d.Decode(tc.rec, row); err != nil {
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(100, func() {
				row.Reset(tc.d.Schema().Width())
				if err := tc.d.Decode(tc.rec, row); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per record, want 0", allocs)
			}
		})
	}
}

// schemaJSON is the full schema text of t, as engine/avro writes it.
func schemaJSON(t *engine.Type) []byte {
	b, err := wire.Schema(t)
	if err != nil {
		panic(err)
	}
	return b
}
