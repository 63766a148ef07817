package app

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/bench/gen"
)

// TestRegistryOutageBackpressures runs a bounded job whose records name their
// writer schema by registry id while the registry answers 503: no record may
// go to the dead-letter file and the job must not end as complete. Once the
// registry answers again, every record reaches the sink and the job exits 0.
func TestRegistryOutageBackpressures(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2, "1s")
	schema, err := os.ReadFile(filepath.Join(c.dir, "traffic.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	var up atomic.Bool
	var hits atomic.Int64
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error_code":50003,"message":"registry is down"}`)
			return
		}
		fmt.Fprintf(w, `{"schema":%q}`, schema)
	}))
	defer reg.Close()
	const total = 2000
	c.produceFramed(total, 1)
	job := filepath.Join(c.dir, "registry.yaml")
	os.WriteFile(job, []byte(fmt.Sprintf(`job: reg
kafka: {brokers: [%s], schema_registry: {url: %q}}
checkpoint: {store: file://%s/ckpt, interval: 1s}
metrics: {listen: "off"}
pipelines:
  - name: all
    source: {kafka: {topics: [e2e.traffic], stop_at: end}}
    format: {avro: {schema_file: traffic.avsc, writer_schema: registry}}
    sql: SELECT sequence_number FROM input
    bundle: {max_records: 500, max_wait: 200ms}
    sinks:
      - file: {path: %s/out.jsonl, format: json}
    dead_letter:
      file: {path: %s/dlq.jsonl}
`, c.brokers[0], reg.URL, c.dir, c.dir, c.dir)), 0o644)
	w := c.startJob("reg-0", job)
	deadline := time.Now().Add(time.Minute)
	for hits.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	// An outage that outlasts a fetch's own retries (10 s) and many bundles.
	time.Sleep(13 * time.Second)
	select {
	case err := <-w.done:
		t.Fatalf("the job ended (%v) while the registry was down; logs:\n%s", err, w.logs.String())
	default:
	}
	if dl := linesIn(filepath.Join(c.dir, "dlq.jsonl")); len(dl) > 0 {
		t.Fatalf("%d records dead-lettered during a registry outage, want none; first: %s", len(dl), dl[0])
	}
	if seen, _ := c.sinkCounts(); len(seen) > 0 {
		t.Fatalf("%d records in the sink while the registry was down", len(seen))
	}
	up.Store(true)
	select {
	case err := <-w.done:
		if err != nil {
			t.Fatalf("sluice run: %v; logs:\n%s", err, w.logs.String())
		}
	case <-time.After(2 * time.Minute):
		w.cmd.Process.Kill()
		t.Fatalf("no exit 2 minutes after the registry came back; logs:\n%s", w.logs.String())
	}
	c.exactlyOnce()
	if dl := linesIn(filepath.Join(c.dir, "dlq.jsonl")); len(dl) > 0 {
		t.Errorf("%d records dead-lettered, want none", len(dl))
	}
}

// linesIn returns the non-empty lines of a file, none when it does not exist.
func linesIn(path string) []string {
	b, _ := os.ReadFile(path)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// produceFramed writes n more sequence-numbered records in the registry's
// framing (0x00, the 4-byte schema id, the datum) and waits for them.
func (c *cluster) produceFramed(n int, id uint32) {
	c.mu.Lock()
	from := c.next
	c.next += int64(n)
	c.mu.Unlock()
	g := gen.New(from)
	for i := from; i < from+int64(n); i++ {
		r := g.Next()
		r.SequenceNumber = i
		v := binary.BigEndian.AppendUint32([]byte{0}, id)
		c.prod.Produce(context.Background(), &kgo.Record{Value: r.AppendAvro(v)}, func(rec *kgo.Record, err error) {
			if err != nil {
				c.t.Errorf("produce: %v", err)
				return
			}
			c.mu.Lock()
			c.placed[i] = placement{rec.Partition, rec.Offset}
			c.mu.Unlock()
		})
	}
	if err := c.prod.Flush(context.Background()); err != nil {
		c.t.Error(err)
	}
}

// startJob is start with another job file.
func (c *cluster) startJob(pod, job string) *worker {
	cmd := exec.Command(c.bin, "run", job)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "POD_NAME="+pod, "TMPDIR="+c.dir)
	w := &worker{cmd: cmd, logs: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr, cmd.Stdout = w.logs, w.logs
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	w.started = time.Now()
	go func() { w.done <- cmd.Wait() }()
	return w
}
