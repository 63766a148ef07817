package https

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/sinktest"
)

// plainCollector accepts JSON lines, or answers 503 while down.
type plainCollector struct {
	mu   sync.Mutex
	down bool
	ids  []int64
}

func (c *plainCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	sc := bufio.NewScanner(r.Body)
	var ids []int64
	for sc.Scan() {
		var v struct{ ID int64 }
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ids = append(ids, v.ID)
	}
	c.ids = append(c.ids, ids...)
}

// TestConformance runs the sink conformance suite against an httptest TLS
// collector.
func TestConformance(t *testing.T) {
	col := &plainCollector{}
	srv := httptest.NewTLSServer(col)
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) engine.Sink {
			s, err := New(context.Background(), Config{URL: srv.URL + "/ingest", TLS: &TLS{CAFile: ca}, MaxBatchRows: 16, Timeout: time.Second},
				sinktest.Schema, engine.SinkEnv{Name: "https/0"})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Read: func(*testing.T) []int64 {
			col.mu.Lock()
			defer col.mu.Unlock()
			return append([]int64(nil), col.ids...)
		},
		Break: func(*testing.T) func() {
			col.mu.Lock()
			col.down = true
			col.mu.Unlock()
			return func() {
				col.mu.Lock()
				col.down = false
				col.mu.Unlock()
			}
		},
	})
}
