package file

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/sinktest"
)

// TestConformance runs the sink conformance suite against a real file.
func TestConformance(t *testing.T) {
	dir := t.TempDir()
	var path string
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) engine.Sink {
			path = filepath.Join(dir, "out", "part", filepath.Base(t.Name())+".jsonl")
			s, err := New(context.Background(), Config{Path: path, Format: "json"}, sinktest.Schema, engine.SinkEnv{Name: "file/0"})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Read: func(t *testing.T) []int64 {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			return sinktest.IDs(t, "json", b)
		},
	})
}
