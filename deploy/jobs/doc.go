// Package jobs is the Go client of the SluiceJob fleet, for the services
// that create, update and remove jobs and for `sluice jobs`: apply a job
// file, get, list by label selector, suspend, resume, delete and read a
// job's history.
//
// Reads (Get, List, History) come from an informer cache that one watch
// keeps current, not from a round trip per call: listing a thousand jobs by
// label costs the API server nothing. The cache holds typed SluiceJobs,
// converted once as each change arrives. Writes go to the API server; a
// read right after a write sees it once the watch delivers it (Wait).
//
// Concurrency: a Client is safe for concurrent use once Start returned.
// Lifecycle: New, Start (fills the cache), use, Stop.
package jobs
