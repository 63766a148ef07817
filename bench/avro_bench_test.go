package bench

import (
	"os"
	"path/filepath"
	"testing"

	havro "github.com/hamba/avro/v2"
	"github.com/linkedin/goavro/v2"
	"github.com/sluicehq/sluice/bench/gen"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/source/avro"
)

// benchRecords is the number of distinct pre-generated records a decode
// benchmark cycles through: enough to defeat a warm branch predictor on one
// record, few enough to stay in cache like a fetched batch.
const benchRecords = 4096

type trafficSet struct {
	schema []byte
	recs   [][]byte
	bytes  []int64 // bytes_total of each record, to check the decoders' output
	// sentReceived is bytes_sent + bytes_received of each record.
	sentReceived []int64
	size         int
}

func loadTraffic(b *testing.B) *trafficSet {
	b.Helper()
	schema, err := os.ReadFile(filepath.Join("..", "testdata", "schemas", "traffic.avsc"))
	if err != nil {
		b.Fatal(err)
	}
	s := &trafficSet{schema: schema}
	g := gen.New(42)
	for i := 0; i < benchRecords; i++ {
		rec := g.Next()
		data := rec.AppendAvro(nil)
		s.recs = append(s.recs, data)
		s.bytes = append(s.bytes, rec.BytesTotal)
		s.sentReceived = append(s.sentReceived, rec.BytesSent+rec.BytesReceived)
		s.size += len(data)
	}
	return s
}

// check fails the benchmark unless sum is the sum of bytes_total of the
// records decoded in n iterations.
func (s *trafficSet) check(b *testing.B, n int, sum int64) {
	var want int64
	for i := 0; i < n; i++ {
		want += s.bytes[i%len(s.recs)]
	}
	if sum != want {
		b.Fatalf("sum of bytes_total %d, want %d", sum, want)
	}
}

// filterColumns are the input columns of filterSQL and its event time: 9 of
// traffic.avsc's 60 slots.
var filterColumns = []string{"time_generated", "src_ip", "dst_ip", "dst_port", "app", "action",
	"src_location.country", "bytes_sent", "bytes_received"}

// checkSentReceived fails the benchmark unless sum is the sum of bytes_sent +
// bytes_received of the records decoded in n iterations.
func (s *trafficSet) checkSentReceived(b *testing.B, n int, sum int64) {
	var want int64
	for i := 0; i < n; i++ {
		want += s.sentReceived[i%len(s.recs)]
	}
	if sum != want {
		b.Fatalf("sum of bytes_sent+bytes_received %d, want %d", sum, want)
	}
}

// checkProjected fails the benchmark unless the projected program p decodes
// every record's projected columns as full decoding does, reusing one row
// without Reset as the benchmark does.
func (s *trafficSet) checkProjected(b *testing.B, typ *engine.Type, schema *engine.Schema, p *avro.Program) {
	b.Helper()
	full, err := avro.Compile(typ, typ)
	if err != nil {
		b.Fatal(err)
	}
	fr, pr := engine.NewRow(full.Width()), engine.NewRow(p.Width())
	for i, data := range s.recs {
		fr.Reset(full.Width())
		if err := full.Decode(data, fr); err != nil {
			b.Fatal(err)
		}
		if err := p.Decode(data, pr); err != nil {
			b.Fatal(err)
		}
		for _, path := range filterColumns {
			c, _ := schema.Lookup(path)
			for _, parent := range c.Parents {
				if fr.Slots[parent].Null != pr.Slots[parent].Null {
					b.Fatalf("record %d: %s: parent null %v, full decoding %v", i, path, pr.Slots[parent].Null, fr.Slots[parent].Null)
				}
			}
			if fr.Slots[c.Slot] != pr.Slots[c.Slot] {
				b.Fatalf("record %d: %s: projected %+v, full decoding %+v", i, path, pr.Slots[c.Slot], fr.Slots[c.Slot])
			}
		}
	}
}

func report(b *testing.B, s *trafficSet) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.SetBytes(int64(s.size / len(s.recs)))
}

func BenchmarkAvroDecode(b *testing.B) {
	s := loadTraffic(b)
	b.Run("direct", func(b *testing.B) {
		typ, err := avro.ParseSchema(s.schema)
		if err != nil {
			b.Fatal(err)
		}
		p, err := avro.Compile(typ, typ)
		if err != nil {
			b.Fatal(err)
		}
		schema := engine.MustSchema(typ)
		col, _ := schema.Lookup("bytes_total")
		row := engine.NewRow(p.Width())
		var sum int64
		b.ReportAllocs()
		b.ResetTimer()
		cpu := startCPU()
		for i := 0; i < b.N; i++ {
			row.Reset(p.Width())
			if err := p.Decode(s.recs[i%len(s.recs)], row); err != nil {
				b.Fatal(err)
			}
			sum += row.Int(col.Slot)
		}
		b.StopTimer()
		cpu.report(b, b.N)
		report(b, s)
		s.check(b, b.N, sum)
	})
	b.Run("projected_9_of_60", func(b *testing.B) {
		typ, err := avro.ParseSchema(s.schema)
		if err != nil {
			b.Fatal(err)
		}
		// The columns filter_to_jsonl's SQL and event time read.
		p, err := avro.Compile(typ, typ, avro.WithProjection(filterColumns...))
		if err != nil {
			b.Fatal(err)
		}
		schema := engine.MustSchema(typ)
		s.checkProjected(b, typ, schema, p)
		col, _ := schema.Lookup("bytes_sent")
		col2, _ := schema.Lookup("bytes_received")
		row := engine.NewRow(p.Width())
		var sum int64
		b.ReportAllocs()
		b.ResetTimer()
		cpu := startCPU()
		for i := 0; i < b.N; i++ {
			// As the runtime does: a projected program clears the slots
			// it writes, so the row is not Reset between records.
			if err := p.Decode(s.recs[i%len(s.recs)], row); err != nil {
				b.Fatal(err)
			}
			sum += row.Int(col.Slot) + row.Int(col2.Slot)
		}
		b.StopTimer()
		cpu.report(b, b.N)
		report(b, s)
		s.checkSentReceived(b, b.N, sum)
	})
	b.Run("goavro", func(b *testing.B) {
		codec, err := goavro.NewCodec(string(s.schema))
		if err != nil {
			b.Fatal(err)
		}
		var sum int64
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			v, _, err := codec.NativeFromBinary(s.recs[i%len(s.recs)])
			if err != nil {
				b.Fatal(err)
			}
			sum += v.(map[string]any)["bytes_total"].(int64)
		}
		b.StopTimer()
		report(b, s)
		s.check(b, b.N, sum)
	})
	b.Run("hamba", func(b *testing.B) {
		schema, err := havro.ParseBytesWithCache(s.schema, "", &havro.SchemaCache{})
		if err != nil {
			b.Fatal(err)
		}
		api := havro.Config{}.Freeze()
		var rec gen.Record
		var sum int64
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := api.Unmarshal(schema, s.recs[i%len(s.recs)], &rec); err != nil {
				b.Fatal(err)
			}
			sum += rec.BytesTotal
		}
		b.StopTimer()
		report(b, s)
		s.check(b, b.N, sum)
	})
}
