package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/bench/gen"
)

// cluster is a job over kfake run by separate sluice processes, with a
// producer of sequence-numbered traffic records: the harness of the delivery
// tests.
type cluster struct {
	t       *testing.T
	bin     string
	dir     string
	job     string
	brokers []string
	kfake   *kfake.Cluster
	prod    *kgo.Client

	mu     sync.Mutex
	placed map[int64]placement // sequence number → where the record landed
	next   int64
}

type placement struct {
	partition int32
	offset    int64
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// sharedBinary builds the sluice binary once per test process.
func sharedBinary(t *testing.T) string {
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "sluice")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/sluice")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func newCluster(t *testing.T, partitions int32, interval string) *cluster {
	return newClusterSinks(t, partitions, interval, "")
}

// newClusterSinks is newCluster with extra sinks (YAML list items) beside the
// file sink.
func newClusterSinks(t *testing.T, partitions int32, interval, extra string) *cluster {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(partitions, "e2e.traffic"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	c := &cluster{t: t, bin: sharedBinary(t), dir: t.TempDir(), kfake: kc, brokers: kc.ListenAddrs(), placed: map[int64]placement{}}
	schema, err := os.ReadFile(filepath.Join(repoRoot(t), "examples/schemas/traffic.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(c.dir, "traffic.avsc"), schema, 0o644)
	c.job = filepath.Join(c.dir, "job.yaml")
	os.WriteFile(c.job, []byte(fmt.Sprintf(`job: e2e
kafka: {brokers: [%s]}
checkpoint: {store: file://%s/ckpt, interval: %s}
metrics: {listen: "off"}
drain: {deadline: 30s}
pipelines:
  - name: all
    source: {kafka: {topics: [e2e.traffic]}}
    format: {avro: {schema_file: traffic.avsc}}
    sql: SELECT sequence_number, src_ip, action FROM input
    bundle: {max_records: 500, max_wait: 200ms}
    sinks:
      - file: {path: %s/out.jsonl, format: json}
%s`, c.brokers[0], c.dir, interval, c.dir, extra)), 0o644)
	c.producer()
	return c
}

// producer replaces the cluster's producer with one that spreads records
// round-robin over the partitions, with opts on top (franz-go compresses
// with snappy unless told otherwise).
func (c *cluster) producer(opts ...kgo.Opt) {
	c.t.Helper()
	prod, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.brokers...), kgo.DefaultProduceTopic("e2e.traffic"),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner())}, opts...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.prod != nil {
		c.prod.Close()
	}
	c.prod = prod
	c.t.Cleanup(prod.Close)
}

// produce writes n more sequence-numbered records and waits for them.
func (c *cluster) produce(n int) {
	c.mu.Lock()
	from := c.next
	c.next += int64(n)
	c.mu.Unlock()
	g := gen.New(from)
	for i := from; i < from+int64(n); i++ {
		r := g.Next()
		r.SequenceNumber = i
		c.prod.Produce(context.Background(), &kgo.Record{Value: r.AppendAvro(nil)}, func(rec *kgo.Record, err error) {
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

func (c *cluster) produced() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next
}

type worker struct {
	cmd     *exec.Cmd
	logs    *syncBuffer // read while the worker runs
	done    chan error
	started time.Time
}

// startGrace bounds how long drain waits for a worker that has logged
// nothing yet: a SIGTERM that arrives while the process is still starting,
// before main asks for the signal, kills it as the default action does. A
// worker that logged a line is past that.
const startGrace = 2 * time.Second

// start runs a worker as pod, with env (NAME=value) added to the test's
// environment.
func (c *cluster) start(pod string, env ...string) *worker {
	cmd := exec.Command(c.bin, "run", c.job)
	cmd.Dir = c.dir
	// TMPDIR is the test's directory: a worker keeps its task state under
	// it (sluice-state/<job>/<pod>), so parallel tests whose jobs and pods
	// share names never wipe each other's state. env may override it.
	cmd.Env = append(append(os.Environ(), "POD_NAME="+pod, "TMPDIR="+c.dir), env...)
	w := &worker{cmd: cmd, logs: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr, cmd.Stdout = w.logs, w.logs
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	w.started = time.Now()
	go func() { w.done <- cmd.Wait() }()
	return w
}

// drain sends SIGTERM and requires a clean exit.
func (c *cluster) drain(w *worker) {
	c.t.Helper()
	for w.logs.Len() == 0 && time.Since(w.started) < startGrace {
		time.Sleep(10 * time.Millisecond)
	}
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-w.done:
		if err != nil {
			c.t.Fatalf("sluice run after SIGTERM: %v; logs:\n%s", err, w.logs.String())
		}
	case <-time.After(60 * time.Second):
		w.cmd.Process.Kill()
		c.t.Fatalf("no exit 60 s after SIGTERM; logs:\n%s", w.logs.String())
	}
}

func (c *cluster) kill(w *worker) {
	w.cmd.Process.Kill()
	<-w.done
}

func (c *cluster) outPath() string { return filepath.Join(c.dir, "out.jsonl") }

// waitDistinct waits until the sink holds n distinct sequence numbers.
func (c *cluster) waitDistinct(n int, timeout time.Duration, ws ...*worker) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		seen, _ := c.sinkCounts()
		if len(seen) >= n {
			return
		}
		if time.Now().After(deadline) {
			var logs string
			for _, w := range ws {
				logs += w.logs.String()
			}
			c.t.Fatalf("sink holds %d distinct records after %s, want %d; logs:\n%s", len(seen), timeout, n, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sinkCounts reads the sink: how often each sequence number is there.
func (c *cluster) sinkCounts() (map[int64]int, int) {
	b, _ := os.ReadFile(c.outPath())
	seen := map[int64]int{}
	rows := 0
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		var row struct {
			SequenceNumber int64 `json:"sequence_number"`
		}
		if json.Unmarshal(line, &row) != nil {
			continue // a line torn by a kill, not yet completed
		}
		seen[row.SequenceNumber]++
		rows++
	}
	return seen, rows
}

// exactlyOnce requires every produced record in the sink exactly once.
func (c *cluster) exactlyOnce() {
	c.t.Helper()
	seen, rows := c.sinkCounts()
	if missing, dup := c.tally(seen); missing > 0 || dup > 0 {
		c.t.Fatalf("%d records produced: %d missing, %d duplicated (%d rows)", c.produced(), missing, dup, rows)
	}
}

// tally counts the produced records missing from seen and those there more
// than once.
func (c *cluster) tally(seen map[int64]int) (missing, dup int) {
	for i := int64(0); i < c.produced(); i++ {
		switch seen[i] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	return missing, dup
}

// produceEvery produces n records every interval until the returned function
// is called; it returns once production has stopped.
func (c *cluster) produceEvery(n int, interval time.Duration) (stop func()) {
	return every(c.t, interval, func() { c.produce(n) })
}

// every calls f every interval on its own goroutine until the returned
// function is called (idempotent; the test's cleanup calls it too, so a
// test that fails midway stops it before its clients close); it returns
// once f has stopped.
func every(t *testing.T, interval time.Duration, f func()) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			default:
			}
			f()
			time.Sleep(interval)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(done); <-stopped }) }
	t.Cleanup(stop)
	return stop
}
