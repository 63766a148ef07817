package https

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/file"
)

var schema = engine.MustSchema(&engine.Type{Kind: engine.KindRecord, Name: "t.Row", Fields: []engine.Field{
	{Name: "id", Type: &engine.Type{Kind: engine.KindLong}},
	{Name: "msg", Type: &engine.Type{Kind: engine.KindString}},
}})

// collector behaves like a SIEM collector with faults: in order, a 500, a
// 429 with Retry-After, a stall beyond the client's timeout, then 400 for any
// batch holding a "poison" row and 200 otherwise.
type collector struct {
	t        *testing.T
	mu       sync.Mutex
	requests int
	got      []int64
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.requests++
	n := c.requests
	c.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer s3cret" || r.Header.Get("Content-Encoding") != "gzip" {
		c.t.Errorf("request %d: headers %v", n, r.Header)
	}
	switch n {
	case 1:
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	case 2:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	case 3:
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
		http.Error(w, "too late", http.StatusServiceUnavailable)
		return
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var ids []int64
	poison := false
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		var v struct {
			ID  int64
			Msg string
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			c.t.Errorf("bad line %q", sc.Text())
		}
		poison = poison || v.Msg == "poison"
		ids = append(ids, v.ID)
	}
	if poison {
		http.Error(w, `{"error":"field msg: poison"}`, http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.got = append(c.got, ids...)
	c.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// TestHTTPSSinkFaults sends rows from several tasks through faults; every
// row must reach the collector or the dead-letter file, the rejected batch
// must be in the dead-letter file, and retries must show in the metrics.
func TestHTTPSSinkFaults(t *testing.T) {
	ctx := context.Background()
	col := &collector{t: t}
	srv := httptest.NewTLSServer(col)
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	stats := engine.NewSinkMetrics(reg).For("job", "pipe", "https/0")
	dlPath := filepath.Join(dir, "dlq.jsonl")
	dl, err := file.New(ctx, file.Config{Path: dlPath}, engine.DeadLetterSchema, engine.SinkEnv{Name: "dlq"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, Config{URL: srv.URL + "/ingest", Gzip: true, Headers: map[string]string{"Authorization": "Bearer s3cret"},
		TLS: &TLS{CAFile: ca}, MaxBatchRows: 10, Timeout: 300 * time.Millisecond, Concurrency: 2},
		schema, engine.SinkEnv{Job: "job", Pipeline: "pipe", Name: "https/0", Stats: stats, DeadLetter: dl})
	if err != nil {
		t.Fatal(err)
	}
	const tasks, rows = 3, 50
	var wg sync.WaitGroup
	for k := range tasks {
		wg.Go(func() {
			w, err := s.Open(ctx, engine.TaskID{Topic: "in", Partition: int32(k)})
			if err != nil {
				t.Error(err)
				return
			}
			defer w.Close(ctx)
			row := engine.NewRow(schema.Width())
			for i := range rows {
				id := int64(k*1000 + i)
				row.SetInt(0, id)
				row.SetStr(1, "ok")
				if k == 1 && i == 25 {
					row.SetStr(1, "poison") // its batch: ids 1025..1034 (batches restart at each flush)
				}
				w.Write(row)
				if i%25 == 24 {
					fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					err := w.Flush(fctx)
					cancel()
					if err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	s.Close(ctx)
	dl.Close(ctx)

	// Everything arrived, except the rejected batch, which is dead-lettered.
	var dead []int64
	b, err := os.ReadFile(dlPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var d struct {
			Error, Stage string
			Value        []byte
		}
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(d.Error, `https: status 400: {"error":"field msg: poison"}`) || d.Stage != "sink" {
			t.Errorf("dead letter error %q stage %q", d.Error, d.Stage)
		}
		var v struct{ ID int64 }
		json.Unmarshal(d.Value, &v)
		dead = append(dead, v.ID)
	}
	sort.Slice(dead, func(i, j int) bool { return dead[i] < dead[j] })
	var wantDead []int64
	for i := int64(1025); i < 1035; i++ {
		wantDead = append(wantDead, i)
	}
	if diff := cmp.Diff(wantDead, dead); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
	seen := map[int64]bool{}
	for _, id := range append(col.got, dead...) {
		seen[id] = true
	}
	for k := range tasks {
		for i := range rows {
			if id := int64(k*1000 + i); !seen[id] {
				t.Errorf("row %d lost", id)
			}
		}
	}

	// Retries and errors show in the registry.
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" {
					name += "{" + l.GetValue() + "}"
				}
			}
			if c := m.GetCounter(); c != nil {
				got[name] = c.GetValue()
			}
		}
	}
	want := map[string]float64{
		"sluice_sink_retries_total":          3,
		"sluice_sink_errors_total{http_500}": 1,
		"sluice_sink_errors_total{http_429}": 1,
		"sluice_sink_errors_total{timeout}":  1,
		"sluice_sink_errors_total{http_400}": 1,
		"sluice_sink_rows_total":             float64(tasks*rows - 10),
		"sluice_sink_batches_total":          float64(tasks*2*3 - 1), // per flush of 25 rows: 10+10+5
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			delete(got, k)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{{"", 0}, {"3", 3 * time.Second}, {"junk", 0}, {now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second}} {
		t.Run(tc.in, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, retryAfter(tc.in, now)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
