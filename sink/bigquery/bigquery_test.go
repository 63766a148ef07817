package bigquery_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/bigquery"
	"github.com/sluicehq/sluice/sink/bigquery/bqtest"
)

const table = "projects/p/datasets/d/tables/t"

func str() *engine.Type { return &engine.Type{Kind: engine.KindString} }

func nullable(t *engine.Type) *engine.Type {
	return &engine.Type{Kind: engine.KindUnion, Branches: []*engine.Type{{Kind: engine.KindNull}, t}}
}

// testSchema covers every mapping of doc.go.
func testSchema() *engine.Schema {
	loc := &engine.Type{Kind: engine.KindRecord, Name: "acme.Location", Fields: []engine.Field{
		{Name: "country", Type: str()},
		{Name: "city", Type: nullable(str())},
	}}
	port := &engine.Type{Kind: engine.KindRecord, Name: "acme.Port", Fields: []engine.Field{
		{Name: "n", Type: &engine.Type{Kind: engine.KindInt}},
		{Name: "proto", Type: str()},
	}}
	return engine.MustSchema(&engine.Type{Kind: engine.KindRecord, Name: "acme.Out", Fields: []engine.Field{
		{Name: "id", Type: &engine.Type{Kind: engine.KindLong}},
		{Name: "src_ip", Type: str()},
		{Name: "allowed", Type: &engine.Type{Kind: engine.KindBool}},
		{Name: "score", Type: &engine.Type{Kind: engine.KindDouble}},
		{Name: "action", Type: &engine.Type{Kind: engine.KindEnum, Name: "acme.Action", Symbols: []string{"ALLOW", "DENY"}}},
		{Name: "ts", Type: &engine.Type{Kind: engine.KindLong, Logical: engine.TimestampMillis}},
		{Name: "day", Type: &engine.Type{Kind: engine.KindInt, Logical: engine.Date}},
		{Name: "amount", Type: &engine.Type{Kind: engine.KindBytes, Logical: engine.Decimal, Precision: 10, Scale: 2}},
		{Name: "src_location", Type: nullable(loc)},
		{Name: "tags", Type: &engine.Type{Kind: engine.KindArray, Items: str()}},
		{Name: "ports", Type: &engine.Type{Kind: engine.KindArray, Items: port}},
		{Name: "labels", Type: &engine.Type{Kind: engine.KindMap, Items: &engine.Type{Kind: engine.KindLong}}},
		{Name: "note", Type: nullable(str())},
	}})
}

// fill writes row i of a deterministic sequence.
func fill(s *engine.Schema, row *engine.Row, i int) {
	row.Reset(s.Width())
	slot := func(p string) int {
		c, ok := s.Lookup(p)
		if !ok {
			panic(p)
		}
		return c.Slot
	}
	row.SetInt(slot("id"), int64(i))
	row.SetStr(slot("src_ip"), row.String(fmt.Appendf(nil, "10.0.0.%d", i%256)))
	row.SetBool(slot("allowed"), i%2 == 0)
	row.SetFloat(slot("score"), float64(i)/4)
	row.Slots[slot("action")] = engine.Slot{N: uint64(i % 2), S: []string{"ALLOW", "DENY"}[i%2]}
	row.SetInt(slot("ts"), 1700000000000+int64(i))
	row.SetInt(slot("day"), 19700+int64(i%7))
	row.SetStr(slot("amount"), string([]byte{0xff, 0x38})) // -200 → -2.00
	if i%3 == 0 {
		row.SetNull(slot("src_location"))
		row.SetNull(slot("src_location.country"))
		row.SetNull(slot("src_location.city"))
	} else {
		row.SetStr(slot("src_location.country"), "US")
		if i%3 == 1 {
			row.SetStr(slot("src_location.city"), "Austin")
		} else {
			row.SetNull(slot("src_location.city"))
		}
	}
	tags := row.Grow(2)
	row.Ext[tags].S, row.Ext[tags+1].S = "a", "b"
	row.Slots[slot("tags")] = engine.Slot{N: uint64(tags), L: 2}
	ports := row.Grow(3) // one element: record slot, n, proto
	row.Ext[ports+1].N, row.Ext[ports+2].S = uint64(443), "tcp"
	row.Slots[slot("ports")] = engine.Slot{N: uint64(ports), L: 1}
	labels := row.Grow(2) // one entry: key, value
	row.Ext[labels].S, row.Ext[labels+1].N = "k", uint64(i)
	row.Slots[slot("labels")] = engine.Slot{N: uint64(labels), L: 1}
	row.SetNull(slot("note"))
}

func want(i int) map[string]any {
	m := map[string]any{
		"id": strconv.Itoa(i), "src_ip": fmt.Sprintf("10.0.0.%d", i%256), "allowed": i%2 == 0,
		"score": float64(i) / 4, "action": []string{"ALLOW", "DENY"}[i%2],
		"ts": strconv.FormatInt((1700000000000+int64(i))*1000, 10), "day": float64(19700 + i%7),
		"amount": "-2.00", "tags": []any{"a", "b"},
		"ports":  []any{map[string]any{"n": "443", "proto": "tcp"}},
		"labels": []any{map[string]any{"key": "k", "value": strconv.Itoa(i)}},
	}
	switch i % 3 {
	case 1:
		m["src_location"] = map[string]any{"country": "US", "city": "Austin"}
	case 2:
		m["src_location"] = map[string]any{"country": "US"}
	}
	return m
}

func writeRange(t *testing.T, s *engine.Schema, w engine.Writer, from, to int) {
	t.Helper()
	row := engine.NewRow(s.Width())
	for i := from; i < to; i++ {
		fill(s, row, i)
		row.Origin = engine.Origin{Task: engine.TaskID{Topic: "in"}, Offset: originOffset(i)}
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
	}
}

// originOffset is the input offset writeRange gives row i.
func originOffset(i int) int64 { return 1000 + int64(i) }

func ids(t *testing.T, srv *bqtest.Server) []int {
	t.Helper()
	var out []int
	for _, m := range srv.Maps(t, table) {
		id, _ := strconv.Atoi(m["id"].(string))
		out = append(out, id)
	}
	return out
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func TestBigQueryTypes(t *testing.T) {
	ctx := t.Context()
	srv := bqtest.Start(t)
	schema := testSchema()
	s, err := bigquery.New(ctx, bigquery.Config{Project: "p", Dataset: "d", Table: "t", Endpoint: "http://" + srv.Addr()}, schema, engine.SinkEnv{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	w, err := s.Open(ctx, engine.TaskID{Topic: "in", Partition: 0})
	if err != nil {
		t.Fatal(err)
	}
	writeRange(t, schema, w, 0, 3)
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var wantRows []map[string]any
	for i := range 3 {
		wantRows = append(wantRows, want(i))
	}
	if diff := cmp.Diff(wantRows, srv.Maps(t, table)); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	kinds := map[string]string{}
	fs := srv.Descriptor(table).Fields()
	for i := range fs.Len() {
		f := fs.Get(i)
		k := f.Kind().String()
		if f.Cardinality() == protoreflect.Repeated {
			k = "repeated " + k
		}
		kinds[string(f.Name())] = k
	}
	wantKinds := map[string]string{
		"id": "int64", "src_ip": "string", "allowed": "bool", "score": "double", "action": "string",
		"ts": "int64", "day": "int32", "amount": "string", "src_location": "message",
		"tags": "repeated string", "ports": "repeated message", "labels": "repeated message", "note": "string",
	}
	if diff := cmp.Diff(wantKinds, kinds); diff != "" {
		t.Errorf("descriptor (-want +got):\n%s", diff)
	}
}

// TestBigQueryCommittedExactlyOnce writes bundles to a committed stream,
// "crashes" (the sink is dropped without Close, with rows written but not
// flushed), resumes from the state of an earlier checkpoint and replays from
// there with other bundle boundaries and transient faults: every row is in
// the table exactly once.
func TestBigQueryCommittedExactlyOnce(t *testing.T) {
	ctx := t.Context()
	srv := bqtest.Start(t)
	var calls atomic.Int64
	srv.Fail = func(a bqtest.Append) error {
		switch calls.Add(1) {
		case 3:
			return status.Error(codes.Unavailable, "try again")
		case 9:
			return status.Error(codes.ResourceExhausted, "Exceeds 'AppendRows throughput' quota")
		}
		return nil
	}
	schema := testSchema()
	cfg := bigquery.Config{Project: "p", Dataset: "d", Table: "t", Mode: bigquery.ModeCommitted, MaxBatchRows: 16}
	task := engine.TaskID{Topic: "in", Partition: 3}
	open := func() *bigquery.Sink {
		s, err := bigquery.New(ctx, cfg, schema, engine.SinkEnv{Name: "bigquery/0"},
			bigquery.WithClient(srv.Client(t, "p")), bigquery.WithBackoff(time.Millisecond, 10*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	s1 := open()
	w1, err := s1.Open(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	var checkpoint bigquery.State
	for _, b := range [][2]int{{0, 30}, {30, 70}, {70, 100}} {
		writeRange(t, schema, w1, b[0], b[1])
		if err := w1.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if b[1] == 30 {
			checkpoint = w1.(*bigquery.Writer).Position() // the engine checkpoints input offset 30 with it
		}
	}
	writeRange(t, schema, w1, 100, 120) // never flushed: lost in the crash
	// Crash: s1 and w1 are dropped without Close.

	if diff := cmp.Diff(seq(0, 100), ids(t, srv)); diff != "" {
		t.Fatalf("before the crash (-want +got):\n%s", diff)
	}

	s2 := open()
	defer s2.Close(ctx)
	w2, err := s2.ResumeFrom(ctx, task, checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][2]int{{30, 55}, {55, 111}, {111, 150}} {
		writeRange(t, schema, w2, b[0], b[1])
		if err := w2.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := w2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(seq(0, 150), ids(t, srv)); diff != "" {
		t.Errorf("after the replay (-want +got):\n%s", diff)
	}
	if got := w2.Position(); got.Stream != checkpoint.Stream || got.Offset != 150 {
		t.Errorf("state = %+v, want stream %s at 150", got, checkpoint.Stream)
	}
}

// TestBigQueryDeadLetter: rows BigQuery rejects go to the dead-letter sink,
// the others are appended.
func TestBigQueryDeadLetter(t *testing.T) {
	ctx := t.Context()
	srv := bqtest.Start(t)
	srv.Reject = func(_ string, m *dynamicpb.Message) string {
		if m.Get(m.Descriptor().Fields().ByName("id")).Int()%5 == 0 {
			return "bad row"
		}
		return ""
	}
	dl := &memSink{}
	schema := testSchema()
	for _, mode := range []string{bigquery.ModeDefault, bigquery.ModeCommitted} {
		t.Run(mode, func(t *testing.T) {
			s, err := bigquery.New(ctx, bigquery.Config{Project: "p", Dataset: "d", Table: mode, Mode: mode}, schema,
				engine.SinkEnv{Pipeline: "p1", DeadLetter: dl}, bigquery.WithClient(srv.Client(t, "p")))
			if err != nil {
				t.Fatal(err)
			}
			w, err := s.Open(ctx, engine.TaskID{Topic: "in"})
			if err != nil {
				t.Fatal(err)
			}
			writeRange(t, schema, w, 0, 12)
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, m := range srv.Maps(t, "projects/p/datasets/d/tables/"+mode) {
				id, _ := strconv.Atoi(m["id"].(string))
				got = append(got, id)
			}
			if diff := cmp.Diff([]int{1, 2, 3, 4, 6, 7, 8, 9, 11}, got); diff != "" {
				t.Errorf("table (-want +got):\n%s", diff)
			}
		})
	}
	if got := dl.flushed.Load(); got != 6 {
		t.Errorf("dead letters flushed = %d, want 6", got)
	}
	// Each dead letter names the input offset of the rejected row.
	want := []int64{originOffset(0), originOffset(5), originOffset(10), originOffset(0), originOffset(5), originOffset(10)}
	if diff := cmp.Diff(want, dl.offsets()); diff != "" {
		t.Errorf("dead-letter offsets (-want +got):\n%s", diff)
	}
}

func TestBigQuerySchemaMismatch(t *testing.T) {
	ctx := t.Context()
	srv := bqtest.Start(t)
	srv.SetColumns(table, "id")
	schema := testSchema()
	s, err := bigquery.New(ctx, bigquery.Config{Project: "p", Dataset: "d", Table: "t"}, schema, engine.SinkEnv{}, bigquery.WithClient(srv.Client(t, "p")))
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Open(ctx, engine.TaskID{Topic: "in"})
	if err != nil {
		t.Fatal(err)
	}
	writeRange(t, schema, w, 0, 2)
	err = w.Flush(ctx)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Flush = %v, want INVALID_ARGUMENT", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  bigquery.Config
		ok   bool
	}{
		{"defaults", bigquery.Config{Project: "p", Dataset: "d", Table: "t"}, true},
		{"committed", bigquery.Config{Project: "p", Dataset: "d", Table: "t", Mode: "committed"}, true},
		{"bad mode", bigquery.Config{Project: "p", Dataset: "d", Table: "t", Mode: "pending"}, false},
		{"no table", bigquery.Config{Project: "p", Dataset: "d"}, false},
		{"too big", bigquery.Config{Project: "p", Dataset: "d", Table: "t", MaxBatchBytes: 64 << 20}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// memSink is a dead-letter sink that counts flushed rows and keeps their
// offsets.
type memSink struct {
	flushed atomic.Int64
	mu      sync.Mutex
	offs    []int64
}

func (m *memSink) offsets() []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.offs)
}

func (m *memSink) Open(context.Context, engine.TaskID) (engine.Writer, error) {
	return &memWriter{s: m}, nil
}
func (m *memSink) Close(context.Context) error { return nil }

type memWriter struct {
	s *memSink
	n int64
}

func (w *memWriter) Write(row *engine.Row) error {
	if row.Str(engine.DLStage) != "sink" || row.Str(engine.DLValue) == "" {
		return fmt.Errorf("bad dead letter")
	}
	w.n++
	w.s.mu.Lock()
	w.s.offs = append(w.s.offs, row.Int(engine.DLOffset))
	w.s.mu.Unlock()
	return nil
}
func (w *memWriter) Flush(context.Context) error { w.s.flushed.Add(w.n); w.n = 0; return nil }
func (w *memWriter) Close(context.Context) error { return nil }

func TestStateRoundTrip(t *testing.T) {
	for _, st := range []bigquery.State{{}, {Stream: table + "/streams/s0001", Offset: 1 << 40}} {
		t.Run(st.Stream, func(t *testing.T) {
			b, err := st.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got bigquery.State
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(st, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	var s bigquery.State
	if err := s.UnmarshalBinary([]byte{9}); err == nil {
		t.Error("UnmarshalBinary accepted an unknown version")
	}
}

// TestSinkOutlivesBuildContext: the context New is given ends when the
// worker is told to drain (it is the process's signal context), and the
// drain still has to flush. A client built with that context died with it,
// and every append of the drain failed with "context canceled".
func TestSinkOutlivesBuildContext(t *testing.T) {
	srv := bqtest.Start(t)
	schema := testSchema()
	buildCtx, cancel := context.WithCancel(t.Context())
	s, err := bigquery.New(buildCtx, bigquery.Config{Project: "p", Dataset: "d", Table: "t", Mode: bigquery.ModeCommitted, Endpoint: "http://" + srv.Addr()},
		schema, engine.SinkEnv{Pipeline: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	cancel()
	ctx := t.Context()
	w, err := s.Open(ctx, engine.TaskID{Topic: "in"})
	if err != nil {
		t.Fatal(err)
	}
	writeRange(t, schema, w, 0, 5)
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("flush after the build context ended: %v", err)
	}
	if got := len(srv.Rows("projects/p/datasets/d/tables/t")); got != 5 {
		t.Errorf("table has %d rows, want 5", got)
	}
}
