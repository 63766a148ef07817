package bigquery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"cloud.google.com/go/bigquery/storage/managedwriter"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/backoff"
)

// Sink writes rows to one BigQuery table through the Storage Write API.
type Sink struct {
	cfg       Config
	env       engine.SinkEnv
	log       *slog.Logger
	proto     *protoRow
	client    *managedwriter.Client
	ownClient bool
	backoff   backoff.Policy // pause between retries
}

var _ engine.Sink = (*Sink)(nil)

// New builds the sink for rows of schema. It validates cfg, derives the proto
// descriptor and, unless WithClient is given, connects a managedwriter client.
func New(ctx context.Context, cfg Config, schema *engine.Schema, env engine.SinkEnv, opts ...Option) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{backoff: backoff.Default}
	for _, opt := range opts {
		opt(&o)
	}
	p, err := compile(schema)
	if err != nil {
		return nil, fmt.Errorf("bigquery: %w", err)
	}
	s := &Sink{cfg: cfg, env: env, proto: p, client: o.client, backoff: o.backoff}
	s.log = env.Log().With("sink", env.Name, "table", cfg.tableParent(), "mode", cfg.Mode)
	if s.client == nil {
		var copts []option.ClientOption
		if ep, ok := strings.CutPrefix(cfg.Endpoint, "http://"); ok {
			copts = append(copts, option.WithEndpoint(ep), option.WithoutAuthentication(),
				option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
		} else if cfg.Endpoint != "" {
			copts = append(copts, option.WithEndpoint(cfg.Endpoint))
		}
		// The client keeps its context for every connection it opens
		// later. ctx may end before the sink does (a worker's ends on
		// SIGTERM, and the drain that follows still flushes), so the
		// client lives until Close instead.
		c, err := managedwriter.NewClient(context.WithoutCancel(ctx), cfg.Project, copts...)
		if err != nil {
			return nil, fmt.Errorf("bigquery: connect: %w", err)
		}
		s.client, s.ownClient = c, true
	}
	return s, nil
}

// State is where a committed-mode writer stands: its stream and the offset of
// the next row. Taken right after a Flush (a bundle boundary, so a checkpoint
// boundary), it is what a replay from that checkpoint must resume from.
type State struct {
	Stream string
	Offset int64
}

// Open starts a writer for task. In committed mode it creates a new
// committed-type stream; use Resume to continue one after a restart.
func (s *Sink) Open(ctx context.Context, task engine.TaskID) (engine.Writer, error) {
	return s.ResumeFrom(ctx, task, State{})
}

// Resume implements engine.ResumableSink: state is what Writer.State
// returned, as the engine's checkpoint recorded it.
func (s *Sink) Resume(ctx context.Context, task engine.TaskID, state []byte) (engine.Writer, error) {
	var st State
	if len(state) > 0 {
		if err := st.UnmarshalBinary(state); err != nil {
			return nil, err
		}
	}
	return s.ResumeFrom(ctx, task, st)
}

// ResumeFrom starts a writer for task that continues st (from the checkpoint the
// task restarted from): rows replayed from that checkpoint are appended at the
// same offsets as before the restart, and BigQuery rejects the ones it already
// holds. A zero State (or default mode) is the same as Open.
func (s *Sink) ResumeFrom(ctx context.Context, task engine.TaskID, st State) (*Writer, error) {
	wopts := []managedwriter.WriterOption{
		managedwriter.WithSchemaDescriptor(s.proto.desc),
		managedwriter.WithTraceID("sluice"),
	}
	committed := s.cfg.Mode == ModeCommitted
	switch {
	case !committed:
		wopts = append(wopts, managedwriter.WithType(managedwriter.DefaultStream), managedwriter.WithDestinationTable(s.cfg.tableParent()))
	case st.Stream != "":
		wopts = append(wopts, managedwriter.WithStreamName(st.Stream))
	default:
		wopts = append(wopts, managedwriter.WithType(managedwriter.CommittedStream), managedwriter.WithDestinationTable(s.cfg.tableParent()))
		st.Offset = 0
	}
	ms, err := s.client.NewManagedStream(ctx, wopts...)
	if err != nil {
		return nil, fmt.Errorf("bigquery: open stream for %s: %w", task, err)
	}
	w := &Writer{s: s, task: task, ms: ms, committed: committed, next: st.Offset}
	w.log = s.log.With("task", task.String(), "stream", ms.StreamName())
	w.log.Debug("stream opened", "offset", st.Offset)
	return w, nil
}

// Close closes the client if the sink built it.
func (s *Sink) Close(ctx context.Context) error {
	if !s.ownClient || s.client == nil {
		return nil
	}
	c := s.client
	s.client = nil
	if err := c.Close(); err != nil {
		return fmt.Errorf("bigquery: close: %w", err)
	}
	return nil
}

// Writer writes one task's rows. It is used by one goroutine.
type Writer struct {
	s         *Sink
	task      engine.TaskID
	log       *slog.Logger
	ms        *managedwriter.ManagedStream
	committed bool
	next      int64 // committed: offset of the next row to append

	buf     []byte  // encoded rows since the last Flush
	ends    []int   // end of each row in buf
	offsets []int64 // the input offset of each row (engine.Row.Origin)
	rows    [][]byte

	dl     engine.Writer // dead-letter writer, opened on first use
	dlRow  engine.Row
	closed bool
}

var (
	_ engine.StatefulWriter = (*Writer)(nil)
	_ engine.ResumableSink  = (*Sink)(nil)
)

// Position returns where the writer stands after its last Flush.
func (w *Writer) Position() State { return State{Stream: w.ms.StreamName(), Offset: w.next} }

// State implements engine.StatefulWriter: in committed mode, the stream and
// the next row offset, for the engine's checkpoint; nil in default mode,
// which has nothing to resume.
func (w *Writer) State() []byte {
	if w.s.cfg.Mode != ModeCommitted {
		return nil
	}
	b, err := w.Position().MarshalBinary()
	if err != nil {
		return nil
	}
	return b
}

// Write encodes row into the writer's buffer.
func (w *Writer) Write(row *engine.Row) error {
	w.buf = w.s.proto.appendRow(w.buf, row)
	w.ends = append(w.ends, len(w.buf))
	w.offsets = append(w.offsets, row.Origin.Offset)
	return nil
}

// Flush appends every row written since the last Flush and returns once
// BigQuery acknowledged them all. See doc.go for retries and offsets.
func (w *Writer) Flush(ctx context.Context) error {
	n := len(w.ends)
	if n == 0 {
		return nil
	}
	start := time.Now()
	w.s.env.Stats.AddInFlight(n)
	defer w.s.env.Stats.AddInFlight(-n)
	w.rows = w.rows[:0]
	prev := 0
	for _, e := range w.ends {
		w.rows = append(w.rows, w.buf[prev:e:e])
		prev = e
	}
	from := w.next
	if err := w.appendAll(ctx, w.rows); err != nil {
		// The bundle will be replayed, through this writer or a resumed
		// one: its rows must get the same offsets again.
		w.next = from
		// The client may still hold the buffer: never reuse it.
		w.buf, w.ends, w.offsets, w.rows = nil, w.ends[:0], w.offsets[:0], nil
		w.discardDeadLetters()
		return err
	}
	if err := w.flushDeadLetters(ctx); err != nil {
		return err
	}
	w.s.env.Stats.Acked(n, len(w.buf), time.Since(start).Seconds())
	w.buf, w.ends, w.offsets = w.buf[:0], w.ends[:0], w.offsets[:0]
	clear(w.rows)
	return nil
}

// chunk is one AppendRows request of a flush.
type chunk struct {
	rows [][]byte
	res  *managedwriter.AppendResult
	err  error
}

// appendAll sends rows in requests bounded by max_batch_rows/bytes, all at
// once (pipelined), then waits for every result. Requests after a failed one
// are re-sent one at a time, from the failed one on, by appendRetry.
func (w *Writer) appendAll(ctx context.Context, rows [][]byte) error {
	var chunks []chunk
	for len(rows) > 0 {
		k, size := 0, 0
		for k < len(rows) && k < w.s.cfg.MaxBatchRows && (k == 0 || size+len(rows[k]) <= w.s.cfg.MaxBatchBytes) {
			size += len(rows[k])
			k++
		}
		chunks = append(chunks, chunk{rows: rows[:k:k]})
		rows = rows[k:]
	}
	off := w.next
	for i := range chunks {
		c := &chunks[i]
		c.res, c.err = w.send(ctx, c.rows, off)
		off += int64(len(c.rows))
		if c.err != nil {
			break
		}
	}
	failed := -1
	for i := range chunks {
		c := &chunks[i]
		if c.err == nil && c.res != nil {
			c.err = result(ctx, c.res)
		} else if c.err == nil {
			c.err = errNotSent
		}
		if c.err != nil && failed < 0 {
			failed = i
		}
		if ctx.Err() != nil {
			return fmt.Errorf("bigquery: append to %s: %w", w.ms.StreamName(), ctx.Err())
		}
	}
	if failed < 0 {
		w.next = off
		return nil
	}
	for i := 0; i < failed; i++ {
		w.next += int64(len(chunks[i].rows))
	}
	for i := failed; i < len(chunks); i++ {
		var first error
		if i == failed {
			first = chunks[i].err // later ones failed because this one did
		}
		if err := w.appendRetry(ctx, chunks[i].rows, first); err != nil {
			return fmt.Errorf("bigquery: append to %s at offset %d: %w", w.ms.StreamName(), w.next, err)
		}
	}
	return nil
}

var errNotSent = errors.New("not sent")

func (w *Writer) send(ctx context.Context, rows [][]byte, off int64) (*managedwriter.AppendResult, error) {
	if w.committed {
		return w.ms.AppendRows(ctx, rows, managedwriter.WithOffset(off))
	}
	return w.ms.AppendRows(ctx, rows)
}

func (w *Writer) appendOnce(ctx context.Context, rows [][]byte, off int64) error {
	res, err := w.send(ctx, rows, off)
	if err != nil {
		return err
	}
	return result(ctx, res)
}

// rowsError is a request that BigQuery rejected because of some of its rows.
type rowsError struct {
	err  error
	rows []*storagepb.RowError
}

func (e *rowsError) Error() string { return e.err.Error() }
func (e *rowsError) Unwrap() error { return e.err }

// result waits for an append's outcome.
func result(ctx context.Context, res *managedwriter.AppendResult) error {
	resp, err := res.FullResponse(ctx)
	if err != nil && len(resp.GetRowErrors()) > 0 {
		return &rowsError{err: err, rows: resp.GetRowErrors()}
	}
	return err
}

// appendRetry appends rows at w.next until BigQuery acknowledges them,
// retrying transient errors with backoff, and advances w.next. err is the
// error of an attempt already made, or nil.
func (w *Writer) appendRetry(ctx context.Context, rows [][]byte, err error) error {
	for attempt := 0; ; {
		if err == nil {
			if len(rows) == 0 {
				return nil
			}
			if err = w.appendOnce(ctx, rows, w.next); err == nil {
				w.next += int64(len(rows))
				return nil
			}
		}
		code := status.Code(err)
		var re *rowsError
		switch {
		case w.committed && code == codes.AlreadyExists:
			// A replay (or the lost acknowledgement of an earlier attempt):
			// a prefix of rows is in the stream already.
			w.s.env.Stats.Error("already_exists")
			return w.appendTail(ctx, rows)
		case errors.As(err, &re):
			w.s.env.Stats.Error("row")
			if rows, err = w.deadLetter(ctx, rows, re); err != nil {
				return err
			}
			attempt = 0
		case isRetryable(err) && ctx.Err() == nil:
			w.s.env.Stats.Error(errorKind(code))
			w.s.env.Stats.Retry()
			w.log.Debug("append retried", "error", err, "attempt", attempt+1)
			if err := w.sleep(ctx, attempt, code == codes.ResourceExhausted); err != nil {
				return err
			}
			attempt++
			err = nil
		default:
			w.s.env.Stats.Error(errorKind(code))
			return classify(err)
		}
	}
}

// classify marks the errors that retrying cannot fix as permanent: a missing
// table or dataset, denied permissions or credentials, a request BigQuery
// refuses as invalid (a schema that does not match the table).
func classify(err error) error {
	switch status.Code(err) {
	case codes.NotFound, codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument, codes.FailedPrecondition:
		return engine.Permanent(err)
	}
	return err
}

// appendTail finds where the stream ends inside rows (rows[i] belongs at
// offset w.next+i: offsets are deterministic) and appends the rows after
// that point. Each probe appends rows[k:] at w.next+k: AlreadyExists means
// the stream ends after it, OutOfRange before it, success that it was the end
// and the rest is now written. A binary search needs log2(len(rows)) probes.
func (w *Writer) appendTail(ctx context.Context, rows [][]byte) error {
	lo, hi := 0, len(rows) // rows[:lo+1] are known to exist; the end is <= w.next+hi... unless all exist
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		err := w.probe(ctx, rows[mid:], w.next+int64(mid))
		switch status.Code(err) {
		case codes.OK:
			w.next += int64(len(rows))
			return nil
		case codes.AlreadyExists:
			lo = mid
		case codes.OutOfRange:
			hi = mid
		default:
			return err
		}
	}
	if hi < len(rows) {
		// rows[lo] exists and rows[hi] lies past the end: impossible for a
		// stream that is a prefix of this same sequence.
		return fmt.Errorf("stream ends between offsets %d and %d inconsistently", w.next+int64(lo), w.next+int64(hi))
	}
	w.next += int64(len(rows))
	return nil
}

// probe is appendOnce with transient errors retried.
func (w *Writer) probe(ctx context.Context, rows [][]byte, off int64) error {
	for attempt := 0; ; attempt++ {
		err := w.appendOnce(ctx, rows, off)
		if err == nil || !isRetryable(err) || ctx.Err() != nil {
			return err
		}
		w.s.env.Stats.Retry()
		if err := w.sleep(ctx, attempt, status.Code(err) == codes.ResourceExhausted); err != nil {
			return err
		}
	}
}

// sleep pauses before retry number attempt through the sink's backoff
// policy; RESOURCE_EXHAUSTED (quota) starts from ten times its base.
func (w *Writer) sleep(ctx context.Context, attempt int, quota bool) error {
	p := w.s.backoff
	if quota {
		p.Base *= 10
	}
	if !backoff.Sleep(ctx, p.Delay(attempt)) {
		return ctx.Err()
	}
	return nil
}

// Close closes the stream. A committed stream is not finalized: its rows are
// already committed, and a replay after a restart may still need to append to
// it (see doc.go).
func (w *Writer) Close(ctx context.Context) error {
	if w.closed {
		return nil
	}
	w.closed = true
	var errs []error
	if err := w.ms.Close(); err != nil && !errors.Is(err, io.EOF) {
		errs = append(errs, err)
	}
	if w.dl != nil {
		if err := w.dl.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bigquery: close %s: %w", w.task, err)
	}
	return nil
}

// isRetryable reports whether an append may succeed if tried again, as the
// Storage Write API documents: UNAVAILABLE, INTERNAL, ABORTED,
// DEADLINE_EXCEEDED, CANCELED (of the connection, not ours) and
// RESOURCE_EXHAUSTED (quota, with a longer backoff); a broken connection (EOF).
func isRetryable(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, errNotSent) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Internal, codes.Aborted, codes.DeadlineExceeded,
		codes.Canceled, codes.ResourceExhausted:
		return true
	}
	return false
}

func errorKind(c codes.Code) string {
	switch c {
	case codes.InvalidArgument:
		return "schema"
	case codes.NotFound:
		return "not_found"
	case codes.PermissionDenied, codes.Unauthenticated:
		return "auth"
	}
	return strings.ToLower(c.String())
}
