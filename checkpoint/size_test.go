package checkpoint

import (
	"context"
	"sync"
	"testing"
)

// countingStore counts the objects and bytes written through it.
type countingStore struct {
	Store
	mu          sync.Mutex // guards puts and bytes
	puts, bytes int
}

func (s *countingStore) Put(ctx context.Context, key string, data []byte) error {
	s.mu.Lock()
	s.puts++
	s.bytes += len(data)
	s.mu.Unlock()
	return s.Store.Put(ctx, key, data)
}

// TestCheckpointSize measures the checkpoint of one pod running 100 stateless
// pipelines, each reading its own 6-partition topic (600 tasks): the goal is
// under 1 KB per pipeline (the JVM deployment it replaces wrote 10 KB), and
// one object per pod per checkpoint.
func TestCheckpointSize(t *testing.T) {
	const pipelines, partitions = 100, 6
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &countingStore{Store: d}
	c := New(store)
	cp := sizeJob(pipelines, partitions, 1)
	for i := range 3 {
		cp.Seq++
		before := store.puts
		key, size, err := c.Save(t.Context(), cp)
		if err != nil {
			t.Fatal(err)
		}
		if n := store.puts - before; n != 1 {
			t.Fatalf("Save %d wrote %d objects, want 1", i, n)
		}
		perPipeline := float64(size) / pipelines
		perTask := float64(size) / (pipelines * partitions)
		t.Logf("checkpoint %s: %d tasks in %d bytes: %.1f bytes per pipeline, %.1f per task", key, len(cp.Tasks), size, perPipeline, perTask)
		if perPipeline >= 1024 {
			t.Errorf("%.0f bytes per pipeline, goal < 1024", perPipeline)
		}
		// Tens of bytes per task, not hundreds: a regression guard well
		// above what the format needs today (about 9 + topic/6).
		if perTask > 20 {
			t.Errorf("%.1f bytes per task, want at most 20", perTask)
		}
	}
	keys, err := store.List(t.Context(), "")
	if err != nil || len(keys) != 3 {
		t.Fatalf("store holds %d objects (%v), want 3 after 3 checkpoints", len(keys), err)
	}
}
