package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// boundedJob writes a stop_at: end variant of the cluster's job, reading
// topic with the given start policy, and returns its path.
func (c *cluster) boundedJob(name, topic, start string) string {
	c.t.Helper()
	path := filepath.Join(c.dir, name+".yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`job: %s
kafka: {brokers: [%s]}
checkpoint: {store: file://%s/ckpt-%s, interval: 1s}
metrics: {listen: "off"}
drain: {deadline: 30s}
pipelines:
  - name: all
    source: {kafka: {topics: [%s], start: %s, stop_at: end}}
    format: {avro: {schema_file: traffic.avsc}}
    sql: SELECT sequence_number, src_ip, action FROM input
    bundle: {max_records: 500, max_wait: 200ms}
    sinks:
      - file: {path: %s/out.jsonl, format: json}
`, name, c.brokers[0], c.dir, name, topic, start, c.dir)), 0o644)
	return path
}

// runJob starts `sluice run job` as pod and returns the worker.
func (c *cluster) runJob(job, pod string) *worker {
	saved := c.job
	c.job = job
	defer func() { c.job = saved }()
	return c.start(pod)
}

// exits waits for w to exit within timeout and returns its exit code.
func (c *cluster) exits(w *worker, timeout time.Duration) int {
	c.t.Helper()
	select {
	case <-w.done:
		return w.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		c.kill(w)
		c.t.Fatalf("sluice run still running after %s; logs:\n%s", timeout, w.logs.String())
		return -1
	}
}

// TestBoundedJobRerunExits: a stop_at: end job drains its topic and exits 0;
// run again with every task at its end offset, it exits 0 at once. A
// start: latest bounded job has nothing to read and exits 0 at once too, and
// a bounded job over two members (two sluice run processes) reads every
// record once between them and both exit 0.
func TestBoundedJobRerunExits(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 4, "1s")
	const total = 1000
	c.produce(total)

	job := c.boundedJob("backfill", "e2e.traffic", "earliest")
	w := c.runJob(job, "b-0")
	if code := c.exits(w, time.Minute); code != 0 {
		t.Fatalf("first run: exit %d; logs:\n%s", code, w.logs.String())
	}
	c.exactlyOnce()

	start := time.Now()
	w = c.runJob(job, "b-0")
	if code := c.exits(w, 30*time.Second); code != 0 {
		t.Fatalf("re-run: exit %d; logs:\n%s", code, w.logs.String())
	}
	t.Logf("re-run with every task at its end exited 0 after %s", time.Since(start).Round(time.Millisecond))
	c.exactlyOnce()

	w = c.runJob(c.boundedJob("latest", "e2e.traffic", "latest"), "l-0")
	if code := c.exits(w, 30*time.Second); code != 0 {
		t.Fatalf("start: latest: exit %d; logs:\n%s", code, w.logs.String())
	}
	c.exactlyOnce()

	// Two members of a fresh group split the backfill.
	os.Remove(c.outPath())
	two := c.boundedJob("pair", "e2e.traffic", "earliest")
	w0, w1 := c.runJob(two, "p-0"), c.runJob(two, "p-1")
	for _, w := range []*worker{w0, w1} {
		if code := c.exits(w, 90*time.Second); code != 0 {
			t.Fatalf("two members: exit %d; logs:\n%s\n--- other:\n%s", code, w0.logs.String(), w1.logs.String())
		}
	}
	c.exactlyOnce()
	if !strings.Contains(w0.logs.String()+w1.logs.String(), "bounded job complete") {
		t.Errorf("no member logged its end")
	}
}

// TestBoundedEmptyAndMissingTopic: a stop_at: end job over a topic with no
// records exits 0 on its first run; over a topic that does not exist it exits
// 1 at once, naming the topic and the brokers, instead of retrying forever.
func TestBoundedEmptyAndMissingTopic(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2, "1s")
	adm := kadm.NewClient(c.prod)
	if _, err := adm.CreateTopic(context.Background(), 3, 1, nil, "e2e.empty"); err != nil {
		t.Fatal(err)
	}
	w := c.runJob(c.boundedJob("empty", "e2e.empty", "earliest"), "e-0")
	if code := c.exits(w, 30*time.Second); code != 0 {
		t.Fatalf("empty topic: exit %d, want 0; logs:\n%s", code, w.logs.String())
	}

	w = c.runJob(c.boundedJob("missing", "e2e.nope", "earliest"), "m-0")
	if code := c.exits(w, 30*time.Second); code != 1 {
		t.Fatalf("missing topic: exit %d, want 1; logs:\n%s", code, w.logs.String())
	}
	for _, want := range []string{`e2e.nope`, "does not exist", c.brokers[0]} {
		if !strings.Contains(w.logs.String(), want) {
			t.Errorf("missing topic: the logs do not say %q:\n%s", want, w.logs.String())
		}
	}
}
