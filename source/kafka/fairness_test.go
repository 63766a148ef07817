package kafka

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// TestQuietPartitionLatency: one hot partition with a deep backlog (500,000 records) is
// drained while 50 quiet partitions receive one record every 2 s each. The
// quiet records must reach the sink within 1 s (p99), and the hot
// partition's throughput must stay within 5 % of its throughput alone. Each
// case runs twice, alternating, and the better run of each is compared, so
// that a neighbour's burst on a shared machine does not decide the result.
//
// With -short it is the smoke test of the engine's bundle rules, which
// engine's synctest tests cover deterministically: one mixed run of a
// 100,000-record backlog, the quiet p99 bound only.
func TestQuietPartitionLatency(t *testing.T) {
	const (
		quietParts = 50
		quietEvery = 2 * time.Second
	)
	hotRecords, rounds, quietFor := 500_000, 2, 15*time.Second
	if testing.Short() {
		hotRecords, rounds, quietFor = 100_000, 1, 8*time.Second
	}
	c, _ := cluster(t, map[string]int32{"hot": 1, "quiet": quietParts})
	prod := producer(t, c)
	payload := make([]byte, 100)
	produce(t, prod, "hot", 0, hotRecords, func(int) []byte { return payload })

	// run drains the hot partition with a fresh group, with or without the
	// quiet partitions (and their producer), and returns the hot
	// throughput and the quiet latencies.
	run := func(name string, quiet bool) (float64, []time.Duration) {
		var (
			mu        sync.Mutex
			hotDone   int
			first     time.Time
			last      time.Time
			latencies []time.Duration
			// measureFrom is when the member owned every task: the
			// latency of records that waited for the group to form is
			// the join's, not the steady state's.
			measureFrom time.Time
			acked       = map[string]time.Time{}
			sinceAck    []time.Duration
		)
		begin := time.Now()
		// The hot sink costs 50 ms a flush, like a destination's round
		// trip, so that the hot partition's throughput is set by its sink
		// (about 200,000 records/s in bundles of 10,000) and the drain lasts
		// seconds, not by how much CPU a shared machine has left.
		hotSink := &testSink{gate: func(ctx context.Context) error {
			select {
			case <-time.After(50 * time.Millisecond):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}, onFlush: func(_ engine.TaskID, v []string) {
			mu.Lock()
			defer mu.Unlock()
			if hotDone == 0 {
				first = time.Now()
			}
			hotDone += len(v)
			last = time.Now()
		}}
		quietSink := &testSink{onFlush: func(_ engine.TaskID, v []string) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			for _, s := range v {
				var ns int64
				if _, err := fmt.Sscan(s, &ns); err != nil || measureFrom.IsZero() || time.Unix(0, ns).Before(measureFrom) {
					continue // from an earlier run, or produced before the tasks were assigned
				}
				latencies = append(latencies, now.Sub(time.Unix(0, ns)))
				if a, ok := acked[s]; ok {
					sinceAck = append(sinceAck, now.Sub(a))
				}
			}
		}}
		topics := []string{"hot"}
		pipes := []*engine.Pipeline{pipeline("hot", "hot", hotSink, 10000)}
		if quiet {
			topics = append(topics, "quiet")
			pipes = append(pipes, pipeline("quiet", "quiet", quietSink, 10000))
		}
		ctx, stopQuiet := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		if quiet {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(quietEvery / quietParts)
				defer tick.Stop()
				for p := int32(0); ; p = (p + 1) % quietParts {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					v := stamp()
					if err := prod.ProduceSync(ctx, newRecord("quiet", p, v)).FirstErr(); err == nil {
						mu.Lock()
						acked[string(v)] = time.Now()
						mu.Unlock()
					}
				}
			}()
		}
		m := startMember(t, c, name, memberOpts{pod: "pod-0", topics: topics, pipes: pipes})
		tasks := 1
		if quiet {
			tasks += quietParts
		}
		waitFor(t, 30*time.Second, "the tasks to be assigned", func() bool { return len(m.src.ownedTasks()) == tasks })
		mu.Lock()
		measureFrom = time.Now()
		mu.Unlock()
		waitFor(t, 120*time.Second, "the hot backlog to drain", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return hotDone >= hotRecords
		})
		if quiet {
			// Keep the quiet traffic going long enough for a p99.
			for time.Since(begin) < quietFor {
				time.Sleep(100 * time.Millisecond)
			}
		}
		stopQuiet()
		wg.Wait()
		m.stop(t)
		mu.Lock()
		defer mu.Unlock()
		// The first bundle's flush starts the clock: joining the group is
		// not the partition's throughput.
		rate := float64(hotDone-10000) / last.Sub(first).Seconds()
		if quiet {
			t.Logf("%s: from the produce acknowledgement: p50 %v p99 %v", name, percentile(sinceAck, .5), percentile(sinceAck, .99))
		}
		return rate, latencies
	}

	var alone, mixed float64
	var lat []time.Duration
	for i := range rounds {
		var a float64
		if !testing.Short() {
			a, _ = run(fmt.Sprintf("alone-%d", i), false)
		}
		m, l := run(fmt.Sprintf("mixed-%d", i), true)
		t.Logf("run %d: hot alone %.0f records/s, with 50 quiet partitions %.0f records/s; quiet p50 %v p99 %v max %v (%d records)",
			i, a, m, percentile(l, 0.5), percentile(l, 0.99), percentile(l, 1), len(l))
		alone, mixed = max(alone, a), max(mixed, m)
		lat = append(lat, l...)
	}
	p99 := percentile(lat, 0.99)
	if !testing.Short() {
		t.Logf("quiet partitions: p99 latency %v over %d records; hot partition: %.0f records/s alone, %.0f with the quiet ones (%.1f%%)",
			p99, len(lat), alone, mixed, 100*mixed/alone)
	}
	if want := 100 * rounds; len(lat) < want {
		t.Errorf("only %d quiet records measured, want %d", len(lat), want)
	}
	if p99 > time.Second {
		t.Errorf("quiet partitions' p99 latency %v, want ≤ 1 s", p99)
	}
	if !testing.Short() && mixed < 0.95*alone {
		t.Errorf("hot partition %.0f records/s with quiet partitions, %.0f alone: more than 5%% slower", mixed, alone)
	}
}
