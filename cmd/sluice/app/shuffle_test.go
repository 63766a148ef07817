package app

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/bench/gen"
)

// TestShuffleExact: a windowed COUNT and SUM by src_ip, whose records are
// written round-robin over 4 partitions so that every key is on every
// partition, run by the sluice binary into a BigQuery committed-mode
// table. With aggregation: shuffle the source tasks pre-aggregate, send
// partials through the repartition topic sluice creates, and its tasks
// merge: the table holds exactly one row per key and window, equal to
// the count and sum computed from the produced records. The same job
// with aggregation: per_partition emits a row per partition holding the
// key (so the shuffle is what makes the result exact).
func TestShuffleExact(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"shuffle", "per_partition"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := newWindowRunMode(t, mode, true)
			w := r.c.start("w0")
			for range 4 {
				r.produce(2500)
			}
			r.waitTable(90 * time.Second)
			if mode == "per_partition" {
				// Rows per partition reach the window count long before
				// the last: drain once the table stops growing.
				for n, deadline := -1, time.Now().Add(60*time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
					m := len(r.bq.Rows(windowTable))
					if m == n {
						break
					}
					n = m
				}
			}
			r.c.drain(w)
			if mode == "shuffle" {
				r.exact(w.logs.String())
				t.Logf("%d records, %d windows: every window once, every count and sum exact", r.next, len(r.want))
				return
			}
			got := r.table()
			split := 0
			for wk := range r.want {
				if len(got[wk]) > 1 {
					split++
				}
			}
			if split == 0 {
				t.Fatalf("per_partition: no key and window has more than one row (%d windows): the test does not spread keys over partitions", len(r.want))
			}
			t.Logf("per_partition: %d of %d windows split into several rows", split, len(r.want))
		})
	}
}

// TestShuffleCrashExactlyOnce: the shuffled aggregation of TestShuffleExact
// while records flow, through two SIGKILLs of the binary and a second
// worker joining (the group moves source and merging tasks to it): every
// window of the records produced is in the table once, with its exact
// count and sum. A producer restarted after a crash starts a new epoch
// from its committed offset, so the merging tasks drop the partials it
// replays; a merging task resumes from its checkpointed state and offset,
// and replays the same rows, which the committed-mode table deduplicates.
func TestShuffleCrashExactlyOnce(t *testing.T) {
	t.Parallel()
	r := newWindowRunMode(t, "shuffle", true)
	c := r.c
	rnd := rand.New(rand.NewSource(17))
	pause := func() { time.Sleep(time.Duration(1500+rnd.Intn(1500)) * time.Millisecond) }
	start := time.Now()
	step := func(what string) { t.Logf("%6.1fs %s", time.Since(start).Seconds(), what) }
	stopProducing := r.produceEvery(200, 25*time.Millisecond)

	w0 := c.start("w0")
	pause()
	step("kill 1")
	c.kill(w0)
	w0 = c.start("w0")
	pause()
	step("w1 starts")
	w1 := c.start("w1")
	pause()
	step("kill 2")
	c.kill(w0)
	stopProducing()
	w0 = c.start("w0")
	step("waiting for the table")
	r.waitTable(2 * time.Minute)
	step("drain")
	c.drain(w1)
	c.drain(w0)
	logs := w0.logs.String() + w1.logs.String()
	r.exact(logs)
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "level=ERROR") {
			t.Errorf("logged: %s", l)
		}
	}
	t.Logf("%d records, %d windows, 2 SIGKILLs and a second worker: every window once, every count and sum exact", r.next, len(r.want))
}

// TestShuffleEmptyPartition: the shuffled aggregation of TestShuffleExact
// over a topic one of whose 4 partitions never receives a record. Its
// producer task has no watermark to send; once its input has been idle
// for idle_timeout it sends an idle mark, the merging tasks leave it out
// of their watermark, and every window of the other partitions' records
// is emitted, once, exact.
func TestShuffleEmptyPartition(t *testing.T) {
	t.Parallel()
	r := newWindowRunMode(t, "shuffle", true)
	job, err := os.ReadFile(r.c.job)
	if err != nil {
		t.Fatal(err)
	}
	// Short, but long enough that a producer reading its records is never
	// idle before the last of them.
	job = []byte(strings.Replace(string(job), "idle_timeout: 1h", "idle_timeout: 3s", 1))
	if err := os.WriteFile(r.c.job, job, 0o644); err != nil {
		t.Fatal(err)
	}
	const used = windowTopicP - 1 // partition windowTopicP-1 stays empty
	closing := r.produceTo(used, 6000)
	w := r.c.start("w0")
	deadline := time.Now().Add(time.Minute)
	for len(r.bq.Rows(windowTable)) < len(r.want) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // for a duplicate to show
	r.c.drain(w)
	// The closing records' windows may be emitted too (the producers that
	// read them go idle as well, and their watermarks follow the clock):
	// if they are, once.
	for wk, rows := range r.table() {
		if _, ok := r.want[wk]; !ok && wk.start >= closing {
			r.want[wk] = rows[0]
		}
	}
	r.exact(w.logs.String())
	t.Logf("%d records on %d of %d partitions, %d windows: every window once, every count and sum exact", r.next, used, windowTopicP, len(r.want))
}

// produceTo writes n records, record i to partition i mod parts, with the
// src_ips of r.keys[0] in turn, then one closing record an hour of event
// time later to each of those partitions, and waits for them. It returns
// the window start of the closing records.
func (r *windowRun) produceTo(parts int32, n int) (closing int64) {
	r.mu.Lock()
	g := gen.New(r.next)
	ks := r.keys[0]
	for i := r.next; i < r.next+int64(n); i++ {
		rec := g.Next()
		p := int32(i % int64(parts))
		rec.SrcIP = ks[(i/int64(parts))%int64(len(ks))]
		rec.SequenceNumber = i
		rec.TimeGenerated = windowBase.Add(time.Duration(i) * windowStep)
		wk := windowKey{rec.TimeGenerated.Truncate(windowSize).UnixMicro(), rec.SrcIP}
		a := r.want[wk]
		a.n++
		a.bytes += rec.BytesSent
		r.want[wk] = a
		r.send(p, rec.SrcIP, rec.AppendAvro(nil))
	}
	r.next += int64(n)
	end := windowBase.Add(time.Duration(r.next)*windowStep + time.Hour)
	for p := range parts {
		rec := g.Next()
		rec.SrcIP = ks[0]
		rec.SequenceNumber = -1
		rec.TimeGenerated = end
		r.send(p, rec.SrcIP, rec.AppendAvro(nil))
	}
	r.closed = true
	r.mu.Unlock()
	if err := r.prod.Flush(context.Background()); err != nil {
		r.c.t.Fatal(fmt.Errorf("produce: %w", err))
	}
	return end.Truncate(windowSize).UnixMicro()
}
