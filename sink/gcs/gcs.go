package gcs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strconv"
	"time"

	"cloud.google.com/go/storage"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/sink/encode"
)

// Defaults of Config.
const (
	DefaultMaxObjectBytes = 128 << 20
	DefaultMaxObjectAge   = 5 * time.Minute
	// chunkSize is the resumable upload's chunk: the memory of one upload.
	chunkSize = 8 << 20
)

// Config is the `gcs:` sink of a pipeline.
type Config struct {
	Pos    config.Pos
	Bucket string `yaml:"bucket" required:"true"`
	// Prefix starts every object name ("denied/").
	Prefix string `yaml:"prefix"`
	// Format is json (lines, the default), csv or avro (OCF).
	Format string `yaml:"format"`
	// Codec compresses Avro blocks: null (the default), deflate, snappy or zstd.
	Codec string `yaml:"codec"`
	// MaxObjectBytes cuts objects (DefaultMaxObjectBytes).
	MaxObjectBytes encode.ByteSize `yaml:"max_object_bytes"`
	// MaxObjectAge bounds how long an object stays open (DefaultMaxObjectAge);
	// objects are finalized at every flush, so they never stay open longer.
	MaxObjectAge time.Duration `yaml:"max_object_age"`
}

// Validate reports settings that cannot work, at their positions.
func (c *Config) Validate() error {
	var errs config.Errors
	switch c.Format {
	case "", encode.FormatJSON, encode.FormatCSV, encode.FormatAvro:
	default:
		errs = append(errs, c.Pos.Key("format").Errorf("unknown format %q (expected json, csv or avro)", c.Format))
	}
	if _, err := encode.ParseCodec(c.Codec); err != nil {
		errs = append(errs, c.Pos.Key("codec").Errorf("unknown codec %q (expected null, deflate, snappy or zstd)", c.Codec))
	}
	if c.Bucket == "" {
		errs = append(errs, c.Pos.Key("bucket").Errorf("bucket must not be empty"))
	}
	if c.MaxObjectBytes < 0 || c.MaxObjectAge < 0 {
		errs = append(errs, c.Pos.Errorf("max_object_bytes and max_object_age must not be negative"))
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// Option changes a Sink built by New.
type Option func(*Sink)

// WithClient uses c instead of a client made by storage.NewClient (which
// honours STORAGE_EMULATOR_HOST).
func WithClient(c *storage.Client) Option { return func(s *Sink) { s.client, s.ownClient = c, false } }

// Sink writes rows to objects of a bucket.
type Sink struct {
	cfg       Config
	env       engine.SinkEnv
	schema    *engine.Schema
	codec     encode.Codec
	client    *storage.Client
	ownClient bool
	ext       string
}

// New builds the GCS sink of cfg for rows of schema.
func New(ctx context.Context, cfg Config, schema *engine.Schema, env engine.SinkEnv, opts ...Option) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Format == "" {
		cfg.Format = encode.FormatJSON
	}
	if cfg.MaxObjectBytes == 0 {
		cfg.MaxObjectBytes = DefaultMaxObjectBytes
	}
	if cfg.MaxObjectAge == 0 {
		cfg.MaxObjectAge = DefaultMaxObjectAge
	}
	codec, _ := encode.ParseCodec(cfg.Codec)
	s := &Sink{cfg: cfg, env: env, schema: schema, codec: codec, ext: map[string]string{"json": "jsonl", "csv": "csv", "avro": "avro"}[cfg.Format]}
	for _, o := range opts {
		o(s)
	}
	if s.client == nil {
		c, err := storage.NewClient(ctx)
		if err != nil {
			return nil, fmt.Errorf("gcs sink: %w", err)
		}
		s.client, s.ownClient = c, true
	}
	return s, nil
}

// Open implements engine.Sink.
func (s *Sink) Open(ctx context.Context, task engine.TaskID) (engine.Writer, error) {
	w := &writer{s: s, task: task, dead: encode.NewDeadLetters(s.env, task)}
	var err error
	if w.enc, err = encode.New(s.cfg.Format, s.schema); err != nil {
		return nil, fmt.Errorf("gcs sink: %w", err)
	}
	w.json, _ = encode.NewJSON(s.schema)
	if s.cfg.Format == encode.FormatAvro {
		if w.ocf, err = encode.NewOCF(s.schema, s.codec, nil); err != nil {
			return nil, fmt.Errorf("gcs sink: %w", err)
		}
	}
	return w, nil
}

// Close closes the client if New made it.
func (s *Sink) Close(ctx context.Context) error {
	if s.ownClient && s.client != nil {
		c := s.client
		s.client = nil
		if err := c.Close(); err != nil {
			return fmt.Errorf("gcs sink: close: %w", err)
		}
	}
	return nil
}

// part is rows for one object: buf[:end] encoded rows (without framing).
type part struct {
	buf  []byte
	rows int
}

type writer struct {
	s    *Sink
	task engine.TaskID
	enc  encode.Encoder
	json *encode.JSON
	ocf  *encode.OCF
	dead *encode.DeadLetters

	parts []part
	out   []byte
	seq   uint64
	rows  int
}

func (w *writer) Write(row *engine.Row) error {
	n := len(w.parts)
	if n == 0 || len(w.parts[n-1].buf) >= int(w.s.cfg.MaxObjectBytes) {
		w.parts = append(w.parts, part{})
		n++
	}
	p := &w.parts[n-1]
	var err error
	if p.buf, err = w.enc.Append(p.buf, row); err != nil {
		v, _ := w.json.Append(nil, row)
		w.dead.Add(row.Origin, v, err.Error())
		w.s.env.Stats.Error("encode")
		return nil
	}
	if w.s.cfg.Format == encode.FormatJSON {
		p.buf = append(p.buf, '\n')
	}
	p.rows++
	w.rows++
	w.s.env.Stats.AddInFlight(1)
	return nil
}

// name returns the next object name (see the package documentation).
func (w *writer) name(now time.Time) string {
	w.seq++
	rest := path.Join(w.s.env.Pipeline, w.task.Topic+"-"+strconv.Itoa(int(w.task.Partition)),
		strconv.FormatInt(now.UnixMicro(), 10)+"-"+strconv.FormatUint(w.seq, 10)+"."+w.s.ext)
	h := sha256.Sum256([]byte(w.s.env.Job + "/" + rest))
	return w.s.cfg.Prefix + hex.EncodeToString(h[:2]) + "/" + rest
}

func (w *writer) Flush(ctx context.Context) error {
	for len(w.parts) > 0 {
		p := &w.parts[0]
		if p.rows > 0 {
			if err := w.upload(ctx, p); err != nil {
				w.s.env.Stats.Error("upload")
				return err
			}
		}
		w.s.env.Stats.AddInFlight(-p.rows)
		w.rows -= p.rows
		w.parts = w.parts[1:]
	}
	w.parts = nil
	if err := w.dead.Flush(ctx); err != nil {
		return fmt.Errorf("gcs sink: %w", err)
	}
	return nil
}

// upload writes one finalized object holding p's rows.
func (w *writer) upload(ctx context.Context, p *part) error {
	start := time.Now()
	w.out = w.out[:0]
	switch w.s.cfg.Format {
	case encode.FormatCSV:
		w.out = w.enc.(*encode.CSV).Header(w.out)
		w.out = append(w.out, p.buf...)
	case encode.FormatAvro:
		w.out = w.ocf.AppendHeader(w.out)
		var err error
		if w.out, err = w.ocf.AppendBlock(w.out, p.rows, p.buf); err != nil {
			return fmt.Errorf("gcs sink: %w", err)
		}
	default:
		w.out = append(w.out, p.buf...)
	}
	name := w.name(start)
	// DoesNotExist makes the upload idempotent, so the client retries it.
	obj := w.s.client.Bucket(w.s.cfg.Bucket).Object(name).If(storage.Conditions{DoesNotExist: true}).
		Retryer(storage.WithPolicy(storage.RetryIdempotent))
	ow := obj.NewWriter(ctx)
	ow.ChunkSize = chunkSize
	ow.ContentType = map[string]string{"json": "application/x-ndjson", "csv": "text/csv", "avro": "application/avro"}[w.s.cfg.Format]
	if _, err := ow.Write(w.out); err != nil {
		_ = ow.Close()
		return fmt.Errorf("gcs sink: write %s: %w", name, err)
	}
	if err := ow.Close(); err != nil {
		return fmt.Errorf("gcs sink: finalize %s: %w", name, err)
	}
	w.s.env.Stats.Acked(p.rows, len(w.out), time.Since(start).Seconds())
	return nil
}

func (w *writer) Close(ctx context.Context) error {
	w.s.env.Stats.AddInFlight(-w.rows)
	w.parts, w.rows = nil, 0
	w.dead.Discard()
	var err error
	if w.ocf != nil {
		err = w.ocf.Close()
	}
	return errors.Join(err, w.dead.Close(ctx))
}
