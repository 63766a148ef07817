package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/encode"
	filesink "github.com/sluicehq/sluice/sink/file"
	"github.com/sluicehq/sluice/source/avro"
	"github.com/sluicehq/sluice/source/kafka"
	"github.com/sluicehq/sluice/sql"
)

// BenchmarkStage measures each stage of filter_to_jsonl alone, on the same
// seeded traffic, per input record, so that the stages' CPU per record adds
// up to BenchmarkEndToEnd/filter_to_jsonl/broker=canned's less what the
// engine itself (task routing, bundles, checkpoints) costs:
//
//	fetch   the kafka source (franz-go group consumer → engine.Record
//	        batches) into a handler that only counts, from the log broker
//	decode  avro.Decoder.Decode of each record into a row
//	sql     the compiled filter and projection on decoded rows
//	encode  the JSON encoding of the rows the filter keeps
//	sink    the file sink's Flush (write and fsync) of bundles of
//	        10,000 input records' worth of encoded rows
//
// Stages other than fetch cycle through stageRing (or fewer) distinct
// records, more than the caches hold.
func BenchmarkStage(b *testing.B) {
	b.Run("fetch", benchFetch)
	b.Run("decode", benchDecode)
	b.Run("sql", benchSQL)
	b.Run("encode", benchEncode)
	b.Run("sink", benchSink)
}

// countHandler is an engine.Handler that counts what it is delivered.
type countHandler struct{ n atomic.Int64 }

func (h *countHandler) Assign(context.Context, []engine.Assignment) {}
func (h *countHandler) Revoke(context.Context, []engine.TaskID)     {}
func (h *countHandler) End(engine.TaskID)                           {}
func (h *countHandler) Deliver(_ engine.TaskID, recs []engine.Record) {
	h.n.Add(int64(len(recs)))
}

func benchFetch(b *testing.B) {
	k := sharedBroker(b)
	parts := *e2ePartitions
	topic := k.topic(b, "stage-fetch", parts)
	t := newTraffic()
	size := k.produce(b, topic, parts, b.N, func(int) []byte { return t.next().AppendAvro(make([]byte, 0, 600)) })
	b.ReportAllocs()
	b.SetBytes(size / int64(b.N))
	b.ResetTimer()
	cpu := startCPU()
	src, err := kafka.New(kafka.Config{
		Brokers: k.addrs, Group: fmt.Sprintf("stage-fetch-%d", jobSeq.Add(1)), InstanceID: "bench-0",
		Topics: []string{topic}, Start: "earliest", StopAtEnd: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	var h countHandler
	if err := src.Run(context.Background(), &h); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cpu.report(b, b.N)
	src.Close()
	if got := h.n.Load(); got != int64(b.N) {
		b.Fatalf("fetched %d records, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// stageData is the seeded traffic as in-memory records, with the pipeline of
// filter_to_jsonl compiled over it.
type stageData struct {
	recs   []engine.Record
	size   int64
	dec    *avro.Decoder
	width  int
	bytes  engine.Column // bytes_total of the input
	prog   *sql.Program
	denied []bool // action <> 'ALLOW' of each record
}

func newStageData(b *testing.B, n int) *stageData {
	b.Helper()
	text, err := os.ReadFile(filepath.Join("..", "testdata", "schemas", "traffic.avsc"))
	if err != nil {
		b.Fatal(err)
	}
	typ, err := avro.ParseSchema(text)
	if err != nil {
		b.Fatal(err)
	}
	d := &stageData{}
	if d.dec, err = avro.NewDecoder(typ, avro.ModeReader); err != nil {
		b.Fatal(err)
	}
	d.width = d.dec.Schema().Width()
	d.bytes, _ = d.dec.Schema().Lookup("bytes_total")
	if d.prog, err = sql.Compile(filterSQL, d.dec.Schema()); err != nil {
		b.Fatal(err)
	}
	t := newTraffic()
	for i := range n {
		r := t.next()
		v := r.AppendAvro(make([]byte, 0, 600))
		d.recs = append(d.recs, engine.Record{Value: v, Offset: int64(i)})
		d.denied = append(d.denied, r.Action != "ALLOW")
		d.size += int64(len(v))
	}
	return d
}

// rows decodes the records into rows.
func (d *stageData) rows(b *testing.B) []*engine.Row {
	rows := make([]*engine.Row, len(d.recs))
	for i := range d.recs {
		rows[i] = engine.NewRow(d.width)
		if err := d.dec.Decode(&d.recs[i], rows[i]); err != nil {
			b.Fatal(err)
		}
	}
	return rows
}

// outputs evaluates the SQL on rows: the output row of each kept record, nil
// for the others.
func (d *stageData) outputs(b *testing.B, rows []*engine.Row) []*engine.Row {
	outs := make([]*engine.Row, len(rows))
	for i, row := range rows {
		out := engine.NewRow(d.prog.Output().Width())
		keep, err := d.prog.Eval(row, out)
		if err != nil {
			b.Fatal(err)
		}
		if keep != d.denied[i] {
			b.Fatalf("record %d: keep %v, want %v", i, keep, d.denied[i])
		}
		if keep {
			outs[i] = out
		}
	}
	return outs
}

func (d *stageData) report(b *testing.B) {
	b.SetBytes(d.size / int64(len(d.recs)))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func benchDecode(b *testing.B) {
	d := newStageData(b, min(b.N, stageRing))
	row := engine.NewRow(d.width)
	var sum, want int64
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := range b.N {
		row.Reset(d.width)
		if err := d.dec.Decode(&d.recs[i%len(d.recs)], row); err != nil {
			b.Fatal(err)
		}
		sum += row.Int(d.bytes.Slot)
	}
	b.StopTimer()
	cpu.report(b, b.N)
	d.report(b)
	for i := range b.N {
		row.Reset(d.width)
		d.dec.Decode(&d.recs[i%len(d.recs)], row)
		want += row.Int(d.bytes.Slot)
	}
	if sum != want {
		b.Fatalf("sum of bytes_total %d, want %d", sum, want)
	}
}

func benchSQL(b *testing.B) {
	d := newStageData(b, min(b.N, stageRing/4))
	rows := d.rows(b)
	out := engine.NewRow(d.prog.Output().Width())
	kept, want := 0, 0
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := range b.N {
		keep, err := d.prog.Eval(rows[i%len(rows)], out)
		if err != nil {
			b.Fatal(err)
		}
		if keep {
			kept++
		}
	}
	b.StopTimer()
	cpu.report(b, b.N)
	d.report(b)
	for i := range b.N {
		if d.denied[i%len(rows)] {
			want++
		}
	}
	if kept != want {
		b.Fatalf("kept %d rows, want %d", kept, want)
	}
}

func benchEncode(b *testing.B) {
	d := newStageData(b, min(b.N, stageRing/4))
	outs := d.outputs(b, d.rows(b))
	enc, err := encode.NewJSON(d.prog.Output())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 2<<20)
	lines := 0
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := range b.N {
		out := outs[i%len(outs)]
		if out == nil {
			continue
		}
		if buf, err = enc.Append(buf, out); err != nil {
			b.Fatal(err)
		}
		buf = append(buf, '\n')
		lines++
		if len(buf) > 1<<20 {
			buf = buf[:0]
		}
	}
	b.StopTimer()
	cpu.report(b, b.N)
	d.report(b)
	want := 0
	for i := range b.N {
		if outs[i%len(outs)] != nil {
			want++
		}
	}
	if lines != want {
		b.Fatalf("encoded %d rows, want %d", lines, want)
	}
}

// bundleRecords is the default bundle size: the sink flushes once per
// bundle.
const bundleRecords = 10000

func benchSink(b *testing.B) {
	d := newStageData(b, min(b.N, stageRing/4))
	outs := d.outputs(b, d.rows(b))
	path := filepath.Join(b.TempDir(), "out.jsonl")
	ctx := context.Background()
	s, err := filesink.New(ctx, filesink.Config{Path: path, Format: "json"}, d.prog.Output(), engine.SinkEnv{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	w, err := s.Open(ctx, engine.TaskID{Topic: "stage", Partition: 0})
	if err != nil {
		b.Fatal(err)
	}
	want := int64(0)
	var cpu time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for from := 0; from < b.N; from += bundleRecords {
		b.StopTimer()
		for i := from; i < min(from+bundleRecords, b.N); i++ {
			if out := outs[i%len(outs)]; out != nil {
				if err := w.Write(out); err != nil {
					b.Fatal(err)
				}
				want++
			}
		}
		b.StartTimer()
		c := processCPU()
		if err := w.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		cpu += processCPU() - c
	}
	b.StopTimer()
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/record")
	d.report(b)
	if err := w.Close(ctx); err != nil {
		b.Fatal(err)
	}
	checkJSONL(b, path, want, -1, true)
}
