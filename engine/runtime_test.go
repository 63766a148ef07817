package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// The doubles below stand in for real sources and sinks only in this unit test
// of the runtime's own rules; the real parts are exercised end to end in
// cmd/sluice's tests.

var lineSchema = engine.MustSchema(&engine.Type{Kind: engine.KindRecord, Fields: []engine.Field{{Name: "line", Type: &engine.Type{Kind: engine.KindString}}}})

type lineDecoder struct{}

func (lineDecoder) Schema() *engine.Schema { return lineSchema }
func (lineDecoder) Decode(rec *engine.Record, row *engine.Row) error {
	if string(rec.Value) == "bad" {
		return &engine.DecodeError{Err: errors.New("bad record")}
	}
	row.SetStr(0, engine.UnsafeString(rec.Value))
	return nil
}

type passThrough struct{}

func (passThrough) Output() *engine.Schema { return lineSchema }
func (passThrough) Eval(in, out *engine.Row) (bool, error) {
	out.Reset(1)
	out.SetStr(0, in.Str(0))
	return true, nil
}

// memSink records acknowledged rows; failFlushes makes the next N flushes fail.
type memSink struct {
	mu          sync.Mutex
	acked       []string
	failFlushes int
	flushes     int
}

type memWriter struct {
	s       *memSink
	pending []string
}

func (s *memSink) Open(context.Context, engine.TaskID) (engine.Writer, error) {
	return &memWriter{s: s}, nil
}
func (s *memSink) Close(context.Context) error { return nil }
func (w *memWriter) Write(row *engine.Row) error {
	w.pending = append(w.pending, string(row.Str(0)))
	return nil
}
func (w *memWriter) Flush(context.Context) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.flushes++
	if w.s.failFlushes > 0 {
		w.s.failFlushes--
		w.pending = nil
		return errors.New("destination unavailable")
	}
	w.s.acked = append(w.s.acked, w.pending...)
	w.pending = nil
	return nil
}
func (w *memWriter) Close(context.Context) error { return nil }

func (s *memSink) rows() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.acked)
}

// sliceSource is a bounded source of one task.
type sliceSource struct {
	values  []string
	batch   int
	mu      sync.Mutex
	commits []engine.Position
	metas   []string
}

func (s *sliceSource) Run(ctx context.Context, h engine.Handler) error {
	id := engine.TaskID{Topic: "t", Partition: 0}
	h.Assign(ctx, []engine.Assignment{{Task: id, Offset: -1}})
	for i := 0; i < len(s.values); i += s.batch {
		var recs []engine.Record
		for j := i; j < min(i+s.batch, len(s.values)); j++ {
			recs = append(recs, engine.Record{Value: []byte(s.values[j]), Offset: int64(j), Timestamp: time.UnixMicro(int64(j + 1))})
		}
		h.Deliver(id, recs)
	}
	h.End(id)
	return nil
}

func (s *sliceSource) Commit(_ context.Context, ps []engine.Position, meta string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits = append(s.commits, ps...)
	s.metas = append(s.metas, meta)
	return nil
}

type memStore struct {
	mu    sync.Mutex
	saved []*engine.Checkpoint
	fail  bool
}

func (m *memStore) Save(_ context.Context, cp *engine.Checkpoint) (string, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return "", 0, errors.New("store down")
	}
	m.saved = append(m.saved, cp)
	return fmt.Sprintf("ckpt-%d", cp.Seq), 10, nil
}
func (m *memStore) Load(context.Context, string) (*engine.Checkpoint, error) { return nil, nil }

func values(n int) []string {
	v := make([]string, n)
	for i := range v {
		v[i] = fmt.Sprintf("r%d", i)
	}
	return v
}

func runJob(t *testing.T, src *sliceSource, sink *memSink, dlq *memSink, store *memStore, maxRecords int) {
	t.Helper()
	p := &engine.Pipeline{
		Name: "p", Reads: func(string) bool { return true },
		Decoder: lineDecoder{}, Transform: passThrough{},
		Sinks: []engine.NamedSink{{Name: "mem", Sink: sink}}, MaxRecords: maxRecords, MaxWait: time.Second,
	}
	if dlq != nil {
		p.DeadLetter = dlq
	}
	rt, err := engine.New(&engine.Job{Name: "j", Pod: "p0", Pipelines: []*engine.Pipeline{p}, Source: src, Store: store, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := rt.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestBoundedJobDeliversEverythingOnceAndCommitsTheEnd(t *testing.T) {
	for _, tc := range []struct {
		name              string
		n, batch, maxRecs int
	}{
		{"one bundle", 10, 10, 100},
		{"bundles split inside batches", 1000, 64, 100},
		{"bundle per record", 20, 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &sliceSource{values: values(tc.n), batch: tc.batch}
			sink, store := &memSink{}, &memStore{}
			runJob(t, src, sink, nil, store, tc.maxRecs)
			if got := sink.rows(); !slices.Equal(got, values(tc.n)) {
				t.Fatalf("sink holds %d rows, want %d in order", len(got), tc.n)
			}
			last := src.commits[len(src.commits)-1]
			if last.Offset != int64(tc.n) {
				t.Fatalf("last commit at %d, want %d", last.Offset, tc.n)
			}
			if last.Watermark != int64(tc.n) {
				t.Fatalf("watermark %d, want the last record's time %d", last.Watermark, tc.n)
			}
			if got, want := src.metas[len(src.metas)-1], fmt.Sprintf("ckpt-%d", store.saved[len(store.saved)-1].Seq); got != want {
				t.Fatalf("commit metadata %q, want the checkpoint key %q", got, want)
			}
		})
	}
}

func TestFailedFlushReplaysTheBundle(t *testing.T) {
	src := &sliceSource{values: values(50), batch: 50}
	sink := &memSink{failFlushes: 2}
	runJob(t, src, sink, nil, &memStore{}, 10)
	if got := sink.rows(); !slices.Equal(got, values(50)) {
		t.Fatalf("after two failed flushes the sink holds %v, want every row once", got)
	}
	if sink.flushes < 7 {
		t.Fatalf("flushes = %d, want the 5 bundles plus 2 retries", sink.flushes)
	}
}

func TestUndecodableRecordsGoToTheDeadLetterDestination(t *testing.T) {
	vs := []string{"a", "bad", "b"}
	src := &sliceSource{values: vs, batch: 3}
	sink, dlq := &memSink{}, &memSink{}
	runJob(t, src, sink, dlq, &memStore{}, 100)
	if got := sink.rows(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("sink rows %v", got)
	}
	if got := dlq.rows(); len(got) != 1 || got[0] != "p" {
		t.Fatalf("dead letters %v, want one from pipeline p", got)
	}
}

func TestNoCommitWithoutADurableCheckpoint(t *testing.T) {
	src := &sliceSource{values: values(5), batch: 5}
	p := &engine.Pipeline{Name: "p", Reads: func(string) bool { return true }, Decoder: lineDecoder{}, Transform: passThrough{}, Sinks: []engine.NamedSink{{Name: "mem", Sink: &memSink{}}}}
	rt, err := engine.New(&engine.Job{Name: "j", Pod: "p0", Pipelines: []*engine.Pipeline{p}, Source: src, Store: &memStore{fail: true}, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Run(context.Background()); err == nil {
		t.Fatal("Run succeeded with a store that cannot save")
	}
	if len(src.commits) != 0 {
		t.Fatalf("committed %v without a durable checkpoint", src.commits)
	}
}

// prepDecoder is lineDecoder that notes, before writing, what the row it is
// handed holds from the record before; it says it prepares its rows when
// prepares is set.
type prepDecoder struct {
	prepares bool
	mu       sync.Mutex
	seen     []string
}

func (d *prepDecoder) Schema() *engine.Schema { return lineSchema }
func (d *prepDecoder) PreparesRows() bool     { return d.prepares }
func (d *prepDecoder) Decode(rec *engine.Record, row *engine.Row) error {
	d.mu.Lock()
	d.seen = append(d.seen, string(row.Str(0)))
	d.mu.Unlock()
	row.SetStr(0, engine.UnsafeString(rec.Value))
	return nil
}

// TestRowPreparerRowNotReset: a decoder that prepares its rows itself
// (engine.RowPreparer) is handed the previous record's row as it is; any
// other decoder gets a row Reset before each record.
func TestRowPreparerRowNotReset(t *testing.T) {
	for _, prepares := range []bool{false, true} {
		t.Run(fmt.Sprint("prepares=", prepares), func(t *testing.T) {
			dec := &prepDecoder{prepares: prepares}
			src, sink := &sliceSource{values: values(5), batch: 5}, &memSink{}
			p := &engine.Pipeline{
				Name: "p", Reads: func(string) bool { return true },
				Decoder: dec, Transform: passThrough{},
				Sinks: []engine.NamedSink{{Name: "mem", Sink: sink}}, MaxRecords: 100, MaxWait: time.Second,
			}
			rt, err := engine.New(&engine.Job{Name: "j", Pod: "p0", Pipelines: []*engine.Pipeline{p}, Source: src, Store: &memStore{}, Interval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := rt.Run(ctx); err != nil {
				t.Fatal(err)
			}
			want := []string{"", "", "", "", ""}
			if prepares {
				want = append([]string{""}, values(4)...)
			}
			if !slices.Equal(dec.seen, want) {
				t.Fatalf("rows handed to Decode held %q, want %q", dec.seen, want)
			}
			if got := sink.rows(); !slices.Equal(got, values(5)) {
				t.Fatalf("sink holds %v", got)
			}
		})
	}
}
