package avro

import (
	"bytes"
	"errors"
	"math"
	"math/rand"
	"testing"

	"github.com/sluicehq/sluice/bench/gen"
	"github.com/sluicehq/sluice/engine"
	wire "github.com/sluicehq/sluice/engine/avro"
)

func newRowFor(p *Program) *engine.Row { return engine.NewRow(p.Width()) }

// FuzzAvroDecode feeds arbitrary bytes to programs compiled for traffic.avsc
// (and its evolution) and for a schema of every type: decoding must never
// panic, must return an *engine.DecodeError on failure, and what it accepts
// must survive a re-encoding (rows → binary → rows).
func FuzzAvroDecode(f *testing.F) {
	_, v1 := readSchema(f, "traffic.avsc")
	_, v2 := readSchema(f, "traffic_v2.avsc")
	every, err := ParseSchema([]byte(everySchema))
	if err != nil {
		f.Fatal(err)
	}
	g := gen.New(7)
	for i := 0; i < 4; i++ {
		f.Add(uint8(0), g.AppendAvro(nil))
		f.Add(uint8(1), g.AppendAvro(nil))
	}
	f.Add(uint8(2), []byte{0x02, 0x00, 0x01, 0x02, 0x03})
	f.Add(uint8(2), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	progs := []*Program{mustCompile(f, v1, v1), mustCompile(f, v1, v2), mustCompile(f, every, every)}
	// Each program projected on a fixed subset of its columns: it must
	// accept what the full program accepts and agree on those columns.
	r := rand.New(rand.NewSource(11))
	var projs []*Program
	var projPaths [][]string
	for _, p := range progs {
		paths := pickPaths(r, engine.MustSchema(p.Reader()))
		q, err := Compile(p.Writer(), p.Reader(), WithProjection(paths...))
		if err != nil {
			f.Fatal(err)
		}
		projs, projPaths = append(projs, q), append(projPaths, paths)
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		k := int(which) % len(progs)
		p := progs[k]
		row := engine.NewRow(p.Width())
		err := p.Decode(data, row)
		prow := engine.NewRow(p.Width())
		perr := projs[k].Decode(data, prow)
		if perr != nil {
			var de *engine.DecodeError
			if !errors.As(perr, &de) {
				t.Fatalf("projected error %v is not a DecodeError", perr)
			}
		}
		if err != nil {
			var de *engine.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a DecodeError", err)
			}
			return
		}
		if perr != nil {
			t.Fatalf("the full program accepts what the projected one rejects: %v", perr)
		}
		sameColumns(t, engine.MustSchema(p.Reader()), projPaths[k], row, prow)
		enc := encodeRow(p.Reader(), row)
		q := mustCompile(t, p.Reader(), p.Reader())
		row2 := engine.NewRow(q.Width())
		if err := q.Decode(enc, row2); err != nil {
			t.Fatalf("re-encoded row does not decode: %v", err)
		}
		if enc2 := encodeRow(q.Reader(), row2); !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip differs:\n%x\n%x", enc, enc2)
		}
	})
}

func mustCompile(t testing.TB, w, r *engine.Type) *Program {
	t.Helper()
	p, err := Compile(w, r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const everySchema = `{"type":"record","name":"Every","namespace":"t","fields":[
 {"name":"n","type":"null"},{"name":"b","type":"boolean"},{"name":"i","type":"int"},{"name":"l","type":"long"},
 {"name":"f","type":"float"},{"name":"d","type":"double"},{"name":"by","type":"bytes"},{"name":"s","type":"string"},
 {"name":"fx","type":{"type":"fixed","name":"F4","size":4}},{"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"]}},
 {"name":"r","type":["null",{"type":"record","name":"In","fields":[{"name":"a","type":{"type":"array","items":{"type":"map","values":"int"}}}]}]},
 {"name":"u","type":["int","string","null","In"]},
 {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
 {"name":"dur","type":{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}},
 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"lts","type":{"type":"long","logicalType":"local-timestamp-micros"}},
 {"name":"dt","type":{"type":"int","logicalType":"date"}},
 {"name":"arr","type":{"type":"array","items":{"type":"array","items":"string"}}}]}`

// encodeRow writes a row back as Avro binary, positive block counts only.
func encodeRow(t *engine.Type, row *engine.Row) []byte {
	var out []byte
	for _, f := range t.Fields {
		out = encodeValue(out, f.Type, row, row.Slots, f.Slot-1)
	}
	return out
}

func encodeValue(dst []byte, t *engine.Type, row *engine.Row, area []engine.Slot, i int) []byte {
	s := area[i]
	switch t.Kind {
	case engine.KindNull:
		return dst
	case engine.KindBool:
		return append(dst, byte(s.N))
	case engine.KindInt, engine.KindLong, engine.KindEnum:
		return wire.AppendLong(dst, int64(s.N))
	case engine.KindFloat:
		return wire.AppendFloat(dst, float32(mathFloat(s.N)))
	case engine.KindDouble:
		return wire.AppendDouble(dst, mathFloat(s.N))
	case engine.KindBytes, engine.KindString:
		return wire.AppendString(dst, s.S)
	case engine.KindFixed:
		return append(dst, s.S...)
	case engine.KindRecord:
		for _, f := range t.Fields {
			dst = encodeValue(dst, f.Type, row, area, i+f.Slot)
		}
		return dst
	case engine.KindArray, engine.KindMap:
		w := t.Items.Width()
		if t.Kind == engine.KindMap {
			w++
		}
		if s.L > 0 {
			dst = wire.AppendLong(dst, int64(s.L))
			for k := 0; k < int(s.L); k++ {
				e := int(s.N) + k*w
				if t.Kind == engine.KindMap {
					dst = wire.AppendString(dst, row.Ext[e].S)
					e++
				}
				dst = encodeValue(dst, t.Items, row, row.Ext, e)
			}
		}
		return append(dst, 0)
	case engine.KindUnion:
		if inner, ok := t.Nullable(); ok {
			ni := t.NullIndex()
			if s.Null {
				return wire.AppendLong(dst, int64(ni))
			}
			return encodeValue(wire.AppendLong(dst, int64(1-ni)), inner, row, area, i)
		}
		b := int(s.N)
		dst = wire.AppendLong(dst, int64(b))
		if t.Branches[b].Kind == engine.KindNull {
			return dst
		}
		return encodeValue(dst, t.Branches[b], row, area, i+t.BranchSlot(b))
	}
	return dst
}

// runsSchema puts side by side the values the skip plan merges into one
// instruction or reads a word at a time: runs of varints (of one to ten
// bytes), strings mixed with unions of null and a string in either branch
// order, nullable varints and fixed-size values, and a nested record whose
// fields join the runs around it.
const runsSchema = `{"type":"record","name":"Runs","namespace":"t","fields":[
 {"name":"a","type":"long"},{"name":"b","type":"int"},{"name":"c","type":"long"},
 {"name":"s","type":"string"},{"name":"o1","type":["null","string"]},{"name":"o2","type":["null","string"]},
 {"name":"t","type":"bytes"},{"name":"o3","type":["string","null"]},{"name":"o4","type":["null","string"]},
 {"name":"in","type":{"type":"record","name":"In","fields":[{"name":"x","type":"long"},{"name":"y","type":"string"},{"name":"z","type":["null","string"]}]}},
 {"name":"ol","type":["null","long"]},{"name":"od","type":["double","null"]},{"name":"e","type":{"type":"enum","name":"E","symbols":["P","Q","R"]}},
 {"name":"d","type":"long"},{"name":"f","type":"boolean"},{"name":"u","type":"string"}]}`

// FuzzSkipPlan: on any input, a compiled skip plan (its fast paths reading
// words and runs up to the end of the input) reads past exactly the bytes
// the reference walk (Skip) does and fails where it fails, with a
// DecodeError; and a program projected on a few columns of runsSchema
// accepts what the full program accepts and agrees with it on them.
func FuzzSkipPlan(f *testing.F) {
	_, traffic := readSchema(f, "traffic.avsc")
	every, err := ParseSchema([]byte(everySchema))
	if err != nil {
		f.Fatal(err)
	}
	runs, err := ParseSchema([]byte(runsSchema))
	if err != nil {
		f.Fatal(err)
	}
	types := []*engine.Type{runs, traffic, every}
	r := rand.New(rand.NewSource(5))
	for k, typ := range types {
		for i := 0; i < 4; i++ {
			f.Add(uint8(k), randValue(r, typ, nil))
		}
	}
	// Varints of nine and ten bytes and one over ten, at the end of the input.
	long := func(vs ...int64) []byte {
		var b []byte
		for _, v := range vs {
			b = wire.AppendLong(b, v)
		}
		return b
	}
	f.Add(uint8(0), long(math.MaxInt64, math.MinInt64, 1<<56))
	f.Add(uint8(0), long(1<<55, -1<<55, 0))
	f.Add(uint8(0), append(long(1, 2), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01))
	plans := make([][]skipOp, len(types))
	for k, typ := range types {
		plans[k] = appendSkipPlan(nil, typ, "")
	}
	paths := []string{"b", "o2", "in.y", "e"}
	full := mustCompile(f, runs, runs)
	proj, err := Compile(runs, runs, WithProjection(paths...))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		k := int(which) % len(types)
		want, werr := Skip(types[k], data)
		got, gerr := skipPlan(data, 0, plans[k])
		if (werr == nil) != (gerr == nil) || werr == nil && got != want {
			t.Fatalf("plan skipped %d (%v), reference %d (%v)", got, gerr, want, werr)
		}
		var de *engine.DecodeError
		if gerr != nil && !errors.As(gerr, &de) {
			t.Fatalf("plan error %v is not a DecodeError", gerr)
		}
		if k != 0 {
			return
		}
		fr, pr := engine.NewRow(full.Width()), engine.NewRow(proj.Width())
		poison(pr)
		ferr, perr := full.Decode(data, fr), proj.Decode(data, pr)
		if perr != nil && !errors.As(perr, &de) {
			t.Fatalf("projected error %v is not a DecodeError", perr)
		}
		if ferr == nil {
			if perr != nil {
				t.Fatalf("the full program accepts what the projected one rejects: %v", perr)
			}
			sameColumns(t, engine.MustSchema(runs), paths, fr, pr)
		}
	})
}
