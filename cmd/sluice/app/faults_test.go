package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// deadAddr returns a loopback address nothing listens on (yet): an https
// sink pointed at it fails until a server is started there.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// serveAt starts an HTTP collector on addr that accepts everything; it
// returns how many requests it served.
func serveAt(t *testing.T, addr string) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	var ln net.Listener
	var err error
	for range 50 { // the port was free a moment ago; retry a bind race briefly
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { n.Add(1) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &n
}

// committed reads the job's committed offsets: partition → offset.
func (c *cluster) committed() map[int32]int64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(c.prod).FetchOffsets(ctx, "e2e")
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil // nothing committed yet
	}
	if err != nil {
		c.t.Fatalf("fetch offsets: %v", err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// writeJob replaces the cluster's job file: pipelines is the YAML list of
// pipelines, with %[1]s standing for the cluster's directory.
func (c *cluster) writeJob(interval, deadline, pipelines string) {
	c.t.Helper()
	yaml := fmt.Sprintf(`job: e2e
kafka: {brokers: [%s]}
checkpoint: {store: file://%s/ckpt, interval: %s}
metrics: {listen: "off"}
drain: {deadline: %s}
pipelines:
`, c.brokers[0], c.dir, interval, deadline) + strings.ReplaceAll(pipelines, "%[1]s", c.dir)
	if err := os.WriteFile(c.job, []byte(yaml), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

const pipelineYAML = `  - name: %s
    source: {kafka: {topics: [e2e.traffic]}}
    format: {avro: {schema_file: traffic.avsc}}
    sql: SELECT sequence_number, src_ip, action FROM input
    bundle: {max_records: 100, max_wait: 200ms}
    sinks:
%s`

// One pipeline, a file sink and an https sink to a dead address: while the
// https sink fails, the file gets each record once, however often the
// bundle is replayed into the https sink; once the collector is up, every
// record is in the file exactly once.
func TestJobReplayDoesNotMultiply(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2, "1s")
	addr := deadAddr(t)
	c.writeJob("1s", "30s", fmt.Sprintf(pipelineYAML, "all", `      - file: {path: %[1]s/out.jsonl, format: json}
      - https: {url: "http://`+addr+`/ingest", max_retries: 1, timeout: 1s}
`))
	c.produce(300)
	w := c.start("e2e-0")
	time.Sleep(4 * time.Second) // many failed flushes and replays
	seen, rows := c.sinkCounts()
	if rows != len(seen) {
		t.Fatalf("while the https sink fails the file holds %d lines for %d records: replays multiplied the output; logs:\n%s", rows, len(seen), w.logs.String())
	}
	if rows >= 300 {
		t.Fatalf("the file holds all %d records although the https sink never acknowledged", rows)
	}
	served := serveAt(t, addr)
	c.waitDistinct(300, time.Minute, w)
	time.Sleep(500 * time.Millisecond)
	c.drain(w)
	c.exactlyOnce()
	if served.Load() == 0 {
		t.Error("the collector got no request")
	}
}

// Pipelines healthy (file) and broken (https to a dead port) in one job:
// checkpoints keep coming and record healthy's position, so after a SIGKILL
// and a fix the healthy pipeline replays nothing it had completed.
func TestFailingPipelineDoesNotStallCheckpoints(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 4, "500ms")
	addr := deadAddr(t)
	c.writeJob("500ms", "30s", fmt.Sprintf(pipelineYAML, "healthy", `      - file: {path: %[1]s/out.jsonl, format: json}
`)+fmt.Sprintf(pipelineYAML, "broken", `      - https: {url: "http://`+addr+`/ingest", max_retries: 1, timeout: 1s}
`))
	c.produce(2000)
	w := c.start("e2e-0")
	// Each task completes its first bundle for healthy, then waits on
	// broken; the checkpoints commit the tasks' positions (broken's, the
	// lowest) and record healthy's ahead of them.
	deadline := time.Now().Add(time.Minute)
	for len(c.committed()) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint committed every partition within a minute (committed %v); logs:\n%s", c.committed(), w.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a few more intervals
	before, rowsBefore := c.sinkCounts()
	if len(before) == 0 {
		t.Fatalf("the healthy pipeline wrote nothing; logs:\n%s", w.logs.String())
	}
	c.kill(w)

	serveAt(t, addr)
	w = c.start("e2e-0")
	c.waitDistinct(2000, time.Minute, w)
	time.Sleep(time.Second)
	c.drain(w)
	seen, rows := c.sinkCounts()
	if missing, _ := c.tally(seen); missing > 0 {
		t.Fatalf("%d records missing from healthy's file", missing)
	}
	// Nothing was produced in the last interval before the kill, so the
	// healthy pipeline, whose position every checkpoint recorded, must
	// replay nothing.
	if dup := rows - len(seen); dup > 0 {
		t.Errorf("after SIGKILL and restart the healthy pipeline wrote %d duplicates (it held %d rows before the kill)", dup, rowsBefore)
	}
}

// With a sink failing, SIGTERM ends the worker within drain.deadline, with
// a final checkpoint; a second SIGTERM ends a long drain at once.
func TestDrainDeadlineWithFailingSink(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2, "1s")
	addr := deadAddr(t)
	pipes := fmt.Sprintf(pipelineYAML, "broken", `      - file: {path: %[1]s/out.jsonl, format: json}
      - https: {url: "http://`+addr+`/ingest", max_retries: 1, timeout: 1s}
`)
	c.writeJob("1s", "4s", pipes)
	c.produce(200)
	w := c.start("e2e-0")
	c.waitDistinct(1, time.Minute, w) // the first bundle reached the file
	time.Sleep(2 * time.Second)
	begin := time.Now()
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(20 * time.Second):
		w.cmd.Process.Kill()
		t.Fatalf("no exit 20 s after SIGTERM with drain.deadline 4s; logs:\n%s", w.logs.String())
	}
	if took := time.Since(begin); took > 6*time.Second {
		t.Errorf("exit %v after SIGTERM, drain.deadline 4s", took)
	}
	if !strings.Contains(w.logs.String(), "drain deadline passed") {
		t.Errorf("the worker did not say its drain deadline passed; logs:\n%s", w.logs.String())
	}
	if len(c.committed()) == 0 {
		t.Error("no final checkpoint committed")
	}

	// A long drain deadline, and a second signal.
	c.writeJob("1s", "5m", pipes)
	w = c.start("e2e-0")
	time.Sleep(3 * time.Second)
	w.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	begin = time.Now()
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(20 * time.Second):
		w.cmd.Process.Kill()
		t.Fatalf("no exit 20 s after a second SIGTERM; logs:\n%s", w.logs.String())
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("exit %v after the second SIGTERM; want at once", took)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "ckpt")); err != nil {
		t.Errorf("no checkpoint directory: %v", err)
	}
}
