package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine"
)

// The parts below are the smallest real engine components a test of the
// source needs: a raw-bytes decoder over a one-column schema, a pass-through
// transform, and a sink whose flushes the test observes or stalls. The
// runtime, the checkpoint store and the Kafka cluster (kfake) are real.

var rawSchema = engine.MustSchema(&engine.Type{Kind: engine.KindRecord, Fields: []engine.Field{{Name: "value", Type: &engine.Type{Kind: engine.KindString}}}})

type rawDecoder struct{}

func (rawDecoder) Schema() *engine.Schema { return rawSchema }
func (rawDecoder) Decode(rec *engine.Record, row *engine.Row) error {
	row.SetStr(0, engine.UnsafeString(rec.Value))
	return nil
}

type passThrough struct{}

func (passThrough) Output() *engine.Schema { return rawSchema }
func (passThrough) Eval(in, out *engine.Row) (bool, error) {
	out.Reset(1)
	out.SetStr(0, in.Str(0))
	return true, nil
}

// testSink calls onFlush with the values of each acknowledged bundle, after
// waiting for gate (if set) to let it through.
type testSink struct {
	onFlush func(task engine.TaskID, values []string)
	gate    func(ctx context.Context) error
}

type testWriter struct {
	s       *testSink
	task    engine.TaskID
	pending []string
}

func (s *testSink) Open(_ context.Context, task engine.TaskID) (engine.Writer, error) {
	return &testWriter{s: s, task: task}, nil
}
func (s *testSink) Close(context.Context) error { return nil }
func (w *testWriter) Write(row *engine.Row) error {
	w.pending = append(w.pending, string(row.Str(0)))
	return nil
}
func (w *testWriter) Flush(ctx context.Context) error {
	if w.s.gate != nil {
		if err := w.s.gate(ctx); err != nil {
			return err
		}
	}
	if w.s.onFlush != nil {
		w.s.onFlush(w.task, w.pending)
	}
	w.pending = w.pending[:0]
	return nil
}
func (w *testWriter) Close(context.Context) error { return nil }

// cluster starts a kfake cluster with topics of the given partition counts.
func cluster(t *testing.T, topics map[string]int32) (*kfake.Cluster, *kadm.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	for name, n := range topics {
		if _, err := adm.CreateTopic(context.Background(), n, 1, nil, name); err != nil {
			t.Fatal(err)
		}
	}
	return c, adm
}

// member is one worker: a Source and the real runtime over it.
type member struct {
	src    *Source
	rt     *engine.Runtime
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry
}

type memberOpts struct {
	pod       string
	topics    []string
	regex     []string
	pipes     []*engine.Pipeline
	maxBuf    int
	interval  time.Duration
	cfg       func(*Config)
	leave     bool
	ckptDir   string
	extraOpts []kgo.Opt
	rtHook    func(*engine.Runtime) // sees the runtime before it runs
}

// pipeline is a one-topic (or all-topics, with topic "") pipeline.
func pipeline(name, topic string, sink engine.Sink, maxRecords int) *engine.Pipeline {
	reads := func(t string) bool { return t == topic }
	if topic == "" {
		reads = func(string) bool { return true }
	}
	return &engine.Pipeline{
		Name: name, Reads: reads, Decoder: rawDecoder{}, Transform: passThrough{},
		Sinks: []engine.NamedSink{{Name: "mem", Sink: sink}}, MaxRecords: maxRecords, MaxWait: 5 * time.Second,
		EventTime: engine.Column{Slot: -1},
	}
}

func startMember(t *testing.T, c *kfake.Cluster, group string, o memberOpts) *member {
	t.Helper()
	if o.ckptDir == "" {
		o.ckptDir = t.TempDir()
	}
	dir, err := checkpoint.NewDir(o.ckptDir)
	if err != nil {
		t.Fatal(err)
	}
	store := checkpoint.New(dir)
	reg := prometheus.NewRegistry()
	pipes := o.pipes
	cfg := Config{
		Brokers: c.ListenAddrs(), Group: group, InstanceID: o.pod,
		Topics: o.topics, TopicRegex: o.regex, Start: "earliest",
		Registerer: reg, LeaveOnClose: o.leave, WatchInterval: 200 * time.Millisecond,
		PipelinesOf: func(topic string) []string {
			var names []string
			for _, p := range pipes {
				if p.Reads(topic) {
					names = append(names, p.Name)
				}
			}
			return names
		},
		Opts: append([]kgo.Opt{
			kgo.HeartbeatInterval(200 * time.Millisecond),
			kgo.SessionTimeout(6 * time.Second),
			kgo.RebalanceTimeout(20 * time.Second),
		}, o.extraOpts...),
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	interval := o.interval
	if interval == 0 {
		interval = time.Second
	}
	rt, err := engine.New(&engine.Job{
		Name: group, Pod: o.pod, Pipelines: pipes, Source: src, Store: store,
		Interval: interval, MaxBufferedBytes: o.maxBuf, DrainDeadline: 20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.rtHook != nil {
		o.rtHook(rt)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{src: src, rt: rt, cancel: cancel, done: make(chan error, 1), reg: reg}
	go func() { m.done <- rt.Run(ctx) }()
	t.Cleanup(func() { m.stop(t) })
	return m
}

// stop drains the member and waits for it; calling it twice is harmless.
func (m *member) stop(t *testing.T) {
	t.Helper()
	m.cancel()
	if m.done == nil {
		return
	}
	select {
	case err := <-m.done:
		if err != nil {
			t.Errorf("member drain: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Errorf("member did not drain")
	}
	m.done = nil
}

// owned is the tasks the member's source owns now.
func (s *Source) ownedTasks() []engine.TaskID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []engine.TaskID
	for id := range s.owned {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	return ids
}

func (s *Source) revokeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revokes
}

// gauge reads one series of a metric from a registry; ok is false when the
// series does not exist.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// produce writes n records of value to topic/partition synchronously.
func produce(t *testing.T, cl *kgo.Client, topic string, partition int32, n int, value func(i int) []byte) {
	t.Helper()
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: partition, Value: value(i)})
	}
	for off := 0; off < len(recs); off += 10000 {
		if err := cl.ProduceSync(context.Background(), recs[off:min(off+10000, len(recs))]...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// manualPartitioner lets produce pick partitions.
func producer(t *testing.T, c *kfake.Cluster) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(2*time.Millisecond), kgo.MaxBufferedRecords(1<<20), kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// waitFor polls cond every 50 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// percentile of sorted durations.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func stamp() []byte { return []byte(strconv.FormatInt(time.Now().UnixNano(), 10)) }

func since(v string) (time.Duration, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a stamp: %q", v)
	}
	return time.Since(time.Unix(0, n)), nil
}

var errStalled = errors.New("stalled")
var _ = sync.Mutex{}

func newRecord(topic string, p int32, v []byte) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: p, Value: v}
}
