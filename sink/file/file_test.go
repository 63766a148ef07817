package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/sinktest"
)

var schema = engine.MustSchema(&engine.Type{Kind: engine.KindRecord, Name: "t.Row", Fields: []engine.Field{
	{Name: "id", Type: &engine.Type{Kind: engine.KindLong}},
	{Name: "msg", Type: &engine.Type{Kind: engine.KindString}},
	{Name: "loc", Type: &engine.Type{Kind: engine.KindRecord, Name: "t.Loc", Fields: []engine.Field{
		{Name: "country", Type: &engine.Type{Kind: engine.KindString}},
	}}},
}})

// writeTasks writes rows id = task*1000+i from several tasks at once, one
// flush every 10 rows.
func writeTasks(t *testing.T, s *Sink, tasks, rows int, base int) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 2*tasks)
	for k := range tasks {
		wg.Go(func() {
			w, err := s.Open(ctx, engine.TaskID{Topic: "in", Partition: int32(k)})
			if err != nil {
				errs <- err
				return
			}
			row := engine.NewRow(schema.Width())
			for i := range rows {
				row.Reset(schema.Width())
				row.SetInt(0, int64(base+k*1000+i))
				row.SetStr(1, fmt.Sprintf("hello, \"%d\"\n", i))
				row.SetStr(3, "US")
				if err := w.Write(row); err != nil {
					errs <- err
					return
				}
				if i%10 == 9 {
					if err := w.Flush(ctx); err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- w.Flush(ctx)
			errs <- w.Close(ctx)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func wantIDs(tasks, rows int, bases ...int) []int64 {
	var ids []int64
	for _, b := range bases {
		for k := range tasks {
			for i := range rows {
				ids = append(ids, int64(b+k*1000+i))
			}
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// TestFileSink writes from concurrent tasks in each format, twice (the second
// sink continues the file), and reads the file back with independent readers.
func TestFileSink(t *testing.T) {
	for _, tc := range []struct{ format, codec string }{{"json", ""}, {"csv", ""}, {"avro", "snappy"}, {"avro", "deflate"}} {
		t.Run(tc.format+tc.codec, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sub", "out")
			for _, base := range []int{0, 100000} {
				s, err := New(context.Background(), Config{Path: path, Format: tc.format, Codec: tc.codec}, schema, engine.SinkEnv{Name: "file/0"})
				if err != nil {
					t.Fatal(err)
				}
				writeTasks(t, s, 4, 95, base)
				if err := s.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			got := readIDs(t, path, tc.format)
			sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
			if diff := cmp.Diff(wantIDs(4, 95, 0, 100000), got); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
}

// readIDs reads the ids of the file the sink wrote, and checks that the
// nested column is written as the format flattens it.
func readIDs(t *testing.T, path, format string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	switch format {
	case "json":
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var v struct{ Loc struct{ Country string } }
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil || v.Loc.Country != "US" {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
		}
	case "csv":
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"id", "msg", "loc.country"}, recs[0]); diff != "" {
			t.Fatalf("header (-want +got):\n%s", diff)
		}
	}
	return sinktest.IDs(t, format, b)
}

// TestFileDeadLetter sends a row that Avro cannot encode to a JSON-lines
// dead-letter file sink.
func TestFileDeadLetter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dl, err := New(ctx, Config{Path: filepath.Join(dir, "dlq.jsonl")}, engine.DeadLetterSchema, engine.SinkEnv{Name: "file/dlq"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, Config{Path: filepath.Join(dir, "out.avro"), Format: "avro"}, schema, engine.SinkEnv{Pipeline: "p", Name: "file/0", DeadLetter: dl})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := s.Open(ctx, engine.TaskID{Topic: "in", Partition: 3})
	row := engine.NewRow(schema.Width())
	row.SetInt(0, 7)
	row.SetNull(1) // msg is not nullable
	row.Origin = engine.Origin{Task: engine.TaskID{Topic: "in", Partition: 3}, Offset: 41}
	if err := w.Write(row); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close(ctx)
	s.Close(ctx)
	dl.Close(ctx)
	b, err := os.ReadFile(filepath.Join(dir, "dlq.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	delete(got, "timestamp")
	want := map[string]any{"pipeline": "p", "stage": "sink", "error": "encode: field msg: null for a value of non-null type string",
		"topic": "in", "partition": 3.0, "offset": 41.0, "key": nil,
		"value": "eyJpZCI6NywibXNnIjpudWxsLCJsb2MiOnsiY291bnRyeSI6IiJ9fQ=="}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dead letter (-want +got):\n%s", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Path: "x"}, ""},
		{Config{Path: "x", Format: "xml"}, `:0:0: unknown format "xml" (expected json, csv or avro)`},
		{Config{Path: "x", Format: "json", Codec: "zstd"}, ":0:0: codec applies to format avro only"},
		{Config{Path: "x", Format: "avro", Codec: "lz4"}, `:0:0: unknown codec "lz4" (expected null, deflate, snappy or zstd)`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			got := ""
			if err := tc.cfg.Validate(); err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestFileSinkLargeBundle: a bundle larger than the writer's buffer is
// written ahead of its Flush in whole rows (whole blocks for Avro), so the
// sink holds at most spillBytes of it, and two tasks doing so at once still
// leave a file every reader takes, with every row once after the flushes.
func TestFileSinkLargeBundle(t *testing.T) {
	const rows = 1500 // ~1.5 KB each: over 2 × spillBytes per task
	pad := string(bytes.Repeat([]byte("x"), 1500))
	for _, tc := range []struct{ format, codec string }{{"json", ""}, {"csv", ""}, {"avro", "snappy"}} {
		t.Run(tc.format+tc.codec, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "out")
			s, err := New(ctx, Config{Path: path, Format: tc.format, Codec: tc.codec}, schema, engine.SinkEnv{Name: "file/0"})
			if err != nil {
				t.Fatal(err)
			}
			var ws []engine.Writer
			for k := range 2 {
				w, err := s.Open(ctx, engine.TaskID{Topic: "in", Partition: int32(k)})
				if err != nil {
					t.Fatal(err)
				}
				ws = append(ws, w)
			}
			row := engine.NewRow(schema.Width())
			for i := range rows {
				for k, w := range ws {
					row.Reset(schema.Width())
					row.SetInt(0, int64(k*1000+i))
					row.SetStr(1, pad)
					row.SetStr(3, "US")
					if err := w.Write(row); err != nil {
						t.Fatal(err)
					}
				}
			}
			for k, w := range ws {
				if buf := len(w.(*writer).buf); buf >= spillBytes {
					t.Errorf("task %d holds %d bytes before its flush, want < %d", k, buf, spillBytes)
				}
			}
			// Nothing is written before a flush unless it was spilled.
			if st, err := os.Stat(path); err != nil || st.Size() == 0 {
				t.Fatalf("before the flush the file is empty (%v); want the spilled rows", err)
			}
			for _, w := range ws {
				if err := w.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			got := readIDs(t, path, tc.format)
			sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
			var want []int64
			for k := range 2 {
				for i := range rows {
					want = append(want, int64(k*1000+i))
				}
			}
			sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
}
