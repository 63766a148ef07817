package kafka

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sluicehq/sluice/sink/encode"
)

// Defaults.
const (
	DefaultFormat      = encode.FormatJSON
	DefaultCompression = "snappy"
)

// Config is the `kafka:` sink of a pipeline (and the `kafka:` dead-letter
// destination). Brokers, TLS, SASL and the schema registry are the job's
// `kafka:` settings, passed by the wiring as Options.
type Config struct {
	Topic string `yaml:"topic" required:"true"`
	// Format of the record values: json (default) or avro (Confluent framing
	// with a registry, else plain Avro binary with the schema in the
	// sluice.schema header).
	Format string `yaml:"format"`
	// Key is the column whose value is the record key; default none (null
	// keys, spread over partitions).
	Key string `yaml:"key"`
	// Headers maps a header name to a column of the output schema (its value
	// as text) or, when no column has that name, to a literal value.
	Headers map[string]string `yaml:"headers"`
	// Compression is none, gzip, snappy (default), lz4 or zstd.
	Compression string `yaml:"compression"`
	// Transactional makes the output exactly-once for read_committed
	// consumers: each task's rows are written in Kafka transactions that
	// also commit how far the output got (see doc.go). Default false:
	// idempotent producer, at-least-once.
	Transactional bool `yaml:"transactional"`
}

// Validate checks the settings and fills in defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.Topic == "" {
		errs = append(errs, errors.New("topic is required"))
	}
	if c.Format == "" {
		c.Format = DefaultFormat
	}
	if c.Format != encode.FormatJSON && c.Format != encode.FormatAvro {
		errs = append(errs, fmt.Errorf("format %q: expected json or avro", c.Format))
	}
	if c.Compression == "" {
		c.Compression = DefaultCompression
	}
	if _, err := compression(c.Compression); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("kafka: %w", errors.Join(errs...))
	}
	return nil
}

func compression(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.NoCompression(), fmt.Errorf("compression %q: expected none, gzip, snappy, lz4 or zstd", name)
}

// Option configures a Sink beyond its Config.
type Option func(*options)

type options struct {
	client     *kgo.Client
	clientOpts []kgo.Opt
	registry   *sr.Client
}

// WithKafkaClient makes the sink produce through client (shared, not closed
// by the sink). Not for transactional sinks, which need a client per task.
func WithKafkaClient(c *kgo.Client) Option {
	return func(o *options) { o.client = c }
}

// WithClientOpts adds options (brokers, TLS, SASL) to the clients the sink
// builds: the wiring passes the Kafka source's ClientOpts of the job's
// `kafka:` block, so that every Kafka client of a job connects the same way.
func WithClientOpts(opts ...kgo.Opt) Option {
	return func(o *options) { o.clientOpts = append(o.clientOpts, opts...) }
}

// WithRegistry registers the Avro value schema with a Confluent schema
// registry (subject "<topic>-value") and frames values with its id.
func WithRegistry(c *sr.Client) Option {
	return func(o *options) { o.registry = c }
}

// Destination is the topic the sink writes to: it names the sink by default.
func (c *Config) Destination() string { return c.Topic }
