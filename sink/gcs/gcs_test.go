package gcs

import (
	"context"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/api/iterator"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/sink/object"
	"github.com/sluicehq/sluice/sink/object/objecttest"
	"github.com/sluicehq/sluice/sink/sinktest"
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
			s, err := New(ctx, Config{Bucket: "export", Layout: object.Layout{Prefix: format + "/", Format: format, Codec: map[string]string{"avro": "deflate"}[format], MaxObjectBytes: 400}},
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
				got = append(got, sinktest.IDs(t, format, b)...)
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

// TestGCSResumeAfterCrash runs the object sinks' checks (objecttest.Run)
// through the real client against fake-gcs-server over HTTP.
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
	objecttest.Run(t, objecttest.Backend{
		New: func(t *testing.T, prefix, format string, maxBytes int64, maxAge time.Duration) engine.ResumableSink {
			s, err := New(ctx, Config{Bucket: "export", Layout: object.Layout{Prefix: prefix, Format: format, MaxObjectBytes: config.ByteSize(maxBytes), MaxObjectAge: maxAge}},
				objecttest.Schema, engine.SinkEnv{Job: "job", Pipeline: "pipe", Name: "gcs/0"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close(ctx) })
			return s
		},
		List: func(t *testing.T, prefix string) []objecttest.Object {
			var out []objecttest.Object
			it := reader.Bucket("export").Objects(ctx, &storage.Query{Prefix: prefix})
			for {
				a, err := it.Next()
				if err == iterator.Done {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				r, err := reader.Bucket("export").Object(a.Name).NewReader(ctx)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(r)
				r.Close()
				out = append(out, objecttest.Object{Name: a.Name, Data: b, Close: a.Metadata[object.MetaClose]})
			}
			return out
		},
	})
}

// TestGCSSinkOutlivesBuildContext: the context New is given ends when the
// worker is told to drain (it is the process's signal context), and the
// drain still flushes and finalizes objects. The client New makes must not
// depend on it.
func TestGCSSinkOutlivesBuildContext(t *testing.T) {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "export"})
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL(), "http://"))
	buildCtx, cancel := context.WithCancel(t.Context())
	s, err := New(buildCtx, Config{Bucket: "export", Layout: object.Layout{Prefix: "drain/", Format: "json"}},
		schema, engine.SinkEnv{Job: "job", Pipeline: "pipe", Name: "gcs/0"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	ctx := t.Context()
	w, err := s.Open(ctx, engine.TaskID{Topic: "in"})
	if err != nil {
		t.Fatal(err)
	}
	row := engine.NewRow(schema.Width())
	for i := range 5 {
		row.SetInt(0, int64(i))
		row.SetStr(1, "x")
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("flush after the build context ended: %v", err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatalf("close (finalize) after the build context ended: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	objs, _, err := srv.ListObjectsWithOptions("export", fakestorage.ListOptions{Prefix: "drain/"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, a := range objs {
		o, err := srv.GetObject("export", a.Name)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sinktest.IDs(t, "json", o.Content)...)
	}
	if len(ids) != 5 {
		t.Errorf("finalized objects hold %d rows, want 5: %v", len(ids), ids)
	}
}
