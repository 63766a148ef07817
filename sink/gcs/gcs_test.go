package gcs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/google/go-cmp/cmp"
	"github.com/linkedin/goavro/v2"
	"google.golang.org/api/iterator"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/object"
)

var schema = engine.MustSchema(&engine.Type{Kind: engine.KindRecord, Name: "t.Row", Fields: []engine.Field{
	{Name: "id", Type: &engine.Type{Kind: engine.KindLong}},
	{Name: "msg", Type: &engine.Type{Kind: engine.KindString}},
}})

// TestGCSSink writes objects through the real client to fake-gcs-server over
// HTTP (STORAGE_EMULATOR_HOST), then lists and reads them back.
func TestGCSSink(t *testing.T) {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "export"})
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL(), "http://"))
	ctx := context.Background()
	reader, err := storage.NewClient(ctx, storage.WithJSONReads())
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	for _, format := range []string{"json", "csv", "avro"} {
		t.Run(format, func(t *testing.T) {
			s, err := New(ctx, Config{Bucket: "export", Prefix: format + "/", Format: format, Codec: map[string]string{"avro": "deflate"}[format], MaxObjectBytes: 400},
				schema, engine.SinkEnv{Job: "job", Pipeline: "pipe", Name: "gcs/0"})
			if err != nil {
				t.Fatal(err)
			}
			var want []int64
			for k := range 2 {
				w, err := s.Open(ctx, engine.TaskID{Topic: "in", Partition: int32(k)})
				if err != nil {
					t.Fatal(err)
				}
				row := engine.NewRow(schema.Width())
				for i := range 60 {
					id := int64(k*1000 + i)
					row.SetInt(0, id)
					row.SetStr(1, "hello, \"world\"")
					w.Write(row)
					want = append(want, id)
					if i%20 == 19 {
						if err := w.Flush(ctx); err != nil {
							t.Fatal(err)
						}
					}
				}
				w.Close(ctx)
			}
			s.Close(ctx)

			var got []int64
			prefixes := map[string]bool{}
			it := reader.Bucket("export").Objects(ctx, &storage.Query{Prefix: format + "/"})
			for {
				a, err := it.Next()
				if err == iterator.Done {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				parts := strings.Split(strings.TrimPrefix(a.Name, format+"/"), "/")
				if len(parts) != 4 || len(parts[0]) != 4 || parts[1] != "pipe" || !strings.HasSuffix(parts[3], map[string]string{"json": ".jsonl", "csv": ".csv", "avro": ".avro"}[format]) {
					t.Errorf("object name %q", a.Name)
				}
				prefixes[parts[0]] = true
				r, err := reader.Bucket("export").Object(a.Name).NewReader(ctx)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(r)
				r.Close()
				got = append(got, readIDs(t, format, b)...)
			}
			sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			if len(prefixes) < 4 {
				t.Errorf("objects under %d hash prefixes, want them spread", len(prefixes))
			}
		})
	}
}

func readIDs(t *testing.T, format string, b []byte) []int64 {
	t.Helper()
	var ids []int64
	switch format {
	case "json":
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var v struct{ ID int64 }
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, v.ID)
		}
	case "csv":
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil || recs[0][0] != "id" {
			t.Fatalf("csv: %v %v", err, recs)
		}
		for _, r := range recs[1:] {
			id, _ := strconv.ParseInt(r[0], 10, 64)
			ids = append(ids, id)
		}
	case "avro":
		r, err := goavro.NewOCFReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		for r.Scan() {
			v, err := r.Read()
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, v.(map[string]any)["id"].(int64))
		}
	}
	return ids
}

// TestGCSResumeAfterCrash plays the engine after a crash: a writer flushes
// bundles (objects fill and are finalized), its state after the second bundle
// is what the checkpoint holds, the writer dies without Close, and a resumed
// writer gets every row after that state again. Each row must end up in the
// finalized objects exactly once, the objects within max_object_bytes, and
// max_object_age must finalize an object of a quiet stream.
func TestGCSResumeAfterCrash(t *testing.T) {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "export"})
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL(), "http://"))
	ctx := context.Background()
	reader, err := storage.NewClient(ctx, storage.WithJSONReads())
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	for _, format := range []string{"json", "csv", "avro"} {
		t.Run(format, func(t *testing.T) {
			const maxBytes = 2000
			// The run that crashes has a long max_object_age, so that no
			// timer of its writer outlives the "crash" in this process.
			sink := func(age time.Duration) *Sink {
				s, err := New(ctx, Config{Bucket: "export", Prefix: format + "/", Format: format, MaxObjectBytes: maxBytes, MaxObjectAge: age},
					schema, engine.SinkEnv{Job: "job", Pipeline: "pipe", Name: "gcs/0"})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close(ctx) })
				return s
			}
			crashing, s := sink(time.Hour), sink(time.Second)
			task := engine.TaskID{Topic: "in", Partition: 0}
			row := engine.NewRow(schema.Width())
			write := func(w engine.Writer, from, to int) {
				for i := from; i < to; i++ {
					row.SetInt(0, int64(i))
					row.SetStr(1, "hello, \"world\"")
					if err := w.Write(row); err != nil {
						t.Fatal(err)
					}
				}
				if err := w.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			}
			w, _ := crashing.Open(ctx, task)
			write(w, 0, 30)
			write(w, 30, 60)
			checkpointed := w.(engine.StatefulWriter).State()
			write(w, 60, 200) // finalizes objects past the checkpoint
			write(w, 200, 230)
			// SIGKILL: no Close. The engine resumes from the checkpoint's
			// state and replays rows 60.. in other bundles.
			w, err = s.Resume(ctx, task, checkpointed)
			if err != nil {
				t.Fatal(err)
			}
			write(w, 60, 150)
			write(w, 150, 260)
			// A quiet stream: max_object_age finalizes the open object
			// without another row, Flush or Close.
			deadline := time.Now().Add(20 * time.Second)
			for {
				objs := listObjects(t, reader, format+"/")
				var ids []int64
				for _, o := range objs {
					ids = append(ids, readIDs(t, format, o.data)...)
				}
				if len(ids) >= 260 {
					sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
					want := make([]int64, 260)
					for i := range want {
						want[i] = int64(i)
					}
					if diff := cmp.Diff(want, ids); diff != "" {
						t.Fatalf("ids (-want +got):\n%s", diff)
					}
					for i, o := range objs {
						if len(o.data) > maxBytes {
							t.Errorf("object %s: %d bytes, more than max_object_bytes %d", o.name, len(o.data), maxBytes)
						}
						if o.meta[object.MetaClose] == "size" && len(o.data) < maxBytes/2 {
							t.Errorf("object %s closed for size at %d bytes", o.name, len(o.data))
						}
						if i == len(objs)-1 && o.meta[object.MetaClose] != "age" {
							t.Errorf("last object %s closed by %q, want age", o.name, o.meta[object.MetaClose])
						}
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d rows in finalized objects after 20 s, want 260", len(ids))
				}
				time.Sleep(100 * time.Millisecond)
			}
			w.Close(ctx)
		})
	}
}

type storedObject struct {
	name string
	data []byte
	meta map[string]string
}

// listObjects reads every object under prefix, in name order (which is the
// order of a task's series).
func listObjects(t *testing.T, c *storage.Client, prefix string) []storedObject {
	t.Helper()
	ctx := context.Background()
	var out []storedObject
	it := c.Bucket("export").Objects(ctx, &storage.Query{Prefix: prefix})
	for {
		a, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Bucket("export").Object(a.Name).NewReader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		out = append(out, storedObject{a.Name, b, a.Metadata})
	}
	sort.Slice(out, func(i, j int) bool { return path.Base(out[i].name) < path.Base(out[j].name) })
	return out
}
