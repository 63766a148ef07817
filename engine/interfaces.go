package engine

import (
	"context"
)

// Decoder turns a raw record into a row of a pipeline's reader schema.
//
// Decode is called concurrently from the goroutines of many tasks; an
// implementation that caches (writer schemas, compiled programs) must be safe
// for that. row has been Reset to the schema's width by the caller (unless
// the decoder prepares rows itself: RowPreparer in projection.go); strings
// written into it may alias rec's bytes. A record that cannot be decoded yields
// an error wrapping *DecodeError and a row the caller ignores.
type Decoder interface {
	Schema() *Schema
	Decode(rec *Record, row *Row) error
}

// Transform is a pipeline's compiled SQL: a filter and a projection from rows
// of the reader schema to rows of Output().
//
// Eval is called concurrently from many task goroutines; per-call scratch lives
// in out (Row.Arena). Eval resets out itself for a row it keeps; keep is false
// when the WHERE clause rejected the row, and out is then not meaningful. An error (wrapping *EvalError) sends the input
// record to the dead-letter destination.
type Transform interface {
	Output() *Schema
	Eval(in, out *Row) (keep bool, err error)
}

// Sink is one destination of a pipeline. The runtime opens one Writer per task
// that feeds the pipeline, when the task is assigned, and closes it when the
// task is released. Open and Close are called from the runtime's goroutines,
// possibly concurrently for different tasks.
type Sink interface {
	Open(ctx context.Context, task TaskID) (Writer, error)
	Close(ctx context.Context) error
}

// Writer writes the rows of one task's bundles. It is used by one goroutine.
//
// Write encodes or buffers row; it must not keep row or any string in it after
// it returns. Flush returns once the destination has acknowledged every row
// written since the previous Flush: only then is the bundle complete. Flush
// retries what the destination lets it retry, for as long as ctx allows; an
// error from Flush means the rows were not acknowledged and the bundle will be
// replayed. A writer that blocks in Write or Flush applies backpressure to its
// task. Close is called after a final Flush, or to abandon unflushed rows.
type Writer interface {
	Write(row *Row) error
	Flush(ctx context.Context) error
	Close(ctx context.Context) error
}

// Source feeds the records of tasks to the runtime.
//
// Run calls the Handler from its own goroutine(s) until ctx is done or, for a
// bounded source, until every task has ended; it returns nil then. Commit is
// called by the runtime after a checkpoint is durable, from one goroutine, and
// must reject a commit from a member that no longer owns a task. A source owns
// the tasks it assigned: a Kafka source its topic-partitions, a file source
// one task whose TaskID.Topic is the file's path as the job resolved it and
// whose Partition is 0. A job of several sources (cmd/sluice's multi-source)
// routes each position to the source that owns its task.
type Source interface {
	Run(ctx context.Context, h Handler) error
	Commit(ctx context.Context, positions []Position, meta string) error
}

// The optional capabilities below are found by type assertion, so that a
// component without one still works: Pauser (on a Source), StatefulWriter
// (on a Writer), ResumableSink (on a Sink), CheckpointCollector and
// LatestLoader (on a CheckpointStore), and in projection.go ColumnReader (on
// a Transform), Projector and RowPreparer (on a Decoder). Each comment says who
// implements it, when the runtime calls it, from which goroutines, under
// which locks, and who owns the buffers; the package doc has the summary. A
// wrapper that embeds one of the base interfaces hides the capabilities of
// what it wraps: it must implement them itself when they matter.

// Pauser is implemented by sources that can stop fetching individual tasks, so
// that a task whose sinks are behind does not hold the memory of the others.
// Records already fetched are still delivered after Pause.
//
// Implementations: the Kafka source (franz-go PauseFetchPartitions and
// ResumeFetchPartitions) and cmd/sluice's multi-source, which forwards each
// task to the source that owns it.
//
// Pause is called from the goroutine that calls Handler.Deliver, when the
// task holds more than Job.MaxBufferedBytes; Resume from the task's own
// goroutine when it takes its input. Both are called with the task's inbox
// lock held, so for one task the calls alternate, Pause first, and a Resume
// never overtakes the Pause it undoes; calls for different tasks come
// concurrently from different goroutines. They must return quickly and must
// not call back into the Handler. tasks belongs to the caller: do not keep it.
type Pauser interface {
	Pause(tasks ...TaskID)
	Resume(tasks ...TaskID)
}

// Assignment is a task handed to this member, with where it starts.
type Assignment struct {
	Task TaskID
	// Offset is the committed offset (the next record to read), or -1 when
	// nothing was committed and the source's start policy applies.
	Offset int64
	// Meta is the metadata committed with Offset: the checkpoint key.
	Meta string
}

// Position is the offset of the next record to read of a task, with the event
// time of the last record before it.
type Position struct {
	Task      TaskID
	Offset    int64
	Watermark int64 // unix microseconds; 0 when unknown
	// Pipelines lists the pipelines reading the task that stand further than
	// Offset (their sinks acknowledged more than another pipeline's did);
	// every other pipeline stands at Offset. Usually empty.
	Pipelines []PipelineOffset
	// Sinks is the state of stateful writers, each at its pipeline's
	// position.
	Sinks []SinkState
	// State names the snapshot of the task's keyed state taken at this
	// position ("" for a stateless task).
	State string
}

// PipelineOffset is the position of one pipeline in a task when it is ahead
// of the task's: after a restart the pipeline skips the records below
// Offset, which it had completed already.
type PipelineOffset struct {
	Pipeline string
	Offset   int64
}

// Handler is implemented by the runtime and called by a Source.
type Handler interface {
	// Assign hands over tasks. It returns once the runtime is ready for their
	// records.
	Assign(ctx context.Context, tasks []Assignment)
	// Revoke takes tasks away. It blocks until each is drained: its bundle
	// complete, checkpointed and committed (the source commits before it
	// returns from its revocation callback).
	Revoke(ctx context.Context, tasks []TaskID)
	// Deliver hands over records of one task in offset order. It does not
	// block for long; a task that falls behind asks the source to pause it.
	// The runtime keeps recs until their bundle is complete.
	Deliver(task TaskID, recs []Record)
	// End says that a bounded task has no more records.
	End(task TaskID)
}

// Checkpoint is what a pod records at each interval: for each owned task, the
// position after its last complete bundle (and later, its keyed state).
type Checkpoint struct {
	Job   string
	Pod   string
	Seq   uint64
	Time  int64 // unix microseconds
	Tasks []TaskState
}

// TaskState is one task's share of a checkpoint.
type TaskState struct {
	Task      TaskID
	Offset    int64 // next offset to read
	Watermark int64 // unix microseconds
	// State names the task's keyed state object, "" for a stateless task.
	State string
	// Pipelines are the pipelines ahead of Offset, each with its own
	// position (see Position.Pipelines).
	Pipelines []PipelineOffset
	// Sinks is the state of the task's writers that keep one (see
	// StatefulWriter), each as of its pipeline's position.
	Sinks []SinkState
}

// SinkState is one writer's state in a checkpoint.
type SinkState struct {
	// Name is "<pipeline>/<sink name>" (NamedSink.Name): a state is given
	// back only to the sink of that name, and dropped when the job has none.
	Name string
	Data []byte
}

// StatefulWriter is implemented by writers whose position at the destination
// belongs in the checkpoint, so that a replay after a crash can be
// deduplicated there (a BigQuery committed stream and its next row offset).
//
// Implementations: the BigQuery sink's writer (committed streams) and the
// object sinks' writer (gcs, s3, azblob: the object being written).
//
// State is called by the task's goroutine, with no runtime lock held, after
// a Flush of the writer succeeded and every writer of its pipeline
// acknowledged the bundle; the result must describe the destination just
// after the flushed rows. For a writer opened (not resumed), it is also
// called once before its first Flush, and must then describe the
// destination before any row written since Open: the runtime checkpoints
// that state before the flush, so that a replay resumes the same
// destination. nil means no state. The runtime keeps the
// returned slice in positions and checkpoints: the writer must not modify
// it afterwards (return a new one each time). The state of a pipeline's
// dead-letter writer is not checkpointed.
type StatefulWriter interface {
	Writer
	State() []byte
}

// ResumableSink is implemented by sinks whose writers keep state: instead of
// Open, the runtime calls Resume with the state a checkpoint recorded for the
// task's writer, when the task restarts from that checkpoint's position.
//
// Implementations: the BigQuery sink and the object sinks (gcs, s3,
// azblob).
//
// Resume is called from the task's goroutine, with no runtime lock held,
// whenever it opens a writer whose name has a state at its pipeline's
// position: when the task starts from a checkpoint that recorded one, and
// when it reopens a writer after a failed flush (so the destination
// deduplicates the replay). Calls for different tasks are concurrent. state
// is the runtime's and read-only; the sink may keep it.
type ResumableSink interface {
	Sink
	Resume(ctx context.Context, task TaskID, state []byte) (Writer, error)
}

// CheckpointStore makes checkpoints durable. Save returns only once the
// checkpoint can be read back after a crash, with the key that names it and
// its encoded size. It is called from one goroutine at a time.
type CheckpointStore interface {
	Save(ctx context.Context, cp *Checkpoint) (key string, size int, err error)
	Load(ctx context.Context, key string) (*Checkpoint, error)
}

// CheckpointCollector is implemented by stores that can delete the
// checkpoints no committed offset references any more. keep lists the keys
// still referenced.
//
// Implementation: checkpoint.Checkpointer (every store behind it).
//
// Collect is called after each commit, from the goroutine that checkpoints,
// one call at a time (the runtime's checkpoint lock is held, so no Save
// runs meanwhile). keep is the caller's, sorted, and read-only; do not keep
// it. An error is logged and the next commit tries again.
type CheckpointCollector interface {
	Collect(ctx context.Context, job, pod string, keep []string) error
}

// LatestLoader is implemented by checkpoint stores that can find a pod's
// newest checkpoint; the runtime reads it at start to restore the state of
// stateful writers (a pod restarted after a crash gets its tasks back).
//
// Implementation: checkpoint.Checkpointer.
//
// LoadLatest is called once, by Run before the source starts, from Run's
// goroutine. The runtime keeps the returned checkpoint; an error or a nil
// checkpoint means there is nothing to restore.
type LatestLoader interface {
	LoadLatest(ctx context.Context, job, pod string) (*Checkpoint, string, error)
}
