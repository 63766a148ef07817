package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// obsJob is a running sluice worker over kfake with two pipelines: stalled
// (topic slow.events, 12 partitions, an HTTP sink that can be held) and
// healthy (topic fast.events, 12 partitions of which 9, 10 and 11 are idle:
// one record an hour old each, then nothing), fed by a producer that writes
// a record to each active partition every 200 ms with its event time, and
// scraped by Prometheus.
type obsJob struct {
	t       *testing.T
	dir     string
	metrics string // host:port of /metrics and the status page
	worker  *worker
	prod    *kgo.Client

	mu       sync.Mutex
	produced map[part][]time.Time // event time of each seq
	acked    map[part][]time.Time // first acknowledgement of each seq by the stalled sink
	hold     chan struct{}        // non-nil while the stalled sink holds requests
	failNext int                  // HTTP status the sink answers next, 0 none
}

type part struct {
	topic string
	p     int32
}

const (
	slowTopic = "slow.events"
	fastTopic = "fast.events"
)

var obsSchema = `{"type": "record", "name": "ev", "fields": [{"name": "p", "type": "int"}, {"name": "seq", "type": "long"}]}`

func startObsJob(t *testing.T, prom *promServer) *obsJob {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(12, slowTopic, fastTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	j := &obsJob{t: t, dir: t.TempDir(), produced: map[part][]time.Time{}, acked: map[part][]time.Time{}}
	srv := httptest.NewServer(http.HandlerFunc(j.ingest))
	t.Cleanup(srv.Close)
	j.metrics = freeAddr(t)
	os.WriteFile(filepath.Join(j.dir, "ev.avsc"), []byte(obsSchema), 0o644)
	job := fmt.Sprintf(`job: obs
kafka: {brokers: [%s]}
checkpoint: {store: file://%s/ckpt, interval: 2s}
metrics: {listen: "%s", admin_listen: "off", per_partition: true}
drain: {deadline: 10s}
sla: {latency: 30s, for: 1m}
pipelines:
  - name: stalled
    source: {kafka: {topics: [%s]}}
    format: {json: {schema_file: ev.avsc}}
    sql: SELECT p, seq FROM input
    bundle: {max_records: 1000, max_wait: 500ms}
    sinks:
      - https: {url: "%s/ingest", format: json, timeout: 60s, concurrency: 16}
  - name: healthy
    source: {kafka: {topics: [%s]}}
    format: {json: {schema_file: ev.avsc}}
    sql: SELECT p, seq FROM input WHERE seq >= 0
    bundle: {max_wait: 500ms}
    sinks:
      - file: {path: healthy.jsonl, format: json}
`, kc.ListenAddrs()[0], j.dir, j.metrics, slowTopic, srv.URL, fastTopic)
	path := filepath.Join(j.dir, "job.yaml")
	os.WriteFile(path, []byte(job), 0o644)
	j.prod, err = kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Records still buffered when the test returns are delivered
		// first, not failed as "client closed" into its report.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		j.prod.Flush(ctx)
		cancel()
		j.prod.Close()
	})
	c := &cluster{t: t, bin: sharedBinary(t), dir: j.dir, job: path}
	j.worker = c.start("obs-0")
	t.Cleanup(func() {
		j.release()
		c.kill(j.worker)
	})
	prom.target(t, j.metrics)
	return j
}

// ingest is the stalled pipeline's HTTP receiver: it holds requests while
// hold is set and records when each row was first acknowledged.
func (j *obsJob) ingest(w http.ResponseWriter, r *http.Request) {
	j.mu.Lock()
	hold, fail := j.hold, j.failNext
	j.failNext = 0
	j.mu.Unlock()
	if fail != 0 {
		http.Error(w, "injected failure", fail)
		return
	}
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	var rows []struct {
		P   int32
		Seq int
	}
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var row struct {
			P   int32
			Seq int
		}
		if json.Unmarshal(sc.Bytes(), &row) == nil {
			rows = append(rows, row)
		}
	}
	now := time.Now()
	j.mu.Lock()
	for _, row := range rows {
		k := part{slowTopic, row.P}
		for len(j.acked[k]) <= row.Seq {
			j.acked[k] = append(j.acked[k], time.Time{})
		}
		if j.acked[k][row.Seq].IsZero() {
			j.acked[k][row.Seq] = now
		}
	}
	j.mu.Unlock()
}

func (j *obsJob) stall() {
	j.mu.Lock()
	j.hold = make(chan struct{})
	j.mu.Unlock()
}

func (j *obsJob) release() {
	j.mu.Lock()
	if j.hold != nil {
		close(j.hold)
		j.hold = nil
	}
	j.mu.Unlock()
}

// produceOne writes the next record of a partition with event time at.
func (j *obsJob) produceOne(k part, at time.Time) {
	j.mu.Lock()
	seq := len(j.produced[k])
	j.produced[k] = append(j.produced[k], at)
	j.mu.Unlock()
	v, _ := json.Marshal(map[string]any{"p": k.p, "seq": seq})
	j.prod.Produce(context.Background(), &kgo.Record{Topic: k.topic, Partition: k.p, Value: v, Timestamp: at}, func(_ *kgo.Record, err error) {
		if err != nil {
			j.t.Errorf("produce: %v", err)
		}
	})
}

// traffic produces to every active partition every 200 ms until stopped.
func (j *obsJob) traffic() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			now := time.Now()
			for p := int32(0); p < 12; p++ {
				j.produceOne(part{slowTopic, p}, now)
				if p < 9 {
					j.produceOne(part{fastTopic, p}, now)
				}
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// oldestUnwritten is the true age at T of the stalled pipeline's oldest
// record produced by T and not acknowledged by T; 0 when there is none.
func (j *obsJob) oldestUnwritten(at time.Time) time.Duration {
	j.mu.Lock()
	defer j.mu.Unlock()
	var age time.Duration
	for p := int32(0); p < 12; p++ {
		k := part{slowTopic, p}
		for seq, ev := range j.produced[k] {
			if ev.After(at) {
				break
			}
			var ack time.Time
			if seq < len(j.acked[k]) {
				ack = j.acked[k][seq]
			}
			if ack.IsZero() || ack.After(at) {
				age = max(age, at.Sub(ev))
				break
			}
		}
	}
	return age
}

// waitWritten waits until the stalled sink acknowledged everything produced.
func (j *obsJob) waitWritten(timeout time.Duration) {
	j.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if j.oldestUnwritten(time.Now().Add(-50*time.Millisecond)) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	j.t.Fatalf("stalled sink still behind after %s; logs:\n%s", timeout, j.worker.logs.String())
}

// TestLatencyMetricTruth checks sluice_pipeline_latency_seconds, as a real
// Prometheus records it, against the true age of the oldest unwritten record
// while one pipeline's sink is held for 15 s (SLUICE_LATENCY_STALL, e.g.
// 90s, sets another length) and then released. The stall is shorter than
// an SLA's minutes, but the property is the same at any length:
// each scrape must report the age of what is stuck (which grows by a second
// a second), within 2 s, and fall back as the backlog drains; the healthy
// pipeline, which reads a topic with three idle partitions whose watermark
// is an hour old, must stay near zero, and so must those partitions.
func TestLatencyMetricTruth(t *testing.T) {
	start := time.Now()
	prom := sharedPrometheus(t)
	j := startObsJob(t, prom)
	t.Logf("prometheus and worker started in %s", time.Since(start).Round(time.Millisecond))
	// The idle partitions: one record an hour old, then nothing.
	for p := int32(9); p < 12; p++ {
		j.produceOne(part{fastTopic, p}, time.Now().Add(-time.Hour))
	}
	stop := j.traffic()
	defer stop()
	j.waitWritten(60 * time.Second)
	waitFile(t, filepath.Join(j.dir, "healthy.jsonl"), 3, 30*time.Second)
	t.Logf("steady state after %s", time.Since(start).Round(time.Millisecond))
	time.Sleep(3 * time.Second) // scrapes of the steady state
	from := time.Now()
	stall := 15 * time.Second
	if v := os.Getenv("SLUICE_LATENCY_STALL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SLUICE_LATENCY_STALL=%q: %v", v, err)
		}
		stall = d
	}
	j.stall()
	time.Sleep(stall)
	j.release()
	j.waitWritten(60 * time.Second)
	time.Sleep(3 * time.Second)
	until := time.Now()
	time.Sleep(1500 * time.Millisecond) // the last scrape is stored

	window := fmt.Sprintf("[%ds]", int(time.Since(from).Seconds())+2)
	samples := inWindow(prom.query(t, `sluice_pipeline_latency_seconds{job="obs",pipeline="stalled"}`+window), from, until)
	if len(samples) < int(stall.Seconds()) {
		t.Fatalf("only %d samples of the stalled pipeline's latency in %s", len(samples), until.Sub(from))
	}
	var peak float64
	for _, s := range samples {
		truth := j.oldestUnwritten(s.at).Seconds()
		peak = max(peak, s.value)
		if d := s.value - truth; d > 2 || d < -2 {
			t.Errorf("at %s: latency %.2fs, oldest unwritten record %.2fs old", s.at.Sub(from).Round(time.Millisecond), s.value, truth)
		}
	}
	if peak < stall.Seconds()-2 {
		t.Errorf("stalled pipeline's latency peaked at %.1fs during a %s stall", peak, stall)
	}
	healthy := inWindow(prom.query(t, `sluice_pipeline_latency_seconds{job="obs",pipeline="healthy"}`+window), from, until)
	if len(healthy) < int(stall.Seconds()) {
		t.Fatalf("only %d samples of the healthy pipeline's latency", len(healthy))
	}
	for _, s := range healthy {
		if s.value > 1 {
			t.Errorf("healthy pipeline at %s: latency %.2fs", s.at.Sub(from).Round(time.Millisecond), s.value)
		}
	}
	idle := inWindow(prom.query(t, `sluice_task_latency_seconds{job="obs",topic="fast.events",partition=~"9|10|11"}`+window), from, until)
	if len(idle) < 3*int(stall.Seconds()) {
		t.Fatalf("only %d samples of the idle partitions' latency", len(idle))
	}
	for _, s := range idle {
		if s.value != 0 {
			t.Errorf("idle partition %s at %s: latency %.2fs", s.labels["partition"], s.at.Sub(from).Round(time.Millisecond), s.value)
		}
	}
	t.Logf("%d samples of the stalled pipeline, peak %.1fs; healthy and idle stayed near zero", len(samples), peak)
}

func inWindow(ss []promSample, from, until time.Time) []promSample {
	var out []promSample
	for _, s := range ss {
		if !s.at.Before(from) && !s.at.After(until) {
			out = append(out, s)
		}
	}
	return out
}

// waitFile waits until path holds at least n lines.
func waitFile(t *testing.T, path string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(path)
		if strings.Count(string(b), "\n") >= n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s has fewer than %d lines after %s", path, n, timeout)
}
