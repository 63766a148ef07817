package file

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sluicehq/sluice/bench/gen"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/source/avro"
	"github.com/sluicehq/sluice/source/avro/ocftest"
)

type handler struct {
	mu       sync.Mutex
	assigned []engine.Assignment
	recs     []engine.Record
	ended    bool
}

func (h *handler) Assign(ctx context.Context, a []engine.Assignment) {
	h.assigned = append(h.assigned, a...)
}
func (h *handler) Revoke(ctx context.Context, t []engine.TaskID) {}
func (h *handler) Deliver(t engine.TaskID, recs []engine.Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, recs...)
}
func (h *handler) End(t engine.TaskID) { h.ended = true }

func TestFileSource(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "schemas", "traffic.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	reader, err := avro.ParseSchema(raw)
	if err != nil {
		t.Fatal(err)
	}
	g := gen.New(9)
	var recs [][]byte
	for i := 0; i < 250; i++ {
		recs = append(recs, g.AppendAvro(nil))
	}
	dir := t.TempDir()
	ocf, err := ocftest.Write(raw, "zstandard", recs, 64)
	if err != nil {
		t.Fatal(err)
	}
	avroPath := filepath.Join(dir, "traffic.avro")
	if err := os.WriteFile(avroPath, ocf, 0o644); err != nil {
		t.Fatal(err)
	}
	jsonPath := filepath.Join(dir, "x.jsonl")
	if err := os.WriteFile(jsonPath, []byte("{\"a\":1}\n\n{\"a\":2}\r\n{\"a\":3}"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		path  string
		start int64
		want  [][]byte
	}{
		{"avro-all", avroPath, -1, recs},
		{"avro-resume", avroPath, 200, recs[200:]},
		{"jsonl", jsonPath, -1, [][]byte{[]byte(`{"a":1}`), []byte(`{"a":2}`), []byte(`{"a":3}`)}},
		{"jsonl-resume", jsonPath, 2, [][]byte{[]byte(`{"a":3}`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.path, WithStartAt(tc.start, "ck"), WithBatch(100))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			h := &handler{}
			if err := s.Run(context.Background(), h); err != nil {
				t.Fatal(err)
			}
			if !h.ended {
				t.Error("task not ended")
			}
			wantAssign := []engine.Assignment{{Task: engine.TaskID{Topic: tc.path}, Offset: tc.start, Meta: "ck"}}
			if diff := cmp.Diff(wantAssign, h.assigned); diff != "" {
				t.Errorf("assignments (-want +got):\n%s", diff)
			}
			var got [][]byte
			for i, r := range h.recs {
				if want := max(tc.start, 0) + int64(i); r.Offset != want {
					t.Fatalf("record %d has offset %d, want %d", i, r.Offset, want)
				}
				got = append(got, r.Value)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("decode-with-file-schema", func(t *testing.T) {
		s, err := Open(avroPath)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		h := &handler{}
		if err := s.Run(context.Background(), h); err != nil {
			t.Fatal(err)
		}
		_, v2 := mustParse(t, "traffic_v2.avsc")
		d, err := avro.NewDecoder(v2, avro.ModeReader, avro.WithWriterSchema(s.WriterSchema()))
		if err != nil {
			t.Fatal(err)
		}
		row := engine.NewRow(d.Schema().Width())
		for _, r := range h.recs {
			row.Reset(d.Schema().Width())
			if err := d.Decode(&r, row); err != nil {
				t.Fatalf("offset %d: %v", r.Offset, err)
			}
		}
		if _, err := avro.NewDecoder(reader, avro.ModeReader, avro.WithWriterSchema(v2)); err == nil {
			t.Error("a v1 reader accepted the v2 file schema")
		}
	})

	t.Run("bad-extension", func(t *testing.T) {
		if _, err := Open(filepath.Join(dir, "x.csv")); err == nil {
			t.Fatal("opened a .csv")
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.avro")
		os.WriteFile(bad, ocf[:len(ocf)-30], 0o644)
		s, err := Open(bad)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Run(context.Background(), &handler{}); err == nil {
			t.Fatal("no error for a truncated file")
		} else {
			t.Log(err)
		}
	})
}

func mustParse(t *testing.T, name string) ([]byte, *engine.Type) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "schemas", name))
	if err != nil {
		t.Fatal(err)
	}
	typ, err := avro.ParseSchema(raw)
	if err != nil {
		t.Fatal(err)
	}
	return raw, typ
}
