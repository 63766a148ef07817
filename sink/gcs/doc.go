// Package gcs is the Google Cloud Storage sink: rows become objects of JSON
// lines, CSV (a header per object) or Avro object container files, which
// close at max_object_bytes or max_object_age across many bundles.
//
//	sinks:
//	  - gcs: {bucket: acme-export, prefix: denied/, format: avro, codec: zstd,
//	          max_object_bytes: 128MiB, max_object_age: 5m}
//
// Naming, rolling, the writer state in the checkpoint and the delivery
// guarantee (exactly-once across crashes for a job whose replay produces the
// same rows, with the exceptions listed there) are sink/object's, shared with
// the other object sinks. This package holds the configuration and the GCS
// half: object.Store on a bucket.
//
// # Parts and compose
//
// Each Flush uploads the rows since the previous one as one temporary object
// (one request), named
//
//	<parts_prefix><object name>/<writer nonce>-<part index>
//
// with parts_prefix "_sluice/parts/" by default, outside the sink's prefix so
// that readers of the prefix see finalized objects only. Finalizing composes
// the parts in order into the object (32 sources per compose request; more
// are composed in rounds into intermediate objects beside the parts), with
// the precondition that the object does not exist, and then deletes every
// object under the parts' prefix, including parts a crashed run staged and
// nobody will compose. A crash between the compose and that clean-up leaves
// parts that the next Resume of the task removes; a lifecycle rule deleting
// objects under parts_prefix after a week catches the rest (the parts of a
// series whose task never resumes).
//
// Compose rather than one resumable upload per object: a resumable session
// cannot be truncated, so bytes uploaded after the last checkpoint would stay
// in the object when a crash replays their rows; and GCS accepts non-final
// chunks only in multiples of 256 KiB, so each flush would have to keep its
// unaligned tail in the checkpoint. Parts that are not in the checkpointed
// state are simply never composed. (fake-gcs-server v1.56.1, the emulator the
// tests use, also finalizes a session on the `Content-Range: bytes */*`
// status query and appends a re-sent chunk instead of ignoring it, so a
// session-based design could not be tested against it.) The cost is one
// upload per flush plus, per object, a compose per 31 parts and a delete per
// part; with the real service, composite objects carry a CRC32C and no MD5.
//
// # Errors
//
// Uploads of parts are retried by the client (a part of the same name is
// simply replaced); the final compose is create-only and therefore retried as
// idempotent. HTTP 400, 401, 403 and 404 (a missing bucket, a part deleted
// under the writer) are permanent (engine.Permanent); the rest are retried by
// the engine's replay.
//
// # Clients
//
// New makes a client with storage.NewClient (Application Default
// Credentials; STORAGE_EMULATOR_HOST points it at an emulator) and JSON
// reads; WithClient supplies one. The client outlives the context New is
// given (a worker's ends on SIGTERM, before its drain flushes): it lives
// until Close.
package gcs
