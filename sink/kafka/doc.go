// Package kafka is the `kafka:` sink, and the `kafka:` dead-letter
// destination: rows produced as records of one topic with the franz-go
// producer, idempotent (franz-go's default), so that its own retries never
// duplicate or reorder a record within a partition.
//
// # Records
//
// The value is the row encoded by sink/encode: JSON (default), or Avro
// binary. With a schema registry (WithRegistry) the output schema is
// registered under the subject "<topic>-value" once, in New, and each value
// is framed the Confluent way: 0x00, the schema id as a big-endian uint32,
// the Avro datum. Without a registry an Avro value carries its writer schema
// in the avro.HeaderKey header, `sluice.schema` (what the Kafka source's
// `writer_schema: header` reads); both modes read back row for row through
// the Kafka source and the Avro decoder (TestKafkaSinkSourceRoundTrip). The key is the `key` column's value (a
// string or bytes as is, other scalars as text; null gives a null key) and
// partitions follow the murmur2 hash of the key, as the Java client does.
// Each `headers` entry is the text of the column it names or, when no column
// has that name, the literal value.
//
// A dead-letter destination receives rows of engine.DeadLetterSchema like
// any other rows: with format json each record is the dead letter as one
// JSON object (raw key and value in base64).
//
// # Delivery
//
// Write encodes into the writer's arena and hands the record to the producer
// (blocking when its buffer is full: backpressure); records and arena are
// reused only after the Flush that waited for them. Flush is client.Flush
// plus a check of every produce result: records that failed with a retriable
// error are produced again while the context allows, records Kafka rejects
// for good (too large, invalid) go to the dead-letter destination, or fail
// the Flush when there is none.
//
// # Exactly-once (transactional: true)
//
// Each task's writer is its own transactional producer, with the id
// <job>.<pipeline>.<sink>.<topic>.<partition> of its input task. Each
// Flush commits one transaction holding the bundle's rows and a marker: a
// transactional offset commit (AddOffsetsToTxn + TxnOffsetCommit) to the
// marker group <job>.<pipeline>.<sink> (Sink.MarkerGroup; no consumer ever
// joins it) of the input task's partition, at the input offset after the
// transaction's last row (engine.Row.Origin). Open initializes the producer,
// which fences any earlier producer with the same id and makes the
// transaction coordinator abort its open transaction, then reads the marker
// with RequireStable; Write drops every row whose Origin.Offset is below it.
//
// Why that is exactly-once for read_committed consumers, under SIGKILL at
// any point:
//
//  1. Rows and marker commit atomically: a transaction commits both or
//     neither, so at every moment the committed rows of a task are exactly
//     its rows with input offsets below the committed marker M, each once.
//     A transaction holds rows with origins in [previous M, new M) only,
//     because Write drops the rows below M and the rows come in offset order.
//  2. A kill before the commit leaves an open transaction: the next Open of
//     the task (after the restart, on another pod after a rescale, or after
//     a failed flush) aborts it, and M has not moved, so none of its rows
//     is visible and all are written again.
//  3. A kill after the commit and before the checkpoint makes the engine
//     replay from the last committed input offset C ≤ M' (C is committed
//     only after the Flush that committed its rows, and so its marker): the
//     replayed rows below M are dropped, the others were never committed.
//     Input records between a marker and C produced no row (the SQL filtered
//     them), so nothing is lost either.
//  4. A zombie (a pod that lost its task but still runs) shares the new
//     owner's transactional id; the new owner's initialization bumped the
//     producer epoch, so the zombie's produce, marker commit and EndTxn are
//     rejected (PRODUCER_FENCED) and it can commit nothing.
//
// The guarantee is per output topic as read with isolation.level
// read_committed; read_uncommitted consumers see aborted rows too. Each
// Flush costs a transaction (AddOffsetsToTxn, TxnOffsetCommit, EndTxn round
// trips) and each task a producer: transactional is for outputs that need
// it. Rows this sink rejects for good go to the dead-letter destination,
// outside the transaction (at-least-once, like every dead letter).
//
// transactional: false (the default) is at-least-once: one shared idempotent
// producer, no markers, and a bundle replayed after a crash is produced
// again.
//
// # Concurrency
//
// A Sink is immutable after New; its writers share its client (or own one
// each when transactional). A Writer is used by one goroutine; produce
// results arrive on the client's goroutines and are collected under a mutex.
package kafka
