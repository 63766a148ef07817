package avro

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/engine"
	wire "github.com/sluicehq/sluice/engine/avro"
	"github.com/sluicehq/sluice/engine/backoff"
	"github.com/twmb/franz-go/pkg/sr"
)

// Mode says where a pipeline's writer schemas come from.
type Mode string

// Writer schema modes, as the job file names them (format.avro.writer_schema).
const (
	// ModeReader: records are written with the reader schema, unframed.
	ModeReader Mode = "reader"
	// ModeRegistry: Confluent framing, 0x00 then a 4-byte big-endian schema
	// id of a Schema Registry, then the record.
	ModeRegistry Mode = "registry"
	// ModeHeader: the Kafka header sluice.schema holds the writer schema's
	// JSON, or its 8-byte little-endian Rabin fingerprint (a schema seen
	// before in a header or registered with Decoder.Register).
	ModeHeader Mode = "header"
)

// HeaderKey is the Kafka header that carries the writer schema in ModeHeader
// (defined with the format, in engine/avro).
const HeaderKey = wire.HeaderKey

// Errors of records whose writer schema cannot be found.
var (
	ErrFraming       = errors.New("record lacks the registry framing (0x00 and a 4-byte schema id)")
	ErrNoHeader      = errors.New("record lacks the " + HeaderKey + " header")
	ErrUnknownSchema = errors.New("unknown writer schema")
)

// Registry fetches writer schemas by id. *sr.Client implements it.
type Registry interface {
	SchemaByID(ctx context.Context, id int) (sr.Schema, error)
}

// Decoder is the engine.Decoder of a pipeline reading Avro: it finds each
// record's writer schema (per its Mode), compiles a Program for the (writer,
// reader) pair the first time it meets the writer, and decodes into rows of
// the reader schema.
//
// Decode is safe for concurrent use. Its hot path takes no lock: compiled
// programs live in maps published through an atomic pointer and replaced
// (copied) whenever a new writer schema arrives, which is rare. Fetching and
// compiling a new writer schema holds mu, so concurrent misses on one schema
// fetch it once.
type Decoder struct {
	reader  *engine.Type
	schema  *engine.Schema
	mode    Mode
	reg     Registry
	own     Program // ModeReader's program, writer = reader
	timeout time.Duration
	retry   time.Duration
	log     *slog.Logger
	opts    []CompileOption
	writer  *engine.Type // ModeReader's writer when it is not the reader (a file's schema)

	cache atomic.Pointer[programs]
	mu    sync.Mutex // guards writers of cache: fetching, compiling, publishing
}

// programs is an immutable snapshot of the compiled programs.
type programs struct {
	byID   map[uint32]*entry
	byFP   map[uint64]*entry
	byText map[string]*entry
}

type entry struct {
	p   *Program
	err error     // the schema is unknown or incompatible, or the registry unavailable
	at  time.Time // when err was seen: a fetch failure is retried ttl after it
	ttl time.Duration
}

// stale reports whether e is a failure old enough to ask the registry again.
func (e *entry) stale() bool { return e.err != nil && time.Since(e.at) >= e.ttl }

// unavailableTTL is how long a registry fault (after a fetch that retried for
// the whole fetch timeout) is answered from the cache: the records behind
// the one that met it fail at once, and the engine holds their task and
// retries, instead of each waiting out its own fetch.
const unavailableTTL = time.Second

// Option configures NewDecoder.
type Option func(*options)

type options struct {
	reg     Registry
	regURL  string // a client for it is built by NewDecoder
	regHTTP *http.Client
	timeout time.Duration
	retry   time.Duration
	writer  *engine.Type
	log     *slog.Logger
	compile []CompileOption
}

// Defaults of the registry options.
const (
	DefaultFetchTimeout = 10 * time.Second
	DefaultRetryAfter   = 10 * time.Second
)

// WithRegistry sets the Schema Registry client for ModeRegistry (default
// none: ModeRegistry needs this or WithRegistryURL). The last of the two
// wins.
func WithRegistry(r Registry) Option {
	return func(o *options) { o.reg, o.regURL, o.regHTTP = r, "", nil }
}

// WithRegistryURL has NewDecoder build a Schema Registry client (franz-go
// pkg/sr) for url, through hc (default nil: sr's own HTTP client). The last
// of it and WithRegistry wins.
func WithRegistryURL(url string, hc *http.Client) Option {
	return func(o *options) { o.reg, o.regURL, o.regHTTP = nil, url, hc }
}

// WithFetchTimeout bounds one fetch of a schema from the registry, retries
// included (default DefaultFetchTimeout).
func WithFetchTimeout(t time.Duration) Option {
	return func(o *options) { o.timeout = t }
}

// WithRetryAfter sets how long an id the registry answered it did not know
// (HTTP 404) is answered from the cache as unknown before it is asked again
// (default DefaultRetryAfter).
func WithRetryAfter(t time.Duration) Option {
	return func(o *options) { o.retry = t }
}

// WithWriterSchema says that in ModeReader the records are written with w
// rather than with the reader schema (default: the reader schema): the case
// of an object container file, which carries its own schema
// (file.Source.WriterSchema). An incompatible w fails NewDecoder.
func WithWriterSchema(w *engine.Type) Option {
	return func(o *options) { o.writer = w }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.log = l }
}

// WithCompileOptions passes opts to every Program the Decoder compiles
// (default none: Compile's defaults); several calls add up.
func WithCompileOptions(opts ...CompileOption) Option {
	return func(o *options) { o.compile = append(o.compile, opts...) }
}

// NewDecoder returns a Decoder of records into rows of reader.
func NewDecoder(reader *engine.Type, mode Mode, opts ...Option) (*Decoder, error) {
	schema, err := engine.NewSchema(reader)
	if err != nil {
		return nil, fmt.Errorf("avro decoder: %w", err)
	}
	o := options{timeout: DefaultFetchTimeout, retry: DefaultRetryAfter, log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.regURL != "" {
		copts := []sr.ClientOpt{sr.URLs(o.regURL)}
		if o.regHTTP != nil {
			copts = append(copts, sr.HTTPClient(o.regHTTP))
		}
		if o.reg, err = sr.NewClient(copts...); err != nil {
			return nil, fmt.Errorf("avro decoder: schema registry client: %w", err)
		}
	}
	d := &Decoder{reader: reader, schema: schema, mode: mode, reg: o.reg, timeout: o.timeout, retry: o.retry,
		log: o.log, opts: o.compile, writer: o.writer}
	switch mode {
	case ModeReader, ModeHeader:
	case ModeRegistry:
		if d.reg == nil {
			return nil, fmt.Errorf("avro decoder: mode registry needs a schema registry")
		}
	default:
		return nil, fmt.Errorf("avro decoder: unknown writer schema mode %q (want reader, registry or header)", mode)
	}
	p, err := Compile(reader, reader, d.opts...)
	if err != nil {
		return nil, fmt.Errorf("avro decoder: %w", err)
	}
	d.own = *p
	if d.writer != nil {
		if mode != ModeReader {
			return nil, fmt.Errorf("avro decoder: a fixed writer schema needs mode reader")
		}
		fixed, err := Compile(d.writer, reader, d.opts...)
		if err != nil {
			return nil, fmt.Errorf("avro decoder: %w", err)
		}
		d.own = *fixed
	}
	d.cache.Store(&programs{byID: map[uint32]*entry{}, byFP: map[uint64]*entry{wire.Fingerprint(reader): {p: p}}, byText: map[string]*entry{}})
	return d, nil
}

// Schema is the reader schema.
func (d *Decoder) Schema() *engine.Schema { return d.schema }

// Project restricts decoding to the reader columns at paths (see
// WithProjection) and recompiles the programs compiled so far. It
// implements engine.Projector: the runtime calls it once, before the first
// Decode.
func (d *Decoder) Project(paths []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.opts = append(d.opts, WithProjection(paths...))
	w := d.writer
	if w == nil {
		w = d.reader
	}
	own, err := Compile(w, d.reader, d.opts...)
	if err != nil {
		return fmt.Errorf("avro decoder: %w", err)
	}
	d.own = *own
	var errs []error
	// Entries are shared with the old snapshot: replace them, never edit.
	redo := func(e *entry) *entry {
		if e.p == nil {
			return e
		}
		p, err := Compile(e.p.Writer(), d.reader, d.opts...)
		if err != nil {
			errs = append(errs, err)
			return e
		}
		return &entry{p: p}
	}
	d.publish(func(c *programs) {
		for k, e := range c.byFP {
			c.byFP[k] = redo(e)
		}
		for k, e := range c.byID {
			c.byID[k] = redo(e)
		}
		for k, e := range c.byText {
			c.byText[k] = redo(e)
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("avro decoder: project: %w", errors.Join(errs...))
	}
	return nil
}

// PreparesRows reports whether the Decoder has been projected: then each of
// its programs clears the slots it writes and Row.Ext itself, and the caller
// need not Reset the row between records. It implements engine.RowPreparer.
func (d *Decoder) PreparesRows() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.own.proj != nil
}

// Register compiles writer for ModeHeader records that name it by
// fingerprint. An incompatible writer is an error.
func (d *Decoder) Register(writer *engine.Type) error {
	p, err := Compile(writer, d.reader, d.opts...)
	if err != nil {
		return fmt.Errorf("avro decoder: register writer schema: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.publish(func(c *programs) { c.byFP[wire.Fingerprint(writer)] = &entry{p: p} })
	return nil
}

// publish copies the cache, lets edit change the copy, and publishes it.
// d.mu must be held.
func (d *Decoder) publish(edit func(*programs)) {
	old := d.cache.Load()
	c := &programs{byID: make(map[uint32]*entry, len(old.byID)+1), byFP: make(map[uint64]*entry, len(old.byFP)+1), byText: make(map[string]*entry, len(old.byText)+1)}
	for k, v := range old.byID {
		c.byID[k] = v
	}
	for k, v := range old.byFP {
		c.byFP[k] = v
	}
	for k, v := range old.byText {
		c.byText[k] = v
	}
	edit(c)
	d.cache.Store(c)
}

func decodeErr(rec *engine.Record, err error) error {
	var de *engine.DecodeError
	if errors.As(err, &de) {
		de.Origin.Offset = rec.Offset
		return err
	}
	return &engine.DecodeError{Origin: engine.Origin{Offset: rec.Offset}, Err: err}
}

// Decode decodes rec into row. Strings in row alias rec.Value. The error of a
// record that cannot be decoded is an *engine.DecodeError with the record's
// offset (the caller adds the task) and the field path where known.
func (d *Decoder) Decode(rec *engine.Record, row *engine.Row) error {
	data := rec.Value
	var p *Program
	switch d.mode {
	case ModeReader:
		p = &d.own
	case ModeRegistry:
		id, datum, ok := wire.ParseConfluent(data)
		if !ok {
			return decodeErr(rec, ErrFraming)
		}
		data = datum
		e := d.cache.Load().byID[id]
		if e == nil || e.stale() {
			e = d.fetch(id)
		}
		if e.err != nil {
			if errors.Is(e.err, engine.ErrUnavailable) {
				return e.err // not the record's fault: the engine retries it
			}
			return decodeErr(rec, e.err)
		}
		p = e.p
	case ModeHeader:
		h := rec.Header(HeaderKey)
		if h == nil {
			return decodeErr(rec, ErrNoHeader)
		}
		c := d.cache.Load()
		var e *entry
		if len(h) == 8 && h[0] != '{' {
			if e = c.byFP[binary.LittleEndian.Uint64(h)]; e == nil {
				return decodeErr(rec, fmt.Errorf("%w: fingerprint %016x", ErrUnknownSchema, binary.LittleEndian.Uint64(h)))
			}
		} else if e = c.byText[string(h)]; e == nil {
			e = d.parseHeader(h)
		}
		if e.err != nil {
			return decodeErr(rec, e.err)
		}
		p = e.p
	}
	if err := p.Decode(data, row); err != nil {
		return decodeErr(rec, err)
	}
	return nil
}

// fetch gets schema id from the registry, compiles it and caches the result,
// an error included.
func (d *Decoder) fetch(id uint32) *entry {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.cache.Load().byID[id]; e != nil && !e.stale() {
		return e
	}
	text, err := d.fetchText(id)
	e := &entry{at: time.Now(), ttl: d.retry}
	if err != nil {
		e.err = err
		if errors.Is(err, engine.ErrUnavailable) {
			e.ttl = unavailableTTL
		}
	} else {
		e.p, e.err = d.compileText(text)
		if e.err != nil {
			e.err = fmt.Errorf("%w: registry id %d: %w", ErrUnknownSchema, id, e.err)
		}
	}
	if e.err != nil {
		d.log.Warn("avro writer schema unusable", slog.Uint64("schema_id", uint64(id)), slog.Any("error", e.err))
	} else {
		d.log.Info("avro writer schema compiled", slog.Uint64("schema_id", uint64(id)), slog.String("fingerprint", fmt.Sprintf("%016x", wire.Fingerprint(e.p.writer))))
	}
	d.publish(func(c *programs) { c.byID[id] = e })
	return e
}

// fetchText asks the registry, retrying its faults with backoff for as long
// as the fetch timeout allows. Decode has no context: the timeout (10 s by
// default) bounds how long one record's task waits here.
//
// Only a definitive answer is ErrUnknownSchema, which dead-letters the
// record: the registry says it has no such id (HTTP 404), or the schema is
// not Avro or uses references. Anything else (5xx, 429, other 4xx such as
// bad credentials, refused or reset connections, timeouts) says nothing
// about the record, so it wraps engine.ErrUnavailable, with the HTTP status
// when there is one.
func (d *Decoder) fetchText(id uint32) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	var last error
	for attempt := 0; ; attempt++ {
		s, err := d.reg.SchemaByID(ctx, int(id))
		if err != nil && ctx.Err() != nil && last != nil {
			// The timeout cut this attempt short: the previous answer
			// says more (its HTTP status).
			return "", fmt.Errorf("%w (after %d attempts in %s)", last, attempt, d.timeout)
		}
		if err == nil {
			if s.Type != sr.TypeAvro {
				return "", fmt.Errorf("%w: registry id %d is a %s schema, not avro", ErrUnknownSchema, id, s.Type)
			}
			if len(s.References) > 0 {
				return "", fmt.Errorf("%w: registry id %d has schema references, which are not supported", ErrUnknownSchema, id)
			}
			return s.Schema, nil
		}
		err = registryError(id, err)
		if !errors.Is(err, engine.ErrUnavailable) {
			return "", err
		}
		last = err
		if !backoff.Sleep(ctx, backoff.Default.Delay(attempt)) {
			return "", fmt.Errorf("%w (after %d attempts in %s)", err, attempt+1, d.timeout)
		}
	}
}

// registryError classifies an error of a registry lookup (see fetchText).
// URLs are left out of the message: a registry URL may carry credentials.
func registryError(id uint32, err error) error {
	var re *sr.ResponseError
	if errors.As(err, &re) {
		msg := strings.TrimSpace(re.Error())
		if len(msg) > 200 {
			msg = msg[:200]
		}
		status := fmt.Sprintf("HTTP %d %s", re.StatusCode, http.StatusText(re.StatusCode))
		if re.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%w: registry id %d: %s: %s", ErrUnknownSchema, id, status, msg)
		}
		return fmt.Errorf("avro decoder: schema registry id %d: %s: %s: %w", id, status, msg, engine.ErrUnavailable)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("avro decoder: schema registry id %d: %v: %w", id, err, engine.ErrUnavailable)
}

// compileText parses a writer schema and compiles it against the reader,
// reusing a program compiled before for the same fingerprint. d.mu is held.
func (d *Decoder) compileText(text string) (*Program, error) {
	w, err := ParseSchema([]byte(text))
	if err != nil {
		return nil, err
	}
	fp := wire.Fingerprint(w)
	if e := d.cache.Load().byFP[fp]; e != nil && e.err == nil {
		return e.p, nil
	}
	p, err := Compile(w, d.reader, d.opts...)
	if err != nil {
		return nil, err
	}
	d.publish(func(c *programs) { c.byFP[fp] = &entry{p: p} })
	return p, nil
}

func (d *Decoder) parseHeader(h []byte) *entry {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.cache.Load().byText[string(h)]; e != nil {
		return e
	}
	e := &entry{at: time.Now()}
	e.p, e.err = d.compileText(string(h))
	if e.err != nil {
		e.err = fmt.Errorf("%w: header schema: %w", ErrUnknownSchema, e.err)
		d.log.Warn("avro writer schema unusable", slog.Any("error", e.err))
	}
	// Bound the cache: a producer that writes a different text per record
	// must not grow it forever.
	if len(d.cache.Load().byText) < 1024 {
		d.publish(func(c *programs) { c.byText[string(h)] = e })
	}
	return e
}
