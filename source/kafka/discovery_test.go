package kafka

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// TestPartitionDiscovery adds a partition to a topic and creates a topic
// matching the job's topic_regex while the job runs: both are consumed
// within one metadata refresh (plus the rebalance that follows it).
func TestPartitionDiscovery(t *testing.T) {
	const refresh = 2 * time.Second
	c, adm := cluster(t, map[string]int32{"disc-a": 2})
	prod := producer(t, c)
	var mu sync.Mutex
	seen := map[engine.TaskID]time.Time{}
	sink := &testSink{onFlush: func(id engine.TaskID, v []string) {
		mu.Lock()
		defer mu.Unlock()
		if len(v) > 0 {
			if _, ok := seen[id]; !ok {
				seen[id] = time.Now()
			}
		}
	}}
	got := func(id engine.TaskID) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			_, ok := seen[id]
			return ok
		}
	}
	startMember(t, c, "disc-job", memberOpts{pod: "pod-0", regex: []string{"^disc-"},
		pipes: []*engine.Pipeline{pipeline("p", "", sink, 100)},
		cfg:   func(c *Config) { c.MetadataMaxAge = refresh }})
	val := func(int) []byte { return []byte("x") }
	produce(t, prod, "disc-a", 1, 1, val)
	waitFor(t, 30*time.Second, "the first topic to be consumed", got(engine.TaskID{Topic: "disc-a", Partition: 1}))

	if _, err := adm.CreatePartitions(context.Background(), 1, "disc-a"); err != nil {
		t.Fatal(err)
	}
	added := time.Now()
	produce(t, producer(t, c), "disc-a", 2, 1, val) // a fresh client knows the new partition
	d := waitFor(t, 30*time.Second, "the added partition to be consumed", got(engine.TaskID{Topic: "disc-a", Partition: 2}))
	t.Logf("added partition consumed %v after it was created (metadata refresh %v)", d.Round(time.Millisecond), refresh)
	if limit := refresh + 3*time.Second; time.Since(added) > limit {
		t.Errorf("added partition consumed after %v, want within one refresh (%v) plus a rebalance", time.Since(added), limit)
	}

	if _, err := adm.CreateTopic(context.Background(), 2, 1, nil, "disc-b"); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	produce(t, producer(t, c), "disc-b", 0, 1, val)
	d = waitFor(t, 30*time.Second, "the new topic to be consumed", got(engine.TaskID{Topic: "disc-b", Partition: 0}))
	t.Logf("new topic consumed %v after it was created", d.Round(time.Millisecond))
	if limit := refresh + 3*time.Second; time.Since(created) > limit {
		t.Errorf("new topic consumed after %v, want within one refresh (%v) plus a rebalance", time.Since(created), limit)
	}
}
