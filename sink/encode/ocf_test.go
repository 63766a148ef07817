package encode

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/linkedin/goavro/v2"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/avro"
)

// TestOCF writes files with every codec, small blocks so that there are
// many, and reads them back with goavro's OCF reader.
func TestOCF(t *testing.T) {
	for _, codec := range []avro.Codec{avro.CodecNull, avro.CodecDeflate, avro.CodecSnappy, avro.CodecZstd} {
		t.Run(string(codec), func(t *testing.T) {
			s := loadSchema(t, "allkinds.avsc")
			var file bytes.Buffer
			w, err := NewOCFWriter(&file, s, codec, 4096)
			if err != nil {
				t.Fatal(err)
			}
			g := &gen{r: rand.New(rand.NewPCG(7, 8))}
			row := &engine.Row{}
			var wants []any
			for n := 0; n < 400; n++ {
				wants = append(wants, any(g.row(s, row)))
				if err := w.Write(row); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			data := file.Bytes()
			if codec == avro.CodecZstd {
				// goavro lacks zstandard: decompress each block (with the
				// reference-compatible decoder) into a null-codec file.
				data = zstdToNull(t, data)
			}
			r, err := goavro.NewOCFReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := r.CompressionName(), string(codec); got != want && codec != avro.CodecZstd {
				t.Errorf("codec %q, want %q", got, want)
			}
			var gots []any
			for r.Scan() {
				v, err := r.Read()
				if err != nil {
					t.Fatal(err)
				}
				gots = append(gots, normGoavro(t, s.Root, v))
			}
			if err := r.Err(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wants, gots, floatEq); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}

			h, err := avro.ReadHeader(bytes.NewReader(file.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]any{string(w.ocf.Schema()), codec, w.ocf.Sync()}, []any{string(h.Schema), h.Codec, h.Sync[:]}); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
		})
	}
}

// zstdToNull rewrites a zstandard OCF as a null-codec one.
func zstdToNull(t *testing.T, file []byte) []byte {
	t.Helper()
	br, err := avro.NewBlockReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	h := br.Header()
	if h.Codec != avro.CodecZstd {
		t.Fatalf("codec %q", h.Codec)
	}
	o, err := avro.NewContainer(h.Schema, avro.CodecNull, h.Sync[:])
	if err != nil {
		t.Fatal(err)
	}
	out := o.AppendHeader(nil)
	for {
		count, raw, err := br.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if out, err = o.AppendBlock(out, int(count), raw); err != nil {
			t.Fatal(err)
		}
	}
}

// TestZeroAllocs checks that encoding a row allocates nothing in steady state.
func TestZeroAllocs(t *testing.T) {
	s := loadSchema(t, "traffic.avsc")
	g := &gen{r: rand.New(rand.NewPCG(9, 10))}
	row := &engine.Row{}
	g.row(s, row)
	j, _ := NewJSON(s)
	c, _ := NewCSV(s)
	a, _ := NewAvro(s)
	for _, tc := range []struct {
		name string
		enc  Encoder
	}{{"json", j}, {"csv", c}, {"avro", a}} {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, 0, 64<<10)
			allocs := testing.AllocsPerRun(100, func() {
				buf, _ = tc.enc.Append(buf[:0], row)
			})
			if allocs != 0 {
				t.Errorf("%v allocs per row, want 0", allocs)
			}
		})
	}
}
