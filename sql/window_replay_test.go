package sql_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/backoff"
	"github.com/sluicehq/sluice/sql"
)

var backoffFast = backoff.Policy{Base: time.Millisecond, Max: 5 * time.Millisecond}

// flakySink fails every third flush of each writer, dropping what the
// writer held, as a destination that did not take the rows.
type flakySink struct {
	rowSink
	mu      sync.Mutex
	flushes int
}

type flakyWriter struct {
	*rowWriter
	s *flakySink
}

func (s *flakySink) Open(ctx context.Context, task engine.TaskID) (engine.Writer, error) {
	w, _ := s.rowSink.Open(ctx, task)
	return &flakyWriter{rowWriter: w.(*rowWriter), s: s}, nil
}

func (w *flakyWriter) Flush(ctx context.Context) error {
	w.s.mu.Lock()
	w.s.flushes++
	fail := w.s.flushes%3 == 1
	w.s.mu.Unlock()
	if fail {
		w.pending = nil
		return errors.New("destination unavailable")
	}
	return w.rowWriter.Flush(ctx)
}

// TestWindowReplayAfterFailedFlush: a bundle whose flush failed is
// replayed into its writers; the windows it emitted must come out once,
// with the same values, because the aggregate is reloaded from the task's
// store (its state at the bundle's start) before the replay.
func TestWindowReplayAfterFailedFlush(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).UnixMicro()
	recs := make([][]genRec, 2)
	for i := range 20_000 {
		p := rng.IntN(2)
		r := genRec{part: p, ts: base + int64(i)*5_000, bytes: rng.Int64N(1000), src: []string{"a", "b", "c", "d"}[rng.IntN(4)], action: "x"}
		r.offset = int64(len(recs[p]))
		recs[p] = append(recs[p], r)
	}
	q := "SELECT window_start, src_ip, COUNT(*) AS c, SUM(bytes) AS s FROM input GROUP BY TUMBLE(ts, '10 seconds'), src_ip"
	run := func(sink engine.Sink, rows func() []string) []string {
		dir := t.TempDir()
		store, err := checkpoint.NewDir(filepath.Join(dir, "ckpt"))
		if err != nil {
			t.Fatal(err)
		}
		states, err := checkpoint.NewTaskStates(checkpoint.NewState(store), filepath.Join(dir, "state"), "replay")
		if err != nil {
			t.Fatal(err)
		}
		tr, err := sql.CompileTransform(q, trafficSchema)
		if err != nil {
			t.Fatal(err)
		}
		rt, err := engine.New(&engine.Job{
			Name: "replay", Pod: "p", Source: &genSource{parts: recs}, Store: checkpoint.New(store), State: states,
			Retry: backoffFast,
			Pipelines: []*engine.Pipeline{{Name: "w", Reads: func(string) bool { return true }, Decoder: genDecoder{}, Transform: tr,
				Sinks: []engine.NamedSink{{Name: "out", Sink: sink}}, MaxRecords: 700}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		got := rows()
		slices.Sort(got)
		return got
	}
	schema := func() *engine.Schema {
		tr, _ := sql.CompileTransform(q, trafficSchema)
		return tr.Output()
	}()
	clean := &rowSink{schema: schema}
	want := run(clean, func() []string { return clean.rows })
	flaky := &flakySink{rowSink: rowSink{schema: schema}}
	got := run(flaky, func() []string { return flaky.rows })
	if flaky.flushes < 10 {
		t.Fatalf("only %d flushes", flaky.flushes)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows after failed flushes (-clean +flaky):\n%s", truncate(diff, 3000))
	}
	if len(want) == 0 {
		t.Fatal("no rows")
	}
}
