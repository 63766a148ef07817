package kafka

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestBoundedPausesEndedTasks: a bounded job stops fetching a task once the
// task has reached its end offset, instead of fetching (and dropping) what
// is written after the end until the whole job ends.
func TestBoundedPausesEndedTasks(t *testing.T) {
	c, _ := cluster(t, map[string]int32{"t": 2})
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var recs []*kgo.Record
	for i := range 100 {
		recs = append(recs, &kgo.Record{Topic: "t", Partition: int32(i % 2), Value: []byte("v")})
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	src, err := New(Config{Brokers: c.ListenAddrs(), Group: "g", Topics: []string{"t"}, Start: "earliest", StopAtEnd: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	h := &keepingHandler{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := src.Run(ctx, h); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range h.held {
		n += len(b)
	}
	if n != 100 {
		t.Fatalf("read %d records, want 100", n)
	}
	paused := src.cl.PauseFetchPartitions(nil)["t"]
	slices.Sort(paused)
	if !slices.Equal(paused, []int32{0, 1}) {
		t.Errorf("paused partitions of t after both ended: %v, want [0 1]", paused)
	}
}
