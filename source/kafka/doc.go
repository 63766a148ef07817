// Package kafka is the Kafka source: one franz-go group consumer per job
// (static membership, the job name as group id) that turns each assigned
// topic-partition into an engine task and hands it its records.
//
// # Lifecycle
//
// New builds a Source; franz-go starts joining the group at once, but tasks
// are handed to the runtime only once Run has started. Run polls until its
// context ends (or, with StopAtEnd, until the group has read every task to
// the end offset it had at start), then stops fetching but keeps the
// client, so that the runtime can still commit its final checkpoint; Close
// closes the client, and with LeaveOnClose a static member also leaves the
// group so that its tasks move at once (a scale-down) instead of after the
// session timeout. Commit writes offsets with the checkpoint key as
// metadata; it runs under the group generation, so a commit from a zombie
// member is rejected by the broker.
//
// # Bounded jobs (StopAtEnd)
//
// Run first lists the end offsets of every partition of the subscription;
// those are the ends of the backfill. A task ends when its records up to
// that end were delivered, or at once when it is assigned with nothing left
// to read: committed at or past its end (a re-run), an empty partition, or
// no committed offset with Start "latest". An ended task's partition is
// paused, so records written past its end are not fetched. The backfill ends when every
// task this member owns has ended and every other task of the backfill is
// committed at or past its end by whichever member owned it (with "latest",
// a task nobody committed counts as ended), so several members each end
// once the group is done; the end interrupts a poll that would otherwise
// wait for records that never come. A regex that matches no topic ends the
// backfill at once. A listed topic that does not exist makes Run return a
// *MissingTopicError (naming the topics and brokers): a backfill of it could
// never end. An unbounded job over a missing topic waits instead (see Bad
// input).
//
// # Clients
//
// ClientOpts builds the connection options of every Kafka client of a job
// (seed brokers, TLS from the one config.TLS builder, SASL PLAIN, SCRAM or
// OAUTHBEARER with secrets from values or files) from the job's `kafka:`
// block, and RegistryClient its schema registry client. The source, the
// Kafka sink and dead-letter destination (through the wiring) and the
// coordinator all build their clients from them.
//
// # Assignment
//
// The group uses this package's balancer (protocol "sluice-balanced",
// cooperative). Every member announces in its JoinGroup user data the byte
// rate of each partition it owns (a decayed average with a one-minute time
// constant; layout in encodeRates). The leader assigns by this rule:
//
//  1. A task keeps its current owner while that member is still in the
//     group and subscribed (sticky).
//  2. Each member may own n/m or n/m+1 of the n tasks (the larger quotas go
//     to the members that own most, so that nobody gives up a task for
//     nothing), and at most ceil(k/m) of a topic's k partitions. A member
//     over either limit releases the tasks that bring its byte load closest
//     to the mean, from the topic where it is furthest above its share and
//     that has released least, so released tasks come from many topics.
//  3. Free tasks (new, released, or a departed member's) go, heaviest first
//     when rates are known and otherwise in topic/partition order, to the
//     member with room that is below the topic's floor share, then with the
//     least byte load (or the fewest tasks without rates), then next in a
//     rotation that continues across topics, never restarting at the first
//     member for each topic.
//
// So counts stay within one of even, every pipeline (topic) is spread over
// all members, rates decide which tasks go where, and a rescale moves only
// the new member's share (scale-up) or the departed members' tasks
// (scale-down). Rates are read at each rebalance; a rate change alone does
// not trigger one. Moved tasks are revoked first and assigned in the next
// round (the cooperative protocol), so each is drained and committed by its
// old owner before its new owner starts.
//
// # Backpressure and memory
//
// The runtime pauses a task (PauseFetchPartitions) when it holds more than
// its MaxBufferedBytes of fetched records, and resumes it once drained.
// Fetches are bounded by FetchMaxBytes, so a stalled task holds at most
// about MaxBufferedBytes plus one fetch plus its open bundle. Both come from
// the job file's memory block (task_buffer, fetch); docs/job-file.md gives
// the bound on a worker's memory that they imply. Records borrow the bytes
// of the fetch response that carried them (no copy), so a held record keeps
// its whole response. Nothing else is allocated per record: franz-go decodes
// each batch into a slab of kgo.Records from this package's pool
// (kgo.WithPools, pool.go), which deliver recycles as soon as it has copied
// the records into the engine.Record slice it delivers, and that slice is
// lent by the runtime (engine.Batcher) and reused once its bundle completes.
// The pool never implements franz-go's PoolDecompressBytes: a decompressed
// batch's buffer must live as long as the records that alias it.
//
// # Metrics
//
// Per owned task, labelled job, pipeline (the comma-joined pipelines reading
// the topic: one series per task), topic and partition:
// sluice_source_backlog_records (end offset minus committed offset, what
// the group's lag shows), sluice_source_backlog_bytes (times the observed
// average record size), sluice_source_watermark_lag_seconds (now minus the
// committed watermark), and the counters sluice_source_records_total,
// sluice_source_bytes_total (input) and
// sluice_source_committed_records_total (output). Per job:
// sluice_source_job_backlog_records and _bytes, the summary a coordinator
// sums over members (also Source.Summary in process). End offsets come from
// fetches and, every WatchInterval, from ListEndOffsets, because a paused
// task fetches nothing. Series of revoked tasks are deleted.
//
// # Bad input
//
// Unreachable brokers (and TLS or SASL failures), missing topics and
// authorization failures are logged and reported through Config.OnHealth
// (for /readyz), and retried with backoff; Run does not return for them, so
// a misconfigured job waits with its committed positions intact instead of
// crash-looping.
//
// # Concurrency
//
// Run owns one polling goroutine and one watch goroutine (end offsets,
// health probes), and waits for both. Rebalance callbacks run on franz-go's
// group goroutine and call the Handler's Assign and Revoke synchronously:
// Revoke returns only once the revoked tasks were drained and committed,
// which is what makes a rescale lose and replay nothing.
// BlockRebalanceOnPoll keeps a rebalance from running while a polled batch
// is being delivered. Pause and Resume may be called from any goroutine.
package kafka
