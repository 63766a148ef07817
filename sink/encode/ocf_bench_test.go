package encode

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/linkedin/goavro/v2"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/avro"
	"github.com/sluicehq/sluice/engine/enginetest"
)

// keepFirst is the io.Writer of BenchmarkOCFWriter: it counts every byte
// and keeps the first writes (whole blocks, the header in front) so that
// the benchmark can read them back.
type keepFirst struct {
	kept  bytes.Buffer
	total int64
}

const keepBytes = 4 << 20

func (k *keepFirst) Write(p []byte) (int, error) {
	k.total += int64(len(p))
	if k.kept.Len() < keepBytes {
		k.kept.Write(p)
	}
	return len(p), nil
}

// BenchmarkOCFWriter is the Avro path of the file and object sinks: rows of
// traffic.avsc (random, fixed seed, prepared before the clock starts)
// encoded by Avro.Append and framed by engine/avro's Container in blocks of
// DefaultBlockSize. It checks its output: the blocks it kept decode with
// goavro to the rows written, in order, and the file holds at least every
// datum's bytes plus a sync marker per block.
func BenchmarkOCFWriter(b *testing.B) {
	s := loadSchema(b, "traffic.avsc")
	g := &gen{r: rand.New(rand.NewPCG(11, 12))}
	const n = 1024
	rows := make([]*engine.Row, n)
	wants := make([]any, n)
	sizes := make([]int64, n) // each row's datum bytes
	var datums int64          // bytes of one pass over rows
	enc, _ := NewAvro(s)
	var buf []byte
	for i := range rows {
		rows[i] = &engine.Row{}
		wants[i] = g.row(s, rows[i])
		var err error
		if buf, err = enc.Append(buf[:0], rows[i]); err != nil {
			b.Fatal(err)
		}
		sizes[i] = int64(len(buf))
		datums += sizes[i]
	}

	out := &keepFirst{}
	out.kept.Grow(keepBytes + 2*DefaultBlockSize)
	w, err := NewOCFWriter(out, s, avro.CodecNull, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(datums / n)
	b.ResetTimer()
	cpu0 := enginetest.ProcessCPU()
	for i := 0; i < b.N; i++ {
		if err := w.Write(rows[i%n]); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(enginetest.ProcessCPU()-cpu0)/float64(b.N), "cpu-ns/record")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")

	var want int64 // every datum's bytes, a sync marker per block
	for i := 0; i < b.N; i++ {
		want += sizes[i%n]
	}
	want += int64(b.N) * datums / n / DefaultBlockSize * avro.SyncSize
	if out.total < want {
		b.Fatalf("%d bytes written for %d rows, want at least %d", out.total, b.N, want)
	}
	r, err := goavro.NewOCFReader(bytes.NewReader(out.kept.Bytes()))
	if err != nil {
		b.Fatal(err)
	}
	read := 0
	for r.Scan() {
		v, err := r.Read()
		if err != nil {
			b.Fatal(err)
		}
		if diff := cmp.Diff(wants[read%n], normGoavro(b, s.Root, v), floatEq); diff != "" {
			b.Fatalf("record %d (-want +got):\n%s", read, diff)
		}
		read++
	}
	if err := r.Err(); err != nil {
		b.Fatal(err)
	}
	if read == 0 || (out.total == int64(out.kept.Len()) && read != b.N) {
		b.Fatalf("read back %d records of %d", read, b.N)
	}
}
