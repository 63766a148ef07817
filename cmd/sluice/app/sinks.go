package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/config"
	azblobsink "github.com/sluicehq/sluice/sink/azblob"
	bqsink "github.com/sluicehq/sluice/sink/bigquery"
	filesink "github.com/sluicehq/sluice/sink/file"
	gcssink "github.com/sluicehq/sluice/sink/gcs"
	httpssink "github.com/sluicehq/sluice/sink/https"
	kafkasink "github.com/sluicehq/sluice/sink/kafka"
	s3sink "github.com/sluicehq/sluice/sink/s3"
	"github.com/sluicehq/sluice/sink/stdout"
	syslogsink "github.com/sluicehq/sluice/sink/syslog"
	"github.com/sluicehq/sluice/source/kafka"
)

// validator is a sink Config: every sink package has one.
type validator[C any] interface {
	*C
	Validate() error
	// Destination is the canonical destination (a cleaned path, a table, a
	// bucket and prefix, a topic, host and path): the default name of the
	// sink, and how two sinks writing one place are found.
	Destination() string
}

// sinkSite is where a sink stands in the job: its pipeline, and whether it is
// the pipeline's dead-letter destination.
type sinkSite struct {
	pipeline   string
	deadLetter bool
	dead       engine.Sink // the pipeline's dead-letter destination, for its sinks
}

// decodeSink decodes and checks a sink's settings, names it, claims its
// destination, then (unless this is a dry run) builds it with mk.
func decodeSink[C any, PC validator[C], S engine.Sink](b *builder, p *config.Plugin, site sinkSite, mk func(C, engine.SinkEnv) (S, error)) (engine.Sink, string) {
	var cfg C
	if err := p.Decode(PC(&cfg)); err != nil {
		b.fail(err)
		return nil, ""
	}
	if err := PC(&cfg).Validate(); err != nil {
		if es, ok := config.AsErrors(err); ok && es[0].Line > 0 {
			b.fail(es)
		} else {
			b.fail(p.Pos.Errorf("%s: %v", p.Kind, err))
		}
		return nil, ""
	}
	dest := PC(&cfg).Destination()
	name := sinkName(p, dest, site, b.redact)
	b.claim(p.Kind, dest, p.Pos, site.pipeline)
	if b.o.DryRun {
		return dryRunSink{}, name
	}
	s, err := mk(cfg, b.sinkEnv(site, name))
	if err != nil {
		// An error that knows its place in the job file (a TLS file that
		// cannot be read) is reported there, else at the sink.
		at, msg := p.Pos, err.Error()
		var pe *config.Error
		if errors.As(err, &pe) && pe.Line > 0 {
			at, msg = config.Pos{File: pe.File, Line: pe.Line, Col: pe.Col}, pe.Msg
		}
		b.fail(at.Errorf("%s: %s", p.Kind, b.redact(msg)))
		return nil, ""
	}
	return s, name
}

// deadLetterName is the name of every pipeline's dead-letter destination
// that has no name of its own: one per pipeline, so stable.
const deadLetterName = "dead_letter"

// sinkName is the sink's name: the one the job file gives, else one derived
// from its kind and destination ("file:out/denied.jsonl",
// "bigquery:acme.logs.denied"), so that reordering or inserting sinks never
// changes which state, metrics and logs are a sink's. Secrets never reach a
// name: a destination that holds one is redacted.
func sinkName(p *config.Plugin, dest string, site sinkSite, redact func(string) string) string {
	switch {
	case p.Name != "":
		return p.Name
	case site.deadLetter:
		return deadLetterName
	}
	return p.Kind + ":" + redact(dest)
}

// sinkEnv is what a sink is built with: its identity, a logger and metrics
// under its name, its pipeline's dead-letter destination, the job's redactor.
func (b *builder) sinkEnv(site sinkSite, name string) engine.SinkEnv {
	return engine.SinkEnv{
		Job: b.cj.Job, Pipeline: site.pipeline, Name: name,
		Logger:     b.o.Logger.With("pipeline", site.pipeline, "sink", name),
		Stats:      b.metrics.Sinks.For(b.cj.Job, site.pipeline, name),
		DeadLetter: site.dead,
		Redact:     engine.Redactor(b.redact),
	}
}

// claimant is a sink that writes a destination no other sink may write.
type claimant struct {
	pos      config.Pos
	pipeline string
}

// claim records that a sink writes dest, and fails when another sink of the
// job (in any pipeline, dead-letter files included) already writes it: two
// writers interleave one file into a corrupt one, and two GCS sinks under one
// bucket and prefix write objects of the same names. Destinations that take
// many writers by design (a table, a topic, an endpoint) are not claimed.
func (b *builder) claim(kind, dest string, pos config.Pos, pipeline string) {
	var key string
	switch kind {
	case "file":
		abs, err := filepath.Abs(dest)
		if err != nil {
			abs = dest
		}
		key = "file " + abs
	case "gcs":
		key = "gcs " + dest
	default:
		return
	}
	if prev, ok := b.claims[key]; ok {
		what := "file " + dest
		if kind == "gcs" {
			what = "gs://" + dest
		}
		b.fail(pos.Errorf("%s is also written by the sink at %s:%d:%d (pipeline %q): two writers would corrupt it; give each sink its own destination",
			what, prev.pos.File, prev.pos.Line, prev.pos.Col, prev.pipeline))
		return
	}
	b.claims[key] = claimant{pos: pos, pipeline: pipeline}
}

// dryRunSink stands in for a sink whose settings were checked but that
// validate does not connect.
type dryRunSink struct{}

func (dryRunSink) Open(context.Context, engine.TaskID) (engine.Writer, error) {
	return nil, fmt.Errorf("validate builds no sinks")
}
func (dryRunSink) Close(context.Context) error { return nil }

// sink builds a sink of a pipeline from its plugin and returns it with its name.
func (b *builder) sink(p *config.Plugin, schema *engine.Schema, site sinkSite) (engine.Sink, string) {
	ctx := b.ctx
	switch p.Kind {
	case "file":
		return decodeSink(b, p, site, func(c filesink.Config, env engine.SinkEnv) (*filesink.Sink, error) {
			return filesink.New(ctx, c, schema, env)
		})
	case "stdout":
		return decodeSink(b, p, site, func(c stdout.Config, env engine.SinkEnv) (*stdout.Sink, error) {
			return stdout.New(ctx, c, schema, env)
		})
	case "gcs":
		return decodeSink(b, p, site, func(c gcssink.Config, env engine.SinkEnv) (*gcssink.Sink, error) {
			return gcssink.New(ctx, c, schema, env)
		})
	case "s3":
		return decodeSink(b, p, site, func(c s3sink.Config, env engine.SinkEnv) (*s3sink.Sink, error) {
			return s3sink.New(ctx, c, schema, env)
		})
	case "azblob":
		return decodeSink(b, p, site, func(c azblobsink.Config, env engine.SinkEnv) (*azblobsink.Sink, error) {
			return azblobsink.New(ctx, c, schema, env)
		})
	case "https":
		return decodeSink(b, p, site, func(c httpssink.Config, env engine.SinkEnv) (*httpssink.Sink, error) {
			return httpssink.New(ctx, c, schema, env)
		})
	case "bigquery":
		return decodeSink(b, p, site, func(c bqsink.Config, env engine.SinkEnv) (*bqsink.Sink, error) {
			return bqsink.New(ctx, c, schema, env)
		})
	case "syslog":
		return decodeSink(b, p, site, func(c syslogsink.Config, env engine.SinkEnv) (*syslogsink.Sink, error) {
			return syslogsink.New(ctx, c, schema, env)
		})
	case "kafka":
		return decodeSink(b, p, site, func(c kafkasink.Config, env engine.SinkEnv) (*kafkasink.Sink, error) {
			opts, err := b.kafkaSinkOpts()
			if err != nil {
				return nil, err
			}
			return kafkasink.New(ctx, c, schema, env, opts...)
		})
	}
	b.fail(p.Pos.Errorf("unknown sink %q (expected one of: file, stdout, gcs, s3, azblob, https, bigquery, syslog, kafka)", p.Kind))
	return nil, ""
}

// deadLetter builds the pipeline's dead-letter destination: the one its file
// names, or a JSON-lines file under .sluice/dlq. What it writes is redacted:
// an error text may quote a URL or a value that holds a secret.
func (b *builder) deadLetter(cp *config.Pipeline) engine.Sink {
	site := sinkSite{pipeline: cp.Name, deadLetter: true}
	if cp.DeadLetter != nil {
		switch cp.DeadLetter.Kind {
		case "file", "kafka":
			s, _ := b.sink(cp.DeadLetter, engine.DeadLetterSchema, site)
			return redactDeadLetters(s, b.redact)
		}
		b.fail(cp.DeadLetter.Pos.Errorf("dead_letter must be kafka or file, got %q", cp.DeadLetter.Kind))
		return nil
	}
	cfg := filesink.Config{Path: filepath.Join(config.DefaultDeadLetterDir, b.cj.Job+"."+cp.Name+".jsonl"), Format: "json"}
	b.claim("file", cfg.Destination(), cp.Pos, cp.Name)
	if b.o.DryRun {
		return dryRunSink{}
	}
	s, err := filesink.New(b.ctx, cfg, engine.DeadLetterSchema, b.sinkEnv(site, deadLetterName))
	if err != nil {
		b.fail(cp.Pos.Errorf("dead-letter file %s: %v", cfg.Path, err))
		return nil
	}
	return redactDeadLetters(s, b.redact)
}

// redactDeadLetters wraps a dead-letter sink so that the error text of every
// dead letter passes through redact before it is written.
func redactDeadLetters(s engine.Sink, redact func(string) string) engine.Sink {
	if s == nil {
		return nil
	}
	if _, ok := s.(dryRunSink); ok {
		return s
	}
	return &redactingSink{Sink: s, redact: redact}
}

type redactingSink struct {
	engine.Sink
	redact func(string) string
}

func (s *redactingSink) Open(ctx context.Context, task engine.TaskID) (engine.Writer, error) {
	w, err := s.Sink.Open(ctx, task)
	if err != nil {
		return nil, err
	}
	return &redactingWriter{Writer: w, redact: s.redact}, nil
}

type redactingWriter struct {
	engine.Writer
	redact func(string) string
}

// Write redacts the row's error column in place: the row is the caller's
// dead letter, built for this call.
func (w *redactingWriter) Write(row *engine.Row) error {
	if len(row.Slots) > engine.DLError && !row.IsNull(engine.DLError) {
		row.SetStr(engine.DLError, w.redact(row.Str(engine.DLError)))
	}
	return w.Writer.Write(row)
}

// kafkaSinkOpts gives a Kafka sink the job's cluster: brokers, TLS, SASL and
// the schema registry, built by the Kafka source's client builder.
func (b *builder) kafkaSinkOpts() ([]kafkasink.Option, error) {
	k := b.cj.Kafka
	if k == nil {
		return nil, fmt.Errorf("a kafka sink needs the job's kafka section")
	}
	opts, err := kafka.ClientOpts(k)
	if err != nil {
		return nil, err
	}
	opts = append(opts, b.o.KafkaOpts...)
	out := []kafkasink.Option{kafkasink.WithClientOpts(opts...)}
	if r := k.SchemaRegistry; r != nil {
		cl, err := kafka.RegistryClient(r)
		if err != nil {
			return nil, err
		}
		out = append(out, kafkasink.WithRegistry(cl))
	}
	return out, nil
}
