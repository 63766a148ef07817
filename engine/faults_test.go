package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/backoff"
)

// These tests hold the delivery contract under faults: a sink that fails,
// for a while or for good, a decoder whose registry is down, a store that
// cannot save, a drain with a sink that never comes back.

// flakySink acknowledges nothing while down is set: each Flush fails with
// err (or "connection refused"). Acknowledged rows are kept in order.
type flakySink struct {
	mu      sync.Mutex
	acked   []string
	down    atomic.Bool
	err     error
	flushes atomic.Int64
	opens   atomic.Int64
	written atomic.Int64
}

type flakyWriter struct {
	s       *flakySink
	pending []string
}

func (s *flakySink) Open(context.Context, engine.TaskID) (engine.Writer, error) {
	s.opens.Add(1)
	return &flakyWriter{s: s}, nil
}
func (s *flakySink) Close(context.Context) error { return nil }
func (w *flakyWriter) Write(row *engine.Row) error {
	w.s.written.Add(1)
	w.pending = append(w.pending, string(row.Str(0)))
	return nil
}
func (w *flakyWriter) Flush(ctx context.Context) error {
	w.s.flushes.Add(1)
	if w.s.down.Load() {
		if w.s.err != nil {
			return w.s.err
		}
		return errors.New("dial tcp 127.0.0.1:9: connect: connection refused")
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.acked = append(w.s.acked, w.pending...)
	w.pending = nil
	return nil
}
func (w *flakyWriter) Close(context.Context) error { return nil }

func (s *flakySink) rows() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.acked)
}

// liveSource is an unbounded source of one task: it assigns the task at
// start (from the given committed offset and metadata), delivers values
// from that offset on, then waits for the end of ctx.
type liveSource struct {
	values []string
	offset int64
	meta   string
	batch  int
	// others are assigned too (from no committed offset) and get records
	// only from the test, through Runtime.Deliver.
	others []engine.TaskID

	mu      sync.Mutex
	commits []engine.Position
	metas   []string
}

var task0 = engine.TaskID{Topic: "t", Partition: 0}

func (s *liveSource) Run(ctx context.Context, h engine.Handler) error {
	as := []engine.Assignment{{Task: task0, Offset: s.offset, Meta: s.meta}}
	for _, id := range s.others {
		as = append(as, engine.Assignment{Task: id, Offset: -1})
	}
	h.Assign(ctx, as)
	from := max(s.offset, 0)
	batch := max(s.batch, 1)
	for i := int(from); i < len(s.values); i += batch {
		var recs []engine.Record
		for j := i; j < min(i+batch, len(s.values)); j++ {
			recs = append(recs, engine.Record{Value: []byte(s.values[j]), Offset: int64(j), Timestamp: time.UnixMicro(int64(j + 1))})
		}
		h.Deliver(task0, recs)
	}
	<-ctx.Done()
	return nil
}

func (s *liveSource) Commit(_ context.Context, ps []engine.Position, meta string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits = append(s.commits, ps...)
	s.metas = append(s.metas, meta)
	return nil
}

// last returns task0's last committed position, the last commit's
// metadata and the number of commits.
func (s *liveSource) last() (engine.Position, string, int) {
	p := s.lastOf(task0)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.metas) == 0 {
		return p, "", 0
	}
	return p, s.metas[len(s.metas)-1], len(s.metas)
}

func (s *liveSource) lastOf(id engine.TaskID) engine.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.commits) - 1; i >= 0; i-- {
		if s.commits[i].Task == id {
			return s.commits[i]
		}
	}
	return engine.Position{Task: id, Offset: -1}
}

// keyStore keeps every checkpoint by key; err, when set, fails Save.
type keyStore struct {
	mu  sync.Mutex
	cps map[string]*engine.Checkpoint
	n   int
	err error
}

func (s *keyStore) Save(_ context.Context, cp *engine.Checkpoint) (string, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return "", 0, s.err
	}
	if s.cps == nil {
		s.cps = map[string]*engine.Checkpoint{}
	}
	k := fmt.Sprintf("ckpt-%d", cp.Seq)
	s.cps[k] = cp
	s.n++
	return k, 10, nil
}

func (s *keyStore) Load(_ context.Context, key string) (*engine.Checkpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp, ok := s.cps[key]
	if !ok {
		return nil, errors.New("not found")
	}
	return cp, nil
}

func (s *keyStore) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *keyStore) saved() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func pipeline(name string, sinks ...engine.NamedSink) *engine.Pipeline {
	return &engine.Pipeline{
		Name: name, Reads: func(string) bool { return true },
		Decoder: lineDecoder{}, Transform: passThrough{},
		Sinks: sinks, MaxRecords: 10, MaxWait: 50 * time.Millisecond,
	}
}

var fastRetry = backoff.Policy{Base: 5 * time.Millisecond, Max: 20 * time.Millisecond}

func newJob(src engine.Source, store engine.CheckpointStore, pipes ...*engine.Pipeline) *engine.Job {
	return &engine.Job{
		Name: "j", Pod: "p0", Pipelines: pipes, Source: src, Store: store,
		Interval: 50 * time.Millisecond, DrainDeadline: 2 * time.Second,
		Retry: fastRetry, PermanentRetry: backoff.Policy{Base: 200 * time.Millisecond, Max: 200 * time.Millisecond},
	}
}

func start(t *testing.T, job *engine.Job) (*engine.Runtime, func() error) {
	t.Helper()
	rt, err := engine.New(job)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return within 30 s of its cancellation")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return rt, stop
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func count(rows []string) map[string]int {
	m := map[string]int{}
	for _, r := range rows {
		m[r]++
	}
	return m
}

// A replay after a failed flush goes only to the writers that did not
// acknowledge the bundle: the healthy sink of the same pipeline gets every
// row once, however often its sibling fails.
func TestReplayDoesNotMultiply(t *testing.T) {
	healthy, broken := &flakySink{}, &flakySink{}
	broken.down.Store(true)
	src := &liveSource{values: values(300), offset: -1, batch: 7}
	job := newJob(src, &keyStore{}, pipeline("p", engine.NamedSink{Name: "file", Sink: healthy}, engine.NamedSink{Name: "siem", Sink: broken}))
	_, stop := start(t, job)
	// The first bundle is flushed to healthy, then failed and retried into
	// broken again and again.
	waitFor(t, "a dozen failed flushes", 10*time.Second, func() bool { return broken.flushes.Load() > 12 })
	if got := len(healthy.rows()); got != 10 {
		t.Fatalf("while its sibling fails, the healthy sink holds %d rows; want the first bundle's 10, once", got)
	}
	broken.down.Store(false)
	waitFor(t, "every row in both sinks", 10*time.Second, func() bool { return len(broken.rows()) >= 300 })
	stop()
	for name, s := range map[string]*flakySink{"healthy": healthy, "broken": broken} {
		got := s.rows()
		if !slices.Equal(got, values(300)) {
			dups := 0
			for _, n := range count(got) {
				dups += n - 1
			}
			t.Errorf("%s sink holds %d rows (%d duplicates); want the 300 rows once, in order", name, len(got), dups)
		}
	}
	if n := healthy.written.Load(); n != 300 {
		t.Errorf("the healthy writer was handed %d rows; a replay must not write to a writer that acknowledged", n)
	}
}

// A failing pipeline does not stall checkpoints: they keep coming, with the
// healthy pipeline's position ahead of the task's (which the group commits),
// and after a crash the healthy pipeline skips what it had completed.
func TestFailingPipelineDoesNotStallCheckpoints(t *testing.T) {
	healthy, broken := &flakySink{}, &flakySink{}
	broken.down.Store(true)
	store := &keyStore{}
	src := &liveSource{values: values(200), offset: -1, batch: 10, others: []engine.TaskID{{Topic: "u", Partition: 0}}}
	brokenPipe := pipeline("broken", engine.NamedSink{Name: "siem", Sink: broken})
	brokenPipe.Reads = func(topic string) bool { return topic == "t" }
	job := newJob(src, store, pipeline("healthy", engine.NamedSink{Name: "file", Sink: healthy}), brokenPipe)
	rt, stop := start(t, job)
	// The healthy pipeline's bundles complete while the broken one holds
	// the task (its first bundle sealed): the healthy pipeline gets the
	// first bundle only, but its position is checkpointed ahead.
	waitFor(t, "a checkpoint with the healthy pipeline ahead", 10*time.Second, func() bool {
		p, _, _ := src.last()
		return len(p.Pipelines) == 1 && p.Pipelines[0].Pipeline == "healthy" && p.Pipelines[0].Offset == 10 && p.Offset == 0
	})
	// Other tasks go on, and so do checkpoints: records of a topic that
	// only the healthy pipeline reads are committed while the broken
	// pipeline holds task t/0.
	other := engine.TaskID{Topic: "u", Partition: 0}
	for i := range 3 {
		rt.Deliver(other, []engine.Record{{Value: []byte(fmt.Sprintf("u%d", i)), Offset: int64(i), Timestamp: time.UnixMicro(1)}})
		waitFor(t, "a checkpoint of the other task", 10*time.Second, func() bool { return src.lastOf(other).Offset == int64(i+1) })
	}
	if ok, why := rt.Ready(); ok || !strings.Contains(why, "sink broken/siem failing") {
		t.Errorf("Ready() = %v, %q; want not ready, naming the failing sink", ok, why)
	}
	// Stop (the drain gives up the sealed bundle at its deadline), then
	// restart from what was committed, with the sink fixed.
	stop() // a drain with a dead sink: gives up after the deadline
	healthyBefore := len(healthy.rows())
	pos, meta, _ := src.last()

	broken.down.Store(false)
	src2 := &liveSource{values: values(200), offset: pos.Offset, meta: meta, batch: 10}
	job2 := newJob(src2, store, pipeline("healthy", engine.NamedSink{Name: "file", Sink: healthy}), brokenPipe)
	_, stop2 := start(t, job2)
	waitFor(t, "both pipelines to finish", 10*time.Second, func() bool {
		return len(broken.rows()) >= 200 && len(healthy.rows()) >= 200
	})
	stop2()
	got := count(healthy.rows())
	for i := range 3 {
		delete(got, fmt.Sprintf("u%d", i))
	}
	dups := 0
	for v, n := range got {
		if n > 1 {
			dups += n - 1
			t.Logf("healthy holds %s %d times", v, n)
		}
	}
	if dups > 0 {
		t.Errorf("after the restart the healthy pipeline holds %d duplicates (it held %d rows before); it must skip what its checkpoint recorded", dups, healthyBefore)
	}
	if len(got) != 200 {
		t.Errorf("healthy holds %d distinct rows, want 200", len(got))
	}
	if b := count(broken.rows()); len(b) != 200 {
		t.Errorf("broken holds %d distinct rows, want 200", len(b))
	}
}

// A drain with a sink that never comes back ends within its deadline, with
// a final checkpoint of the complete positions.
func TestDrainDeadlineWithFailingSink(t *testing.T) {
	healthy, broken := &flakySink{}, &flakySink{}
	broken.down.Store(true)
	src := &liveSource{values: values(100), offset: -1, batch: 10}
	job := newJob(src, &keyStore{}, pipeline("healthy", engine.NamedSink{Name: "file", Sink: healthy}), pipeline("broken", engine.NamedSink{Name: "siem", Sink: broken}))
	job.Interval = time.Hour // only the drain checkpoints
	rt, stop := start(t, job)
	waitFor(t, "the broken sink retrying", 10*time.Second, func() bool { return broken.flushes.Load() > 3 })
	begin := time.Now()
	rt.Drain()
	err := stop()
	took := time.Since(begin)
	if took > job.DrainDeadline+time.Second {
		t.Errorf("drain took %v, deadline %v", took, job.DrainDeadline)
	}
	if err == nil || !strings.Contains(err.Error(), "drain deadline") {
		t.Errorf("Run = %v; want an error saying the drain deadline passed", err)
	}
	p, _, n := src.last()
	if n == 0 {
		t.Fatal("no final checkpoint committed")
	}
	want := []engine.PipelineOffset{{Pipeline: "healthy", Offset: 10}}
	if p.Offset != 0 || !slices.Equal(p.Pipelines, want) {
		t.Errorf("final position offset %d pipelines %v; want 0 with healthy at 10", p.Offset, p.Pipelines)
	}
}

// Abort (a second signal) ends a drain at once.
func TestAbortEndsADrainAtOnce(t *testing.T) {
	broken := &flakySink{}
	broken.down.Store(true)
	src := &liveSource{values: values(20), offset: -1, batch: 10}
	job := newJob(src, &keyStore{}, pipeline("broken", engine.NamedSink{Name: "siem", Sink: broken}))
	job.DrainDeadline = time.Minute
	rt, stop := start(t, job)
	waitFor(t, "the sink retrying", 10*time.Second, func() bool { return broken.flushes.Load() > 2 })
	rt.Drain()
	time.Sleep(100 * time.Millisecond)
	begin := time.Now()
	rt.Abort()
	if err := stop(); err == nil {
		t.Error("an aborted drain returned nil")
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("Run returned %v after Abort", took)
	}
}

// A permanent sink failure stops the task's progress (nothing lost), shows
// on readiness, in the flush-failure metric and in a WARN log naming the
// pipeline, the sink and the error, and is retried slowly until it is fixed.
func TestPermanentSinkErrorSurfaces(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	reg := prometheus.NewRegistry()
	bq := &flakySink{err: engine.Permanent(errors.New("bigquery: PERMISSION_DENIED on table acme.logs.denied token=s3cret"))}
	bq.down.Store(true)
	src := &liveSource{values: values(30), offset: -1, batch: 10}
	job := newJob(src, &keyStore{}, pipeline("denied", engine.NamedSink{Name: "bq", Sink: bq}))
	job.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
	job.Metrics = engine.NewMetrics(reg)
	job.Redact = func(s string) string { return strings.ReplaceAll(s, "s3cret", "[redacted]") }
	rt, stop := start(t, job)
	waitFor(t, "not ready for the sink", 5*time.Second, func() bool { _, why := rt.Ready(); return strings.Contains(why, "denied/bq") })
	_, why := rt.Ready()
	for _, want := range []string{"denied/bq", "permanent", "PERMISSION_DENIED", "[redacted]"} {
		if !strings.Contains(why, want) {
			t.Errorf("readiness %q lacks %q", why, want)
		}
	}
	if strings.Contains(why, "s3cret") {
		t.Errorf("readiness %q holds a secret", why)
	}
	// Slow retries: over 600 ms at a 200 ms cadence, a handful of flushes,
	// not the hundreds of the outage backoff.
	n0 := bq.flushes.Load()
	time.Sleep(600 * time.Millisecond)
	if d := bq.flushes.Load() - n0; d > 5 {
		t.Errorf("%d flushes in 600 ms; a permanent failure must be retried at the slow cadence", d)
	}
	var mf dto.Metric
	if err := job.Metrics.FlushFailures.WithLabelValues("j", "denied", "denied/bq", "permanent").Write(&mf); err != nil {
		t.Fatal(err)
	}
	if got := mf.GetCounter().GetValue(); got < 1 {
		t.Errorf("sluice_bundle_flush_failures_total{kind=permanent} = %v", got)
	}
	logMu.Lock()
	l := logs.String()
	logMu.Unlock()
	if !strings.Contains(l, "level=WARN") || !strings.Contains(l, "sink=denied/bq") || !strings.Contains(l, "pipeline=denied") || !strings.Contains(l, "PERMISSION_DENIED") {
		t.Errorf("no WARN naming the pipeline, sink and error in:\n%s", l)
	}
	if strings.Contains(l, "s3cret") {
		t.Errorf("the log holds a secret:\n%s", l)
	}
	if w := strings.Count(l, "level=WARN msg=\"sink failing"); w != 1 {
		t.Errorf("%d WARN lines about the failing sink; want one (rate-limited)", w)
	}
	if got := len(bq.rows()); got != 0 {
		t.Fatalf("rows acknowledged while failing: %d", got)
	}
	// The permission is fixed: the task resumes by itself.
	bq.down.Store(false)
	waitFor(t, "every row delivered after the fix", 10*time.Second, func() bool { return len(bq.rows()) >= 30 })
	waitFor(t, "ready again", 5*time.Second, func() bool { ok, _ := rt.Ready(); return ok })
	stop()
	if got := bq.rows(); !slices.Equal(got, values(30)) {
		t.Errorf("after the fix the sink holds %d rows; want the 30 once, in order", len(got))
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Readiness reflects a failing sink, a full disk and failing checkpoints,
// and recovers with them.
func TestReadinessReflectsFaults(t *testing.T) {
	file := &flakySink{err: fmt.Errorf("file sink: write out/denied.jsonl: %w", syscall.ENOSPC)}
	file.down.Store(true)
	store := &keyStore{}
	src := &liveSource{values: values(30), offset: -1, batch: 10}
	job := newJob(src, store, pipeline("denied", engine.NamedSink{Name: "file", Sink: file}))
	rt, stop := start(t, job)
	defer stop()
	waitFor(t, "not ready for the full disk", 5*time.Second, func() bool {
		ok, why := rt.Ready()
		return !ok && strings.Contains(why, "disk full") && strings.Contains(why, "denied/file")
	})
	file.down.Store(false)
	waitFor(t, "ready again once the disk has room", 5*time.Second, func() bool { ok, _ := rt.Ready(); return ok })

	store.setErr(fmt.Errorf("checkpoint: put 1234/j/p0/1.ckpt: %w", syscall.ENOSPC))
	src.mu.Lock()
	src.commits = nil
	src.mu.Unlock()
	rt.Deliver(task0, []engine.Record{{Value: []byte("more"), Offset: 30, Timestamp: time.UnixMicro(31)}})
	waitFor(t, "not ready for failing checkpoints", 5*time.Second, func() bool {
		ok, why := rt.Ready()
		return !ok && strings.Contains(why, "checkpoint not saved") && strings.Contains(why, "disk full")
	})
	store.setErr(nil)
	waitFor(t, "ready again once checkpoints succeed", 5*time.Second, func() bool { ok, _ := rt.Ready(); return ok })

	rt.SetUnready("kafka: brokers 127.0.0.1:1 unreachable")
	if ok, why := rt.Ready(); ok || !strings.Contains(why, "unreachable") {
		t.Errorf("Ready() = %v, %q after the source reported a problem", ok, why)
	}
	rt.SetUnready("")
	if ok, why := rt.Ready(); !ok {
		t.Errorf("not ready (%q) after the source cleared its problem", why)
	}
}

// unavailableDecoder fails with ErrUnavailable (a registry down) for its
// first fails calls, then decodes like lineDecoder.
type unavailableDecoder struct {
	fails atomic.Int64
	calls atomic.Int64
}

func (d *unavailableDecoder) Schema() *engine.Schema { return lineSchema }
func (d *unavailableDecoder) Decode(rec *engine.Record, row *engine.Row) error {
	d.calls.Add(1)
	if d.fails.Add(-1) >= 0 {
		return fmt.Errorf("avro: schema registry: GET /schemas/ids/7: status 503: %w", engine.ErrUnavailable)
	}
	return lineDecoder{}.Decode(rec, row)
}

// A decoder whose dependency is unavailable holds the record and retries:
// nothing is dead-lettered, nothing lost, readiness says why meanwhile.
func TestUnavailableDecoderHoldsTheTask(t *testing.T) {
	sink, dlq := &flakySink{}, &flakySink{}
	dec := &unavailableDecoder{}
	dec.fails.Store(20)
	p := pipeline("p", engine.NamedSink{Name: "mem", Sink: sink})
	p.Decoder = dec
	p.DeadLetter = dlq
	src := &liveSource{values: values(50), offset: -1, batch: 10}
	job := newJob(src, &keyStore{}, p)
	job.Retry = backoff.Policy{Base: 20 * time.Millisecond, Max: 40 * time.Millisecond}
	rt, stop := start(t, job)
	waitFor(t, "not ready while the registry is down", 5*time.Second, func() bool {
		ok, why := rt.Ready()
		return !ok && strings.Contains(why, "status 503")
	})
	waitFor(t, "every row delivered once the registry is back", 10*time.Second, func() bool { return len(sink.rows()) >= 50 })
	waitFor(t, "ready again", 5*time.Second, func() bool { ok, _ := rt.Ready(); return ok })
	stop()
	if got := sink.rows(); !slices.Equal(got, values(50)) {
		t.Errorf("sink holds %d rows; want the 50 once, in order", len(got))
	}
	if n := len(dlq.rows()); n != 0 {
		t.Errorf("%d dead letters; an unavailable registry must not dead-letter", n)
	}
}

// stateSink is a ResumableSink whose writers report their state; it records
// what each Resume was given.
type stateSink struct {
	name    string
	mu      sync.Mutex
	resumed []string
}

type stateWriter struct {
	flakyWriter
	state []byte
}

func (s *stateSink) Open(context.Context, engine.TaskID) (engine.Writer, error) {
	return &stateWriter{flakyWriter: flakyWriter{s: &flakySink{}}, state: []byte(s.name)}, nil
}
func (s *stateSink) Resume(_ context.Context, _ engine.TaskID, st []byte) (engine.Writer, error) {
	s.mu.Lock()
	s.resumed = append(s.resumed, string(st))
	s.mu.Unlock()
	return &stateWriter{flakyWriter: flakyWriter{s: &flakySink{}}, state: st}, nil
}
func (s *stateSink) Close(context.Context) error { return nil }
func (w *stateWriter) State() []byte             { return w.state }

// Checkpointed sink state follows the sink's name: a sink renamed or removed
// loses its state (with a log line), and no sink ever gets another's.
func TestSinkStateFollowsName(t *testing.T) {
	store := &keyStore{cps: map[string]*engine.Checkpoint{"old": {Job: "j", Pod: "p0", Seq: 1, Tasks: []engine.TaskState{{
		Task: task0, Offset: 5,
		Sinks: []engine.SinkState{{Name: "p/bq-denied", Data: []byte("stream-A@5")}, {Name: "p/bq-allowed", Data: []byte("stream-B@9")}},
	}}}}}
	// The job now has bq-denied second and a new sink first; bq-allowed is gone.
	fresh, denied := &stateSink{name: "fresh"}, &stateSink{name: "denied"}
	var logs bytes.Buffer
	var mu sync.Mutex
	src := &liveSource{values: values(10), offset: 5, meta: "old", batch: 10}
	job := newJob(src, store, pipeline("p", engine.NamedSink{Name: "bq-new", Sink: fresh}, engine.NamedSink{Name: "bq-denied", Sink: denied}))
	job.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	_, stop := start(t, job)
	waitFor(t, "a commit past the restored offset", 5*time.Second, func() bool { p, _, _ := src.last(); return p.Offset == 10 })
	stop()
	if !slices.Equal(denied.resumed, []string{"stream-A@5"}) {
		t.Errorf("bq-denied resumed with %q; want its own state", denied.resumed)
	}
	if len(fresh.resumed) != 0 {
		t.Errorf("the new sink resumed with %q; it has no state and must open fresh", fresh.resumed)
	}
	mu.Lock()
	l := logs.String()
	mu.Unlock()
	if !strings.Contains(l, "checkpointed sink state dropped") || !strings.Contains(l, "p/bq-allowed") {
		t.Errorf("no log line about the dropped state of p/bq-allowed:\n%s", l)
	}
}

// A pod restarted again and again (SIGKILL, no drain) still deletes the
// checkpoints of its earlier lives that no committed offset names: the
// store keeps the newest Retain, not one per life.
func TestRestartsCollectOldCheckpoints(t *testing.T) {
	dir := t.TempDir()
	open := func() *checkpoint.Checkpointer {
		store, err := checkpoint.Open(context.Background(), "file://"+dir, checkpoint.WithRetain(2))
		if err != nil {
			t.Fatal(err)
		}
		return store
	}
	offset, meta := int64(-1), ""
	for life := range 10 {
		store := open() // a new process
		sink := &flakySink{}
		src := &liveSource{values: values(10 * (life + 1)), offset: offset, meta: meta, batch: 5}
		job := newJob(src, store, pipeline("p", engine.NamedSink{Name: "mem", Sink: sink}))
		job.Retain = 2
		rt, stop := start(t, job)
		want := int64(10 * (life + 1))
		waitFor(t, "a commit of this life's records", 10*time.Second, func() bool { p, _, _ := src.last(); return p.Offset == want })
		if life == 9 {
			// Earlier lives crash whenever their commit is seen, often
			// before their collection ran. The last life lives until it has
			// collected, which must also remove what those lives left.
			waitFor(t, "the last life's collection", 10*time.Second, func() bool {
				keys, err := store.Store().List(context.Background(), "")
				return err == nil && len(keys) <= 2
			})
		}
		rt.Abort() // a crash: no drain, no final checkpoint
		stop()
		p, m, _ := src.last()
		offset, meta = p.Offset, m
		store.Close()
	}
	store := open()
	defer store.Close()
	keys, err := store.Store().List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 2 {
		t.Errorf("after 10 lives with retain 2 the store holds %d checkpoints: %v", len(keys), keys)
	}
	found := false
	for _, k := range keys {
		found = found || k == meta
	}
	if !found {
		t.Errorf("the checkpoint the last commit names (%s) was deleted; the store holds %v", meta, keys)
	}
}

// streamSink is a ResumableSink whose every writer opened fresh starts a
// stream of its own; each writer's first Flush looks up whether a committed
// checkpoint names its stream already.
type streamSink struct {
	src     *liveSource
	acked   flakySink    // the rows every writer acknowledged
	fail    atomic.Int64 // flushes still to fail
	mu      sync.Mutex
	opened  []string // streams Open started
	resumed []string // states Resume was given
	unnamed []string // streams flushed into before a commit named them
}

type streamWriter struct {
	flakyWriter
	sink    *streamSink
	stream  string
	flushed bool
}

func (s *streamSink) Open(context.Context, engine.TaskID) (engine.Writer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := fmt.Sprintf("stream-%d", len(s.opened))
	s.opened = append(s.opened, st)
	return &streamWriter{flakyWriter: flakyWriter{s: &s.acked}, sink: s, stream: st}, nil
}
func (s *streamSink) Resume(_ context.Context, _ engine.TaskID, st []byte) (engine.Writer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resumed = append(s.resumed, string(st))
	return &streamWriter{flakyWriter: flakyWriter{s: &s.acked}, sink: s, stream: string(st), flushed: true}, nil
}
func (s *streamSink) Close(context.Context) error { return nil }
func (w *streamWriter) State() []byte             { return []byte(w.stream) }
func (w *streamWriter) Flush(ctx context.Context) error {
	if !w.flushed {
		w.flushed = true
		p, _, _ := w.sink.src.last()
		named := slices.ContainsFunc(p.Sinks, func(s engine.SinkState) bool { return string(s.Data) == w.stream })
		if !named {
			w.sink.mu.Lock()
			w.sink.unnamed = append(w.sink.unnamed, w.stream)
			w.sink.mu.Unlock()
		}
	}
	if w.sink.fail.Add(-1) >= 0 {
		return errors.New("dial tcp 127.0.0.1:9: connect: connection refused")
	}
	return w.flakyWriter.Flush(ctx)
}

// Input delivered while a bundle waits to retry its flush, behind input of
// an earlier delivery still queued, is processed once that bundle and the
// queue are complete: the task saw its signal while it could not take it,
// and no checkpoint cut comes to wake it.
func TestInputDeliveredWhileSealedIsTaken(t *testing.T) {
	src := &liveSource{values: values(20), offset: -1, batch: 20}
	sink := &flakySink{}
	sink.down.Store(true)
	job := newJob(src, &keyStore{cps: map[string]*engine.Checkpoint{}}, pipeline("p", engine.NamedSink{Name: "s", Sink: sink}))
	job.Interval = time.Hour
	job.Retry = backoff.Policy{Base: 20 * time.Millisecond, Max: 20 * time.Millisecond}
	rt, stop := start(t, job)
	// The first bundle (r0..r9) fails; r10..r19 wait in the queue.
	waitFor(t, "a failed flush", 5*time.Second, func() bool { return sink.flushes.Load() > 0 })
	var recs []engine.Record
	for j := 20; j < 30; j++ {
		recs = append(recs, engine.Record{Value: []byte(fmt.Sprintf("r%d", j)), Offset: int64(j), Timestamp: time.UnixMicro(int64(j + 1))})
	}
	rt.Deliver(task0, recs)
	time.Sleep(100 * time.Millisecond) // the task sees the signal while sealed
	sink.down.Store(false)
	waitFor(t, "every row acknowledged", 5*time.Second, func() bool { return len(sink.rows()) == 30 })
	stop()
	if got := sink.rows(); !slices.Equal(got, values(30)) {
		t.Errorf("acknowledged %q; want the 30 rows once, in order", got)
	}
}

// gatedSource is a bounded source of one task: it delivers its values in
// one batch, then ends the task once gate is closed.
type gatedSource struct {
	liveSource
	gate chan struct{}
}

func (s *gatedSource) Run(ctx context.Context, h engine.Handler) error {
	h.Assign(ctx, []engine.Assignment{{Task: task0, Offset: -1}})
	var recs []engine.Record
	for j, v := range s.values {
		recs = append(recs, engine.Record{Value: []byte(v), Offset: int64(j), Timestamp: time.UnixMicro(int64(j + 1))})
	}
	h.Deliver(task0, recs)
	<-s.gate
	h.End(task0)
	return nil
}

// The end of a bounded task, signalled while a bundle waits to retry its
// flush with input still queued behind it, ends the task once that input is
// complete, and with it the job.
func TestEndWhileSealedEndsTheJob(t *testing.T) {
	src := &gatedSource{liveSource: liveSource{values: values(20)}, gate: make(chan struct{})}
	sink := &flakySink{}
	sink.down.Store(true)
	job := newJob(src, &keyStore{cps: map[string]*engine.Checkpoint{}}, pipeline("p", engine.NamedSink{Name: "s", Sink: sink}))
	job.Interval = time.Hour
	job.Retry = backoff.Policy{Base: 20 * time.Millisecond, Max: 20 * time.Millisecond}
	rt, err := engine.New(job)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rt.Run(context.Background()) }()
	// The first bundle (r0..r9) fails; r10..r19 wait in the queue.
	waitFor(t, "a failed flush", 5*time.Second, func() bool { return sink.flushes.Load() > 0 })
	close(src.gate)
	time.Sleep(100 * time.Millisecond) // the task sees the end while sealed
	sink.down.Store(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		rt.Abort()
		<-done
		t.Fatalf("the job did not end within 5 s of its sink recovering; acknowledged %d rows", len(sink.rows()))
	}
	if got := sink.rows(); !slices.Equal(got, values(20)) {
		t.Errorf("acknowledged %q; want the 20 rows once, in order", got)
	}
}

// A writer that keeps state and was opened fresh (no state recorded for it)
// is named by a committed checkpoint before its first flush, even when no
// checkpoint interval passes: a crash after that flush resumes its stream
// instead of writing the rows into a new one. When that first flush fails,
// the writer is reopened from the recorded state, not fresh.
func TestFreshWriterCheckpointedBeforeItsFirstFlush(t *testing.T) {
	src := &liveSource{values: values(40), offset: -1, batch: 10}
	sink := &streamSink{src: src}
	sink.fail.Store(2)
	job := newJob(src, &keyStore{cps: map[string]*engine.Checkpoint{}}, pipeline("p", engine.NamedSink{Name: "bq", Sink: sink}))
	job.Interval = time.Hour
	_, stop := start(t, job)
	waitFor(t, "every row acknowledged", 5*time.Second, func() bool {
		return len(sink.acked.rows()) == 40
	})
	stop()
	if got := sink.acked.rows(); !slices.Equal(got, values(40)) {
		t.Errorf("acknowledged %q; want the 40 rows once, in order", got)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.unnamed) > 0 {
		t.Errorf("streams %q were flushed into before a committed checkpoint named them", sink.unnamed)
	}
	if !slices.Equal(sink.opened, []string{"stream-0"}) {
		t.Errorf("streams opened: %q; want one, the failed flushes resuming it", sink.opened)
	}
	if len(sink.resumed) == 0 || slices.ContainsFunc(sink.resumed, func(s string) bool { return s != "stream-0" }) {
		t.Errorf("resumed with %q; want stream-0 after each failed flush", sink.resumed)
	}
}

// A fresh writer whose first checkpoint fails waits, asking again with
// backoff, and flushes only once one is committed: the store refusing
// saves holds its output back, never lets it into an unnamed stream.
func TestFreshWriterWaitsForAFailingStore(t *testing.T) {
	src := &liveSource{values: values(20), offset: -1, batch: 10}
	sink := &streamSink{src: src}
	store := &keyStore{cps: map[string]*engine.Checkpoint{}}
	store.setErr(errors.New("checkpoint store unavailable"))
	job := newJob(src, store, pipeline("p", engine.NamedSink{Name: "bq", Sink: sink}))
	job.Interval = time.Hour
	_, stop := start(t, job)
	time.Sleep(200 * time.Millisecond) // several failed saves
	if n := len(sink.acked.rows()); n != 0 {
		t.Errorf("%d rows acknowledged while no checkpoint could be saved; want none", n)
	}
	store.setErr(nil)
	waitFor(t, "every row acknowledged once the store works", 5*time.Second, func() bool {
		return len(sink.acked.rows()) == 20
	})
	stop()
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.unnamed) > 0 {
		t.Errorf("streams %q were flushed into before a committed checkpoint named them", sink.unnamed)
	}
}
