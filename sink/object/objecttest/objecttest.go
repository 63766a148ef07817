// Package objecttest holds the checks every object sink (gcs, s3, azblob)
// passes against its emulator: the sink conformance suite (sinktest), and
// whole objects in each format, rolling at max_object_bytes,
// max_object_age in a quiet stream, and a crash replay that leaves every
// row in the finalized objects exactly once.
package objecttest

import (
	"context"
	"path"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/sinktest"
)

// Schema is the rows' schema (the conformance suite's).
var Schema = sinktest.Schema

// Object is a finalized object as the store holds it.
type Object struct {
	Name  string
	Data  []byte
	Close string // the sluice-close metadata
}

// Backend is what a sink's test supplies.
type Backend struct {
	// New builds the sink for format (json, csv, avro) under prefix.
	New func(t *testing.T, prefix, format string, maxBytes int64, maxAge time.Duration) engine.ResumableSink
	// List returns the finalized objects under prefix.
	List func(t *testing.T, prefix string) []Object
}

// Run checks a sink: for each format, a writer flushes bundles (objects fill
// and are finalized), its state after the second bundle is what the
// checkpoint holds, the writer dies without Close, and a resumed writer gets
// every row after that state again. Each row must end up in the finalized
// objects exactly once, every object within max_object_bytes, and
// max_object_age must finalize the last object of the quiet stream.
//
// It also runs the sink conformance suite (sinktest) on JSON objects.
func Run(t *testing.T, b Backend) {
	ctx := context.Background()
	t.Run("conformance", func(t *testing.T) {
		const prefix = "conformance/"
		// The crashing writer of the state round trip gets a long
		// max_object_age: a killed process finalizes nothing by age.
		sinktest.Run(t, sinktest.Harness{
			New:      func(t *testing.T) engine.Sink { return b.New(t, prefix, "json", 1<<20, 200*time.Millisecond) },
			Crashing: func(t *testing.T) engine.Sink { return b.New(t, prefix, "json", 1<<20, time.Hour) },
			Read: func(t *testing.T) []int64 {
				var ids []int64
				for _, o := range b.List(t, prefix) {
					ids = append(ids, sinktest.IDs(t, "json", o.Data)...)
				}
				return ids
			},
			Settle:   20 * time.Second,
			Stateful: true,
		})
	})
	for _, format := range []string{"json", "csv", "avro"} {
		t.Run(format, func(t *testing.T) {
			const maxBytes = 2000
			prefix := format + "/"
			// The run that crashes has a long max_object_age, so that no
			// timer of its writer outlives the "crash" in this process.
			crashing, s := b.New(t, prefix, format, maxBytes, time.Hour), b.New(t, prefix, format, maxBytes, time.Second)
			task := engine.TaskID{Topic: "in", Partition: 0}
			row := engine.NewRow(Schema.Width())
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
			w, err := crashing.Open(ctx, task)
			if err != nil {
				t.Fatal(err)
			}
			write(w, 0, 30)
			write(w, 30, 60)
			checkpointed := w.(engine.StatefulWriter).State()
			write(w, 60, 200) // finalizes objects past the checkpoint
			write(w, 200, 230)
			// SIGKILL: no Close. The engine resumes from the checkpoint's
			// state and replays rows 60.. in other bundles.
			if w, err = s.Resume(ctx, task, checkpointed); err != nil {
				t.Fatal(err)
			}
			write(w, 60, 150)
			write(w, 150, 260)
			deadline := time.Now().Add(20 * time.Second)
			for {
				objs := b.List(t, prefix)
				sort.Slice(objs, func(i, j int) bool { return path.Base(objs[i].Name) < path.Base(objs[j].Name) })
				var ids []int64
				for _, o := range objs {
					ids = append(ids, sinktest.IDs(t, format, o.Data)...)
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
						if len(o.Data) > maxBytes {
							t.Errorf("object %s: %d bytes, more than max_object_bytes %d", o.Name, len(o.Data), maxBytes)
						}
						if o.Close == "size" && len(o.Data) < maxBytes/2 {
							t.Errorf("object %s closed for size at %d bytes", o.Name, len(o.Data))
						}
						if i == len(objs)-1 && o.Close != "age" {
							t.Errorf("last object %s closed by %q, want age", o.Name, o.Close)
						}
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d rows in finalized objects after 20 s, want 260", len(ids))
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
