package avro

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/linkedin/goavro/v2"
	"github.com/sluicehq/sluice/bench/gen"
	wire "github.com/sluicehq/sluice/engine/avro"
	"github.com/sluicehq/sluice/source/avro/ocftest"
)

func readAll(t testing.TB, file []byte, opts ...OCFOption) ([][]byte, *OCFReader, error) {
	t.Helper()
	r, err := NewOCFReader(bytes.NewReader(file), opts...)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	var recs [][]byte
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return recs, r, nil
		}
		if err != nil {
			return recs, r, err
		}
		recs = append(recs, rec)
	}
}

func TestOCF(t *testing.T) {
	raw, _ := readSchema(t, "traffic.avsc")
	g := gen.New(5)
	var recs [][]byte
	var natives []any
	for i := 0; i < 100; i++ {
		rec := g.Next()
		recs = append(recs, rec.AppendAvro(nil))
		natives = append(natives, rec.Native())
	}
	for _, codec := range []wire.Codec{wire.CodecNull, wire.CodecDeflate, wire.CodecSnappy, wire.CodecZstd} {
		t.Run("own-"+string(codec), func(t *testing.T) {
			file, err := ocftest.Write(raw, string(codec), recs, 7)
			if err != nil {
				t.Fatal(err)
			}
			got, r, err := readAll(t, file)
			if err != nil {
				t.Fatal(err)
			}
			if string(r.Codec()) != string(codec) {
				t.Errorf("codec %q, want %q", r.Codec(), codec)
			}
			if diff := cmp.Diff(recs, got); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
	for _, codec := range []string{goavro.CompressionNullLabel, goavro.CompressionDeflateLabel, goavro.CompressionSnappyLabel} {
		t.Run("goavro-"+codec, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &buf, Schema: string(raw), CompressionName: codec})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(natives); i += 13 {
				if err := w.Append(natives[i:min(i+13, len(natives))]); err != nil {
					t.Fatal(err)
				}
			}
			got, _, err := readAll(t, buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			// goavro writes map entries in Go's map order: compare values.
			var gotNative []any
			for _, rec := range got {
				v, _, err := w.Codec().NativeFromBinary(rec)
				if err != nil {
					t.Fatal(err)
				}
				gotNative = append(gotNative, v)
			}
			if diff := cmp.Diff(natives, gotNative, cmpOpts...); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}

	good, err := ocftest.Write(raw, "snappy", recs[:3], 3)
	if err != nil {
		t.Fatal(err)
	}
	corruptions := []struct {
		name string
		edit func([]byte) []byte
	}{
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }},
		{"sync", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"checksum", func(b []byte) []byte { b[len(b)-17] ^= 1; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-20] }},
		{"header-only-truncated", func(b []byte) []byte { return b[:10] }},
	}
	for _, c := range corruptions {
		t.Run("corrupt-"+c.name, func(t *testing.T) {
			_, _, err := readAll(t, c.edit(bytes.Clone(good)))
			if !errors.Is(err, ErrCorruptOCF) {
				t.Fatalf("error %v, want ErrCorruptOCF", err)
			}
		})
	}
}

func FuzzOCF(f *testing.F) {
	raw, _ := readSchema(f, "traffic.avsc")
	g := gen.New(6)
	var recs [][]byte
	for i := 0; i < 4; i++ {
		recs = append(recs, g.AppendAvro(nil))
	}
	for _, codec := range []wire.Codec{wire.CodecNull, wire.CodecDeflate, wire.CodecSnappy, wire.CodecZstd} {
		file, err := ocftest.Write(raw, string(codec), recs, 2)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(file)
	}
	small, _ := ocftest.Write([]byte(`{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"long"}}]}`), "null", [][]byte{{2, 4, 0}, {0}}, 1)
	f.Add(small)
	f.Fuzz(func(t *testing.T, file []byte) {
		recs, r, err := readAll(t, file, WithOCFMaxBlockBytes(1<<20))
		if r == nil {
			return
		}
		// Whatever the reader accepts decodes and re-encodes to the same
		// file contents under the null codec.
		_ = err
		p, cerr := Compile(r.Schema(), r.Schema())
		if cerr != nil {
			return
		}
		row := newRowFor(p)
		for _, rec := range recs {
			if err := p.Decode(rec, row); err != nil {
				t.Fatalf("record %x accepted by the OCF reader does not decode: %v", rec, err)
			}
		}
		again, err := ocftest.Write(r.SchemaText(), "null", recs, 3)
		if err != nil {
			t.Fatal(err)
		}
		recs2, _, err := readAll(t, again)
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		if diff := cmp.Diff(fmt.Sprint(recs), fmt.Sprint(recs2)); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
	})
}
