package app

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/source/file"
)

// recordingHandler takes what sources hand over and counts ended tasks.
type recordingHandler struct {
	mu    sync.Mutex
	ended map[engine.TaskID]int64
	last  map[engine.TaskID]int64
}

func (h *recordingHandler) Assign(context.Context, []engine.Assignment) {}
func (h *recordingHandler) Revoke(context.Context, []engine.TaskID)     {}
func (h *recordingHandler) Deliver(task engine.TaskID, recs []engine.Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last[task] = recs[len(recs)-1].Offset
}
func (h *recordingHandler) End(task engine.TaskID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended[task] = h.last[task] + 1
}

// TestMultiSourceRoutesCommits: a job reading two files commits each file
// source only the position of its own task; a position of a task that no
// source owns is an error, not something a source must ignore.
func TestMultiSourceRoutesCommits(t *testing.T) {
	t.Parallel()
	sample, err := os.ReadFile(filepath.Join(repoRoot(t), "examples/data/traffic-sample.avro"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var srcs []engine.Source
	var files []*file.Source
	for _, name := range []string{"a.avro", "b.avro"} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, sample, 0o644)
		s, err := file.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		srcs, files = append(srcs, s), append(files, s)
	}
	m := newMultiSource(srcs)
	h := &recordingHandler{ended: map[engine.TaskID]int64{}, last: map[engine.TaskID]int64{}}
	if err := m.Run(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	var all []engine.Position
	for _, f := range files {
		all = append(all, engine.Position{Task: f.Task(), Offset: h.ended[f.Task()]})
	}
	if err := m.Commit(context.Background(), all, "ckpt-1"); err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		if diff := cmp.Diff([]engine.Position{all[i]}, f.Committed()); diff != "" {
			t.Errorf("file source %d committed (-want +got):\n%s", i, diff)
		}
	}
	stranger := engine.Position{Task: engine.TaskID{Topic: "file:/nowhere.avro"}, Offset: 1}
	if err := m.Commit(context.Background(), []engine.Position{stranger}, "ckpt-2"); err == nil {
		t.Error("a commit of a task no source owns succeeded")
	}
}
