package generate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	wire "github.com/sluicehq/sluice/engine/avro"
	"github.com/sluicehq/sluice/source/avro"
)

// handler records what a source hands the runtime.
type handler struct {
	mu       sync.Mutex
	assigned []engine.Assignment
	recs     []engine.Record
	ended    bool
	onBatch  func(n int)
}

func (h *handler) Assign(_ context.Context, a []engine.Assignment) {
	h.assigned = append(h.assigned, a...)
}
func (h *handler) Revoke(context.Context, []engine.TaskID) {}
func (h *handler) End(engine.TaskID)                       { h.ended = true }
func (h *handler) Deliver(_ engine.TaskID, recs []engine.Record) {
	h.mu.Lock()
	h.recs = append(h.recs, recs...)
	n := len(h.recs)
	h.mu.Unlock()
	if h.onBatch != nil {
		h.onBatch(n)
	}
}

func (h *handler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.recs)
}

func readSchema(t *testing.T, name string) *engine.Type {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "schemas", name))
	if err != nil {
		t.Fatal(err)
	}
	typ, err := avro.ParseSchema(b)
	if err != nil {
		t.Fatal(err)
	}
	return typ
}

// TestTrafficFingerprints pins the fingerprints by which a generate source
// recognises the traffic schemas to the example schemas themselves.
func TestTrafficFingerprints(t *testing.T) {
	if fp := wire.Fingerprint(readSchema(t, "traffic.avsc")); fp != TrafficFingerprint {
		t.Errorf("traffic.avsc fingerprint %016x, TrafficFingerprint %016x", fp, TrafficFingerprint)
	}
	if fp := wire.Fingerprint(readSchema(t, "traffic_v2.avsc")); fp != TrafficV2Fingerprint {
		t.Errorf("traffic_v2.avsc fingerprint %016x, TrafficV2Fingerprint %016x", fp, TrafficV2Fingerprint)
	}
	start := time.UnixMicro(Epoch)
	if got, want := NewDatums(readSchema(t, "traffic.avsc"), 3, start).AppendAvro(nil), NewTraffic(3).AppendAvro(nil); !bytes.Equal(got, want) {
		t.Error("the traffic schema does not get the traffic generator")
	}
	if got, want := NewDatums(readSchema(t, "traffic_v2.avsc"), 3, start).AppendAvro(nil), NewTraffic(3).AppendAvroV2(nil); !bytes.Equal(got, want) {
		t.Error("the v2 traffic schema does not get the v2 traffic generator")
	}
}

// TestRandomDecodes: what Random writes for a schema of every kind and
// logical type decodes with that schema, to the last byte.
func TestRandomDecodes(t *testing.T) {
	schema, err := avro.ParseSchema([]byte(`{"type":"record","name":"All","fields":[
		{"name":"n","type":"null"},{"name":"b","type":"boolean"},{"name":"i","type":"int"},{"name":"l","type":"long"},
		{"name":"f","type":"float"},{"name":"d","type":"double"},{"name":"s","type":"string"},{"name":"by","type":"bytes"},
		{"name":"fx","type":{"type":"fixed","name":"F","size":5}},
		{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
		{"name":"date","type":{"type":"int","logicalType":"date"}},
		{"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
		{"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
		{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
		{"name":"tsu","type":{"type":"long","logicalType":"timestamp-micros"}},
		{"name":"u","type":{"type":"string","logicalType":"uuid"}},
		{"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":3}},
		{"name":"dur","type":{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}},
		{"name":"opt","type":["null","string"]},
		{"name":"multi","type":["int","string",{"type":"array","items":"long"}]},
		{"name":"arr","type":{"type":"array","items":{"type":"record","name":"R","fields":[{"name":"x","type":"int"}]}}},
		{"name":"m","type":{"type":"map","values":["null","double"]}},
		{"name":"rec","type":"R"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := avro.Compile(schema, schema)
	if err != nil {
		t.Fatal(err)
	}
	g := NewRandom(schema, 1, Epoch)
	row := engine.NewRow(p.Width())
	for i := 0; i < 2000; i++ {
		data := g.AppendAvro(nil)
		if err := p.Decode(data, row); err != nil {
			t.Fatalf("datum %d (% x): %v", i, data, err)
		}
	}
}

// TestSourceBounded: a source with a count delivers exactly count records,
// offsets 0..count-1, ends its task and returns; one seed gives the same
// records twice; WithStartAt resumes with the records a full run has there.
func TestSourceBounded(t *testing.T) {
	schema := readSchema(t, "traffic.avsc")
	run := func(opts ...Option) *handler {
		t.Helper()
		s, err := New(schema, append([]Option{WithSeed(9), WithCount(2500), WithBatch(300)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		h := &handler{}
		if err := s.Run(context.Background(), h); err != nil {
			t.Fatal(err)
		}
		if !h.ended {
			t.Fatal("the task did not end")
		}
		return h
	}
	a, b := run(), run()
	if len(a.recs) != 2500 {
		t.Fatalf("%d records, want 2500", len(a.recs))
	}
	for i := range a.recs {
		if a.recs[i].Offset != int64(i) || !bytes.Equal(a.recs[i].Value, b.recs[i].Value) {
			t.Fatalf("record %d: offset %d, same value in both runs %v", i, a.recs[i].Offset, bytes.Equal(a.recs[i].Value, b.recs[i].Value))
		}
	}
	c := run(WithStartAt(1000, "ckpt"))
	if len(c.recs) != 1500 || c.assigned[0].Offset != 1000 || c.assigned[0].Meta != "ckpt" {
		t.Fatalf("resumed: %d records, assignment %+v", len(c.recs), c.assigned)
	}
	for i, r := range c.recs {
		if r.Offset != int64(1000+i) || !bytes.Equal(r.Value, a.recs[1000+i].Value) {
			t.Fatalf("resumed record %d differs from the full run's", r.Offset)
		}
	}
}

// TestSourceUnbounded: without a count the source runs until its context
// ends and returns nil; Pause stops it until Resume; Rate paces it.
func TestSourceUnbounded(t *testing.T) {
	schema := readSchema(t, "traffic.avsc")
	s, err := New(schema, WithRate(2000), WithTask(engine.TaskID{Topic: "t"}))
	if err != nil {
		t.Fatal(err)
	}
	paused := make(chan int, 1)
	h := &handler{}
	h.onBatch = func(n int) {
		if n >= 200 && h.onBatch != nil {
			s.Pause(engine.TaskID{Topic: "t"})
			h.onBatch = nil
			paused <- n
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Run(ctx, h) }()
	var at int
	select {
	case at = <-paused:
	case <-time.After(30 * time.Second):
		t.Fatal("no 200 records within 30 s at 2000/s")
	}
	// 200 records at 2000/s take 100 ms at the least; generously, 50.
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("200 records after %s: the rate does not pace", d)
	}
	time.Sleep(200 * time.Millisecond)
	if n := h.count(); n != at {
		t.Errorf("%d records delivered while paused, want none after %d", n, at)
	}
	s.Resume(engine.TaskID{Topic: "t"})
	deadline := time.Now().Add(30 * time.Second)
	for h.count() == at && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if h.count() == at {
		t.Error("no records after Resume")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v after its context ended, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if h.ended {
		t.Error("an unbounded source ended its task")
	}
}
