package file

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/source/avro"
)

// Format is the kind of file.
type Format int

// Formats.
const (
	FormatAvro Format = iota // Avro object container file
	FormatJSONLines
)

// DefaultBatch is the number of records handed to Deliver at once.
const DefaultBatch = 1000

// MaxLine bounds a JSON line.
const MaxLine = 16 << 20

// Source is a bounded source over one file.
type Source struct {
	path   string
	format Format
	f      *os.File
	ocf    *avro.OCFReader
	lines  *bufio.Reader
	task   engine.TaskID
	start  int64
	meta   string
	batch  int
	mtime  time.Time

	// CommitLog keeps what the runtime commits: a file has nowhere to
	// write it.
	engine.CommitLog
}

// Option configures Open.
type Option func(*options)

type options struct {
	start int64 // -1: from the first record
	meta  string
	batch int
}

// WithStartAt resumes at offset (the next record to read) with the
// checkpoint key meta, as committed before (default: from the first record).
func WithStartAt(offset int64, meta string) Option {
	return func(o *options) { o.start, o.meta = offset, meta }
}

// WithBatch sets how many records one Deliver call carries (default
// DefaultBatch); n below 1 means 1.
func WithBatch(n int) Option { return func(o *options) { o.batch = n } }

// Open opens path; its extension chooses the format (.avro, or .jsonl/.json).
func Open(path string, opts ...Option) (*Source, error) {
	o := options{start: -1, batch: DefaultBatch}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Source{path: path, task: engine.TaskID{Topic: path}, start: o.start, meta: o.meta, batch: max(1, o.batch)}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".avro":
		s.format = FormatAvro
	case ".jsonl", ".json", ".ndjson":
		s.format = FormatJSONLines
	default:
		return nil, fmt.Errorf("file source: %s: unknown extension (want .avro, .jsonl or .json)", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("file source: %w", err)
	}
	s.f = f
	if st, err := f.Stat(); err == nil {
		s.mtime = st.ModTime()
	}
	if s.format == FormatAvro {
		if s.ocf, err = avro.NewOCFReader(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("file source: %s: %w", path, err)
		}
	} else {
		s.lines = bufio.NewReaderSize(f, 64<<10)
	}
	return s, nil
}

// Format is the file's format.
func (s *Source) Format() Format { return s.format }

// Task is the one task of the source.
func (s *Source) Task() engine.TaskID { return s.task }

// WriterSchema is the schema an OCF file holds, nil for JSON lines.
func (s *Source) WriterSchema() *engine.Type {
	if s.ocf == nil {
		return nil
	}
	return s.ocf.Schema()
}

// Close releases the file.
func (s *Source) Close() error {
	if s.ocf != nil {
		s.ocf.Close()
	}
	return s.f.Close()
}

func (s *Source) next() ([]byte, error) {
	if s.ocf != nil {
		return s.ocf.Next()
	}
	for {
		line, err := s.lines.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long line: gather it, up to MaxLine.
			buf := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = s.lines.ReadSlice('\n')
				buf = append(buf, line...)
				if len(buf) > MaxLine {
					return nil, fmt.Errorf("line over %d bytes", MaxLine)
				}
			}
			line = buf
		} else {
			line = bytes.Clone(line) // ReadSlice's buffer is reused; records outlive it
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(trimmed)) > 0 {
			return trimmed, nil
		}
		if err == io.EOF {
			return nil, io.EOF
		}
	}
}

// Run assigns the file's task, delivers its records and ends it. It returns
// nil once the file is delivered, ctx's error if ctx ends first.
func (s *Source) Run(ctx context.Context, h engine.Handler) error {
	h.Assign(ctx, []engine.Assignment{{Task: s.task, Offset: s.start, Meta: s.meta}})
	from := max(s.start, 0)
	var off int64
	batch := make([]engine.Record, 0, s.batch)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		v, err := s.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("file source: %s: record %d: %w", s.path, off, err)
		}
		if off >= from {
			batch = append(batch, engine.Record{Value: v, Offset: off, Timestamp: s.mtime})
			if len(batch) == s.batch {
				h.Deliver(s.task, batch)
				batch = make([]engine.Record, 0, s.batch) // the runtime keeps what it was given
			}
		}
		off++
	}
	if len(batch) > 0 {
		h.Deliver(s.task, batch)
	}
	h.End(s.task)
	return nil
}
