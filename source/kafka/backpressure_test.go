package kafka

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/engine"
)

// TestBackpressureIsolation: one pipeline's sink stalls for 30 s while its
// topic keeps receiving 3,000 records/s. Its task is paused
// (PauseFetchPartitions) once it holds MaxBufferedBytes, the other
// pipelines keep their latency, and the heap grows by no more than the
// configured buffers (plus kfake's own storage) allow.
//
// The backlog is produced live rather than before the test: kfake answered
// a fetch of a pre-filled partition with 13 MB whatever the fetch size
// limits, which a real broker does not do.
func TestBackpressureIsolation(t *testing.T) {
	stallFor := 30 * time.Second
	if testing.Short() {
		stallFor = 5 * time.Second
	}
	const (
		stallRate = 30      // records of 100 B per 10 ms to the stalled topic
		maxBuf    = 1 << 20 // Job.MaxBufferedBytes
	)
	live := []string{"live-1", "live-2"}
	c, _ := cluster(t, map[string]int32{"stall": 1, "live-1": 1, "live-2": 1})
	prod := producer(t, c)
	payload := make([]byte, 100)
	var toStall int // records produced to the stalled topic

	var (
		mu        sync.Mutex
		stalling  bool
		stallEnd  time.Time
		latencies []time.Duration
		stalledIn int
	)
	release := make(chan struct{})
	stallSink := &testSink{
		gate: func(ctx context.Context) error {
			mu.Lock()
			first := !stalling && stallEnd.IsZero()
			if first {
				stalling = true
			}
			s := stalling
			mu.Unlock()
			if s {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		},
		onFlush: func(_ engine.TaskID, v []string) {
			mu.Lock()
			stalledIn += len(v)
			mu.Unlock()
		},
	}
	liveSink := &testSink{onFlush: func(_ engine.TaskID, v []string) {
		mu.Lock()
		defer mu.Unlock()
		if !stalling {
			return
		}
		for _, s := range v {
			if d, err := since(s); err == nil {
				latencies = append(latencies, d)
			}
		}
	}}
	pipes := []*engine.Pipeline{pipeline("stalled", "stall", stallSink, 1000)}
	for _, tn := range live {
		pipes = append(pipes, pipeline("p-"+tn, tn, liveSink, 1000))
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc

	ctx, stopLive := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	produced := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for _, tn := range live {
				for range 10 {
					prod.Produce(ctx, newRecord(tn, 0, stamp()), nil)
				}
			}
			for range stallRate {
				// Count what the broker acknowledged: records still
				// buffered when production stops fail and never arrive.
				prod.Produce(ctx, newRecord("stall", 0, payload), func(_ *kgo.Record, err error) {
					if err == nil {
						mu.Lock()
						toStall++
						mu.Unlock()
					}
				})
			}
			mu.Lock()
			if stalling {
				produced += 10 * len(live)
			}
			mu.Unlock()
		}
	}()
	m := startMember(t, c, "bp-job", memberOpts{pod: "pod-0", topics: append([]string{"stall"}, live...), pipes: pipes, maxBuf: maxBuf,
		cfg: func(c *Config) { c.FetchMaxBytes = 2 << 20 }})
	waitFor(t, 30*time.Second, "the stalled sink's first flush", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return stalling
	})
	start := time.Now()
	var peak uint64
	paused := false
	for time.Since(start) < stallFor {
		time.Sleep(time.Second)
		runtime.GC()
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
		if ps := m.src.Client().PauseFetchPartitions(nil); slices.Contains(ps["stall"], 0) {
			paused = true
		}
		for _, tn := range live {
			if slices.Contains(m.src.Client().PauseFetchPartitions(nil)[tn], 0) {
				t.Errorf("%s paused while only the other pipeline's sink stalls", tn)
			}
		}
	}
	mu.Lock()
	lat := slices.Clone(latencies)
	stalledBefore := stalledIn
	wantLive := produced
	stalling = false
	stallEnd = time.Now()
	mu.Unlock()
	close(release)
	stopLive()
	wg.Wait()
	prod.Flush(context.Background()) // settle the count of acknowledged records

	// What the runtime holds for the stalled task: handed over minus
	// acknowledged (nothing was, while stalled).
	delivered, _ := gauge(t, m.reg, "sluice_source_records_total", map[string]string{"topic": "stall"})
	deliveredBytes, _ := gauge(t, m.reg, "sluice_source_bytes_total", map[string]string{"topic": "stall"})
	mu.Lock()
	sent := toStall
	mu.Unlock()
	held := int64(deliveredBytes)
	if limit := int64(maxBuf + 2<<20 + 1000*100); held > limit {
		t.Errorf("the stalled task holds %d bytes, want ≤ MaxBufferedBytes + one fetch + one bundle = %d", held, limit)
	}
	growth := int64(peak) - int64(base)
	// The heap bound: what the stalled task may hold (about three times its
	// bytes once fetched: franz-go's record, the engine's record, the
	// value), the live tasks' small bundles and the client's buffers, plus
	// what kfake itself stores of the records produced meanwhile (it runs in
	// this process). Without the pause the stalled task would hold every
	// record produced to it.
	stored := int64(sent+wantLive) * 200
	bound := int64(3*(maxBuf+2<<20)) + 8<<20 + stored
	t.Logf("stall %v: live pipelines p99 latency %v over %d rows (produced %d during the stall); stalled task paused: %v, holds %.0f of %d records produced to it (%.1f MiB); heap growth %.1f MiB (bound %.1f MiB, of which %.1f MiB kfake's storage)",
		stallFor, percentile(lat, .99), len(lat), wantLive, paused, delivered, sent, float64(held)/(1<<20),
		float64(growth)/(1<<20), float64(bound)/(1<<20), float64(stored)/(1<<20))
	if !paused {
		t.Error("the stalled pipeline's task was never paused")
	}
	if growth > bound {
		t.Errorf("heap grew %d bytes during the stall, want ≤ %d", growth, bound)
	}
	if p99 := percentile(lat, .99); p99 > time.Second {
		t.Errorf("live pipelines' p99 latency %v during the stall, want ≤ 1 s", p99)
	}
	if len(lat) < wantLive*9/10 {
		t.Errorf("live pipelines delivered %d rows during the stall, %d were produced", len(lat), wantLive)
	}
	if stalledBefore > 0 {
		t.Errorf("stalled sink acknowledged %d rows while stalled", stalledBefore)
	}
	waitFor(t, 60*time.Second, "the stalled pipeline to catch up", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return stalledIn >= sent
	})
}
