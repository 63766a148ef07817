package object

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/avro"
	"github.com/sluicehq/sluice/sink/encode"
)

// Defaults of Options, shared by the object sinks' configurations.
const (
	DefaultMaxObjectBytes = 128 << 20
	DefaultMaxObjectAge   = 5 * time.Minute
	// finalizeTimeout bounds the finalization of an object that is not part
	// of a Flush (on Close and when max_object_age passes in a quiet stream).
	finalizeTimeout = 30 * time.Second
)

// Metadata keys every finalized object carries. Part of the format: Resume
// reads MetaRows to know how many replayed rows an object already holds.
const (
	MetaRows  = "sluice-rows"
	MetaClose = "sluice-close" // size | age | close
)

// ErrExists is returned by Store.Commit when the object already exists.
var ErrExists = errors.New("object already exists")

// Meta describes an object being finalized.
type Meta struct {
	Rows        int64
	Close       string // why it closed: size, age or close
	ContentType string
}

// Metadata returns m as the object metadata the stores write.
func (m Meta) Metadata() map[string]string {
	return map[string]string{MetaRows: strconv.FormatInt(m.Rows, 10), MetaClose: m.Close}
}

// Store is one cloud's object operations, as the writers of one sink use
// them. Its methods are called from many task goroutines at once.
type Store interface {
	// Stage stores data durably as part id of the object name, which stays
	// invisible until Commit. Staging the same (name, id) again replaces
	// it.
	Stage(ctx context.Context, name, id string, data []byte) error
	// Commit makes the object name from parts ids in that order, with
	// meta, and then drops every part staged for name (listed or not). It
	// returns an error wrapping ErrExists when name exists already; it
	// never replaces an existing object.
	Commit(ctx context.Context, name string, ids []string, meta Meta) error
	// Committed returns the rows of the finalized object name (from its
	// MetaRows), or ok false when it does not exist.
	Committed(ctx context.Context, name string) (rows int64, ok bool, err error)
	// Abandon drops the parts staged for name (left over by a crash between
	// a commit and its clean-up). Stores that drop them by themselves may do
	// nothing.
	Abandon(ctx context.Context, name string) error
}

// Options are the settings shared by the object sinks.
type Options struct {
	// Kind names the sink in errors ("gcs").
	Kind string
	// Prefix starts every object name.
	Prefix string
	// Format is json, csv or avro.
	Format string
	Codec  avro.Codec
	// MaxObjectBytes and MaxObjectAge close an object; 0 takes the default.
	MaxObjectBytes int64
	MaxObjectAge   time.Duration
}

// Sink writes a pipeline's rows to objects of a Store. It implements
// engine.ResumableSink; the cloud packages wrap it.
type Sink struct {
	opts   Options
	store  Store
	env    engine.SinkEnv
	schema *engine.Schema
	ext    string
	ctype  string
	// headerLen is what the format puts before the first row of an object.
	headerLen int
	// blockOverhead is the most the format adds per part (an OCF block's
	// count, size and sync marker).
	blockOverhead int
}

// New builds the object sink for rows of schema on store.
func New(opts Options, store Store, schema *engine.Schema, env engine.SinkEnv) (*Sink, error) {
	if opts.Format == "" {
		opts.Format = encode.FormatJSON
	}
	if opts.Codec == "" {
		opts.Codec = avro.CodecNull
	}
	if opts.MaxObjectBytes <= 0 {
		opts.MaxObjectBytes = DefaultMaxObjectBytes
	}
	if opts.MaxObjectAge <= 0 {
		opts.MaxObjectAge = DefaultMaxObjectAge
	}
	s := &Sink{opts: opts, store: store, env: env, schema: schema}
	switch opts.Format {
	case encode.FormatJSON:
		s.ext, s.ctype = "jsonl", "application/x-ndjson"
	case encode.FormatCSV:
		s.ext, s.ctype = "csv", "text/csv"
		c, err := encode.NewCSV(schema)
		if err != nil {
			return nil, err
		}
		s.headerLen = len(c.Header(nil))
	case encode.FormatAvro:
		s.ext, s.ctype = "avro", "application/avro"
		o, err := encode.NewOCF(schema, opts.Codec, nil)
		if err != nil {
			return nil, err
		}
		s.headerLen = len(o.AppendHeader(nil))
		o.Close()
		s.blockOverhead = 2*10 + avro.SyncSize
	default:
		return nil, fmt.Errorf("unknown format %q (expected json, csv or avro)", opts.Format)
	}
	return s, nil
}

// Open implements engine.Sink: the task's writer starts a new series of
// objects.
func (s *Sink) Open(ctx context.Context, task engine.TaskID) (engine.Writer, error) {
	w, err := s.newWriter(task)
	if err != nil {
		return nil, err
	}
	w.st = state{V: stateVersion, Series: time.Now().UnixMicro(), Seq: 1}
	return w, nil
}

// Resume implements engine.ResumableSink: the writer continues the object
// that st names. Objects of the series that a lost run finalized after st was
// recorded are found by name, and the replayed rows they hold are skipped.
func (s *Sink) Resume(ctx context.Context, task engine.TaskID, st []byte) (engine.Writer, error) {
	w, err := s.newWriter(task)
	if err != nil {
		return nil, err
	}
	if w.st, err = decodeState(st); err != nil {
		return nil, fmt.Errorf("%s sink: %w", s.opts.Kind, err)
	}
	for {
		name := w.name()
		rows, ok, err := s.store.Committed(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("%s sink: resume %s: %w", s.opts.Kind, name, err)
		}
		if !ok {
			break
		}
		if rows > w.st.Rows {
			w.skip += rows - w.st.Rows
		}
		if err := s.store.Abandon(ctx, name); err != nil {
			w.log.Warn("parts of a finalized object not removed", "object", name, "error", err)
		}
		w.st.advance()
	}
	if w.skip > 0 {
		w.log.Info("replayed rows already in finalized objects are skipped", "task", task.String(), "rows", w.skip)
	}
	w.mu.Lock()
	w.schedule()
	w.mu.Unlock()
	return w, nil
}

// Close implements engine.Sink.
func (s *Sink) Close(ctx context.Context) error { return nil }

func (s *Sink) newWriter(task engine.TaskID) (*writer, error) {
	w := &writer{s: s, task: task, dead: encode.NewDeadLetters(s.env, task), log: s.env.Log()}
	var err error
	if w.enc, err = encode.New(s.opts.Format, s.schema); err != nil {
		return nil, err
	}
	w.json, _ = encode.NewJSON(s.schema)
	if s.opts.Format == encode.FormatCSV {
		w.csv = w.enc.(*encode.CSV)
	}
	var n [4]byte
	_, _ = rand.Read(n[:])
	w.nonce = hex.EncodeToString(n[:])
	return w, nil
}

// Name returns the name of object seq of the series that began at series, for
// task (see the package documentation).
func (s *Sink) Name(task engine.TaskID, series, seq int64) string {
	rest := path.Join(s.env.Pipeline, task.Topic+"-"+strconv.Itoa(int(task.Partition)),
		strconv.FormatInt(series, 10)+"-"+fmt.Sprintf("%06d", seq)+"."+s.ext)
	h := sha256.Sum256([]byte(s.env.Job + "/" + rest))
	return s.opts.Prefix + hex.EncodeToString(h[:2]) + "/" + rest
}
