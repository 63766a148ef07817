// Package object is the core that the object-store sinks (gcs, s3, azblob)
// share: encoding rows into objects of JSON lines, CSV
// or Avro object container files, naming them, closing them at a size or an
// age across many flushes, and the writer state that lets an object survive a
// crash. Each cloud package adds its configuration and a Store: four
// operations on its own API.
//
// # Objects
//
//	<prefix><4 hex>/<pipeline>/<topic>-<partition>/<series>-<seq>.<ext>
//
// A task's writer writes a series of objects. series is when the series
// began (unix microseconds, at an Open without state); seq numbers its objects
// from 000001. The 4 hex digits are the start of a SHA-256 of the rest of the
// name, so that objects written at once spread over the key space of the
// bucket instead of hot-spotting one range. Every object is a whole file of
// its format: a CSV object starts with its header line, an Avro object is an
// OCF with its own header (one block per flush), a JSON object is lines.
//
// An object closes (is finalized, and becomes visible) at the first of:
// the next row would take it past max_object_bytes (a row alone larger than
// that gets an object of its own); max_object_age after its first row, even
// when no row comes after it (a timer finalizes a quiet object); and when
// the writer is closed after a final flush (drain, task revocation, the end
// of a bounded job). Sizes are counted before compression, so compressed Avro
// objects end smaller. Every finalized object carries the metadata
// sluice-rows (its row count) and sluice-close (size, age or close).
//
// # Delivery
//
// Each Flush stages the rows written since the last one as the next part of
// the open object (GCS: a temporary object under parts_prefix, composed into
// the object when it is finalized; S3: a temporary object, copied into the
// object; Azure: an uncommitted block of the blob), and returns once the part is durable:
// the rows are acknowledged although their object is not visible yet. The
// writer's state (engine.StatefulWriter), taken after each Flush and stored
// in the checkpoint with the task's offset, names the open object and its
// parts. It is tens of bytes: parts are runs of indexes. A writer opened
// with no state (a new series) is recorded too, before its first Flush: the
// engine checkpoints its empty state at once, so that no row is ever staged
// in a series that a restart could not find.
//
// After a crash the task restarts from its checkpoint, and Resume continues
// the object that the checkpointed state names, with the parts it lists;
// the rows after that state are replayed. Two things may have happened after
// the checkpoint, before the crash:
//
//   - Parts were staged for the open object. They are not in the state, so
//     they are never composed: a replayed row is staged again in a part of a
//     new name (each writer instance stages under its own 8-hex nonce), and
//     the stale parts are deleted when the object is finalized.
//   - Objects of the series were finalized. Resume finds them by name
//     (series, seq, seq+1, ...), reads their sluice-rows, and skips that many
//     replayed rows (less those the state had staged already) before it
//     writes again.
//
// So every row is in the finalized objects exactly once, provided the replay
// produces the same rows in the same order, as it does for a job whose input,
// SQL and schemas did not change between the crash and the restart (the
// assumption BigQuery's committed streams rely on too). The exceptions, where
// delivery is at-least-once:
//
//   - a crash while the task is being drained or revoked, after the first
//     Flush of a writer opened fresh and before the final checkpoint (a
//     stopping task does not wait for the checkpoint that records a new
//     series): the restart opens a new series, and rows of objects the lost
//     run finalized are written again;
//   - two writers of one task at once (a pod that has not yet learnt that
//     it lost the task): their part names differ, and the second to finalize
//     an object finds it exists (a create-only compose); it skips what the
//     first one's object holds beyond its own rows, and logs an error if
//     that object holds fewer rows than it staged.
//
// A failed Flush makes the engine close the writer and Resume another from
// the last complete bundle's state; Close finalizes the open object only
// when no row is left unflushed, so the replay into the new writer finds the
// object either open (and adds to it) or finalized (and skips what it holds).
//
// # Concurrency
//
// A Sink is safe for concurrent Open and Resume. A writer is used by its
// task's goroutine; its age timer runs on its own goroutine and takes the
// writer's mutex, so a quiet object is finalized between flushes, never
// during one. Close stops the timer and waits for it. A Store is called from
// every writer of the sink at once.
package object
