package app

import (
	"context"
	"fmt"
	"maps"
	"math/rand"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/bench/gen"
	"github.com/sluicehq/sluice/sink/bigquery/bqtest"
)

// windowRun is a windowed job over a cluster: per key and 10-second tumbling
// window of event time, the count and the sum of bytes_sent, written to a
// BigQuery committed-mode table. The Kafka key is the group key (src_ip), and
// every key lives on one partition, so aggregation: per_partition is the
// exact result. The test keeps what a crash-free run must emit.
type windowRun struct {
	c    *cluster
	bq   *bqtest.Server
	prod *kgo.Client
	keys [][]string // per partition, the src_ips written to it
	// spread: record i goes to partition i mod windowTopicP and has the
	// src_ip keys[0][i/windowTopicP mod 4], so every key is on every
	// partition.
	spread bool

	mu     sync.Mutex
	next   int64
	want   map[windowKey]windowAgg // every window of the records produced
	closed bool                    // the closing records were produced
}

type windowKey struct {
	start int64 // window_start, unix microseconds
	key   string
}

type windowAgg struct{ n, bytes int64 }

const (
	windowTable  = "projects/p/datasets/d/tables/windows"
	windowSize   = 10 * time.Second
	windowStep   = 2 * time.Millisecond // event time between consecutive records
	windowTopicP = 4
)

// windowBase is the event time of the first record: fixed, far from the wall
// clock, so that nothing but the records moves a watermark.
var windowBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// newWindowRun builds a cluster whose job is the windowed aggregation.
func newWindowRun(t *testing.T) *windowRun {
	t.Helper()
	return newWindowRunMode(t, "per_partition", false)
}

// newWindowRunMode is newWindowRun with the pipeline's aggregation mode,
// and with spread, group keys spread over every partition (independently
// of the partition a record is written to) instead of one per partition.
func newWindowRunMode(t *testing.T, aggregation string, spread bool) *windowRun {
	t.Helper()
	return newWindowRunJob(t, aggregation, spread, "1s")
}

// newWindowRunJob is newWindowRunMode with the checkpoint interval.
func newWindowRunJob(t *testing.T, aggregation string, spread bool, interval string) *windowRun {
	t.Helper()
	bq := bqtest.Start(t)
	c := newCluster(t, windowTopicP, interval)
	job := fmt.Sprintf(`job: e2e
kafka: {brokers: [%s]}
checkpoint: {store: file://%s/ckpt, interval: %s}
metrics: {listen: "off"}
drain: {deadline: 30s}
pipelines:
  - name: per-key
    source: {kafka: {topics: [e2e.traffic]}}
    format: {avro: {schema_file: traffic.avsc}}
    event_time: time_generated
    idle_timeout: 1h
    aggregation: %s
    sql: |
      SELECT window_start, src_ip, COUNT(*) AS n, SUM(bytes_sent) AS bytes
      FROM input
      GROUP BY TUMBLE(time_generated, '10s'), src_ip
    bundle: {max_records: 500, max_wait: 200ms}
    sinks:
      - bigquery: {project: p, dataset: d, table: windows, mode: committed, endpoint: "http://%s"}
`, c.brokers[0], c.dir, interval, aggregation, bq.Addr())
	if err := os.WriteFile(c.job, []byte(job), 0o644); err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.brokers...), kgo.DefaultProduceTopic("e2e.traffic"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	r := &windowRun{c: c, bq: bq, prod: prod, want: map[windowKey]windowAgg{}, spread: spread}
	for p := range windowTopicP {
		var ks []string
		for k := range 4 {
			ks = append(ks, fmt.Sprintf("10.0.%d.%d", p, k))
		}
		r.keys = append(r.keys, ks)
	}
	return r
}

// produce writes n more records, keys in turn, event time advancing by
// windowStep per record, and waits for them.
func (r *windowRun) produce(n int) {
	r.mu.Lock()
	from := r.next
	r.next += int64(n)
	if r.closed {
		r.mu.Unlock()
		r.c.t.Error("produce after close")
		return
	}
	g := gen.New(from)
	for i := from; i < from+int64(n); i++ {
		rec := g.Next()
		p := int32(i % windowTopicP)
		ks := r.keys[p]
		rec.SrcIP = ks[(i/windowTopicP)%int64(len(ks))]
		if r.spread {
			rec.SrcIP = r.keys[0][(i/windowTopicP)%int64(len(ks))]
		}
		rec.SequenceNumber = i
		rec.TimeGenerated = windowBase.Add(time.Duration(i) * windowStep)
		wk := windowKey{rec.TimeGenerated.Truncate(windowSize).UnixMicro(), rec.SrcIP}
		a := r.want[wk]
		a.n++
		a.bytes += rec.BytesSent
		r.want[wk] = a
		r.send(p, rec.SrcIP, rec.AppendAvro(nil))
	}
	r.mu.Unlock()
	if err := r.prod.Flush(context.Background()); err != nil {
		r.c.t.Error(err)
	}
}

func (r *windowRun) send(p int32, key string, value []byte) {
	r.prod.Produce(context.Background(), &kgo.Record{Partition: p, Key: []byte(key), Value: value}, func(_ *kgo.Record, err error) {
		if err != nil {
			r.c.t.Errorf("produce: %v", err)
		}
	})
}

// close writes, to every partition, one record an hour of event time past
// the others: every window of the records produced closes, and the closing
// records' own windows stay open (they are not expected).
func (r *windowRun) close() {
	r.mu.Lock()
	r.closed = true
	g := gen.New(1 << 40)
	for p := range int32(windowTopicP) {
		rec := g.Next()
		rec.SrcIP = r.keys[p][0]
		rec.SequenceNumber = -1
		rec.TimeGenerated = windowBase.Add(time.Duration(r.next)*windowStep + time.Hour)
		r.send(p, rec.SrcIP, rec.AppendAvro(nil))
	}
	r.mu.Unlock()
	if err := r.prod.Flush(context.Background()); err != nil {
		r.c.t.Error(err)
	}
}

// produceEvery produces n records every interval until the returned function
// is called; it returns once production has stopped.
func (r *windowRun) produceEvery(n int, interval time.Duration) (stop func()) {
	return every(r.c.t, interval, func() { r.produce(n) })
}

// table reads the BigQuery table: the rows per window and key.
func (r *windowRun) table() map[windowKey][]windowAgg {
	t := r.c.t
	got := map[windowKey][]windowAgg{}
	for _, m := range r.bq.Maps(t, windowTable) {
		var wk windowKey
		var a windowAgg
		// protojson writes int64 (TIMESTAMP micros included) as strings.
		if _, err := fmt.Sscan(fmt.Sprint(m["window_start"], " ", m["n"], " ", m["bytes"]), &wk.start, &a.n, &a.bytes); err != nil {
			t.Fatalf("row %v: %v", m, err)
		}
		wk.key = fmt.Sprint(m["src_ip"])
		got[wk] = append(got[wk], a)
	}
	return got
}

// waitTable closes the input and waits until the table holds a row for
// every window produced (or the timeout passes), then a little longer, for
// a duplicate to show.
func (r *windowRun) waitTable(timeout time.Duration) {
	r.close()
	r.mu.Lock()
	n := len(r.want)
	r.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for len(r.bq.Rows(windowTable)) < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
}

// exact requires the table to hold every window produced exactly once, with
// its exact count and sum, and nothing else.
func (r *windowRun) exact(logs string) {
	t := r.c.t
	t.Helper()
	got := r.table()
	r.mu.Lock()
	defer r.mu.Unlock()
	var missing, twice, wrong, extra []string
	for _, wk := range slices.SortedFunc(maps.Keys(r.want), func(a, b windowKey) int {
		if a.start != b.start {
			return int(a.start - b.start)
		}
		return strings.Compare(a.key, b.key)
	}) {
		want, rows := r.want[wk], got[wk]
		desc := fmt.Sprintf("%s %s", time.UnixMicro(wk.start).UTC().Format(time.TimeOnly), wk.key)
		switch {
		case len(rows) == 0:
			missing = append(missing, desc)
		case len(rows) > 1:
			twice = append(twice, fmt.Sprintf("%s %v", desc, rows))
		case rows[0] != want:
			wrong = append(wrong, fmt.Sprintf("%s: got %+v, want %+v", desc, rows[0], want))
		}
	}
	for wk, rows := range got {
		if _, ok := r.want[wk]; !ok {
			extra = append(extra, fmt.Sprintf("%d %s %v", wk.start, wk.key, rows))
		}
	}
	if len(missing)+len(twice)+len(wrong)+len(extra) > 0 {
		t.Fatalf("%d windows of %d records: %d missing %v, %d twice %v, %d wrong %v, %d unexpected %v; logs:\n%s",
			len(r.want), r.next, len(missing), head(missing), len(twice), head(twice), len(wrong), head(wrong), len(extra), head(extra), logs)
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// TestWindowCrashExactlyOnce: a windowed aggregation by the Kafka key, run by
// the sluice binary into a BigQuery committed-mode table, through three
// SIGKILLs and a rescale 1→2→1 (a second worker joins, later drains and is
// removed from the group) while records flow. Each task's open windows are
// in its checkpointed state and move with it; a replay after a crash emits
// the same rows at the same stream offsets, which BigQuery rejects. The
// table holds every window of the records produced once, with its exact
// count and sum: what a run without crashes emits.
func TestWindowCrashExactlyOnce(t *testing.T) {
	t.Parallel()
	r := newWindowRun(t)
	c := r.c
	rnd := rand.New(rand.NewSource(16))
	pause := func() { time.Sleep(time.Duration(1500+rnd.Intn(1500)) * time.Millisecond) }
	stopProducing := r.produceEvery(200, 25*time.Millisecond)
	start := time.Now()
	step := func(what string) { t.Logf("%6.1fs %s", time.Since(start).Seconds(), what) }

	w0 := c.start("w0")
	pause()
	step("kill 1")
	c.kill(w0) // SIGKILL 1: alone
	w0 = c.start("w0")
	pause()
	step("w1 starts")
	w1 := c.start("w1") // scale up: w0 drains the tasks it hands to w1
	pause()
	step("kill 2")
	c.kill(w0) // SIGKILL 2: while w1 holds some tasks
	w0 = c.start("w0")
	pause()
	// Scale down: w1 drains, and is removed from the group as the
	// coordinator does, so that its tasks move back at once.
	step("w1 drains")
	c.drain(w1)
	adm := kadm.NewClient(c.prod)
	if _, err := adm.LeaveGroup(context.Background(), kadm.LeaveGroup("e2e").InstanceIDs("w1")); err != nil {
		t.Fatalf("remove member w1: %v", err)
	}
	pause()
	step("kill 3")
	c.kill(w0) // SIGKILL 3: alone again, after taking w1's tasks back
	stopProducing()
	w0 = c.start("w0")
	step("waiting for the table")
	r.waitTable(2 * time.Minute)
	step("w0 drains")
	c.drain(w0)
	step("done")
	r.exact(w0.logs.String() + w1.logs.String())
	t.Logf("%d records, %d windows, 3 SIGKILLs and a 1→2→1 rescale: every window once, every count and sum exact", r.next, len(r.want))
}

// TestCrashBeforeFirstCheckpoint: the job's checkpoint interval is an hour,
// so no interval passes before the SIGKILL, yet its first life has written
// window rows into fresh BigQuery committed streams. Each task checkpointed
// its stream before flushing into it, so the second life resumes those
// streams at the same offsets and BigQuery rejects the rows it holds: every
// window once.
func TestCrashBeforeFirstCheckpoint(t *testing.T) {
	t.Parallel()
	r := newWindowRunJob(t, "per_partition", false, "1h")
	c := r.c
	r.produce(20000) // 40 s of event time: windows close while it is read
	w0 := c.start("w0")
	deadline := time.Now().Add(time.Minute)
	for len(r.bq.Rows(windowTable)) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if len(r.bq.Rows(windowTable)) == 0 {
		c.kill(w0)
		t.Fatalf("no window row within a minute; logs:\n%s", w0.logs.String())
	}
	c.kill(w0)
	first := len(r.bq.Rows(windowTable))
	w0 = c.start("w0")
	r.waitTable(2 * time.Minute)
	c.drain(w0)
	r.exact(w0.logs.String())
	t.Logf("%d window rows written before the SIGKILL, none again after it; %d windows once", first, len(r.want))
}
