package engine_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/sluicehq/sluice/engine"
)

// lendingSource is a bounded source of one task that takes its batches from
// the runtime's engine.Batcher, as the Kafka source does, and stays at most
// two batches ahead of what the sink acknowledged, so that slices come back
// while the newest are still being processed. It records every slice it is
// handed that it had delivered before, with whether the sink had
// acknowledged every record of it by then. Its first batch is a slice of
// its own, which the runtime must never hand out.
type lendingSource struct {
	sliceSource
	sink *memSink

	reused  int      // slices handed out again
	early   []string // slices handed out again before their records were acknowledged
	dirty   []string // slices handed out holding a record (a response it would keep alive)
	foreign bool     // Batch returned the source's own slice
}

func (s *lendingSource) Run(ctx context.Context, h engine.Handler) error {
	b, ok := h.(engine.Batcher)
	if !ok {
		return fmt.Errorf("the runtime's Handler %T is not an engine.Batcher", h)
	}
	id := engine.TaskID{Topic: "t", Partition: 0}
	h.Assign(ctx, []engine.Assignment{{Task: id, Offset: -1}})
	delivered := map[*engine.Record]int{} // slice → the offset after its last record
	var own *engine.Record
	for i := 0; i < len(s.values); i += s.batch {
		end := min(i+s.batch, len(s.values))
		var recs []engine.Record
		if i == 0 {
			recs = make([]engine.Record, end-i, 16) // a power of two, like the pool's
			own = unsafe.SliceData(recs)
		} else {
			recs = b.Batch(end - i)
			if j := slices.IndexFunc(recs[:cap(recs)], func(r engine.Record) bool { return r.Value != nil || r.Offset != 0 }); j >= 0 {
				s.dirty = append(s.dirty, fmt.Sprintf("slice for offset %d holds offset %d at %d", i, recs[:cap(recs)][j].Offset, j))
			}
			recs = recs[:end-i]
			p := unsafe.SliceData(recs)
			if p == own {
				s.foreign = true
			}
			if upTo, ok := delivered[p]; ok {
				s.reused++
				if acked := len(s.sink.rows()); acked < upTo {
					s.early = append(s.early, fmt.Sprintf("slice of records up to %d handed out again with %d acknowledged", upTo, acked))
				}
			}
			delivered[p] = end
		}
		for j := i; j < end; j++ {
			recs[j-i] = engine.Record{Value: []byte(s.values[j]), Offset: int64(j), Timestamp: time.UnixMicro(int64(j + 1))}
		}
		h.Deliver(id, recs)
		// Stay at most two batches ahead of the sink: slices come back
		// while the newest ones are still being processed.
		for deadline := time.Now().Add(10 * time.Second); len(s.sink.rows()) < end-2*s.batch && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	h.End(id)
	return nil
}

// TestBatcherReusesSlicesOnlyAfterTheirBundle: the slices the runtime lends
// through engine.Batcher come back only once every record in them is in a
// complete bundle (here: acknowledged by the sink, including after failed
// flushes that replay the bundle from those very slices), every row reaches
// the sink once and in order, and a slice the source allocated itself is
// never handed out, and a slice handed out again holds no record of its
// last use (which would keep that record's fetch response alive).
func TestBatcherReusesSlicesOnlyAfterTheirBundle(t *testing.T) {
	for _, tc := range []struct {
		name           string
		batch, maxRecs int
		failFlushes    int
	}{
		{"bundle per batch", 10, 10, 0},
		{"bundles span batches", 10, 25, 0},
		{"failed flushes replay", 10, 10, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &memSink{failFlushes: tc.failFlushes}
			src := &lendingSource{sliceSource: sliceSource{values: values(500), batch: tc.batch}, sink: sink}
			p := &engine.Pipeline{
				Name: "p", Reads: func(string) bool { return true },
				Decoder: lineDecoder{}, Transform: passThrough{},
				Sinks: []engine.NamedSink{{Name: "mem", Sink: sink}}, MaxRecords: tc.maxRecs, MaxWait: 20 * time.Millisecond,
			}
			rt, err := engine.New(&engine.Job{Name: "j", Pod: "p0", Pipelines: []*engine.Pipeline{p}, Source: src, Store: &memStore{}, Interval: time.Hour,
				Retry: fastRetry})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := rt.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if got := sink.rows(); !slices.Equal(got, values(500)) {
				t.Fatalf("sink holds %d rows, want each of %d once, in order", len(got), 500)
			}
			if len(src.early) > 0 {
				t.Fatalf("slices reused before their bundle completed:\n%v", src.early)
			}
			if len(src.dirty) > 0 {
				t.Fatalf("lent slices not cleared:\n%v", src.dirty)
			}
			if src.foreign {
				t.Fatal("Batch handed out a slice the source had allocated itself")
			}
			// The race detector drops a quarter of sync.Pool's Puts at
			// random: of 49 lent slices, some still come back.
			if src.reused == 0 {
				t.Fatal("no slice was reused: the runtime never took its slices back")
			}
		})
	}
}
