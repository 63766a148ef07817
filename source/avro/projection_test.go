package avro

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	"github.com/sluicehq/sluice/bench/gen"
	"github.com/sluicehq/sluice/engine"
)

// sameColumns fails unless full and projected rows hold the same value in
// every column at paths, compared by their Avro encoding (which does not
// depend on where arrays and maps landed in Row.Ext).
func sameColumns(t testing.TB, s *engine.Schema, paths []string, full, proj *engine.Row) {
	t.Helper()
	for _, path := range paths {
		c, ok := s.Lookup(path)
		if !ok {
			t.Fatalf("no column %s", path)
		}
		for _, p := range c.Parents {
			if full.Slots[p].Null != proj.Slots[p].Null {
				t.Fatalf("column %s: parent slot %d null %v, projected %v", path, p, full.Slots[p].Null, proj.Slots[p].Null)
			}
		}
		want := encodeValue(nil, c.Type, full, full.Slots, c.Slot)
		got := encodeValue(nil, c.Type, proj, proj.Slots, c.Slot)
		if !bytes.Equal(want, got) {
			t.Fatalf("column %s: projected %x, full %x", path, got, want)
		}
	}
}

// pickPaths draws a random subset of a schema's column paths.
func pickPaths(r *rand.Rand, s *engine.Schema) []string {
	var out []string
	for _, p := range s.Paths() {
		if r.Intn(3) == 0 {
			out = append(out, p)
		}
	}
	return out
}

// poison fills every slot of row with garbage and gives it Ext elements: a
// projected program is handed the previous record's row without Reset, and
// must clear whatever it writes.
func poison(row *engine.Row) {
	for i := range row.Slots {
		row.Slots[i] = engine.Slot{N: 0xdead, S: "poison", L: 7, Null: i%2 == 0}
	}
	row.Ext = append(row.Ext[:0], engine.Slot{N: 1, S: "ext"})
}

// TestProjectedDecoding decodes the same bytes with a full program and with
// programs projected on random column subsets: both accept the same records,
// consume the same bytes, and agree on every projected column, though the
// projected row is never Reset (every slot starts as garbage).
func TestProjectedDecoding(t *testing.T) {
	check := func(t *testing.T, r *rand.Rand, w, rd *engine.Type, data [][]byte) {
		t.Helper()
		full := mustCompile(t, w, rd)
		s := engine.MustSchema(rd)
		for k := 0; k < 6; k++ {
			paths := pickPaths(r, s)
			if k == 0 {
				paths = nil // nothing decoded, the record still walked
			}
			proj, err := Compile(w, rd, WithProjection(paths...))
			if err != nil {
				t.Fatal(err)
			}
			fr, pr := engine.NewRow(full.Width()), engine.NewRow(proj.Width())
			for _, d := range data {
				fr.Reset(full.Width())
				poison(pr)
				ferr, perr := full.Decode(d, fr), proj.Decode(d, pr)
				if ferr != nil {
					t.Fatalf("full decode: %v", ferr)
				}
				if perr != nil {
					t.Fatalf("projected on %v: %v", paths, perr)
				}
				sameColumns(t, s, paths, fr, pr)
			}
		}
	}
	t.Run("traffic", func(t *testing.T) {
		_, typ := readSchema(t, "traffic.avsc")
		g := gen.New(3)
		var data [][]byte
		for i := 0; i < 300; i++ {
			data = append(data, g.AppendAvro(nil))
		}
		check(t, rand.New(rand.NewSource(1)), typ, typ, data)
		t.Run("v1-as-v2", func(t *testing.T) {
			_, v2 := readSchema(t, "traffic_v2.avsc")
			check(t, rand.New(rand.NewSource(2)), typ, v2, data)
		})
	})
	for seed := int64(1); seed <= 100; seed++ {
		t.Run(fmt.Sprintf("random-%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewSource(seed))
			rg := &randSchema{r: r}
			typ, err := ParseSchema([]byte(rg.record(0)))
			if err != nil {
				t.Fatal(err)
			}
			var data [][]byte
			for i := 0; i < 30; i++ {
				data = append(data, randValue(r, typ, nil))
			}
			check(t, r, typ, typ, data)
			// Evolved: the writer fields the reader dropped are skipped
			// by every program, the fields it added come from defaults.
			rtext := schemaJSON(evolve(r, typ, map[*engine.Type]*engine.Type{}))
			rd, err := ParseSchema(rtext)
			if err != nil {
				t.Fatalf("reader %s: %v", rtext, err)
			}
			check(t, r, typ, rd, data)
		})
	}
}

// TestProjectedTruncation: a projection skips values but never reads past
// the end of its input. A record cut before the end of its last projected
// field is an error; one cut after it decodes the same projected columns
// (the rest is not read), and DecodePrefix still needs the whole record.
func TestProjectedTruncation(t *testing.T) {
	_, typ := readSchema(t, "traffic.avsc")
	s := engine.MustSchema(typ)
	data := gen.New(4).AppendAvro(nil)
	for _, paths := range [][]string{{"src_ip"}, {"src_location.country", "action"}, {"labels"}, {"payload_hash"}} {
		p, err := Compile(typ, typ, WithProjection(paths...))
		if err != nil {
			t.Fatal(err)
		}
		full := mustCompile(t, typ, typ)
		want := engine.NewRow(full.Width())
		if err := full.Decode(data, want); err != nil {
			t.Fatal(err)
		}
		row := engine.NewRow(p.Width())
		decoded := false
		for n := 0; n <= len(data); n++ {
			row.Reset(p.Width())
			err := p.Decode(data[:n], row)
			if decoded && err != nil {
				t.Fatalf("%v: cut to %d bytes fails (%v) after a shorter cut decoded", paths, n, err)
			}
			if err == nil {
				decoded = true
				sameColumns(t, s, paths, want, row)
			}
			if n < len(data) {
				row.Reset(p.Width())
				if _, err := p.DecodePrefix(data[:n], row); err == nil {
					t.Fatalf("%v: DecodePrefix of a record cut to %d of %d bytes succeeded", paths, n, len(data))
				}
			}
		}
		if !decoded {
			t.Fatalf("%v: the whole record did not decode", paths)
		}
	}
}

// TestProjectedAllocs: projected decoding allocates nothing.
func TestProjectedAllocs(t *testing.T) {
	_, typ := readSchema(t, "traffic.avsc")
	data := gen.New(5).AppendAvro(nil)
	p, err := Compile(typ, typ, WithProjection("time_generated", "src_ip", "dst_ip", "dst_port", "app", "action", "src_location.country", "bytes_sent", "bytes_received"))
	if err != nil {
		t.Fatal(err)
	}
	row := engine.NewRow(p.Width())
	if n := testing.AllocsPerRun(100, func() {
		if err := p.Decode(data, row); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per projected decode", n)
	}
}

// TestDecoderProject: a Decoder projected after it was built (as the runtime
// does) decodes the projected columns of every writer schema it knows as the
// full decoder does, in each mode.
func TestDecoderProject(t *testing.T) {
	_, v1 := readSchema(t, "traffic.avsc")
	_, v2 := readSchema(t, "traffic_v2.avsc")
	paths := []string{"action", "src_location.country", "bytes_sent", "time_generated"}
	g := gen.New(9)
	for _, tc := range []struct {
		name         string
		writer, read *engine.Type
		opts         []Option
	}{
		{"reader", v1, v1, nil},
		{"fixed-writer", v1, v2, []Option{WithWriterSchema(v1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			full, err := NewDecoder(tc.read, ModeReader, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			proj, err := NewDecoder(tc.read, ModeReader, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if full.PreparesRows() {
				t.Fatal("a decoder that is not projected says it prepares its rows")
			}
			if err := proj.Project(paths); err != nil {
				t.Fatal(err)
			}
			s := proj.Schema()
			fr, pr := engine.NewRow(s.Width()), engine.NewRow(s.Width())
			for i := 0; i < 200; i++ {
				rec := &engine.Record{Value: g.AppendAvro(nil)}
				fr.Reset(s.Width())
				if !proj.PreparesRows() {
					t.Fatal("a projected decoder does not prepare its rows")
				}
				poison(pr)
				if err := full.Decode(rec, fr); err != nil {
					t.Fatal(err)
				}
				if err := proj.Decode(rec, pr); err != nil {
					t.Fatal(err)
				}
				sameColumns(t, s, paths, fr, pr)
			}
		})
	}
}

// TestSkipPlan: a compiled skip plan reads past exactly the bytes the
// reference walk over the type (Skip) does, and fails where it fails, on
// valid values of random schemas (nested records, arrays, maps, unions,
// bytes, fixeds, enums) and on the same values truncated or with a byte
// changed.
func TestSkipPlan(t *testing.T) {
	for seed := int64(1); seed <= 150; seed++ {
		r := rand.New(rand.NewSource(seed))
		typ, err := ParseSchema([]byte((&randSchema{r: r}).record(0)))
		if err != nil {
			t.Fatal(err)
		}
		plan := appendSkipPlan(nil, typ, "")
		for i := 0; i < 30; i++ {
			data := randValue(r, typ, nil)
			for k := 0; k < 24; k++ {
				in := data
				switch {
				case k == 1 && len(data) > 0:
					in = data[:r.Intn(len(data))]
				case k > 1 && len(data) > 0:
					in = bytes.Clone(data)
					if k%2 == 0 {
						in[r.Intn(len(in))] = byte(r.Intn(256))
					} else {
						in[r.Intn(len(in))] = byte(r.Intn(8)) // a small length, count or index
					}
				}
				want, werr := Skip(typ, in)
				got, gerr := skipPlan(in, 0, plan)
				if (werr == nil) != (gerr == nil) || werr == nil && got != want {
					t.Fatalf("seed %d value %d variant %d: plan skipped %d (%v), reference %d (%v)", seed, i, k, got, gerr, want, werr)
				}
			}
		}
	}
}
