package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/cmd/sluice/app"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/config"
)

// The startup limits the project holds to, for a job of startPipelines pipelines of
// startPartitions partitions each.
const (
	startPipelines  = 1000
	startPartitions = 6
	maxStartup      = 10 * time.Second
	maxIdleRSS      = 512 << 20
)

// BenchmarkStartup builds and starts a job of 1,000 pipelines, each reading
// its own topic of 6 partitions (6,000 tasks, each with a file sink writer
// and a dead-letter writer), and measures how long until every task is
// assigned, then the heap and RSS once it has sat idle. It fails past 10 s or
// 512 MiB RSS. Then it feeds one record to every task and waits for all of
// them to come out, so that an idle job that does not work cannot pass, and
// drains.
//
// It does the whole run once per call whatever b.N is: run it with
// -benchtime=1x, in its own process for a meaningful peak RSS (rss-peak-MiB
// is the process's high-water mark).
func BenchmarkStartup(b *testing.B) {
	b.Run(fmt.Sprintf("pipelines=%d/partitions=%d", startPipelines, startPartitions), func(b *testing.B) {
		k := sharedBroker(b)
		dir := b.TempDir()
		schema, err := filepath.Abs(filepath.Join("..", "testdata", "schemas", "traffic.avsc"))
		if err != nil {
			b.Fatal(err)
		}
		seq := topicSeq.Add(1)
		topics := make([]string, startPipelines)
		for i := range topics {
			topics[i] = fmt.Sprintf("idle-%d-%04d", seq, i)
		}
		ctx := context.Background()
		if _, err := k.adm.CreateTopics(ctx, startPartitions, 1, nil, topics...); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { k.adm.DeleteTopics(context.Background(), topics...) })
		e := jobEnv{name: fmt.Sprintf("idle-%d", seq), dir: dir}
		var sb strings.Builder
		sb.WriteString(e.header())
		for i, topic := range topics {
			name := fmt.Sprintf("p%04d", i)
			fmt.Fprintf(&sb, `  - name: %s
    source: {kafka: {topics: [%s]}}
    format: {avro: {schema_file: %q}}
    sql: %q
    bundle: {max_wait: 1s}
    sinks:
      - file: {path: %q, format: json}
    dead_letter:
      file: {path: %q, format: json}
`, name, topic, schema, filterSQL, filepath.Join(dir, "out", name+".jsonl"), filepath.Join(dir, "dlq", name+".jsonl"))
		}
		text := sb.String()
		jobFile := filepath.Join(dir, "job.yaml")
		os.WriteFile(jobFile, []byte(text), 0o644)
		runtime.GC()

		b.ResetTimer()
		start := time.Now()
		cj, err := config.Parse(jobFile, []byte(text), nil)
		if err != nil {
			b.Fatal(err)
		}
		built, err := app.Build(ctx, cj, app.Options{Pod: "bench-0", Brokers: k.addrs})
		if err != nil {
			b.Fatal(err)
		}
		rt, err := engine.New(built.Job)
		if err != nil {
			b.Fatal(err)
		}
		runCtx, drain := context.WithCancel(ctx)
		defer drain()
		done := make(chan error, 1)
		go func() { done <- rt.Run(runCtx) }()
		const tasks = startPipelines * startPartitions
		waitFor(b, done, 60*time.Second, func() bool { return rt.Stats().Tasks.Load() == tasks })
		startup := time.Since(start)
		b.StopTimer()

		// Idle: let the consumer settle into its empty fetches, then measure.
		time.Sleep(3 * time.Second)
		runtime.GC()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"}}
		metrics.Read(s)
		rss, hwm := procStatus("VmRSS"), procStatus("VmHWM")

		// Live: one record per task, all of them through the sinks.
		for _, topic := range topics {
			for p := range int32(startPartitions) {
				k.prod.Produce(ctx, &kgo.Record{Topic: topic, Partition: p, Value: newTraffic().next().AppendAvro(nil)}, nil)
			}
		}
		if err := k.prod.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		waitFor(b, done, 60*time.Second, func() bool { return rt.Stats().RecordsIn.Load() == tasks })
		drainStart := time.Now()
		drain()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		drained := time.Since(drainStart)

		b.ReportMetric(startup.Seconds(), "startup-s")
		b.ReportMetric(float64(rss)/(1<<20), "rss-idle-MiB")
		b.ReportMetric(float64(hwm)/(1<<20), "rss-peak-MiB")
		b.ReportMetric(float64(s[0].Value.Uint64())/(1<<20), "heap-idle-MiB")
		b.ReportMetric(float64(s[1].Value.Uint64())/(1<<20), "go-mapped-MiB")
		b.ReportMetric(drained.Seconds(), "drain-s")
		if startup > maxStartup {
			b.Errorf("%d tasks started in %v, want under %v", tasks, startup, maxStartup)
		}
		if rss > maxIdleRSS {
			b.Errorf("idle RSS %d MiB, want under %d MiB", rss>>20, maxIdleRSS>>20)
		}
	})
}

// waitFor polls cond until it holds, failing past limit or if the job
// stops.
func waitFor(b *testing.B, done chan error, limit time.Duration, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		select {
		case err := <-done:
			b.Fatalf("the job stopped: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("not reached within %v", limit)
		}
	}
}

// procStatus returns a size field of the process's status (VmRSS, VmHWM) in
// bytes, 0 where there is none.
func procStatus(field string) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}
