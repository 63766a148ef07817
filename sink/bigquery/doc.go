// Package bigquery is the `bigquery:` sink: rows appended to a BigQuery table
// with the Storage Write API, through the managedwriter client.
//
// # Rows as protos
//
// New derives a proto2 descriptor from the pipeline's output schema once and
// hands it to the stream (normalized, self-contained, as the API requires).
// Write appends the row's proto wire bytes straight from its slots with
// protowire: no proto message, no reflection and no allocation per row once the
// writer's buffer has grown. The mapping follows BigQuery's proto conversion
// rules:
//
//	boolean                       bool                BOOL
//	int, long                     int64               INT64
//	float, double                 double              FLOAT64
//	string, uuid, enum (symbol)   string              STRING
//	bytes, fixed, duration        bytes               BYTES
//	timestamp-millis/-micros      int64 microseconds  TIMESTAMP
//	local-timestamp-*             string              DATETIME ("2006-01-02 15:04:05.000000")
//	date                          int32 days          DATE
//	time-millis/-micros           string              TIME ("15:04:05.000000")
//	decimal                       string              NUMERIC / BIGNUMERIC ("-12.34")
//	record                        nested message      RECORD
//	array                         repeated            REPEATED (a null element is left out:
//	                                                  BigQuery arrays hold no NULL)
//	map<T>                        repeated {key, value} REPEATED RECORD<key STRING, value T>
//	[null, T]                     T, absent when null NULLABLE
//	other unions                  message with one field per non-null branch, named after
//	                              the branch's type (as BigQuery's Avro loader does)
//
// Arrays of arrays and maps of arrays have no BigQuery type: New rejects them.
//
// # Modes and delivery
//
// mode: default appends to the table's `_default` stream. Rows are committed
// when acknowledged; a retry after a lost acknowledgement and a replay after a
// crash may write a row twice: at-least-once.
//
// mode: committed gives each task its own COMMITTED-type stream and appends
// at explicit offsets. A committed stream's rows are visible as soon as they
// are acknowledged, and BigQuery rejects an append at an offset it already
// holds with ALREADY_EXISTS and one past its end with OUT_OF_RANGE. The
// scheme that turns that into exactly-once output:
//
//  1. A writer's State is its stream and the offset of its next row. Flush
//     advances it only past acknowledged rows, so after each Flush (a bundle
//     boundary) the State says exactly how many output rows the task's input
//     up to that bundle produced.
//  2. The engine checkpoints at bundle boundaries only and, after a crash,
//     replays the task from the checkpointed input offset. If the State taken
//     at that same boundary is stored with the checkpoint and handed to
//     Resume, the replayed input produces the same output rows (SQL is
//     deterministic) and they get the same offsets as before the crash:
//     row k after the checkpoint goes to offset State.Offset+k, whatever the
//     bundle boundaries of the replay.
//  3. An append that BigQuery answers with ALREADY_EXISTS therefore holds
//     rows that are in part in the stream already, and the stream's rows are
//     a prefix of the same sequence. The writer finds where the stream ends
//     inside the request by binary search with real appends of the request's
//     tail (rows[k:] at offset+k: ALREADY_EXISTS means the end lies after k,
//     OUT_OF_RANGE before k, success that k was the end and the rest is now
//     written), log2(rows) requests. Rows already there are never written
//     again; rows after them are written once.
//  4. A failed Flush resets the writer to the offset it started at, so a
//     bundle replayed through the same writer also gets the same offsets; a
//     retry after a lost acknowledgement lands on ALREADY_EXISTS the same way.
//
// The engine stores each writer's State in its checkpoints
// (engine.StatefulWriter), under the sink's name, and on restart hands it
// back through Resume (engine.ResumableSink): the replayed rows go to the same
// stream at the same offsets, so committed mode is exactly-once across crashes
// as well as retries. A new stream is in a committed checkpoint (at offset
// 0) before its first Flush: the engine checkpoints a writer opened with no
// state at once, so that a crash before the next interval resumes that
// stream instead of writing its rows into another. (A task stopped by a
// drain or a revocation does not wait for that checkpoint; the drain's
// final one records the stream, and only a crash during the drain can then
// repeat rows.) Because the state follows the sink's name, not its place
// in the list, inserting or reordering sinks keeps it; renaming the sink
// starts a new stream.
//
// A committed stream is not finalized on Close: its rows are committed
// already, and a replay from the last checkpoint may still have to append to
// it.
//
// Rows that BigQuery rejects one by one (row errors) go to the dead-letter
// destination as proto bytes and the rest of the request is appended again
// at the same offset. A replay after a crash finds the same rows rejected
// only if it tries them before their successors, so a dead-lettered row in
// the replayed range can misalign a replay (a known limit; rows BigQuery
// rejects individually are rare, schema mismatches are whole-request errors).
//
// # Errors
//
// Each AppendRows request is bounded by max_batch_rows and max_batch_bytes
// (BigQuery accepts at most 10 MB). Flush sends all of a bundle's requests at
// once and waits for every result; from the first failed one on, requests are
// re-sent one at a time. UNAVAILABLE, INTERNAL, ABORTED, DEADLINE_EXCEEDED,
// CANCELED and a broken connection are retried with exponential backoff and
// jitter while the context allows; RESOURCE_EXHAUSTED (quota, HTTP 429) the
// same way from a ten times longer first pause. INVALID_ARGUMENT without row
// errors (the table's schema does not match the descriptor), NOT_FOUND and
// PERMISSION_DENIED are permanent: Flush fails and the bundle is not
// complete. Retries and errors by kind are counted in the sink's metrics.
//
// # Concurrency
//
// A Sink is safe for concurrent Open and Resume; each Writer is used by one
// goroutine, as engine.Writer requires. The managedwriter client is shared by
// all writers of a sink (and may be shared across sinks with WithClient).
//
// An append error that retrying cannot fix (NOT_FOUND: a missing table or
// dataset; PERMISSION_DENIED, UNAUTHENTICATED; INVALID_ARGUMENT or
// FAILED_PRECONDITION for the whole request) fails the flush as permanent
// (engine.Permanent): the runtime reports the sink as failing and retries
// slowly, so a fixed permission resumes by itself.
package bigquery
