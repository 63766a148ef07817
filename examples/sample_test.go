package examples

import (
	"bytes"
	"os"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/sluicehq/sluice/bench/gen"
	"github.com/sluicehq/sluice/engine/enginetest"
)

const sampleRecords = 2000

// TestSampleData checks the sample file of the bounded example with an
// independent reader (goavro); -update regenerates it from the seeded
// generator.
func TestSampleData(t *testing.T) {
	schema, err := os.ReadFile("schemas/traffic.avsc")
	if err != nil {
		t.Fatal(err)
	}
	if enginetest.Update() {
		var buf bytes.Buffer
		w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &buf, Schema: string(schema), CompressionName: goavro.CompressionDeflateLabel})
		if err != nil {
			t.Fatal(err)
		}
		g := gen.New(42)
		batch := make([]any, 0, 500)
		for i := 0; i < sampleRecords; i++ {
			batch = append(batch, g.Next().Native())
			if len(batch) == cap(batch) {
				if err := w.Append(batch); err != nil {
					t.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		if err := os.WriteFile("data/traffic-sample.avro", buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open("data/traffic-sample.avro")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := goavro.NewOCFReader(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for r.Scan() {
		if _, err := r.Read(); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != sampleRecords {
		t.Fatalf("sample holds %d records, want %d", n, sampleRecords)
	}
}
