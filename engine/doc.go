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
// the output rows to the pipeline's sink Writers, and flushes them: the bundle
// is complete when every Writer's Flush returned. Only then does the task's
// position advance. No task waits for another.
//
// New asks each decoder that can (Projector) to decode only the columns its
// pipelines read (ColumnReader) and their event-time columns.
//
// At every checkpoint interval the runtime asks each task to finish its open
// bundle, writes one checkpoint with every task's position to the
// CheckpointStore, and only once it is durable commits the positions through
// the Source with the checkpoint key as commit metadata. Drain (SIGTERM,
// revocation, end of a bounded source) does the same and then releases.
package engine
