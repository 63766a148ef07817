package kafka_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/kafka"
)

// A row Kafka rejects for good (here: larger than the producer's batch
// limit) is dead-lettered with the input offset it came from.
func TestKafkaSinkDeadLetterOrigin(t *testing.T) {
	ctx := t.Context()
	broker := cluster(t)
	dl := &offsetSink{}
	s, err := kafka.New(ctx, kafka.Config{Topic: "acme.out"}, schema(), engine.SinkEnv{Pipeline: "p1", DeadLetter: dl},
		kafka.WithClientOpts(kgo.SeedBrokers(broker), kgo.AllowAutoTopicCreation(), kgo.ProducerBatchMaxBytes(4096)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	task := engine.TaskID{Topic: "in", Partition: 2}
	w, err := s.Open(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	row := engine.NewRow(4)
	for i := 0; i < 5; i++ {
		fill(row, i)
		if i == 3 {
			row.SetStr(1, strings.Repeat("x", 8192)) // too large for one batch
		}
		row.Origin = engine.Origin{Task: task, Offset: 500 + int64(i)}
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{503}, dl.offsets()); diff != "" {
		t.Errorf("dead-letter offsets (-want +got):\n%s", diff)
	}
}

// offsetSink is a dead-letter sink that keeps the offsets it is given.
type offsetSink struct {
	mu   sync.Mutex
	offs []int64
}

func (s *offsetSink) offsets() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.offs...)
}

func (s *offsetSink) Open(context.Context, engine.TaskID) (engine.Writer, error) {
	return &offsetWriter{s: s}, nil
}
func (s *offsetSink) Close(context.Context) error { return nil }

type offsetWriter struct{ s *offsetSink }

func (w *offsetWriter) Write(row *engine.Row) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.offs = append(w.s.offs, row.Int(engine.DLOffset))
	return nil
}
func (w *offsetWriter) Flush(context.Context) error { return nil }
func (w *offsetWriter) Close(context.Context) error { return nil }
