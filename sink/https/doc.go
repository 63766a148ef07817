// Package https is the HTTPS sink for SIEM webhooks and collectors: rows are
// POSTed in batches as JSON lines (format json, Content-Type
// application/x-ndjson) or one JSON array (format json_array,
// application/json), optionally gzip-compressed.
//
//	sinks:
//	  - https: {url: https://siem.example/ingest, format: json, gzip: true,
//	            headers: {Authorization: "Bearer ${SIEM_TOKEN}"},
//	            max_batch_rows: 500, max_batch_bytes: 1MiB, timeout: 30s,
//	            max_elapsed: 5m, concurrency: 4}
//
// With gzip, each task's Writer keeps its own compressor (about 1 MiB,
// reused from request to request); docs/job-file.md counts it in a worker's
// memory bound.
//
// # Delivery
//
// A task's Writer cuts its rows into batches of at most max_batch_rows rows
// and max_batch_bytes bytes; Flush sends them and returns once every batch was
// answered with a 2xx, or was rejected for good and handed to the dead-letter
// destination. Requests of all the sink's writers share a semaphore of
// `concurrency` slots.
//
// A failed request (a network error, a timeout, 408, 429 or 5xx) is retried
// after engine/backoff's default pause: exponential with equal jitter (the
// n-th pause is drawn between half and all of min(100ms·2ⁿ, 30s)), or after the Retry-After of a 429 or 503 when the server sends one,
// until max_retries retries or max_elapsed time were spent (when set), or the
// flush's context ends. Any other 4xx (but those below) means that the server will never accept
// the batch: each of its rows goes to the dead-letter destination with the
// status and the start of the response body, and the flush goes on; with no
// dead-letter destination, the flush fails.
//
// Errors and logs name the URL without its userinfo and query string (an
// api_key in the query is a secret); Destination is host and path only.
//
// 401, 403, 404, 405, 407 and 410 mean the credentials or the endpoint are
// wrong for every row: the flush fails at once with a permanent error
// (engine.Permanent), nothing is dead-lettered, and the runtime reports the
// sink as failing and retries slowly until the receiver or the job is fixed.
package https
