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
// in the `sluice.schema` header (what the Kafka source's
// `writer_schema: header` reads). The key is the `key` column's value (a
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
// the Flush when there is none. That is at-least-once: a bundle replayed after
// a crash is produced again.
//
// transactional: true gives each task its own producer with the
// transactional id <job>.<pipeline>.<sink>.<topic>.<partition> (a restarted
// task fences its predecessor and aborts its open transaction); a bundle's
// records are one transaction, committed by Flush. read_committed consumers
// never see a bundle that failed half-way. Exactly-once needs the commit tied
// to the checkpoint instead (commit only once the checkpoint that covers the
// bundle is durable, abort and replay otherwise); that needs an engine hook,
// so until then a crash between a Flush and the
// next checkpoint still replays a committed bundle.
//
// # Concurrency
//
// A Sink is immutable after New; its writers share its client (or own one
// each when transactional). A Writer is used by one goroutine; produce
// results arrive on the client's goroutines and are collected under a mutex.
package kafka
