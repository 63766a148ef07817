// Package engine is the core of sluice: rows, records, tasks and bundles, the
// interfaces that sources, decoders, SQL programs, sinks and checkpoint stores
// implement, and the runtime that drives them. It imports no concrete source,
// sink or store; cmd/sluice wires those in.
//
// # Rows
//
// A Row is a record as typed slots (Slot): one slot per scalar field, nested
// records flattened into consecutive slots, arrays and maps in Row.Ext. A
// Schema (a record Type laid out by NewSchema) maps column paths such as
// "src_location.country" to slot indexes at compile time, so that decoders,
// SQL programs and encoders read and write slots directly with no
// map[string]any and no interface boxing per value. Type.Width documents the
// layout.
//
// # Data flow and concurrency
//
// A Source delivers records of tasks (topic-partitions) to the runtime
// (Handler). Each task has one goroutine, which builds bundles (closing one at
// max_records or when its adaptive timeout fires), decodes each record once per
// distinct Decoder, evaluates every pipeline that reads the task's topic, hands
// the output rows to the pipeline's sink Writers, and flushes them. No task
// waits for another.
//
// New asks each decoder that can (Projector) to decode only the columns its
// pipelines read (ColumnReader) and their event-time columns. A task clears
// its decode row before each record (Row.Reset) unless the decoder clears
// what it writes itself (RowPreparer).
//
// # Optional capabilities
//
// A component implements the base interface (Source, Decoder, Transform,
// Sink, Writer, CheckpointStore) and may implement an optional one, which
// the runtime finds by type assertion:
//
//	capability           on               implemented by                    called
//	Pauser               Source           Kafka source, multi-source        Pause from Deliver's goroutine, Resume from the task's; under the task's inbox lock
//	StatefulWriter       Writer           BigQuery, object sinks            by the task's goroutine after its pipeline completes a bundle, and before the first flush of one opened fresh
//	ResumableSink        Sink             BigQuery, object sinks            by the task's goroutine instead of Open when a state was recorded
//	CheckpointCollector  CheckpointStore  checkpoint.Checkpointer           after each commit, one at a time, under the checkpoint lock
//	LatestLoader         CheckpointStore  checkpoint.Checkpointer           once, by Run before the source starts
//	ColumnReader         Transform        sql.Program                       once per pipeline, by New
//	Projector            Decoder          source/avro.Decoder               once per decoder, by New, before any Decode
//	RowPreparer          Decoder          source/avro.Decoder               once per task and decoder, by the task's goroutine when it starts
//	Batcher              Handler          the runtime (used by Kafka)       by the source, from any goroutine, before each Deliver
//	Sealer               Aggregate        sql.ShuffleProducer's aggregates  by the task's goroutine when a bundle closes, before its flush
//	Idler                Aggregate        sql.ShuffleProducer's aggregates  by the task's goroutine at a checkpoint cut, when its idle input has no watermark to advance
//
// Their comments (interfaces.go, projection.go, batch.go) say who owns each
// buffer. Batcher is the other way round: the runtime offers it and a
// source finds it on the Handler; a slice it lends comes back to it once
// every record in it is in a complete bundle, so a busy task reuses its
// record slices instead of allocating one per fetched batch. A
// wrapper that embeds a base interface hides the capabilities of what it
// wraps (cmd/sluice's dead-letter redaction wraps file and Kafka sinks,
// which have none, and dead-letter writers' states are not checkpointed).
//
// # Time
//
// The runtime reads time only through package time (time.Now, timers,
// tickers), and the adaptive bundle rule is a pure function of durations
// (bundleWait in bundle.go). The rules that depend on time (a quiet task
// closes its bundle within milliseconds, a task that is behind fills
// bundles, max_wait bounds a bundle, one slow task never delays another,
// a paused task is resumed only after its pause) are tested by running the
// runtime in a testing/synctest bubble, whose clock moves only when every
// goroutine waits: a flush that takes 20 ms takes exactly 20 ms and a
// latency is a number, not a sample of a loaded machine. No clock is
// injected: a bubble fakes timers as well as time.Now, which an injected
// now function would not.
//
// # Positions and failures
//
// A bundle is complete for a pipeline when every Writer of that pipeline
// (and its dead-letter writer) acknowledged it; only then does the
// pipeline's position advance. The task's position, which the Source
// commits, is the lowest of its pipelines'; a checkpoint also records each
// pipeline that stands further (Position.Pipelines), and after a restart
// such a pipeline skips the records below its own position. So each
// pipeline's replay after a crash is at most one checkpoint interval, and a
// failing pipeline holds back only its own position.
//
// A Writer whose Flush fails (or exceeds Job.FlushTimeout) is closed,
// reopened and given the bundle again after a jittered backoff (Job.Retry;
// Job.PermanentRetry, 30 s to 1 min, for an error marked Permanent); a
// Writer that acknowledged the bundle is never written to again for it.
// Meanwhile the task takes no new input (the source pauses it once its
// inbox is full). A Decoder error wrapping ErrUnavailable holds the record
// the same way instead of dead-lettering it. Failures count in
// sluice_bundle_flush_failures_total{kind}, show in Ready (redacted with
// Job.Redact) and in a WARN at most once a minute per sink.
//
// # Checkpoints, drain and garbage collection
//
// At every checkpoint interval the runtime asks each task to complete its
// open bundle, waits at most one interval for the answers (a task retrying
// a failed flush answers at once; one still inside a Flush is not waited
// for), and writes one checkpoint with every task's last complete
// positions to the CheckpointStore; only once it is durable does it commit
// the positions through the Source with the checkpoint key as commit
// metadata. A task about to flush a StatefulWriter that was opened with no
// recorded state (a new BigQuery stream, a new series of objects) first
// publishes that writer's state and asks for a checkpoint at once, and
// flushes once one that holds it is committed: no row reaches a
// destination that a replay could not resume (opened.go). Drain (SIGTERM, Runtime.Drain, the end of a bounded source) and
// revocation stop the tasks, give them three quarters of Job.DrainDeadline
// (at most all but 10 s) to complete, then make them give up unacknowledged
// bundles, and write the final checkpoint within the deadline. Abort stops
// at once.
//
// After each commit the runtime asks a CheckpointCollector to delete this
// pod's checkpoints that are older than its newest Job.Retain and that no
// committed offset it knows of names: those of its owned tasks (from the
// commit metadata they were assigned with until it commits them itself) and
// the final commits of the tasks it released (the newest few, since their
// next owner's commit names them until it commits itself).
//
// # Observation
//
// Runtime.Observe reads, without stopping anything, what the task goroutines
// publish after each bundle: each pipeline's position and watermark in each
// task, the open bundle's first record, the end offsets a source knows
// (EndOffsetter), recent checkpoints and sink failures. From it come each
// pipeline's latency (now − the event time of the oldest record it has not
// written, over the tasks with input to process; observe.go), backlog and
// throughput, the status page, and Runtime.Collector's metrics. Exported
// bounds what /metrics serves: 3 series per pipeline and at most 11 per job,
// unless per-partition series are asked for (export.go).
//
// # Stateful pipelines
//
// A pipeline whose Transform is an Aggregator (a windowed GROUP BY, a
// dedup) gets an Aggregate per task, kept in a TaskStore that Job.State
// opens (a Pebble database per task, in cmd/sluice) and restores from the
// task's checkpointed snapshot before its first record. Rows fold into the
// aggregate; the windows its watermark closes (past their end plus
// Pipeline.AllowedLateness) are written as rows of the bundle; records of
// windows already emitted are dead letters with stage late. What a bundle
// changed is written to the store when the pipeline completes it, and a
// stateful task publishes its position only with a snapshot of the store
// (at each checkpoint cut, before a fresh writer's first flush, and when it
// stops), so that every checkpointed
// offset comes with the state at that offset. An aggregate that is a
// Sealer (the source side of a shuffled aggregation, whose rows are its
// partials, not the query's) emits rows of its own when a bundle closes,
// before the flush, so that they are part of the bundle. A task whose
// input has been idle for Pipeline.IdleTimeout (since its last record or
// its start) advances its aggregates' watermarks with the wall clock; one
// that has no watermark (an empty partition) asks its Idlers instead,
// and closes a bundle when one has something to send (the shuffle's idle
// mark). See stateful.go.
package engine
