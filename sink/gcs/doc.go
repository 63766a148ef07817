// Package gcs is the Google Cloud Storage sink: rows become objects of JSON
// lines, CSV (a header per object) or Avro object container files, written
// with resumable uploads through cloud.google.com/go/storage.
//
//	sinks:
//	  - gcs: {bucket: acme-export, prefix: denied/, format: avro, codec: zstd,
//	          max_object_bytes: 128MiB, max_object_age: 5m}
//
// # Object names
//
//	<prefix><4 hex>/<pipeline>/<topic>-<partition>/<unix micros>-<seq>.<ext>
//
// The 4 hex digits are the start of a SHA-256 of the rest of the name, so
// that objects written at the same time spread over the bucket's key space
// instead of hot-spotting one range of sequential names; below them the
// layout stays readable. seq counts the task writer's objects.
//
// # Delivery and the trade-off
//
// A bundle is complete only once the objects holding its rows are finalized,
// so Flush uploads the rows written since the last Flush and finalizes them:
// one object per flush per task, cut into several when they exceed
// max_object_bytes. Uploads are conditional on the object not existing, which
// makes them idempotent, so the client retries them (with its exponential
// backoff) for as long as the flush's context allows. A replayed bundle
// writes new objects: at-least-once.
//
// With bundles of 10,000 rows this yields objects of a few MB at most every
// few seconds per task, which suits loads into BigQuery or Spark. Objects that
// grow across flushes up to max_object_bytes or max_object_age would need
// GCS compose (append each flush's part to the open object, then delete the
// part), which costs two more requests per flush; it is not done yet, and
// max_object_age is accepted and validated for that. Memory per task writer
// is bounded by the rows of one bundle.
package gcs
