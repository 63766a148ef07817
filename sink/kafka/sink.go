package kafka

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/avro"
	"github.com/sluicehq/sluice/engine/backoff"
	"github.com/sluicehq/sluice/sink/encode"
)

// Sink produces rows as records of one topic.
type Sink struct {
	cfg       Config
	env       engine.SinkEnv
	log       *slog.Logger
	enc       encode.Encoder
	prefix    []byte // Confluent framing: 0x00 + schema id
	schemaHdr []byte // Avro without a registry: the schema, in the avro.HeaderKey header
	key       *column
	headers   []header
	client    *kgo.Client // shared by the writers unless transactional
	ownClient bool
	opts      []kgo.Opt
}

var _ engine.Sink = (*Sink)(nil)

type column struct {
	slot    int
	parents []int
	t       *engine.Type
}

type header struct {
	name string
	lit  []byte
	col  *column
}

// New validates cfg, compiles the encoder for schema, registers the Avro
// schema when a registry is given, and (unless transactional or given
// WithKafkaClient) builds the idempotent producer client.
func New(ctx context.Context, cfg Config, schema *engine.Schema, env engine.SinkEnv, opts ...Option) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s := &Sink{cfg: cfg, env: env}
	s.log = env.Log().With("sink", env.Name, "topic", cfg.Topic)
	var err error
	if s.enc, err = encode.New(cfg.Format, schema); err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	if cfg.Format == encode.FormatAvro {
		avsc, err := avro.Schema(schema.Root)
		if err != nil {
			return nil, fmt.Errorf("kafka: %w", err)
		}
		if o.registry != nil {
			id, err := o.registry.RegisterSchema(ctx, cfg.Topic+"-value", sr.Schema{Schema: string(avsc), Type: sr.TypeAvro}, -1, -1)
			if err != nil {
				return nil, fmt.Errorf("kafka: register schema for %s-value: %w", cfg.Topic, err)
			}
			s.prefix = avro.AppendConfluent(nil, uint32(id))
		} else {
			s.schemaHdr = avsc
		}
	}
	if cfg.Key != "" {
		c, ok := lookup(schema, cfg.Key)
		if !ok {
			return nil, fmt.Errorf("kafka: key: unknown or non-scalar column %q", cfg.Key)
		}
		s.key = c
	}
	names := make([]string, 0, len(cfg.Headers))
	for n := range cfg.Headers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := cfg.Headers[n]
		if c, ok := lookup(schema, v); ok {
			s.headers = append(s.headers, header{name: n, col: c})
		} else {
			s.headers = append(s.headers, header{name: n, lit: []byte(v)})
		}
	}
	codec, _ := compression(cfg.Compression)
	s.opts = append([]kgo.Opt{
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.ProducerBatchCompression(codec),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // murmur2 of the key, as the Java client
	}, o.clientOpts...)
	switch {
	case cfg.Transactional:
		if o.client != nil {
			return nil, errors.New("kafka: a transactional sink builds its own client per task: use WithClientOpts")
		}
	case o.client != nil:
		s.client = o.client
	default:
		if s.client, err = kgo.NewClient(s.opts...); err != nil {
			return nil, fmt.Errorf("kafka: client: %w", err)
		}
		s.ownClient = true
	}
	return s, nil
}

func lookup(schema *engine.Schema, path string) (*column, bool) {
	c, ok := schema.Lookup(path)
	if !ok {
		return nil, false
	}
	t := c.Type
	if inner, ok := t.Nullable(); ok {
		t = inner
	}
	switch t.Kind {
	case engine.KindRecord, engine.KindArray, engine.KindMap, engine.KindUnion:
		return nil, false
	}
	return &column{slot: c.Slot, parents: c.Parents, t: t}, true
}

// Open returns a writer for task. A transactional sink gives each task its
// own producer, with transactional id <job>.<pipeline>.<sink>.<topic>.<partition>:
// Open initializes it, which fences a predecessor with the same id and aborts
// its open transaction, then reads the task's marker (see doc.go).
func (s *Sink) Open(ctx context.Context, task engine.TaskID) (engine.Writer, error) {
	w := &Writer{s: s, task: task, client: s.client, log: s.log.With("task", task.String()), marker: -1}
	w.promise = w.done
	if !s.cfg.Transactional {
		return w, nil
	}
	id := fmt.Sprintf("%s.%s.%s.%s.%d", s.env.Job, s.env.Pipeline, s.env.Name, task.Topic, task.Partition)
	c, err := kgo.NewClient(append(s.opts, kgo.TransactionalID(id), kgo.MaxVersions(txnVersions()))...)
	if err != nil {
		return nil, fmt.Errorf("kafka: client for %s: %w", task, err)
	}
	w.client, w.own = c, true
	w.txnID = id
	if err := w.loadMarker(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return w, nil
}

// MarkerGroup is the consumer group whose committed offsets are a
// transactional sink's markers: per input task, the input offset below which
// every output row is committed. No consumer ever joins it.
func (s *Sink) MarkerGroup() string {
	return s.env.Job + "." + s.env.Pipeline + "." + s.env.Name
}

// txnVersions caps TxnOffsetCommit at v4, the version that names topics
// (v6 names them by id) and that works with an explicit AddOffsetsToTxn on
// every broker that supports transactions.
func txnVersions() *kversion.Versions {
	v := kversion.Stable()
	v.SetMaxKeyVersion(kmsg.TxnOffsetCommit.Int16(), 4)
	return v
}

// loadMarker initializes the producer id (fencing any predecessor, whose
// open transaction the coordinator aborts) and then reads the marker with
// RequireStable, so that no pending transactional commit is missed.
func (w *Writer) loadMarker(ctx context.Context) error {
	if _, _, err := w.client.ProducerID(ctx); err != nil {
		return fmt.Errorf("kafka: init transactional producer %s: %w", w.txnID, err)
	}
	adm := kadm.NewClient(w.client)
	group := w.s.MarkerGroup()
	for attempt := 0; ; attempt++ {
		offs, err := adm.FetchOffsetsForTopics(kadm.RequireStable(ctx), group, w.task.Topic)
		if errors.Is(err, kerr.GroupIDNotFound) {
			return nil // nothing committed yet
		}
		if err == nil {
			if o, ok := offs.Lookup(w.task.Topic, w.task.Partition); ok {
				err = o.Err
				if err == nil {
					w.marker = o.At
				}
			}
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, kerr.UnstableOffsetCommit) && !kerr.IsRetriable(err) {
			return fmt.Errorf("kafka: read marker of %s in group %s: %w", w.task, group, err)
		}
		if !backoff.Sleep(ctx, backoff.Default.Delay(attempt)) {
			return fmt.Errorf("kafka: read marker of %s in group %s: %w", w.task, group, err)
		}
	}
}

// commitMarker adds the marker (the input offset after the last row of this
// transaction) to the open transaction, as a transactional offset commit of
// the marker group: it becomes visible exactly when the rows do.
func (w *Writer) commitMarker(ctx context.Context, next int64) error {
	id, epoch, err := w.client.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("kafka: producer id: %w", err)
	}
	group := w.s.MarkerGroup()
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = w.txnID, id, epoch, group
	aresp, err := add.RequestWith(ctx, w.client)
	if err == nil {
		err = kerr.ErrorForCode(aresp.ErrorCode)
	}
	if err != nil {
		return fmt.Errorf("kafka: add marker group %s to transaction: %w", group, err)
	}
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = w.txnID, group, id, epoch
	req.Generation, req.MemberID = -1, ""
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = w.task.Topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = w.task.Partition, next, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, w.client)
	if err != nil {
		return fmt.Errorf("kafka: commit marker %d of %s: %w", next, w.task, err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("kafka: commit marker %d of %s: %w", next, w.task, err)
			}
		}
	}
	return nil
}

// Close closes the client the sink built.
func (s *Sink) Close(ctx context.Context) error {
	if s.ownClient && s.client != nil {
		s.client.Close()
		s.client = nil
	}
	return nil
}

// Writer produces one task's rows. It is used by one goroutine; produce
// results arrive on the client's goroutines (done).
type Writer struct {
	s       *Sink
	task    engine.TaskID
	log     *slog.Logger
	client  *kgo.Client
	own     bool
	inTxn   bool
	promise func(*kgo.Record, error)

	// Transactional writers only. marker is the input offset below which
	// every row is already committed (-1: none); next is the marker the
	// open transaction commits: the input offset after its last row.
	txnID  string
	marker int64
	next   int64

	// Records and their bytes since the last Flush. The client holds them
	// until Flush has waited for every result; only then are they reused.
	recs    []*kgo.Record
	offsets []int64 // offsets[i]: the input offset of the row recs[i] holds
	free    []*kgo.Record
	arena   []byte
	bytes   int

	mu     sync.Mutex // guards failed
	failed []failure
}

type failure struct {
	rec *kgo.Record
	err error
}

func (w *Writer) done(r *kgo.Record, err error) {
	if err != nil {
		w.mu.Lock()
		w.failed = append(w.failed, failure{r, err})
		w.mu.Unlock()
	}
}

// Write encodes row into a record and hands it to the producer, which
// batches it in the background; Write blocks when the producer's buffer is
// full (backpressure).
func (w *Writer) Write(row *engine.Row) error {
	s := w.s
	if s.cfg.Transactional {
		if row.Origin.Offset < w.marker {
			return nil // committed before a crash or a failed flush: replayed, not written again
		}
		if !w.inTxn {
			if err := w.client.BeginTransaction(); err != nil {
				return fmt.Errorf("kafka: begin transaction: %w", err)
			}
			w.inTxn = true
		}
		w.next = row.Origin.Offset + 1
	}
	var r *kgo.Record
	if n := len(w.free); n > 0 {
		r, w.free = w.free[n-1], w.free[:n-1]
		*r = kgo.Record{Headers: r.Headers[:0]}
	} else {
		r = &kgo.Record{}
	}
	start := len(w.arena)
	w.arena = append(w.arena, s.prefix...)
	var err error
	if w.arena, err = s.enc.Append(w.arena, row); err != nil {
		w.arena = w.arena[:start]
		w.free = append(w.free, r)
		return fmt.Errorf("kafka: %w", err)
	}
	vEnd := len(w.arena)
	var kStart, kEnd int
	if s.key != nil && !isNull(s.key, row) {
		kStart = len(w.arena)
		w.arena = appendText(w.arena, s.key, row)
		kEnd = len(w.arena)
	}
	type span struct{ a, b int }
	var hs [8]span
	spans := hs[:0]
	for i := range s.headers {
		h := &s.headers[i]
		a := len(w.arena)
		if h.col != nil {
			if !isNull(h.col, row) {
				w.arena = appendText(w.arena, h.col, row)
			}
		} else {
			w.arena = append(w.arena, h.lit...)
		}
		spans = append(spans, span{a, len(w.arena)})
	}
	// Slices are taken once the arena stopped growing for this row: they stay
	// valid even if a later row moves the arena.
	a := w.arena
	r.Value = a[start:vEnd:vEnd]
	if s.key != nil && kEnd > kStart {
		r.Key = a[kStart:kEnd:kEnd]
	}
	for i, sp := range spans {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: s.headers[i].name, Value: a[sp.a:sp.b:sp.b]})
	}
	if s.schemaHdr != nil {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: avro.HeaderKey, Value: s.schemaHdr})
	}
	w.recs = append(w.recs, r)
	w.offsets = append(w.offsets, row.Origin.Offset)
	w.bytes += len(r.Key) + len(r.Value)
	w.s.env.Stats.AddInFlight(1)
	w.client.Produce(context.Background(), r, w.promise)
	return nil
}

// Flush waits until the brokers acknowledged every record produced since the
// last Flush (client.Flush) and checks every result. Records that failed
// with a retriable error are produced again while ctx allows; records Kafka
// rejects for good (too large, invalid) go to the dead-letter destination.
// A transactional writer then commits its transaction.
func (w *Writer) Flush(ctx context.Context) error {
	if len(w.recs) == 0 && !w.inTxn {
		return nil
	}
	start := time.Now()
	n := len(w.recs)
	defer func() { w.s.env.Stats.AddInFlight(-n) }()
	for attempt := 0; ; attempt++ {
		if err := w.client.Flush(ctx); err != nil {
			return fmt.Errorf("kafka: flush %s: %w", w.s.cfg.Topic, err)
		}
		w.mu.Lock()
		failed := w.failed
		w.failed = nil
		w.mu.Unlock()
		if len(failed) == 0 {
			break
		}
		var dead []failure
		retry := 0
		for _, f := range failed {
			switch {
			case !isRetryable(f.err):
				dead = append(dead, f)
			case ctx.Err() == nil && !w.s.cfg.Transactional:
				retry++
				w.s.env.Stats.Retry()
				w.client.Produce(context.Background(), f.rec, w.promise)
			default:
				w.s.env.Stats.Error("produce")
				w.abort(ctx)
				return fmt.Errorf("kafka: produce to %s: %w", w.s.cfg.Topic, f.err)
			}
		}
		if len(dead) > 0 {
			if err := w.deadLetter(ctx, dead); err != nil {
				w.abort(ctx)
				return err
			}
		}
		if retry == 0 {
			break
		}
		w.log.Warn("records failed, producing them again", "records", retry, "error", failed[0].err)
	}
	if w.inTxn {
		if err := w.commitMarker(ctx, w.next); err != nil {
			w.abort(ctx)
			return err
		}
		if err := w.client.EndTransaction(ctx, kgo.TryCommit); err != nil {
			w.inTxn = false
			return fmt.Errorf("kafka: commit transaction: %w", err)
		}
		w.inTxn = false
		w.marker = w.next
	}
	w.s.env.Stats.Acked(n, w.bytes, time.Since(start).Seconds())
	w.free = append(w.free, w.recs...)
	clear(w.recs)
	w.recs, w.offsets, w.arena, w.bytes = w.recs[:0], w.offsets[:0], w.arena[:0], 0
	return nil
}

// origin returns the input offset of the row that became rec, -1 when rec
// is not among the records of this flush. It runs only for records Kafka
// rejected, so a scan is cheap enough.
func (w *Writer) origin(rec *kgo.Record) int64 {
	for i, r := range w.recs {
		if r == rec {
			return w.offsets[i]
		}
	}
	return -1
}

func (w *Writer) abort(ctx context.Context) {
	if w.inTxn {
		_ = w.client.AbortBufferedRecords(ctx)
		_ = w.client.EndTransaction(ctx, kgo.TryAbort)
		w.inTxn = false
	}
	// The records may be in the client still: never reuse them.
	w.recs, w.offsets, w.arena, w.bytes = nil, nil, nil, 0
}

// deadLetter sends records Kafka rejected for good to the dead-letter
// destination, or fails without one.
func (w *Writer) deadLetter(ctx context.Context, dead []failure) error {
	dlSink := w.s.env.DeadLetter
	if dlSink == nil {
		w.s.env.Stats.Error("rejected")
		return fmt.Errorf("kafka: produce to %s: %w", w.s.cfg.Topic, dead[0].err)
	}
	dl, err := dlSink.Open(ctx, w.task)
	if err != nil {
		return fmt.Errorf("kafka: open dead letters: %w", err)
	}
	defer dl.Close(ctx)
	row := engine.NewRow(engine.DeadLetterSchema.Width())
	for _, f := range dead {
		w.s.env.Stats.Error("rejected")
		row.Reset(engine.DeadLetterSchema.Width())
		row.SetStr(engine.DLPipeline, w.s.env.Pipeline)
		row.SetStr(engine.DLStage, "sink")
		row.SetStr(engine.DLError, w.s.env.Redact.Redact("kafka: "+f.err.Error()))
		row.SetStr(engine.DLTopic, w.task.Topic)
		row.SetInt(engine.DLPartition, int64(w.task.Partition))
		row.SetInt(engine.DLOffset, w.origin(f.rec))
		row.SetInt(engine.DLTimestamp, time.Now().UnixMicro())
		if f.rec.Key == nil {
			row.SetNull(engine.DLKey)
		} else {
			row.SetStr(engine.DLKey, engine.UnsafeString(f.rec.Key))
		}
		row.SetStr(engine.DLValue, engine.UnsafeString(f.rec.Value))
		if err := dl.Write(row); err != nil {
			return fmt.Errorf("kafka: write dead letter: %w", err)
		}
	}
	if err := dl.Flush(ctx); err != nil {
		return fmt.Errorf("kafka: flush dead letters: %w", err)
	}
	return nil
}

// Close aborts an open transaction and closes the writer's own client.
func (w *Writer) Close(ctx context.Context) error {
	w.abort(ctx)
	if w.own {
		w.client.Close()
	}
	return nil
}

// isRetryable reports whether producing a record again may succeed: Kafka's
// retriable errors and timeouts. Too-large and invalid records are not.
func isRetryable(err error) bool {
	if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.InvalidRecord) ||
		errors.Is(err, kerr.CorruptMessage) || errors.Is(err, kerr.RecordListTooLarge) {
		return false
	}
	if errors.Is(err, kgo.ErrRecordTimeout) || errors.Is(err, kgo.ErrRecordRetries) || kerr.IsRetriable(err) {
		return true
	}
	return false
}

func isNull(c *column, row *engine.Row) bool {
	for _, p := range c.parents {
		if row.Slots[p].Null {
			return true
		}
	}
	return row.Slots[c.slot].Null
}

// appendText appends a scalar as key or header text: strings and bytes as
// they are, numbers in decimal, timestamps in RFC 3339, enums as symbols.
func appendText(b []byte, c *column, row *engine.Row) []byte {
	s := &row.Slots[c.slot]
	switch c.t.Kind {
	case engine.KindBool:
		return strconv.AppendBool(b, s.N != 0)
	case engine.KindInt, engine.KindLong:
		if c.t.Logical.IsTimestamp() {
			return time.UnixMicro(int64(s.N)*c.t.Logical.MicrosPerUnit()).UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
		}
		return strconv.AppendInt(b, int64(s.N), 10)
	case engine.KindFloat, engine.KindDouble:
		return strconv.AppendFloat(b, math.Float64frombits(s.N), 'g', -1, 64)
	case engine.KindFixed:
		if c.t.Logical == engine.Duration {
			return hex.AppendEncode(b, engine.UnsafeBytes(s.S))
		}
	}
	return append(b, s.S...)
}
