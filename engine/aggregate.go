package engine

import (
	"context"
	"time"
)

// Aggregator is a Transform that keeps state across records: a windowed
// GROUP BY. The runtime does not call Eval on it; each task feeds its rows
// to an Aggregate of its own (NewAggregate) and writes the rows it emits.
type Aggregator interface {
	Transform
	// NewAggregate returns an empty state for one task. A window is
	// emitted once the task's watermark passes its end plus lateness.
	NewAggregate(lateness time.Duration) Aggregate
}

// Aggregate is the state of one Aggregator in one task. It is used by the
// task's goroutine only.
//
// Add, Fire and Advance are deterministic: the same rows in the same order
// emit the same rows in the same order, whatever the bundles and however
// often the state was saved and loaded in between. That is what makes a
// replay after a crash produce the rows a deduplicating sink expects.
type Aggregate interface {
	// Add folds one row of the reader schema. late reports that the row
	// belongs to a window already emitted: nothing was folded, and the
	// runtime sends the record to the dead-letter destination (reason
	// late). An error (wrapping *EvalError) is a dead letter too.
	Add(in *Row) (late bool, err error)
	// Fire emits the rows of the windows the watermark has closed (every
	// open window when final is set: the end of a bounded input) and
	// forgets them. emit must not keep the row.
	Fire(final bool, emit func(out *Row) error) error
	// Watermark is the highest event time folded or advanced to, in unix
	// microseconds.
	Watermark() int64
	// Advance moves the watermark forward to wm (an idle task, see
	// Pipeline.IdleTimeout).
	Advance(wm int64)
	// Save passes what changed since the last Save, to be written to the
	// task's state store; Load gives back, one by one and in key order,
	// the entries that the store holds, into an empty Aggregate.
	Save(put func(key, value []byte), del func(key []byte))
	Load(key, value []byte) error
}

// StateStore opens the keyed state of tasks: a database per task on local
// disk (Pebble, in cmd/sluice), snapshot into the checkpoint store. Open
// is called from the task's goroutine, once per task life.
type StateStore interface {
	// Open returns the state of task, restored from the snapshot ref
	// (TaskState.State) when ref is not "", else empty.
	Open(ctx context.Context, task TaskID, ref string) (TaskStore, error)
}

// TaskStore is one task's keyed state. It is used by the task's goroutine
// only.
type TaskStore interface {
	// Apply writes, atomically, what fill puts and deletes; put and del
	// copy their arguments.
	Apply(fill func(put func(key, value []byte), del func(key []byte))) error
	// Scan calls fn for every entry whose key starts with prefix, in key
	// order. fn must not keep key or value.
	Scan(prefix []byte, fn func(key, value []byte) error) error
	// Snapshot makes the present state durable in the checkpoint store and
	// returns its reference, for TaskState.State.
	Snapshot(ctx context.Context) (string, error)
	// Close releases the database; its files on local disk are removed.
	Close() error
}

// Sealer is implemented by Aggregates whose bundles end in rows of their
// own: the source side of a shuffled aggregation (sql.ShuffleProducer),
// whose partials of the bundle go to its sinks before the bundle
// completes.
//
// Seal is called by the task's goroutine when the bundle closes, before
// its writers are flushed, with the pipeline's bundle of source offsets
// [from, to) (from is the pipeline's position before it; to the position
// it reaches once complete); again, after a reload of the state, when a
// failed flush is replayed. The rows it emits are written to the
// pipeline's writers; emit must not keep them.
type Sealer interface {
	Seal(from, to int64, emit func(out *Row) error) error
}

// Idler is implemented by Aggregates that have something to send when
// their task's input is idle before they have a watermark: the source side
// of a shuffled aggregation, whose merging tasks would otherwise wait for
// it forever (an empty partition).
//
// Idle is called by the task's goroutine at a checkpoint cut once the
// task's input has been idle for Pipeline.IdleTimeout, while the task has
// no watermark to advance (math.MinInt64); again, after a reload of the
// state, when a failed flush of that bundle is replayed. When it reports
// true the runtime closes a bundle, which Seal ends as the Aggregate
// chose; false: nothing to send.
type Idler interface {
	Idle() bool
}
