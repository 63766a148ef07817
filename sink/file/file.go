package file

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/avro"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/sink/encode"
)

// Config is the `file:` sink of a pipeline.
type Config struct {
	Pos config.Pos
	// Path of the file; parent directories are created.
	Path string `yaml:"path" required:"true"`
	// Format is json (lines, the default), csv or avro (one OCF).
	Format string `yaml:"format"`
	// Codec compresses Avro blocks: null (the default), deflate, snappy or zstd.
	Codec string `yaml:"codec"`
}

// Validate reports settings that cannot work, at their positions.
func (c *Config) Validate() error {
	var errs config.Errors
	switch c.Format {
	case "", encode.FormatJSON, encode.FormatCSV, encode.FormatAvro:
	default:
		errs = append(errs, c.Pos.Key("format").Errorf("unknown format %q (expected json, csv or avro)", c.Format))
	}
	if _, err := avro.ParseCodec(c.Codec); err != nil {
		errs = append(errs, c.Pos.Key("codec").Errorf("unknown codec %q (expected null, deflate, snappy or zstd)", c.Codec))
	} else if c.Codec != "" && c.Format != encode.FormatAvro {
		errs = append(errs, c.Pos.Key("codec").Errorf("codec applies to format avro only"))
	}
	if c.Path == "" {
		errs = append(errs, c.Pos.Key("path").Errorf("path must not be empty"))
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// Sink appends the rows of every task of a pipeline to one file.
type Sink struct {
	cfg    Config
	env    engine.SinkEnv
	schema *engine.Schema
	codec  avro.Codec
	sync   []byte // OCF sync marker of the file

	mu      sync.Mutex // guards f, size, started, written, closed
	f       *os.File
	size    int64 // bytes in the file after the last complete write
	started bool  // header written (or found)
	written uint64
	closed  bool

	syncMu sync.Mutex // serializes fsyncs; guards synced
	synced uint64     // s.written covered by the last fsync
}

// New opens (creating or continuing) the file of cfg for rows of schema.
func New(ctx context.Context, cfg Config, schema *engine.Schema, env engine.SinkEnv) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Format == "" {
		cfg.Format = encode.FormatJSON
	}
	codec, _ := avro.ParseCodec(cfg.Codec)
	s := &Sink{cfg: cfg, env: env, schema: schema, codec: codec}
	if dir := filepath.Dir(cfg.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("file sink: %w", err)
		}
	}
	f, err := os.OpenFile(cfg.Path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("file sink: %w", err)
	}
	s.f, s.size = f, st.Size()
	if err := s.continueFile(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// continueFile checks that a non-empty file can be continued in the format.
func (s *Sink) continueFile() error {
	if s.size == 0 {
		if s.cfg.Format == encode.FormatAvro {
			o, err := encode.NewOCF(s.schema, s.codec, nil)
			if err != nil {
				return fmt.Errorf("file sink: %w", err)
			}
			s.sync = append([]byte(nil), o.Sync()...)
			return o.Close()
		}
		return nil
	}
	s.started = true
	switch s.cfg.Format {
	case encode.FormatAvro:
		h, err := avro.ReadHeader(io.NewSectionReader(s.f, 0, s.size))
		if err != nil {
			return fmt.Errorf("file sink: continue %s: %w", s.cfg.Path, err)
		}
		o, err := encode.NewOCF(s.schema, s.codec, h.Sync[:])
		if err != nil {
			return fmt.Errorf("file sink: %w", err)
		}
		defer o.Close()
		if !bytes.Equal(h.Schema, o.Schema()) || h.Codec != s.codec {
			return fmt.Errorf("file sink: %s holds Avro of another schema or codec (%s); move it away or write elsewhere", s.cfg.Path, h.Codec)
		}
		s.sync = h.Sync[:]
	case encode.FormatCSV:
		enc, _ := encode.NewCSV(s.schema)
		line, err := bufio.NewReader(io.NewSectionReader(s.f, 0, s.size)).ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("file sink: continue %s: %w", s.cfg.Path, err)
		}
		if !bytes.Equal(line, enc.Header(nil)) {
			return fmt.Errorf("file sink: %s has another CSV header; move it away or write elsewhere", s.cfg.Path)
		}
	}
	return nil
}

// Open implements engine.Sink.
func (s *Sink) Open(ctx context.Context, task engine.TaskID) (engine.Writer, error) {
	w := &writer{s: s, dead: encode.NewDeadLetters(s.env, task)}
	var err error
	switch s.cfg.Format {
	case encode.FormatCSV:
		w.enc, err = encode.NewCSV(s.schema)
	case encode.FormatAvro:
		w.enc, err = encode.NewAvro(s.schema)
		if err == nil {
			w.ocf, err = encode.NewOCF(s.schema, s.codec, s.sync)
		}
	default:
		w.enc, err = encode.NewJSON(s.schema)
		w.lines = true
	}
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	w.json, _ = encode.NewJSON(s.schema)
	return w, nil
}

// Close closes the file. It is idempotent.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("file sink: close: %w", err)
	}
	return nil
}

// header returns the bytes that start a new file.
func (s *Sink) header() []byte {
	switch s.cfg.Format {
	case encode.FormatCSV:
		enc, _ := encode.NewCSV(s.schema)
		return enc.Header(nil)
	case encode.FormatAvro:
		o, _ := encode.NewOCF(s.schema, s.codec, s.sync)
		defer o.Close()
		return o.AppendHeader(nil)
	}
	return nil
}

// write appends b to the file, without syncing it (see commit).
func (s *Sink) write(b []byte) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("file sink: closed")
	}
	if !s.started {
		h := s.header()
		if len(h) > 0 {
			b = append(h, b...)
		}
	}
	if _, err := s.f.Write(b); err != nil {
		// Cut a torn write away so that the next one starts clean.
		terr := s.f.Truncate(s.size)
		s.mu.Unlock()
		return fmt.Errorf("file sink: write %s: %w", s.cfg.Path, errors.Join(pathless(err), pathless(terr)))
	}
	s.started = true
	s.size += int64(len(b))
	s.written++
	s.mu.Unlock()
	return nil
}

// commit makes every write before it durable. Group commit: an fsync covers
// every write before it, so a flush whose writes another flush's fsync
// already covered is done.
func (s *Sink) commit() error {
	s.mu.Lock()
	gen := s.written
	s.mu.Unlock()
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced >= gen {
		return nil
	}
	s.mu.Lock()
	upTo := s.written
	s.mu.Unlock()
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("file sink: sync %s: %w", s.cfg.Path, pathless(err))
	}
	s.synced = upTo
	return nil
}

// pathless returns the cause of an *fs.PathError, whose text repeats the
// operation and the path the sink's own error already names ("write X: write
// X: no space left on device"); other errors are returned as they are.
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// spillBytes is how much encoded output a writer buffers before it writes
// it to the file ahead of Flush (unsynced): a bundle of many or large rows,
// such as the windows a stateful pipeline fires at the end of its input,
// holds at most this much in the sink rather than all of its rows.
const spillBytes = 1 << 20

// writer is one task's writer: it buffers encoded rows until Flush, or
// until they reach spillBytes.
type writer struct {
	s     *Sink
	enc   encode.Encoder
	json  *encode.JSON // for the value of dead letters
	lines bool
	ocf   *avro.Container
	dead  *encode.DeadLetters

	buf, block []byte
	rows       int // rows of the open bundle, spilled ones included
	buffered   int // rows in buf
	spilled    int // bytes of the open bundle already written, not yet synced
}

func (w *writer) Write(row *engine.Row) error {
	var err error
	if w.buf, err = w.enc.Append(w.buf, row); err != nil {
		// A row that cannot be encoded is rejected for good.
		v, _ := w.json.Append(nil, row)
		w.dead.Add(row.Origin, v, err.Error())
		w.s.env.Stats.Error("encode")
		return nil
	}
	if w.lines {
		w.buf = append(w.buf, '\n')
	}
	w.rows++
	w.buffered++
	w.s.env.Stats.AddInFlight(1)
	if len(w.buf) >= spillBytes {
		return w.spill()
	}
	return nil
}

// spill writes the buffered rows to the file, as one Avro block when the
// file is a container, and empties the buffer. The bytes are not synced:
// the bundle is acknowledged only by Flush, after its fsync.
func (w *writer) spill() error {
	out := w.buf
	if w.ocf != nil {
		var err error
		if w.block, err = w.ocf.AppendBlock(w.block[:0], w.buffered, w.buf); err != nil {
			return fmt.Errorf("file sink: %w", err)
		}
		out = w.block
	}
	if err := w.s.write(out); err != nil {
		w.s.env.Stats.Error("write")
		return err
	}
	w.spilled += len(out)
	w.buf, w.buffered = w.buf[:0], 0
	return nil
}

func (w *writer) Flush(ctx context.Context) error {
	if err := w.dead.Flush(ctx); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	if w.rows == 0 {
		return nil
	}
	start := time.Now()
	if w.buffered > 0 {
		if err := w.spill(); err != nil {
			return err
		}
	}
	if err := w.s.commit(); err != nil {
		w.s.env.Stats.Error("write")
		return err
	}
	w.s.env.Stats.Acked(w.rows, w.spilled, time.Since(start).Seconds())
	w.s.env.Stats.AddInFlight(-w.rows)
	w.rows, w.spilled = 0, 0
	return nil
}

func (w *writer) Close(ctx context.Context) error {
	w.s.env.Stats.AddInFlight(-w.rows)
	w.buf, w.rows, w.buffered, w.spilled = w.buf[:0], 0, 0, 0
	w.dead.Discard()
	var err error
	if w.ocf != nil {
		err = w.ocf.Close()
	}
	return errors.Join(err, w.dead.Close(ctx))
}
