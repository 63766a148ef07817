// Package file is the file sink: every task of a pipeline appends to one
// local file, as JSON lines, CSV or one Avro object container file. It is
// also the default dead-letter destination (JSON lines of
// engine.DeadLetterSchema rows).
//
//	sinks:
//	  - file: {path: out/denied.jsonl, format: json}   # json | csv | avro
//	  - file: {path: out/denied.avro, format: avro, codec: zstd}
//
// # Delivery
//
// A task's Writer encodes rows into its own buffer (an Avro writer compresses
// its block outside any lock). Flush appends the buffer to the file under the
// sink's lock and then fsyncs: a bundle is acknowledged only once its bytes
// are on disk. A bundle whose rows pass 1 MiB of output (a large bundle, or
// the windows a stateful pipeline fires at the end of its input) is appended
// ahead of its Flush, 1 MiB of whole rows (one Avro block) at a time,
// without an fsync, so a writer never holds more than that; Flush appends
// the rest and fsyncs all of it. Concurrent flushes share fsyncs (group
// commit): a flush whose bytes were covered by another task's fsync returns
// without its own. A failed write is truncated away, so a replayed bundle
// never follows a torn record.
//
// The file is opened for appending: rows of a replayed bundle appear twice
// (at-least-once), and so do the rows a bundle appended ahead of its Flush
// when the bundle fails or the worker crashes before it completes. CSV writes its header once, when the file is empty; an Avro
// file gets its header once and a block per flush, and an existing Avro file
// is continued with its own sync marker when its schema is the pipeline's
// (otherwise New fails rather than corrupt it).
package file
