// Package bqtest is an in-process BigQuery Storage Write API server
// (google.cloud.bigquery.storage.v1.BigQueryWrite) for tests, to be used
// through the real managedwriter client (Server.Client).
//
// It keeps streams and rows in memory and behaves as the service documents
// where sluice depends on it: the `_default` stream of every table exists
// and answers GetWriteStream; committed, pending and buffered streams are
// created by CreateWriteStream; AppendRows checks explicit offsets
// (ALREADY_EXISTS for an offset already written, OUT_OF_RANGE past the end)
// and answers errors in-band, one response per request, in order; Finalize,
// BatchCommitWriteStreams and FlushRows govern visibility as in BigQuery.
// Every row is decoded with dynamicpb from the descriptor the client sent, so
// a test sees the values with the types BigQuery would convert.
//
// Faults are injected with Server.Fail (a status per append, e.g.
// UNAVAILABLE or RESOURCE_EXHAUSTED), Server.Reject (row errors) and
// Server.SetColumns (schema mismatch).
//
// A Server is safe for concurrent use; one mutex guards its state.
package bqtest
