package sql_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sql"
)

// groupLog is what a Kafka group keeps: each partition's committed offset
// and its metadata (the checkpoint key).
type groupLog struct {
	mu      sync.Mutex
	offsets map[int32]int64
	metas   map[int32]string
}

func (g *groupLog) get(p int32) (int64, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if off, ok := g.offsets[p]; ok {
		return off, g.metas[p]
	}
	return -1, ""
}

// memberSource is one group member's source: it is assigned some
// partitions at their committed offsets, and the test feeds their records.
type memberSource struct {
	log   *groupLog
	parts []int32
	recs  [][]genRec
	ready chan struct{}
	end   chan struct{}

	mu   sync.Mutex // guards h, next
	h    engine.Handler
	next map[int32]int64
}

func newMember(log *groupLog, recs [][]genRec, parts ...int32) *memberSource {
	return &memberSource{log: log, parts: parts, recs: recs, ready: make(chan struct{}), end: make(chan struct{}), next: map[int32]int64{}}
}

func (s *memberSource) Run(ctx context.Context, h engine.Handler) error {
	var as []engine.Assignment
	for _, p := range s.parts {
		off, meta := s.log.get(p)
		as = append(as, engine.Assignment{Task: engine.TaskID{Topic: "events", Partition: p}, Offset: off, Meta: meta})
		s.next[p] = max(off, 0)
	}
	h.Assign(ctx, as)
	s.mu.Lock()
	s.h = h
	s.mu.Unlock()
	close(s.ready)
	select {
	case <-ctx.Done():
	case <-s.end:
		for _, a := range as {
			h.End(a.Task)
		}
	}
	return nil
}

// feed delivers each partition's records up to the fraction frac of them.
func (s *memberSource) feed(frac float64) {
	<-s.ready
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.parts {
		to := int64(float64(len(s.recs[p])) * frac)
		for s.next[p] < to {
			hi := min(s.next[p]+300, to)
			var out []engine.Record
			for _, r := range s.recs[p][s.next[p]:hi] {
				out = append(out, engine.Record{Value: encodeRec(r), Offset: r.offset, Timestamp: time.UnixMicro(r.ts)})
			}
			s.h.Deliver(engine.TaskID{Topic: "events", Partition: p}, out)
			s.next[p] = hi
		}
	}
}

func (s *memberSource) Commit(_ context.Context, ps []engine.Position, meta string) error {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	for _, p := range ps {
		if !slices.Contains(s.parts, p.Task.Partition) {
			return errors.New("not the owner")
		}
		s.log.offsets[p.Task.Partition] = p.Offset
		s.log.metas[p.Task.Partition] = meta
	}
	return nil
}

// waitCommitted waits until the member's partitions are committed at
// least up to frac of their records.
func (s *memberSource) waitCommitted(t *testing.T, frac float64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for _, p := range s.parts {
		to := int64(float64(len(s.recs[p])) * frac)
		for {
			off, _ := s.log.get(p)
			if off >= to {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("partition %d committed at %d, want %d", p, off, to)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// offsetSink keeps, per task, rows at offsets as a BigQuery committed
// stream does: a writer resumed at an offset rewrites nothing below what
// the stream already holds, so a replay is deduplicated.
type offsetSink struct {
	mu   sync.Mutex
	rows map[int32][]string
}

type offsetWriter struct {
	s       *offsetSink
	part    int32
	pos     int
	pending []string
}

func (s *offsetSink) Open(_ context.Context, task engine.TaskID) (engine.Writer, error) {
	return &offsetWriter{s: s, part: task.Partition}, nil
}

func (s *offsetSink) Resume(_ context.Context, task engine.TaskID, state []byte) (engine.Writer, error) {
	return &offsetWriter{s: s, part: task.Partition, pos: int(binary.LittleEndian.Uint64(state))}, nil
}

func (s *offsetSink) Close(context.Context) error { return nil }

func (w *offsetWriter) Write(row *engine.Row) error {
	w.pending = append(w.pending, row.Str(0))
	return nil
}

func (w *offsetWriter) Flush(context.Context) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	rows := w.s.rows[w.part]
	for i, r := range w.pending {
		if at := w.pos + i; at < len(rows) {
			if rows[at] != r {
				return fmt.Errorf("offset %d holds %s, the replay writes %s", at, rows[at], r)
			}
			continue
		}
		rows = append(rows, r)
	}
	w.s.rows[w.part] = rows
	w.pos += len(w.pending)
	w.pending = w.pending[:0]
	return nil
}

func (w *offsetWriter) State() []byte { return binary.LittleEndian.AppendUint64(nil, uint64(w.pos)) }

func (w *offsetWriter) Close(context.Context) error { return nil }

// TestDedupAcrossRebalance sends records of which 20 % repeat an earlier
// event id of their partition, some across a crash and a rebalance: member
// a crashes, members b and c take the partitions over (b drains, c
// crashes), and member d finishes. Into a sink that deduplicates replays by
// offset, each event id comes out exactly once: the dedup state moves with
// the tasks in the checkpoints, consistent with their committed offsets.
func TestDedupAcrossRebalance(t *testing.T) {
	const (
		parts = 6
		n     = 30_000
	)
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).UnixMicro()
	recs := make([][]genRec, parts)
	ids := map[string]bool{}
	for i := range n {
		p := rng.IntN(parts)
		r := genRec{part: p, ts: base + int64(i)*10_000, bytes: int64(i)}
		if prev := recs[p]; len(prev) > 10 && rng.IntN(100) < 20 {
			// A duplicate of an event of the same partition up to a few
			// hundred records back (seconds of event time).
			r.src = prev[len(prev)-1-rng.IntN(min(len(prev)-1, 400))].src
		} else {
			r.src = "ev-" + strconv.Itoa(i)
			ids[r.src] = true
		}
		r.action = "x"
		r.offset = int64(len(recs[p]))
		recs[p] = append(recs[p], r)
	}

	dir := t.TempDir()
	store, err := checkpoint.NewDir(filepath.Join(dir, "ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	inner, err := sql.CompileTransform("SELECT src_ip AS id FROM input", trafficSchema)
	if err != nil {
		t.Fatal(err)
	}
	dedup, err := sql.CompileDedup("src_ip", "ts", 10*time.Minute, inner, trafficSchema)
	if err != nil {
		t.Fatal(err)
	}
	sink := &offsetSink{rows: map[int32][]string{}}
	log := &groupLog{offsets: map[int32]int64{}, metas: map[int32]string{}}
	start := func(pod string, src *memberSource) (*engine.Runtime, chan error) {
		states, err := checkpoint.NewTaskStates(checkpoint.NewState(store), filepath.Join(dir, "state-"+pod), "dedup")
		if err != nil {
			t.Fatal(err)
		}
		rt, err := engine.New(&engine.Job{
			Name: "dedup", Pod: pod, Source: src, Store: checkpoint.New(store), State: states, Interval: 100 * time.Millisecond,
			Pipelines: []*engine.Pipeline{{
				Name: "ids", Reads: func(string) bool { return true }, Decoder: genDecoder{}, Transform: dedup,
				Sinks: []engine.NamedSink{{Name: "bq", Sink: sink}}, MaxRecords: 200,
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- rt.Run(t.Context()) }()
		return rt, done
	}

	// a owns everything, is checkpointed at 30 %, then crashes with 10 %
	// more in flight.
	a := newMember(log, recs, 0, 1, 2, 3, 4, 5)
	rtA, doneA := start("a", a)
	a.feed(0.3)
	a.waitCommitted(t, 0.3)
	a.feed(0.4)
	time.Sleep(30 * time.Millisecond)
	rtA.Abort()
	<-doneA

	// b and c split the partitions; b drains at 60 %, c crashes past it.
	b := newMember(log, recs, 0, 1, 2)
	c := newMember(log, recs, 3, 4, 5)
	rtB, doneB := start("b", b)
	rtC, doneC := start("c", c)
	b.feed(0.6)
	c.feed(0.6)
	b.waitCommitted(t, 0.6)
	c.waitCommitted(t, 0.6)
	c.feed(0.7)
	rtB.Drain()
	time.Sleep(30 * time.Millisecond)
	rtC.Abort()
	if err := <-doneB; err != nil {
		t.Fatalf("b drain: %v", err)
	}
	<-doneC

	// d takes everything back and reads to the end.
	d := newMember(log, recs, 0, 1, 2, 3, 4, 5)
	_, doneD := start("d", d)
	d.feed(1)
	close(d.end)
	if err := <-doneD; err != nil {
		t.Fatalf("d: %v", err)
	}

	seen := map[string]int{}
	for _, rows := range sink.rows {
		for _, id := range rows {
			seen[id]++
		}
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("event %s written %d times", id, k)
		}
		if !ids[id] {
			t.Errorf("event %s was never sent", id)
		}
	}
	if len(seen) != len(ids) {
		t.Errorf("%d distinct events written, %d sent", len(seen), len(ids))
	}
	t.Logf("%d records, %d distinct events", n, len(ids))
}
