package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// heldSink blocks every Flush until release is closed.
type heldSink struct {
	release chan struct{}
	once    sync.Once
}

func (s *heldSink) Open(context.Context, engine.TaskID) (engine.Writer, error) { return s, nil }
func (s *heldSink) Close(context.Context) error                                { return nil }
func (s *heldSink) Write(*engine.Row) error                                    { return nil }
func (s *heldSink) Flush(ctx context.Context) error {
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (s *heldSink) free() { s.once.Do(func() { close(s.release) }) }

// feedSource assigns tasks and delivers what the test sends it.
type feedSource struct {
	tasks []engine.TaskID
	feed  chan delivery
	ends  map[engine.TaskID]int64
}

type delivery struct {
	id   engine.TaskID
	recs []engine.Record
}

func (s *feedSource) Run(ctx context.Context, h engine.Handler) error {
	var as []engine.Assignment
	for _, id := range s.tasks {
		as = append(as, engine.Assignment{Task: id, Offset: 0})
	}
	h.Assign(ctx, as)
	for {
		select {
		case d := <-s.feed:
			h.Deliver(d.id, d.recs)
		case <-ctx.Done():
			return nil
		}
	}
}

func (s *feedSource) Commit(context.Context, []engine.Position, string) error { return nil }

func (s *feedSource) EndOffset(id engine.TaskID) (int64, bool) {
	e, ok := s.ends[id]
	return e, ok
}

// TestLatencyCountsOnlyTasksWithInput checks the latency rule on one
// pipeline of three tasks: a stuck task (its sink holds the bundle) reports
// the age of its bundle's first record; an idle task with an hour-old
// watermark reports nothing; a task whose end offset is past its position
// with nothing delivered reports its watermark's age.
func TestLatencyCountsOnlyTasksWithInput(t *testing.T) {
	stuck, idle, lagging := engine.TaskID{Topic: "a", Partition: 0}, engine.TaskID{Topic: "b", Partition: 0}, engine.TaskID{Topic: "c", Partition: 0}
	sink := &heldSink{release: make(chan struct{})}
	defer sink.free()
	ok := &memSink{}
	src := &feedSource{tasks: []engine.TaskID{stuck, idle, lagging}, feed: make(chan delivery, 4), ends: map[engine.TaskID]int64{}}
	held := &engine.Pipeline{Name: "held", Reads: func(topic string) bool { return topic == "a" }, Decoder: lineDecoder{}, Transform: passThrough{},
		Sinks: []engine.NamedSink{{Name: "held", Sink: sink}}, MaxRecords: 1}
	free := &engine.Pipeline{Name: "free", Reads: func(topic string) bool { return topic != "a" }, Decoder: lineDecoder{}, Transform: passThrough{},
		Sinks: []engine.NamedSink{{Name: "mem", Sink: ok}}, MaxRecords: 1}
	rt, err := engine.New(&engine.Job{Name: "j", Pod: "p0", Pipelines: []*engine.Pipeline{held, free}, Source: src, Store: &memStore{}, Interval: time.Hour, FlushTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	defer func() { sink.free(); cancel(); <-done }()

	now := time.Now()
	src.feed <- delivery{stuck, []engine.Record{{Value: []byte("x"), Offset: 0, Timestamp: now.Add(-40 * time.Second)}}}
	src.feed <- delivery{idle, []engine.Record{{Value: []byte("x"), Offset: 0, Timestamp: now.Add(-time.Hour)}}}
	src.feed <- delivery{lagging, []engine.Record{{Value: []byte("x"), Offset: 0, Timestamp: now.Add(-20 * time.Second)}}}
	// Both free tasks complete their record; then the lagging task's end
	// moves past it with nothing delivered.
	deadline := time.Now().Add(10 * time.Second)
	for len(ok.rows()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("free pipeline wrote nothing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ob := rt.Observe(time.Now())
	byName := map[string]engine.PipelineView{}
	for _, p := range ob.Pipelines {
		byName[p.Name] = p
	}
	if l := byName["held"].Latency; l < 39*time.Second || l > 45*time.Second {
		t.Errorf("held pipeline latency %s, want the stuck record's age, about 40s", l)
	}
	if l := byName["free"].Latency; l != 0 {
		t.Errorf("free pipeline latency %s with every record written, want 0 (the idle task's watermark is an hour old)", l)
	}
	src.ends[lagging] = 5 // read only by Observe, on this goroutine
	ob = rt.Observe(time.Now())
	for _, p := range ob.Pipelines {
		if p.Name != "free" {
			continue
		}
		if p.Latency < 19*time.Second || p.Latency > 25*time.Second {
			t.Errorf("free pipeline latency %s with records past its position, want its watermark's age, about 20s", p.Latency)
		}
		if p.BacklogRecords != 4 {
			t.Errorf("free pipeline backlog %d, want 4", p.BacklogRecords)
		}
	}
}
