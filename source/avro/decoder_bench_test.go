package avro

import (
	"encoding/binary"
	"testing"

	"github.com/sluicehq/sluice/bench/gen"
	"github.com/sluicehq/sluice/engine"
	wire "github.com/sluicehq/sluice/engine/avro"
)

// BenchmarkDecoderModes measures the Decoder in each writer-schema mode, in
// parallel, on the same traffic records: the cost of finding the program.
func BenchmarkDecoderModes(b *testing.B) {
	raw, v1 := readSchema(b, "traffic.avsc")
	_, v2 := readSchema(b, "traffic_v2.avsc")
	srv, _ := fakeRegistry(b, map[int]string{1: string(raw)})
	reg, err := NewDecoder(v2, ModeRegistry, WithRegistryURL(srv.URL, srv.Client()))
	if err != nil {
		b.Fatal(err)
	}
	own, err := NewDecoder(v1, ModeReader)
	if err != nil {
		b.Fatal(err)
	}
	hdr, err := NewDecoder(v2, ModeHeader)
	if err != nil {
		b.Fatal(err)
	}
	if err := hdr.Register(v1); err != nil {
		b.Fatal(err)
	}
	fp := binary.LittleEndian.AppendUint64(nil, wire.Fingerprint(v1))
	g := gen.New(42)
	const n = 1024
	var bodies [][]byte
	var seqs []int64
	for i := 0; i < n; i++ {
		r := g.Next()
		bodies = append(bodies, r.AppendAvro(nil))
		seqs = append(seqs, r.SequenceNumber)
	}
	for _, mode := range []struct {
		name string
		d    *Decoder
		rec  func(i int) *engine.Record
	}{
		{"reader", own, func(i int) *engine.Record { return &engine.Record{Value: bodies[i]} }},
		{"registry", reg, func(i int) *engine.Record { return &engine.Record{Value: framed(1, bodies[i])} }},
		{"header-fingerprint", hdr, func(i int) *engine.Record {
			return &engine.Record{Value: bodies[i], Headers: []engine.Header{{Key: HeaderKey, Value: fp}}}
		}},
	} {
		recs := make([]*engine.Record, n)
		for i := range recs {
			recs[i] = mode.rec(i)
		}
		col, _ := mode.d.Schema().Lookup("sequence_number")
		b.Run(mode.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				row := engine.NewRow(mode.d.Schema().Width())
				i := 0
				for pb.Next() {
					row.Reset(mode.d.Schema().Width())
					if err := mode.d.Decode(recs[i%n], row); err != nil {
						b.Error(err)
						return
					}
					if row.Int(col.Slot) != seqs[i%n] {
						b.Errorf("sequence_number %d, want %d", row.Int(col.Slot), seqs[i%n])
						return
					}
					i++
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
