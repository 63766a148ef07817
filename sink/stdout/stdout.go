package stdout

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/sink/encode"
)

// Config is the `stdout:` sink of a pipeline.
type Config struct {
	Pos config.Pos
	// Format is json (lines, the default) or csv.
	Format string `yaml:"format"`
}

// Validate reports settings that cannot work, at their positions.
func (c *Config) Validate() error {
	switch c.Format {
	case "", encode.FormatJSON, encode.FormatCSV:
		return nil
	}
	return config.Errors{c.Pos.Key("format").Errorf("unknown format %q (expected json or csv)", c.Format)}
}

// Option configures New beyond its Config.
type Option func(*options)

type options struct {
	out io.Writer
}

// WithOutput writes to w (default os.Stdout); for tests.
func WithOutput(w io.Writer) Option { return func(o *options) { o.out = w } }

// Sink writes the rows of every task to standard output.
type Sink struct {
	env    engine.SinkEnv
	enc    encode.Encoder
	header []byte
	lines  bool

	mu      sync.Mutex // guards out and started
	out     io.Writer
	started bool
}

// New builds the stdout sink of cfg for rows of schema.
func New(ctx context.Context, cfg Config, schema *engine.Schema, env engine.SinkEnv, opts ...Option) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{out: os.Stdout}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Sink{env: env, out: o.out}
	if cfg.Format == encode.FormatCSV {
		c, _ := encode.NewCSV(schema)
		s.enc, s.header = c, c.Header(nil)
	} else {
		s.enc, _ = encode.NewJSON(schema)
		s.lines = true
	}
	return s, nil
}

// Open implements engine.Sink.
func (s *Sink) Open(ctx context.Context, task engine.TaskID) (engine.Writer, error) {
	return &writer{s: s, dead: encode.NewDeadLetters(s.env, task)}, nil
}

// Close implements engine.Sink; standard output stays open.
func (s *Sink) Close(ctx context.Context) error { return nil }

type writer struct {
	s    *Sink
	dead *encode.DeadLetters
	buf  []byte
	rows int
}

func (w *writer) Write(row *engine.Row) error {
	var err error
	if w.buf, err = w.s.enc.Append(w.buf, row); err != nil {
		w.dead.Add(row.Origin, nil, err.Error())
		w.s.env.Stats.Error("encode")
		return nil
	}
	if w.s.lines {
		w.buf = append(w.buf, '\n')
	}
	w.rows++
	w.s.env.Stats.AddInFlight(1)
	return nil
}

func (w *writer) Flush(ctx context.Context) error {
	if err := w.dead.Flush(ctx); err != nil {
		return fmt.Errorf("stdout sink: %w", err)
	}
	if w.rows == 0 {
		return nil
	}
	start := time.Now()
	w.s.mu.Lock()
	var err error
	if !w.s.started && len(w.s.header) > 0 {
		_, err = w.s.out.Write(w.s.header)
	}
	if err == nil {
		w.s.started = true
		_, err = w.s.out.Write(w.buf)
	}
	w.s.mu.Unlock()
	if err != nil {
		w.s.env.Stats.Error("write")
		return fmt.Errorf("stdout sink: %w", err)
	}
	w.s.env.Stats.Acked(w.rows, len(w.buf), time.Since(start).Seconds())
	w.s.env.Stats.AddInFlight(-w.rows)
	w.buf, w.rows = w.buf[:0], 0
	return nil
}

func (w *writer) Close(ctx context.Context) error {
	w.s.env.Stats.AddInFlight(-w.rows)
	w.buf, w.rows = w.buf[:0], 0
	w.dead.Discard()
	return w.dead.Close(ctx)
}
