package kafka_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/kafka"
	"github.com/sluicehq/sluice/sink/sinktest"
)

// TestConformance runs the sink conformance suite against kfake, with
// idempotent and with transactional producers. While the destination is
// "broken", kfake answers every produce with a retryable error.
func TestConformance(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var down atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !down.Load() {
			return nil, nil, false
		}
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	broker := c.ListenAddrs()[0]
	for _, transactional := range []bool{false, true} {
		name := "idempotent"
		if transactional {
			name = "transactional"
		}
		t.Run(name, func(t *testing.T) {
			topic := "conformance." + name
			sinktest.Run(t, sinktest.Harness{
				New: func(t *testing.T) engine.Sink {
					s, err := kafka.New(t.Context(), kafka.Config{Topic: topic, Transactional: transactional}, sinktest.Schema,
						engine.SinkEnv{Job: "j", Pipeline: "p", Name: "kafka/0"},
						kafka.WithClientOpts(kgo.SeedBrokers(broker), kgo.AllowAutoTopicCreation()))
					if err != nil {
						t.Fatal(err)
					}
					return s
				},
				Read: func(t *testing.T) []int64 { return readTopic(t, broker, topic) },
				Break: func(*testing.T) func() {
					down.Store(true)
					return func() { down.Store(false) }
				},
			})
		})
	}
}

// readTopic returns the ids of the committed records of topic's partitions.
func readTopic(t *testing.T, broker, topic string) []int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var ids []int64
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			var v struct{ ID int64 }
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatalf("record %q: %v", r.Value, err)
			}
			ids = append(ids, v.ID)
		})
		if n == 0 {
			return ids
		}
	}
}
