package bigquery

import (
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/bigquery/storage/managedwriter"

	"github.com/sluicehq/sluice/engine/backoff"
)

// Modes.
const (
	// ModeDefault appends to the table's default stream: at-least-once.
	ModeDefault = "default"
	// ModeCommitted appends to one committed-type stream per task at explicit
	// offsets: a replay is rejected as AlreadyExists (exactly-once, see doc.go).
	ModeCommitted = "committed"
)

// Defaults.
const (
	// DefaultMaxBatchRows bounds the rows of one AppendRows request.
	DefaultMaxBatchRows = 10000
	// DefaultMaxBatchBytes bounds the bytes of one AppendRows request; BigQuery
	// rejects requests over 10 MB.
	DefaultMaxBatchBytes = 8 << 20
	maxRequestBytes      = 9 << 20
)

// Config is the `bigquery:` sink of a pipeline.
type Config struct {
	Project string `yaml:"project" required:"true"`
	Dataset string `yaml:"dataset" required:"true"`
	Table   string `yaml:"table" required:"true"`
	// Mode is default (at-least-once) or committed (exactly-once with the
	// engine's checkpoint; see doc.go). Default: default.
	Mode string `yaml:"mode"`
	// Endpoint overrides the BigQuery Storage API endpoint (host:port), for
	// emulators and tests. With an http:// prefix the connection is plaintext
	// and unauthenticated.
	Endpoint string `yaml:"endpoint"`
	// MaxBatchRows and MaxBatchBytes bound one AppendRows request. Defaults:
	// DefaultMaxBatchRows, DefaultMaxBatchBytes.
	MaxBatchRows  int `yaml:"max_batch_rows"`
	MaxBatchBytes int `yaml:"max_batch_bytes"`
}

// Validate checks the settings and fills in defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.Project == "" || c.Dataset == "" || c.Table == "" {
		errs = append(errs, errors.New("project, dataset and table are required"))
	}
	switch c.Mode {
	case "":
		c.Mode = ModeDefault
	case ModeDefault, ModeCommitted:
	default:
		errs = append(errs, fmt.Errorf("mode %q: expected default or committed", c.Mode))
	}
	if c.MaxBatchRows == 0 {
		c.MaxBatchRows = DefaultMaxBatchRows
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxBatchRows < 0 {
		errs = append(errs, fmt.Errorf("max_batch_rows %d: must be positive", c.MaxBatchRows))
	}
	if c.MaxBatchBytes < 0 || c.MaxBatchBytes > maxRequestBytes {
		errs = append(errs, fmt.Errorf("max_batch_bytes %d: must be between 1 and %d (BigQuery's request limit)", c.MaxBatchBytes, maxRequestBytes))
	}
	if len(errs) > 0 {
		return fmt.Errorf("bigquery: %w", errors.Join(errs...))
	}
	return nil
}

func (c *Config) tableParent() string {
	return managedwriter.TableParentFromParts(c.Project, c.Dataset, c.Table)
}

// Option configures a Sink beyond its Config.
type Option func(*options)

type options struct {
	client  *managedwriter.Client
	backoff backoff.Policy
}

// WithClient makes the sink use client instead of building one from the
// Config; the sink does not close it.
func WithClient(c *managedwriter.Client) Option {
	return func(o *options) { o.client = c }
}

// WithBackoff sets the first and the longest pause between retries
// (default backoff.Default: 100ms and 30s; RESOURCE_EXHAUSTED starts at 10×
// the first), jittered as every retry is.
func WithBackoff(min, max time.Duration) Option {
	return func(o *options) { o.backoff = backoff.Policy{Base: min, Max: max} }
}

// Destination is the table the sink writes to, project.dataset.table: it
// names the sink by default and finds two sinks writing one table.
func (c *Config) Destination() string {
	return c.Project + "." + c.Dataset + "." + c.Table
}
