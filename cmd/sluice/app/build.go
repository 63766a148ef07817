package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/deploy"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/source/avro"
	"github.com/sluicehq/sluice/source/kafka"
	"github.com/sluicehq/sluice/sql"
)

// Options are what the command line adds to a job file.
type Options struct {
	Pod      string
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Brokers, when set, replaces the job file's Kafka brokers (sluice dev).
	Brokers []string
	// KafkaOpts are extra franz-go options for every Kafka client.
	KafkaOpts []kgo.Opt
	// OnHealth receives the source's problems ("" when resolved); run wires
	// it to the runtime's readiness.
	OnHealth func(reason string)
	// DryRun builds and checks everything that needs no network: schemas,
	// SQL, sink settings. It is what validate does.
	DryRun bool
}

// Built is a wired job and what the command line needs besides it.
type Built struct {
	Job     *engine.Job
	Metrics *engine.Metrics
}

// Build wires a job file into a runnable engine.Job. Every problem in the file
// is returned at once as config.Errors, each at its position.
func Build(ctx context.Context, cj *config.Job, o Options) (*Built, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	metrics := engine.NewMetrics(o.Registry)
	if len(o.Brokers) > 0 && cj.Kafka != nil {
		cj.Kafka.Brokers = o.Brokers
	}
	b := &builder{cj: cj, o: o, ctx: ctx, metrics: metrics, decoders: map[string]engine.Decoder{}, resume: map[engine.TaskID]engine.TaskState{},
		redact: cj.Redactor(), claims: map[string]claimant{}}
	if _, _, err := deploy.Resources(cj.Worker); err != nil {
		b.fail(cj.Pos.Key("worker").Errorf("worker: %v", err))
	}
	var store *checkpoint.Checkpointer
	if !o.DryRun {
		var err error
		store, err = checkpoint.Open(ctx, cj.Checkpoint.Store,
			checkpoint.WithRegisterer(o.Registry), checkpoint.WithLogger(o.Logger), checkpoint.WithRetain(cj.Checkpoint.Retain))
		if err != nil {
			return nil, fmt.Errorf("checkpoint store %s: %w", b.redact(cj.Checkpoint.Store), errors.New(b.redact(err.Error())))
		}
		// Bounded file tasks have no Kafka group to keep their offsets: they
		// resume from this pod's latest checkpoint.
		if cp, _, err := store.LoadLatest(ctx, cj.Job, o.Pod); err == nil {
			for _, ts := range cp.Tasks {
				b.resume[ts.Task] = ts
			}
		}
	}
	job := &engine.Job{
		Name:          cj.Job,
		Pod:           o.Pod,
		Interval:      cj.Checkpoint.Interval,
		DrainDeadline: cj.Drain.Deadline,
		Retain:        cj.Checkpoint.Retain,
		// Zero takes the engine's default.
		MaxBufferedBytes: int(cj.Memory.TaskBuffer),
		Logger:           o.Logger,
		Metrics:          metrics,
		Redact:           engine.Redactor(b.redact),
	}
	for i := range cj.Pipelines {
		if p := b.pipeline(&cj.Pipelines[i]); p != nil {
			job.Pipelines = append(job.Pipelines, p)
			b.pipes = append(b.pipes, p)
		}
	}
	if len(b.errs) > 0 {
		b.closeSinks(job)
		return nil, config.Merge(b.errs...)
	}
	if o.DryRun {
		return &Built{Job: job, Metrics: metrics}, nil
	}
	if err := b.setupShuffles(job); err != nil {
		b.closeSinks(job)
		return nil, err
	}
	src, err := b.source()
	if err != nil {
		b.closeSinks(job)
		return nil, err
	}
	job.Source = src
	if len(b.shuffleSinks) > 0 {
		sinks := b.shuffleSinks
		job.Source = &committing{Source: src, after: func(ctx context.Context, positions []engine.Position) {
			for _, s := range sinks {
				s.commit(ctx, positions)
			}
		}}
	}
	job.Store = store
	for _, p := range job.Pipelines {
		if _, ok := p.Transform.(engine.Aggregator); ok {
			// Task state on local disk is a cache of the checkpoint store:
			// a task always restores it from its checkpoint.
			dir := filepath.Join(os.TempDir(), "sluice-state", cj.Job, o.Pod)
			if job.State, err = checkpoint.NewTaskStates(checkpoint.NewState(store.Store(), checkpoint.WithStateThreshold(checkpoint.TaskStateThreshold)), dir, cj.Job); err != nil {
				b.closeSinks(job)
				return nil, err
			}
			break
		}
	}
	return &Built{Job: job, Metrics: metrics}, nil
}

type builder struct {
	ctx      context.Context
	cj       *config.Job
	o        Options
	metrics  *engine.Metrics
	errs     []error
	pipes    []*engine.Pipeline        // built so far
	decoders map[string]engine.Decoder // shared by pipelines with the same format
	resume   map[engine.TaskID]engine.TaskState
	files    []fileInput
	generate []engine.Source     // the generate sources, one per pipeline that has one
	redact   func(string) string // the job's secrets out of text
	claims   map[string]claimant // destinations that take one writer, by key
	// shuffles are the pipelines with a shuffled aggregation, and
	// shuffleSinks their repartition sinks once set up (shuffle.go).
	shuffles     []*shufflePlan
	shuffleSinks []*shuffleSink
}

type fileInput struct {
	path string
	src  engine.Source
}

func (b *builder) fail(err error) { b.errs = append(b.errs, err) }

// input resolves a path read by the job against the job file's directory.
func (b *builder) input(path string) string {
	if filepath.IsAbs(path) || b.cj.Dir == "" {
		return path
	}
	return filepath.Join(b.cj.Dir, path)
}

func (b *builder) pipeline(cp *config.Pipeline) *engine.Pipeline {
	p := &engine.Pipeline{
		Name:       cp.Name,
		MaxRecords: cp.Bundle.MaxRecords,
		MaxWait:    cp.Bundle.MaxWait,
		EventTime:  engine.Column{Slot: -1},
	}
	nerr := len(b.errs)
	dec := b.decoder(cp)
	if dec == nil {
		return nil
	}
	p.Decoder = dec
	schema := dec.Schema()
	if cp.EventTime != "" {
		c, ok := schema.Lookup(cp.EventTime)
		if !ok {
			b.fail(cp.Pos.Key("event_time").Errorf("event_time: the reader schema has no column %q", cp.EventTime))
		} else if l := engine.LogicalOf(c.Type); !l.IsTimestamp() {
			b.fail(cp.Pos.Key("event_time").Errorf("event_time: column %q is not a timestamp (timestamp-millis or timestamp-micros)", cp.EventTime))
		} else {
			p.EventTime = c
		}
	}
	prog, err := sql.CompileTransform(cp.SQL.Value, schema)
	if err != nil {
		var se *sql.Error
		if errors.As(err, &se) {
			pos := cp.SQL.At(se.Offset)
			b.fail(pos.Errorf("sql: %s", se.Msg))
		} else {
			b.fail(cp.SQL.Pos.Errorf("sql: %v", err))
		}
		return nil
	}
	var shuffled *sql.Aggregation
	if agg, ok := prog.(*sql.Aggregation); ok && aggregationMode(cp) == config.AggregationShuffle {
		if !b.checkShuffle(cp) {
			return nil
		}
		shuffled = agg
	}
	if d := cp.Dedup; d != nil {
		dd, err := sql.CompileDedup(d.Key, cp.EventTime, d.Within, prog, schema)
		if err != nil {
			b.fail(d.Pos.Key("key").Errorf("dedup: %v", err))
			return nil
		}
		prog = dd
	}
	p.Transform = prog
	p.AllowedLateness, p.IdleTimeout = cp.AllowedLateness, cp.IdleTimeout
	switch {
	case cp.Source.Kafka != nil:
		p.Reads = topicMatcher(cp.Source.Kafka)
	case cp.Source.File != nil:
		path := b.input(cp.Source.File.Path)
		p.Reads = func(topic string) bool { return topic == path }
	case cp.Source.Generate != nil:
		topic := generateTopic(cp)
		p.Reads = func(t string) bool { return t == topic }
	}
	p.DeadLetter = b.deadLetter(cp)
	out := prog.Output()
	named := map[string]config.Pos{}
	for i := range cp.Sinks {
		ps := &cp.Sinks[i]
		s, name := b.sink(ps, out, sinkSite{pipeline: cp.Name, dead: p.DeadLetter})
		if s == nil {
			continue
		}
		pos := ps.Pos
		if ps.Name != "" {
			pos = ps.NamePos
		}
		if prev, ok := named[name]; ok {
			b.fail(pos.Errorf("sink name %q is used twice in pipeline %q (also at %d:%d): give one of them a name: of its own", name, cp.Name, prev.Line, prev.Col))
			continue
		}
		named[name] = pos
		p.Sinks = append(p.Sinks, engine.NamedSink{Name: name, Sink: s})
	}
	if len(b.errs) > nerr {
		return nil
	}
	if shuffled != nil {
		b.shuffles = append(b.shuffles, &shufflePlan{cp: cp, agg: shuffled, p: p, topic: shuffleTopic(b.cj.Job, cp.Name)})
	}
	return p
}

// aggregationMode is how a pipeline's windowed GROUP BY is computed: as
// the job file says, else shuffle for a Kafka source and per_partition
// for a file or generate source (one task: the same result, without the
// repartition topic).
func aggregationMode(cp *config.Pipeline) string {
	switch {
	case cp.Aggregation != "":
		return cp.Aggregation
	case cp.Source.Kafka != nil:
		return config.AggregationShuffle
	}
	return config.AggregationPerPartition
}

func topicMatcher(k *config.KafkaSource) func(string) bool {
	if k.TopicRegex != "" {
		re := regexp.MustCompile(k.TopicRegex)
		return re.MatchString
	}
	topics := slices.Clone(k.Topics)
	return func(t string) bool { return slices.Contains(topics, t) }
}

// decoder builds (or shares) the decoder of a pipeline. Pipelines with the same
// source kind, format and schema share one, so each record is decoded once.
func (b *builder) decoder(cp *config.Pipeline) engine.Decoder {
	f := cp.Format
	var key string
	switch {
	case f.Avro != nil:
		key = "avro|" + b.input(f.Avro.SchemaFile) + "|" + f.Avro.WriterSchema
	case f.JSON != nil:
		key = "json|" + b.input(f.JSON.SchemaFile)
	}
	if cp.Source.File != nil {
		key = "file|" + b.input(cp.Source.File.Path) + "|" + key
	}
	if cp.Source.Generate != nil {
		key = "generate|" + cp.Name + "|" + key
	}
	if d, ok := b.decoders[key]; ok {
		return d
	}
	d := b.newDecoder(cp)
	if d != nil {
		b.decoders[key] = d
	}
	return d
}

func (b *builder) readSchema(pos config.Pos, path string) *engine.Type {
	return b.readSchemaAt(pos, "schema_file", path)
}

// readSchemaAt reads the record schema at path, named by key in errors.
func (b *builder) readSchemaAt(pos config.Pos, key, path string) *engine.Type {
	data, err := os.ReadFile(b.input(path))
	if err != nil {
		b.fail(pos.Errorf("%s: %v", key, err))
		return nil
	}
	t, err := avro.ParseSchema(data)
	if err != nil {
		b.fail(pos.Errorf("%s %s: %v", key, path, err))
		return nil
	}
	if t.Kind != engine.KindRecord {
		b.fail(pos.Errorf("%s %s: the schema must be a record", key, path))
		return nil
	}
	return t
}

func (b *builder) closeSinks(job *engine.Job) {
	for _, p := range job.Pipelines {
		for _, s := range p.Sinks {
			s.Close(b.ctx)
		}
		if p.DeadLetter != nil {
			p.DeadLetter.Close(b.ctx)
		}
	}
}

// pipelinesOf names the pipelines that read a topic, for metric labels.
func (b *builder) pipelinesOf(topic string) []string {
	var names []string
	for _, p := range b.pipes {
		if p.Reads(topic) {
			names = append(names, p.Name)
		}
	}
	return names
}

// source builds the job's source: one Kafka group consumer for every Kafka
// pipeline, the file sources of a bounded job, the generate sources.
func (b *builder) source() (engine.Source, error) {
	var topics, regexes []string
	start, stopAtEnd := "", false
	for _, p := range b.cj.Pipelines {
		k := p.Source.Kafka
		if k == nil {
			continue
		}
		for _, t := range k.Topics {
			if !slices.Contains(topics, t) {
				topics = append(topics, t)
			}
		}
		if aggregationMode(&p) == config.AggregationShuffle {
			for _, sp := range b.shuffles {
				if sp.cp.Name == p.Name {
					topics = append(topics, sp.topic) // its merging tasks'
				}
			}
		}
		if k.TopicRegex != "" {
			regexes = append(regexes, k.TopicRegex)
		}
		if start == "" || k.Start == "earliest" {
			start = k.Start
		}
		stopAtEnd = stopAtEnd || k.StopAt == "end"
	}
	var kafkaSrc engine.Source
	if len(topics) > 0 || len(regexes) > 0 {
		opts, err := kafka.ClientOpts(b.cj.Kafka)
		if err != nil {
			return nil, err
		}
		if len(regexes) > 0 {
			for _, t := range topics {
				regexes = append(regexes, "^"+regexp.QuoteMeta(t)+"$")
			}
			topics = nil
		}
		s, err := kafka.New(kafka.Config{
			Brokers: b.cj.Kafka.Brokers, Group: b.cj.Job, InstanceID: b.o.Pod,
			Topics: topics, TopicRegex: regexes, Start: start, StopAtEnd: stopAtEnd,
			Opts: append(opts, b.o.KafkaOpts...), Registerer: b.o.Registry, Logger: b.o.Logger,
			PipelinesOf: b.pipelinesOf, OnHealth: b.o.OnHealth,
			FetchMaxBytes: int32(b.cj.Memory.Fetch), // zero takes the source's default
		})
		if err != nil {
			return nil, err
		}
		kafkaSrc = s
	}
	var srcs []engine.Source
	if kafkaSrc != nil {
		srcs = append(srcs, kafkaSrc)
	}
	for _, f := range b.files {
		srcs = append(srcs, f.src)
	}
	srcs = append(srcs, b.generate...)
	switch len(srcs) {
	case 0:
		return nil, errors.New("the job has no source")
	case 1:
		return srcs[0], nil
	}
	return newMultiSource(srcs), nil
}
