package stdout

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/sinktest"
)

// output is the process's standard output as the test sees it: a buffer,
// or a closed pipe while broken.
type output struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	broken bool
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.broken {
		return 0, errors.New("write |1: broken pipe")
	}
	return o.buf.Write(p)
}

// TestConformance runs the sink conformance suite on the standard output.
func TestConformance(t *testing.T) {
	out := &output{}
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) engine.Sink {
			s, err := New(context.Background(), Config{Format: "json"}, sinktest.Schema, engine.SinkEnv{Name: "stdout/0"}, WithOutput(out))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Read: func(t *testing.T) []int64 {
			out.mu.Lock()
			b := bytes.Clone(out.buf.Bytes())
			out.mu.Unlock()
			return sinktest.IDs(t, "json", b)
		},
		Break: func(*testing.T) func() {
			out.mu.Lock()
			out.broken = true
			out.mu.Unlock()
			return func() {
				out.mu.Lock()
				out.broken = false
				out.mu.Unlock()
			}
		},
	})
}
