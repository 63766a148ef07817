package app

import (
	"context"
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
}

// decodeSink decodes and checks a sink's settings, then (unless this is a dry
// run) builds it with mk.
func decodeSink[C any, PC validator[C], S engine.Sink](b *builder, p *config.Plugin, mk func(C) (S, error)) engine.Sink {
	var cfg C
	if err := p.Decode(PC(&cfg)); err != nil {
		b.fail(err)
		return nil
	}
	if err := PC(&cfg).Validate(); err != nil {
		if es, ok := config.AsErrors(err); ok && es[0].Line > 0 {
			b.fail(es)
		} else {
			b.fail(p.Pos.Errorf("%s: %v", p.Kind, err))
		}
		return nil
	}
	if b.o.DryRun {
		return dryRunSink{}
	}
	s, err := mk(cfg)
	if err != nil {
		b.fail(p.Pos.Errorf("%s: %v", p.Kind, err))
		return nil
	}
	return s
}

// dryRunSink stands in for a sink whose settings were checked but that
// validate does not connect.
type dryRunSink struct{}

func (dryRunSink) Open(context.Context, engine.TaskID) (engine.Writer, error) {
	return nil, fmt.Errorf("validate builds no sinks")
}
func (dryRunSink) Close(context.Context) error { return nil }

// sink builds sink i of a pipeline from its plugin.
func (b *builder) sink(p *config.Plugin, schema *engine.Schema, pipeline string, i int, dead engine.Sink) engine.Sink {
	env := engine.SinkEnv{
		Job: b.cj.Job, Pipeline: pipeline, Name: fmt.Sprintf("%s/%d", p.Kind, i),
		Logger:     b.o.Logger.With("pipeline", pipeline, "sink", fmt.Sprintf("%s/%d", p.Kind, i)),
		Stats:      b.metrics.Sinks.For(b.cj.Job, pipeline, fmt.Sprintf("%s/%d", p.Kind, i)),
		DeadLetter: dead,
	}
	ctx := b.ctx
	switch p.Kind {
	case "file":
		return decodeSink(b, p, func(c filesink.Config) (*filesink.Sink, error) { return filesink.New(ctx, c, schema, env) })
	case "stdout":
		return decodeSink(b, p, func(c stdout.Config) (*stdout.Sink, error) { return stdout.New(ctx, c, schema, env) })
	case "gcs":
		return decodeSink(b, p, func(c gcssink.Config) (*gcssink.Sink, error) { return gcssink.New(ctx, c, schema, env) })
	case "s3":
		return decodeSink(b, p, func(c s3sink.Config) (*s3sink.Sink, error) { return s3sink.New(ctx, c, schema, env) })
	case "azblob":
		return decodeSink(b, p, func(c azblobsink.Config) (*azblobsink.Sink, error) { return azblobsink.New(ctx, c, schema, env) })
	case "https":
		return decodeSink(b, p, func(c httpssink.Config) (*httpssink.Sink, error) { return httpssink.New(ctx, c, schema, env) })
	case "bigquery":
		return decodeSink(b, p, func(c bqsink.Config) (*bqsink.Sink, error) { return bqsink.New(ctx, c, schema, env) })
	case "syslog":
		return decodeSink(b, p, func(c syslogsink.Config) (*syslogsink.Sink, error) { return syslogsink.New(ctx, c, schema, env) })
	case "kafka":
		return decodeSink(b, p, func(c kafkasink.Config) (*kafkasink.Sink, error) {
			opts, err := b.kafkaSinkOpts()
			if err != nil {
				return nil, err
			}
			return kafkasink.New(ctx, c, schema, env, opts...)
		})
	}
	b.fail(p.Pos.Errorf("unknown sink %q (expected one of: file, stdout, gcs, s3, azblob, https, bigquery, syslog, kafka)", p.Kind))
	return nil
}

// deadLetter builds the pipeline's dead-letter destination: the one its file
// names, or a JSON-lines file under .sluice/dlq.
func (b *builder) deadLetter(cp *config.Pipeline) engine.Sink {
	if cp.DeadLetter != nil {
		switch cp.DeadLetter.Kind {
		case "file", "kafka":
			return b.sink(cp.DeadLetter, engine.DeadLetterSchema, cp.Name, 0, nil)
		}
		b.fail(cp.DeadLetter.Pos.Errorf("dead_letter must be kafka or file, got %q", cp.DeadLetter.Kind))
		return nil
	}
	if b.o.DryRun {
		return dryRunSink{}
	}
	path := filepath.Join(config.DefaultDeadLetterDir, b.cj.Job+"."+cp.Name+".jsonl")
	env := engine.SinkEnv{Job: b.cj.Job, Pipeline: cp.Name, Name: "dead_letter", Logger: b.o.Logger,
		Stats: b.metrics.Sinks.For(b.cj.Job, cp.Name, "dead_letter")}
	s, err := filesink.New(b.ctx, filesink.Config{Path: path, Format: "json"}, engine.DeadLetterSchema, env)
	if err != nil {
		b.fail(cp.Pos.Errorf("dead-letter file %s: %v", path, err))
		return nil
	}
	return s
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
