package encode

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/linkedin/goavro/v2"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/avro"
)

func loadSchema(t testing.TB, file string) *engine.Schema {
	t.Helper()
	js, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	s, err := engine.NewSchema(parseSchema(t, string(js)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var schemaFiles = []string{"traffic.avsc", "allkinds.avsc"}

// floatEq compares floats bit-exactly except that all NaNs are equal.
var floatEq = cmpopts.EquateNaNs()

// TestAvroRoundTrip encodes random rows with Avro and decodes them with
// goavro, using the schema engine/avro wrote.
func TestAvroRoundTrip(t *testing.T) {
	for _, file := range schemaFiles {
		t.Run(file, func(t *testing.T) {
			s := loadSchema(t, file)
			js, err := avro.Schema(s.Root)
			if err != nil {
				t.Fatal(err)
			}
			codec, err := goavro.NewCodec(string(js))
			if err != nil {
				t.Fatalf("goavro rejects the schema: %v\n%s", err, js)
			}
			enc, _ := NewAvro(s)
			g := &gen{r: rand.New(rand.NewPCG(1, 2))}
			row := &engine.Row{}
			var buf []byte
			for n := 0; n < 500; n++ {
				want := g.row(s, row)
				if buf, err = enc.Append(buf[:0], row); err != nil {
					t.Fatalf("row %d: %v", n, err)
				}
				native, rest, err := codec.NativeFromBinary(buf)
				if err != nil || len(rest) != 0 {
					t.Fatalf("row %d: goavro: %v (%d bytes left)", n, err, len(rest))
				}
				got := normGoavro(t, s.Root, native)
				if diff := cmp.Diff(any(want), got, floatEq); diff != "" {
					t.Fatalf("row %d (-want +got):\n%s", n, diff)
				}
			}
		})
	}
}

// TestJSONRoundTrip encodes random rows as JSON and decodes them with encoding/json.
func TestJSONRoundTrip(t *testing.T) {
	for _, file := range schemaFiles {
		t.Run(file, func(t *testing.T) {
			s := loadSchema(t, file)
			enc, _ := NewJSON(s)
			g := &gen{r: rand.New(rand.NewPCG(3, 4))}
			row := &engine.Row{}
			var buf []byte
			var err error
			for n := 0; n < 500; n++ {
				want := g.row(s, row)
				if buf, err = enc.Append(buf[:0], row); err != nil {
					t.Fatalf("row %d: %v", n, err)
				}
				d := json.NewDecoder(bytes.NewReader(buf))
				d.UseNumber()
				var v any
				if err := d.Decode(&v); err != nil {
					t.Fatalf("row %d: %v\n%s", n, err, buf)
				}
				got := normJSON(t, s.Root, v)
				if diff := cmp.Diff(any(want), got, floatEq); diff != "" {
					t.Fatalf("row %d (-want +got):\n%s\n%s", n, diff, buf)
				}
			}
		})
	}
}

// TestCSVRoundTrip encodes random rows as CSV and reads them with encoding/csv.
func TestCSVRoundTrip(t *testing.T) {
	for _, file := range schemaFiles {
		t.Run(file, func(t *testing.T) {
			s := loadSchema(t, file)
			enc, _ := NewCSV(s)
			g := &gen{r: rand.New(rand.NewPCG(5, 6))}
			row := &engine.Row{}
			buf := enc.Header(nil)
			var wants []map[string]any
			var err error
			for n := 0; n < 300; n++ {
				wants = append(wants, g.row(s, row))
				if buf, err = enc.Append(buf, row); err != nil {
					t.Fatalf("row %d: %v", n, err)
				}
			}
			r := csv.NewReader(bytes.NewReader(buf))
			recs, err := r.ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(wants)+1 {
				t.Fatalf("got %d records, want %d", len(recs), len(wants)+1)
			}
			header := recs[0]
			for n, want := range wants {
				got := map[string]any{}
				for k, c := range enc.cols {
					got[header[k]] = normCSV(t, c.n.t, recs[n+1][k])
				}
				flat := map[string]any{}
				flattenPlain(s.Root, want, "", flat)
				if diff := cmp.Diff(flat, got, floatEq); diff != "" {
					t.Fatalf("row %d (-want +got):\n%s", n, diff)
				}
			}
		})
	}
}

// flattenPlain flattens nested records of a plain value into dotted columns,
// the way CSV columns are; values that CSV cannot tell from null collapse.
func flattenPlain(t *engine.Type, v any, prefix string, out map[string]any) {
	m, _ := v.(map[string]any)
	for _, f := range t.Fields {
		ft := f.Type
		if in, ok := ft.Nullable(); ok {
			ft = in
		}
		var fv any
		if m != nil {
			fv = m[f.Name]
		}
		if ft.Kind == engine.KindRecord {
			flattenPlain(ft, fv, prefix+f.Name+".", out)
			continue
		}
		if s, ok := fv.(string); ok && s == "" {
			fv = nil
		}
		out[prefix+f.Name] = fv
	}
}

func normCSV(t *testing.T, typ *engine.Type, cell string) any {
	t.Helper()
	if cell == "" {
		return nil
	}
	if in, ok := typ.Nullable(); ok {
		typ = in
	}
	switch typ.Kind {
	case engine.KindUnion, engine.KindArray, engine.KindMap, engine.KindRecord:
		if typ.Kind == engine.KindUnion {
			// a scalar branch is written as text: try each branch's form
			var v any
			d := json.NewDecoder(bytes.NewReader([]byte(cell)))
			d.UseNumber()
			if err := d.Decode(&v); err == nil {
				if _, isObj := v.(map[string]any); isObj {
					return normJSONUnion(t, typ, v)
				}
				if _, isArr := v.([]any); isArr {
					return normJSONUnion(t, typ, v)
				}
			}
			return csvScalarUnion(t, typ, cell)
		}
		var v any
		d := json.NewDecoder(bytes.NewReader([]byte(cell)))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			t.Fatalf("cell %q: %v", cell, err)
		}
		return normJSON(t, typ, v)
	case engine.KindString, engine.KindEnum:
		return cell
	}
	// everything else is written like JSON's scalar, unquoted
	switch typ.Kind {
	case engine.KindBool, engine.KindInt, engine.KindLong, engine.KindFloat, engine.KindDouble:
		if isTime(typ.Logical) {
			return normJSON(t, typ, cell)
		}
		return normJSON(t, typ, json.Number(cell))
	}
	return normJSON(t, typ, cell)
}

// csvScalarUnion finds the branch a scalar cell was written from.
func csvScalarUnion(t *testing.T, typ *engine.Type, cell string) any {
	has := func(k engine.Kind) *engine.Type {
		for _, b := range typ.Branches {
			if b.Kind == k {
				return b
			}
		}
		return nil
	}
	if b := has(engine.KindBool); b != nil && (cell == "true" || cell == "false") {
		return cell == "true"
	}
	if b := has(engine.KindLong); b != nil {
		if _, err := strconv.ParseInt(cell, 10, 64); err == nil {
			return normJSON(t, b, json.Number(cell))
		}
	}
	if b := has(engine.KindDouble); b != nil {
		if _, err := strconv.ParseFloat(cell, 64); err == nil {
			return normJSON(t, b, json.Number(cell))
		}
	}
	if has(engine.KindString) != nil {
		return cell
	}
	if b := has(engine.KindFixed); b != nil {
		return normJSON(t, b, cell)
	}
	t.Fatalf("no branch for cell %q", cell)
	return nil
}

// normJSONUnion decodes a complex union branch from JSON by trying branches.
func normJSONUnion(t *testing.T, typ *engine.Type, v any) any {
	for _, b := range typ.Branches {
		switch v.(type) {
		case map[string]any:
			if b.Kind == engine.KindRecord {
				return normJSON(t, b, v)
			}
		case []any:
			if b.Kind == engine.KindArray {
				return normJSON(t, b, v)
			}
		}
	}
	t.Fatalf("no branch for %v", v)
	return nil
}

func normJSON(t *testing.T, typ *engine.Type, v any) any {
	t.Helper()
	if v == nil {
		return nil
	}
	switch typ.Kind {
	case engine.KindBool:
		if s, ok := v.(json.Number); ok {
			return s == "true"
		}
		if s, ok := v.(string); ok {
			return s == "true"
		}
		return v
	case engine.KindInt, engine.KindLong:
		if isTime(typ.Logical) {
			return parseTime(t, typ.Logical, v.(string))
		}
		n, err := strconv.ParseInt(string(v.(json.Number)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	case engine.KindFloat, engine.KindDouble:
		var s string
		switch x := v.(type) {
		case json.Number:
			s = string(x)
		case string:
			s = x
		}
		bits := 64
		if typ.Kind == engine.KindFloat {
			bits = 32
		}
		f, err := strconv.ParseFloat(s, bits)
		if err != nil {
			t.Fatal(err)
		}
		return f
	case engine.KindBytes, engine.KindFixed:
		if typ.Logical == engine.Decimal {
			return v
		}
		b, err := base64.StdEncoding.DecodeString(v.(string))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	case engine.KindRecord:
		m := map[string]any{}
		for _, f := range typ.Fields {
			m[f.Name] = normJSON(t, f.Type, v.(map[string]any)[f.Name])
		}
		return m
	case engine.KindArray:
		a := []any{}
		for _, x := range v.([]any) {
			a = append(a, normJSON(t, typ.Items, x))
		}
		return a
	case engine.KindMap:
		m := map[string]any{}
		for k, x := range v.(map[string]any) {
			m[k] = normJSON(t, typ.Items, x)
		}
		return m
	case engine.KindUnion:
		if in, ok := typ.Nullable(); ok {
			return normJSON(t, in, v)
		}
		// the branch is not written: find the one the value fits
		for _, b := range typ.Branches {
			switch v.(type) {
			case map[string]any:
				if b.Kind == engine.KindRecord {
					return normJSON(t, b, v)
				}
			case []any:
				if b.Kind == engine.KindArray {
					return normJSON(t, b, v)
				}
			case bool:
				if b.Kind == engine.KindBool {
					return v
				}
			case json.Number:
				if b.Kind == engine.KindLong || b.Kind == engine.KindInt || b.Kind == engine.KindDouble {
					return normJSON(t, b, v)
				}
			case string:
				if b.Kind == engine.KindString || b.Kind == engine.KindFixed {
					return normJSON(t, b, v)
				}
			}
		}
		t.Fatalf("no branch of %v fits %v", typ.Branches, v)
	}
	return v
}

func parseTime(t *testing.T, l engine.Logical, s string) int64 {
	t.Helper()
	layout := map[engine.Logical]string{engine.Date: "2006-01-02", engine.TimeMillis: "15:04:05.000000", engine.TimeMicros: "15:04:05.000000",
		engine.TimestampMillis: time.RFC3339Nano, engine.TimestampMicros: time.RFC3339Nano,
		engine.LocalTimestampMillis: "2006-01-02T15:04:05.000000", engine.LocalTimestampMicros: "2006-01-02T15:04:05.000000"}[l]
	tm, err := time.Parse(layout, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	switch l {
	case engine.Date:
		return tm.Unix() / 86400
	case engine.TimeMillis, engine.TimeMicros:
		d := tm.Sub(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC))
		return d.Microseconds() / l.MicrosPerUnit()
	}
	return tm.UnixMicro() / l.MicrosPerUnit()
}

// goavroName is the key goavro uses for a union branch of type b.
func goavroName(b *engine.Type) string {
	if b.Name != "" {
		return b.Name
	}
	if b.Logical != engine.NoLogical {
		return b.Kind.String() + "." + b.Logical.String()
	}
	return b.Kind.String()
}

func normGoavro(t testing.TB, typ *engine.Type, v any) any {
	t.Helper()
	if v == nil {
		return nil
	}
	switch typ.Kind {
	case engine.KindInt, engine.KindLong:
		switch x := v.(type) {
		case int32:
			return int64(x)
		case int64:
			return x
		case time.Time:
			switch typ.Logical {
			case engine.Date:
				return x.Unix() / 86400
			case engine.TimestampMillis:
				return x.UnixMilli()
			}
			return x.UnixMicro()
		case time.Duration:
			if typ.Logical == engine.TimeMillis {
				return x.Milliseconds()
			}
			return x.Microseconds()
		}
	case engine.KindFloat:
		return float64(v.(float32))
	case engine.KindBytes, engine.KindFixed:
		if r, ok := v.(*big.Rat); ok {
			return r.FloatString(typ.Scale)
		}
		return string(v.([]byte))
	case engine.KindRecord:
		m := map[string]any{}
		for _, f := range typ.Fields {
			m[f.Name] = normGoavro(t, f.Type, v.(map[string]any)[f.Name])
		}
		return m
	case engine.KindArray:
		a := []any{}
		for _, x := range v.([]any) {
			a = append(a, normGoavro(t, typ.Items, x))
		}
		return a
	case engine.KindMap:
		m := map[string]any{}
		for k, x := range v.(map[string]any) {
			m[k] = normGoavro(t, typ.Items, x)
		}
		return m
	case engine.KindUnion:
		for k, x := range v.(map[string]any) {
			for _, b := range typ.Branches {
				if goavroName(b) == k {
					return normGoavro(t, b, x)
				}
			}
			t.Fatalf("goavro union branch %q not in %s", k, fmt.Sprint(typ.Branches))
		}
	}
	return v
}

func TestFloatText(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		bits int
		want string
	}{
		{1, 64, "1"}, {0.1, 64, "0.1"}, {1e21, 64, "1e+21"}, {1e-7, 64, "1e-7"}, {float64(float32(0.1)), 32, "0.1"},
		{math.NaN(), 64, "NaN"}, {math.Inf(-1), 64, "-Infinity"}, {-0.5, 64, "-0.5"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			got, _ := appendFloat(nil, tc.f, tc.bits)
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
