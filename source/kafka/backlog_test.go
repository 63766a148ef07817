package kafka

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// TestBacklogMetrics checks sluice_source_backlog_records and _bytes against
// the group's true lag (end offset − committed offset, listed with kadm),
// while the sink stalls and after it recovers.
func TestBacklogMetrics(t *testing.T) {
	const topic, parts, value = "backlog", 3, 50
	c, adm := cluster(t, map[string]int32{topic: parts})
	prod := producer(t, c)
	var (
		mu      sync.Mutex
		stalled = false
		resume  = make(chan struct{})
		flushed atomic.Int64
	)
	sink := &testSink{
		gate: func(ctx context.Context) error {
			mu.Lock()
			s := stalled
			mu.Unlock()
			if s {
				select {
				case <-resume:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		},
		onFlush: func(_ engine.TaskID, v []string) { flushed.Add(int64(len(v))) },
	}
	m := startMember(t, c, "backlog-job", memberOpts{pod: "pod-0", topics: []string{topic},
		pipes: []*engine.Pipeline{pipeline("p", topic, sink, 1000)}, interval: 300 * time.Millisecond})
	val := func(int) []byte { return make([]byte, value) }

	// compare waits until, for every partition, the metric equals the lag
	// kadm reports, and both equal want.
	compare := func(want int64) {
		t.Helper()
		var got, lag map[int32]int64
		waitFor(t, 20*time.Second, "backlog metrics (per task and job summary) to match the group lag", func() bool {
			got, lag = map[int32]int64{}, map[int32]int64{}
			ends, err := adm.ListEndOffsets(context.Background(), topic)
			if err != nil {
				return false
			}
			offs, err := adm.FetchOffsets(context.Background(), "backlog-job")
			if err != nil {
				return false
			}
			ok := true
			for p := int32(0); p < parts; p++ {
				end, _ := ends.Lookup(topic, p)
				committed, found := offs.Lookup(topic, p)
				if !found {
					return false
				}
				lag[p] = end.Offset - committed.At
				lbl := map[string]string{"topic": topic, "partition": strconv.Itoa(int(p))}
				v, exists := gauge(t, m.reg, "sluice_source_backlog_records", lbl)
				b, _ := gauge(t, m.reg, "sluice_source_backlog_bytes", lbl)
				got[p] = int64(v)
				ok = ok && exists && got[p] == lag[p] && lag[p] == want && int64(b) == want*value
			}
			sum, _ := gauge(t, m.reg, "sluice_source_job_backlog_records", nil)
			return ok && int64(sum) == want*parts
		})
		t.Logf("backlog per partition: metric %v, kadm end−committed %v", got, lag)
	}

	for p := int32(0); p < parts; p++ {
		produce(t, prod, topic, p, 300, val)
	}
	waitFor(t, 20*time.Second, "300 records per partition to flush", func() bool { return flushed.Load() == 3*300 })
	compare(0)

	// Stall the sink: nothing completes, nothing is committed, the backlog
	// grows by what is produced.
	mu.Lock()
	stalled = true
	mu.Unlock()
	for p := int32(0); p < parts; p++ {
		produce(t, prod, topic, p, 200, val)
	}
	compare(200)
	if lag, ok := gauge(t, m.reg, "sluice_source_watermark_lag_seconds", map[string]string{"topic": topic, "partition": "0"}); !ok || lag <= 0 {
		t.Errorf("watermark lag %v (exists %v), want > 0", lag, ok)
	}
	if in, _ := gauge(t, m.reg, "sluice_source_records_total", map[string]string{"topic": topic, "partition": "0", "pipeline": "p"}); in < 300 {
		t.Errorf("records in %v for partition 0, want ≥ 300", in)
	}

	close(resume)
	compare(0)
	if out, _ := gauge(t, m.reg, "sluice_source_committed_records_total", map[string]string{"topic": topic, "partition": "0"}); out != 500 {
		t.Errorf("committed records %v for partition 0, want 500", out)
	}
}
