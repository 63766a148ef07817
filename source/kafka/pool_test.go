package kafka

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/engine"
)

// keepingHandler holds every delivered slice until the end, as a runtime
// holds a bundle's records, and checks none of them afterwards changed.
type keepingHandler struct {
	mu   sync.Mutex
	held [][]engine.Record
	lent int // slices taken from Batch (batchingHandler)
}

func (h *keepingHandler) Assign(context.Context, []engine.Assignment) {}
func (h *keepingHandler) Revoke(context.Context, []engine.TaskID)     {}
func (h *keepingHandler) End(engine.TaskID)                           {}
func (h *keepingHandler) Deliver(_ engine.TaskID, recs []engine.Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = append(h.held, recs)
}

// batchingHandler is a keepingHandler that also lends slices (engine.Batcher)
// and counts them.
type batchingHandler struct{ keepingHandler }

func (h *batchingHandler) Batch(n int) []engine.Record {
	h.mu.Lock()
	h.lent++
	h.mu.Unlock()
	return make([]engine.Record, 0, n)
}

// TestDeliveredRecordsOutliveRecycledSlabs: the source recycles franz-go's
// record slabs (kgo.WithPools) as soon as it has copied each record, while
// the records it delivered alias the fetch responses (or, for compressed
// batches, the decompressed buffers) until the runtime's bundle completes.
// Held records must never change when later fetches reuse the slabs: keys,
// values, headers, offsets and timestamps are checked after every record of
// several compressed and uncompressed batches was fetched. Delivered slices
// come from the handler's Batch when it has one.
func TestDeliveredRecordsOutliveRecycledSlabs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		codec    kgo.CompressionCodec
		batching bool
	}{
		{"uncompressed", kgo.NoCompression(), false},
		{"lz4", kgo.Lz4Compression(), false},
		{"lz4 with Batch", kgo.Lz4Compression(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 20_000
			c, _ := cluster(t, map[string]int32{"t": 2})
			prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
				kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchMaxBytes(64<<10), kgo.ProducerBatchCompression(tc.codec))
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			var recs []*kgo.Record
			for i := range n {
				recs = append(recs, &kgo.Record{
					Topic: "t", Partition: int32(i % 2),
					Key:     []byte(fmt.Sprintf("k%d", i)),
					Value:   []byte(fmt.Sprintf("value %d %s", i, "padding padding padding padding")),
					Headers: []kgo.RecordHeader{{Key: "h", Value: []byte(fmt.Sprint(i))}},
				})
			}
			if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			src, err := New(Config{
				Brokers: c.ListenAddrs(), Group: "g", Topics: []string{"t"}, Start: "earliest", StopAtEnd: true,
				// Small fetches: many responses, so slabs are recycled
				// and reused many times while the first records are held.
				Opts: []kgo.Opt{kgo.FetchMaxPartitionBytes(32 << 10), kgo.FetchMaxBytes(64 << 10)},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			var h engine.Handler
			kh := &keepingHandler{}
			h = kh
			if tc.batching {
				bh := &batchingHandler{}
				kh, h = &bh.keepingHandler, bh
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := src.Run(ctx, h); err != nil {
				t.Fatal(err)
			}
			kh.mu.Lock()
			defer kh.mu.Unlock()
			got := 0
			for _, batch := range kh.held {
				for _, r := range batch {
					var k int
					if _, err := fmt.Sscanf(string(r.Key), "k%d", &k); err != nil {
						t.Fatalf("offset %d: key %q", r.Offset, r.Key)
					}
					if want := fmt.Sprintf("value %d %s", k, "padding padding padding padding"); string(r.Value) != want {
						t.Fatalf("record %d: value %q, want %q", k, r.Value, want)
					}
					if len(r.Headers) != 1 || r.Headers[0].Key != "h" || string(r.Headers[0].Value) != fmt.Sprint(k) {
						t.Fatalf("record %d: headers %v", k, r.Headers)
					}
					if r.Offset != int64(k/2) || r.Timestamp.IsZero() || r.Size != len(r.Key)+len(r.Value) {
						t.Fatalf("record %d: offset %d (want %d), timestamp %v, size %d", k, r.Offset, k/2, r.Timestamp, r.Size)
					}
					got++
				}
			}
			if got != n {
				t.Fatalf("held %d records, want %d", got, n)
			}
			if tc.batching && kh.lent != len(kh.held) {
				t.Fatalf("%d slices from Batch, %d delivered: want every delivered slice from Batch", kh.lent, len(kh.held))
			}
		})
	}
}
