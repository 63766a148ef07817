package app

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/source/kafka"
	"github.com/sluicehq/sluice/sql"
)

// A shuffled aggregation (aggregation: shuffle, see sql/doc.go, Shuffle)
// is wired as two engine pipelines of the job:
//
//   - the producer, named as the job file's pipeline, reads its topics:
//     each source task pre-aggregates its bundle (sql.ShuffleProducer) and
//     its repartition sink (shuffleSink) sends the bundle's partials, keyed
//     by group key, and its progress to the repartition topic before the
//     bundle completes; records late at the source are its dead letters;
//   - the merger, named <pipeline>.merge, reads the repartition topic with
//     the same consumer group: each of its tasks folds the partials of
//     every producer (sql.ShuffleMerger) in its task state and writes the
//     windows it closes to the pipeline's sinks.
//
// After each commit of the job's offsets, the repartition sink sends a
// commit record for each producer task to every partition (committing, a
// wrapper of the job's source), which is what lets the merging tasks fold
// the partials it covers.

// shuffleSuffix names a shuffled pipeline's merging side.
const shuffleSuffix = ".merge"

// shuffleTopic is the repartition topic of a job's pipeline.
func shuffleTopic(job, pipeline string) string { return job + "." + pipeline + ".repartition" }

// topicName is what Kafka accepts as a topic name.
var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// shufflePlan is a pipeline whose windowed GROUP BY is shuffled: built as
// a per-task aggregate by pipeline(), split into producer and merger once
// the repartition topic exists (setupShuffles).
type shufflePlan struct {
	cp    *config.Pipeline
	agg   *sql.Aggregation
	p     *engine.Pipeline // as pipeline() built it: the user's sinks
	topic string
}

// checkShuffle says what keeps a pipeline from a shuffled aggregation.
func (b *builder) checkShuffle(cp *config.Pipeline) bool {
	k := cp.Source.Kafka
	pos := cp.Pos.Key("aggregation")
	if cp.Aggregation == "" {
		pos = cp.Pos.Key("sql")
	}
	fail := func(why string) bool {
		b.fail(pos.Errorf("aggregation: shuffle (the default for a kafka source) %s; set aggregation: %s to aggregate per partition instead", why, config.AggregationPerPartition))
		return false
	}
	switch {
	case k == nil:
		return fail("needs a kafka source")
	case k.TopicRegex != "":
		return fail("needs topics, not topic_regex: the repartition topic's producers are the source's partitions, counted when the job starts")
	case k.StopAt == "end":
		return fail("does not run with stop_at: end yet (its merging tasks read the repartition topic, which has no end)")
	case k.Start == "latest":
		return fail("needs start: earliest (its merging tasks must read the repartition topic from its first record)")
	case cp.Dedup != nil:
		return fail("does not run with dedup yet")
	}
	topic := shuffleTopic(b.cj.Job, cp.Name)
	if !topicName.MatchString(topic) {
		b.fail(cp.Pos.Key("name").Errorf("pipeline name %q: the repartition topic %q of its shuffled aggregation is not a valid Kafka topic name (letters, digits, '.', '_', '-')", cp.Name, topic))
		return false
	}
	for _, o := range b.cj.Pipelines {
		if o.Name == cp.Name+shuffleSuffix {
			b.fail(o.Pos.Key("name").Errorf("pipeline name %q is taken by the merging side of pipeline %q's shuffled aggregation", o.Name, cp.Name))
			return false
		}
	}
	return true
}

// setupShuffles creates each shuffled pipeline's repartition topic and
// replaces its pipeline by the producer and the merger.
func (b *builder) setupShuffles(job *engine.Job) error {
	if len(b.shuffles) == 0 {
		return nil
	}
	opts, err := kafka.ClientOpts(b.cj.Kafka)
	if err != nil {
		return err
	}
	opts = append(opts, b.o.KafkaOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("shuffle: kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	late := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_shuffle_late_windows_total",
		Help: "Partial windows a shuffled aggregation's merging tasks dropped because the window was already emitted (records of a partition that was idle, or not yet known, when it fired).",
	}, []string{"job", "pipeline"})
	if b.o.Registry != nil {
		b.o.Registry.MustRegister(late)
	}
	for _, sp := range b.shuffles {
		producers, parts, err := ensureShuffleTopic(ctx, adm, sp.cp.Source.Kafka.Topics, sp.topic, sp.cp.ShufflePartitions)
		if err != nil {
			return fmt.Errorf("shuffle: pipeline %s: %w", sp.cp.Name, err)
		}
		sink, err := newShuffleSink(append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner())), sp.cp.Name, sp.topic, parts, producers, b.o.Logger)
		if err != nil {
			return err
		}
		b.shuffleSinks = append(b.shuffleSinks, sink)
		user := sp.p
		prod := *user
		prod.Transform = sp.agg.Producer()
		prod.Sinks = []engine.NamedSink{{Name: "repartition", Sink: sink}}
		merge := *user
		merge.Name = user.Name + shuffleSuffix
		merge.Decoder = shuffleDecoder{}
		merger := sp.agg.Merger(producers)
		lateWindows := late.WithLabelValues(b.cj.Job, merge.Name)
		merger.CountLate(func(n int) { lateWindows.Add(float64(n)) })
		merge.Transform = merger
		topic := sp.topic
		merge.Reads = func(t string) bool { return t == topic }
		merge.EventTime = engine.Column{Slot: -1}
		merge.IdleTimeout = 0 // the merger's watermark is its producers'
		for i, p := range job.Pipelines {
			if p == user {
				job.Pipelines[i] = &prod
			}
		}
		job.Pipelines = append(job.Pipelines, &merge)
		for i, p := range b.pipes {
			if p == user {
				b.pipes[i] = &prod
			}
		}
		b.pipes = append(b.pipes, &merge)
		b.o.Logger.Info("shuffled aggregation", "pipeline", sp.cp.Name, "repartition_topic", sp.topic, "partitions", parts, "producers", producers)
	}
	return nil
}

// ensureShuffleTopic creates the repartition topic when it does not exist,
// with partitions partitions (0: as many as the source topics have in
// all). It returns the source's partition count (the producers a merging
// task waits for) and the topic's.
func ensureShuffleTopic(ctx context.Context, adm *kadm.Client, sources []string, topic string, partitions int) (int, int32, error) {
	td, err := adm.ListTopics(ctx, append([]string{topic}, sources...)...)
	if err != nil {
		return 0, 0, fmt.Errorf("list topics: %w", err)
	}
	producers := 0
	for _, s := range sources {
		d, ok := td[s]
		if !ok || d.Err != nil {
			return 0, 0, fmt.Errorf("source topic %s does not exist: its partitions are the shuffle's producers, counted when the job starts", s)
		}
		producers += len(d.Partitions)
	}
	if d, ok := td[topic]; ok && d.Err == nil {
		return producers, int32(len(d.Partitions)), nil
	}
	if partitions <= 0 {
		partitions = producers
	}
	resp, err := adm.CreateTopic(ctx, int32(partitions), -1, nil, topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return 0, 0, fmt.Errorf("create repartition topic %s: %w", topic, err)
	}
	if resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
		return 0, 0, fmt.Errorf("create repartition topic %s: %w", topic, resp.Err)
	}
	if resp.NumPartitions > 0 {
		return producers, resp.NumPartitions, nil
	}
	return producers, int32(partitions), nil
}

// shuffleDecoder decodes the repartition topic's records into rows of
// sql.ShuffleSchema (the format: sql.AppendShuffleMessage).
type shuffleDecoder struct{}

func (shuffleDecoder) Schema() *engine.Schema { return sql.ShuffleSchema }

func (shuffleDecoder) Decode(rec *engine.Record, row *engine.Row) error {
	if err := sql.DecodeShuffleMessage(rec.Key, rec.Value, row); err != nil {
		return &engine.DecodeError{Err: err}
	}
	return nil
}

// shufflePartition is the repartition partition of a group key: FNV-1a 32
// of the encoded key, modulo the partition count.
func shufflePartition(key []byte, parts int32) int32 {
	if parts <= 0 {
		return 0
	}
	h := fnv.New32a()
	h.Write(key)
	return int32(h.Sum32() % uint32(parts))
}

// shuffleSink is a shuffled pipeline's producer sink: one writer per
// source task sends the rows of its bundles (sql.ShuffleSchema: partials,
// progress, an empty task's idle mark) to the repartition topic,
// prefixed, in each writer's life, by a start record of a new epoch (which
// also announces the source's partition count); commit sends commit
// records after the job's offsets are committed.
//
// Open, Resume and commit are called from different goroutines; one
// franz-go producer (idempotent, acks=all) serves every writer.
type shuffleSink struct {
	cl       *kgo.Client
	pipeline string // the producer pipeline
	topic    string
	parts    int32
	// producers is the source's partition count when the job started,
	// which start records announce to the merging tasks.
	producers int
	log       *slog.Logger

	mu sync.Mutex // guards epochs, sent
	// epochs is the epoch of each task's latest writer, which its commit
	// records carry.
	epochs map[engine.TaskID]int64
	// sent is the offset of each task's last commit record.
	sent map[engine.TaskID]int64
}

func newShuffleSink(opts []kgo.Opt, pipeline, topic string, parts int32, producers int, log *slog.Logger) (*shuffleSink, error) {
	cl, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))...)
	if err != nil {
		return nil, fmt.Errorf("shuffle: producer: %w", err)
	}
	return &shuffleSink{cl: cl, pipeline: pipeline, topic: topic, parts: parts, producers: producers, log: log, epochs: map[engine.TaskID]int64{}, sent: map[engine.TaskID]int64{}}, nil
}

func (s *shuffleSink) Open(ctx context.Context, task engine.TaskID) (engine.Writer, error) {
	return &shuffleWriter{s: s, task: task, name: task.String()}, nil
}

// Resume opens a writer whose epoch will be above the one recorded in the
// checkpoint its task resumes from.
func (s *shuffleSink) Resume(ctx context.Context, task engine.TaskID, state []byte) (engine.Writer, error) {
	w := &shuffleWriter{s: s, task: task, name: task.String()}
	if e, n := binary.Varint(state); n > 0 {
		w.floor = e
	}
	return w, nil
}

func (s *shuffleSink) Close(ctx context.Context) error {
	s.cl.Close()
	return nil
}

// commit sends, for each position of a task whose writer this sink opened,
// a commit record of the pipeline's committed offset to every partition.
// It is called after the offsets are committed, from the checkpointing
// goroutine.
func (s *shuffleSink) commit(ctx context.Context, positions []engine.Position) {
	var recs []*kgo.Record
	s.mu.Lock()
	for _, p := range positions {
		epoch, ok := s.epochs[p.Task]
		if !ok {
			continue
		}
		off := p.Offset
		for _, po := range p.Pipelines {
			if po.Pipeline == s.pipeline {
				off = po.Offset
			}
		}
		if last, ok := s.sent[p.Task]; ok && last == off {
			continue
		}
		s.sent[p.Task] = off
		v := sql.AppendShuffleMessage(nil, sql.ShuffleCommit, p.Task.String(), epoch, 0, off, 0, nil)
		for part := range s.parts {
			recs = append(recs, &kgo.Record{Partition: part, Value: v})
		}
	}
	s.mu.Unlock()
	if len(recs) == 0 {
		return
	}
	if err := s.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		// The merging tasks wait for the next commit record, which covers
		// these offsets too.
		s.mu.Lock()
		for _, p := range positions {
			delete(s.sent, p.Task)
		}
		s.mu.Unlock()
		s.log.Warn("shuffle commit records not sent; the next checkpoint sends them", "topic", s.topic, "error", err)
	}
}

// newEpoch returns an epoch for a new writer of task above every earlier
// one: the wall clock in microseconds, above the task's last epoch in this
// process and the one its checkpoint recorded.
func (s *shuffleSink) newEpoch(task engine.TaskID, floor int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := max(time.Now().UnixMicro(), floor+1)
	if last, ok := s.epochs[task]; ok {
		e = max(e, last+1)
	}
	s.epochs[task] = e
	return e
}

// shuffleWriter is one source task's writer of the repartition topic. Its
// first Flush starts the producer (a start record, in a new epoch, from
// the first bundle's start offset); each Flush sends the bundle's partials
// and progress and returns once Kafka has acknowledged them.
type shuffleWriter struct {
	s     *shuffleSink
	task  engine.TaskID
	name  string
	floor int64 // the epoch recorded in the checkpoint resumed from
	epoch int64 // 0 until the start record is sent
	rows  []shuffleRow
	recs  []*kgo.Record
	buf   []byte
}

type shuffleRow struct {
	kind       int64
	from, to   int64
	wm         int64
	key, value []byte
}

var _ engine.StatefulWriter = (*shuffleWriter)(nil)

func (w *shuffleWriter) Write(row *engine.Row) error {
	r := shuffleRow{kind: row.Int(sql.ShuffleKind), from: row.Int(sql.ShuffleFrom), to: row.Int(sql.ShuffleTo), wm: row.Int(sql.ShuffleWatermark)}
	if r.kind == sql.ShufflePartial {
		r.key = []byte(row.Str(sql.ShuffleKey))
		r.value = []byte(row.Str(sql.ShuffleValue))
	}
	w.rows = append(w.rows, r)
	return nil
}

func (w *shuffleWriter) Flush(ctx context.Context) error {
	if len(w.rows) == 0 {
		return nil
	}
	s := w.s
	recs := w.recs[:0]
	started := w.epoch != 0
	epoch := w.epoch
	if !started {
		epoch = s.newEpoch(w.task, w.floor)
		v := sql.AppendShuffleMessage(nil, sql.ShuffleStart, w.name, epoch, int64(s.producers), w.rows[0].from, 0, nil)
		for p := range s.parts {
			recs = append(recs, &kgo.Record{Partition: p, Value: v})
		}
	}
	for _, r := range w.rows {
		v := sql.AppendShuffleMessage(nil, byte(r.kind), w.name, epoch, r.from, r.to, r.wm, r.value)
		if r.kind == sql.ShufflePartial {
			recs = append(recs, &kgo.Record{Partition: shufflePartition(r.key, s.parts), Key: r.key, Value: v})
			continue
		}
		for p := range s.parts {
			recs = append(recs, &kgo.Record{Partition: p, Value: v})
		}
	}
	err := s.cl.ProduceSync(ctx, recs...).FirstErr()
	clear(recs)
	w.recs = recs[:0]
	if err != nil {
		// The runtime closes this writer and replays the bundle into a new
		// one, whose start record (a newer epoch, from the bundle's start)
		// drops what of this bundle reached the topic.
		return fmt.Errorf("shuffle: send to %s: %w", s.topic, err)
	}
	w.epoch = epoch
	clear(w.rows)
	w.rows = w.rows[:0]
	return nil
}

// State is the writer's epoch: the next owner of the task starts above it.
func (w *shuffleWriter) State() []byte {
	if w.epoch == 0 {
		return nil
	}
	return binary.AppendVarint(nil, w.epoch)
}

func (w *shuffleWriter) Close(ctx context.Context) error { return nil }

// committing is the job's source, which after each commit of offsets lets
// the repartition sinks send their commit records. It passes on the
// capabilities of the source it wraps that the runtime looks for.
type committing struct {
	engine.Source
	after func(ctx context.Context, positions []engine.Position)
}

func (c *committing) Commit(ctx context.Context, positions []engine.Position, meta string) error {
	if err := c.Source.Commit(ctx, positions, meta); err != nil {
		return err
	}
	c.after(ctx, positions)
	return nil
}

func (c *committing) Pause(tasks ...engine.TaskID) {
	if p, ok := c.Source.(engine.Pauser); ok {
		p.Pause(tasks...)
	}
}

func (c *committing) Resume(tasks ...engine.TaskID) {
	if p, ok := c.Source.(engine.Pauser); ok {
		p.Resume(tasks...)
	}
}

func (c *committing) EndOffset(task engine.TaskID) (int64, bool) {
	if e, ok := c.Source.(engine.EndOffsetter); ok {
		return e.EndOffset(task)
	}
	return 0, false
}

func (c *committing) Close() error {
	if cl, ok := c.Source.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}
