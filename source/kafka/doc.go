// Package kafka is the Kafka source: one franz-go group consumer per job
// (static membership, the job name as group id) that turns each assigned
// topic-partition into an engine task and hands it its records.
//
// # Lifecycle
//
// New builds a Source; Run joins the group and polls until its context ends,
// then stops fetching but keeps the client, so that the runtime can still
// commit its final checkpoint; Close leaves and closes the client. Commit
// writes offsets with the checkpoint key as metadata; it runs under the group
// generation, so a commit from a zombie member is rejected by the broker.
//
// # Concurrency
//
// Run owns one polling goroutine. Rebalance callbacks run on franz-go's group
// goroutine and call the Handler's Assign and Revoke synchronously: Revoke
// returns only once the revoked tasks were drained and committed, which is
// what makes a rescale lose and replay nothing. BlockRebalanceOnPoll keeps a
// rebalance from running while a polled batch is being delivered. Pause and
// Resume may be called from any goroutine.
package kafka
