// Package scaler is the coordinator: it watches sluice jobs and sets each
// job's StatefulSet replicas from backlog and CPU signals, so that backlog
// stays within the latency SLA at the lowest cost without flapping.
//
// # Parts
//
//   - Signals (signals.go): a Window turns Kafka samples (end offsets and the
//     group's committed offsets, read with kadm) and CPU samples (the pods'
//     process_cpu_seconds_total) into smoothed Signals: input rate,
//     throughput, backlog records and bytes, backlog growth, backlog time and
//     CPU utilization. Rates are least-squares slopes over the window; a
//     backlog slope within two standard errors of zero reads as zero, because
//     commits move in checkpoint steps. Fewer than two samples leave a signal
//     missing, which the policy reads as "no decision".
//   - Policy (policy.go): Decide is a pure function, modelled on etcd raft's
//     core: signals and history in, a decision with its reasons and the next
//     history out; no I/O, time passed in. Scale up when backlog time exceeds
//     120 s, now or after another minute of its present growth, or when CPU
//     exceeds 90 % while the job is not keeping up (backlog growing or over
//     10 s): keep-up (input at the 95 % target CPU) plus catch-up (drain the
//     backlog within 60 s). Scale down only when CPU is under 80 %, the
//     backlog does not grow and backlog time is under 10 s, to the smallest
//     balanced count at the target. The guard against running short is the
//     backlog the SLA allows, not CPU headroom: docs/autoscaling.md shows
//     where headroom cost worker-minutes and why these defaults differ from
//     the reference deployment's 85 % target and 70 % down threshold. Worker counts are rounded to "balanced"
//     counts (a partition is the unit of assignment, so 20 workers on 64
//     partitions do no more than 16). Bounded by min/max workers and the
//     partition count; up at once, down only to the highest recommendation of
//     the last 5 minutes; optionally to zero after an idle period and back to
//     one on the first new record. Missing or stale signals never decide.
//   - Simulator (sim.go, simpolicies.go, report.go): a deterministic, seeded
//     job (partitions, per-worker capacity with noise, pod start delay, a
//     pause for moved tasks, checkpointed commits) run over four traces
//     against the sluice policy, a KEDA-style lag-threshold policy, a static
//     peak-provisioned job and an oracle. TestSimulatorTraces checks the
//     report's table in docs/autoscaling.md and fails when it is stale
//     (-update rewrites it).
//   - Coordinator (coordinator.go, kafka.go, cpu.go): reads
//     the signals, runs the policy per job, patches the StatefulSet's scale
//     subresource through client-go, records an event on the StatefulSet and
//     exports sluice_scaler_desired_workers, sluice_scaler_decisions_total
//     and sluice_scaler_workers{state} (current, ready, desired, max;
//     observe.go). A Lease (client-go leader election) makes sure only one
//     coordinator acts; the others wait.
//   - Jobs page (status.go): StatusHandler, served at / by Main, lists the
//     jobs by latency and grouped by tenant and application with their
//     workers' pipelines and checkpoints (read from the workers' status
//     JSON when the page is loaded) and the history of what this
//     coordinator did; HTML refreshing itself, or JSON. Its history is
//     guarded by its own mutex and safe to read while Run evaluates.
//     ServeJobs, ReadWorkers, SortJobs and Group render the same page for
//     the operator. Each job's JobConfig.Tenant and Application are
//     exported as sluice_job_info{job, tenant, application} 1 (export.go;
//     JobInfoDesc for the operator's own collector).
//   - Library (export.go, scrape.go): SampleKafka, Scrape and RequestedCPUs
//     let the operator (deploy/operator), which discovers its jobs by watch,
//     feed the same Window and Decide without a Coordinator. Scrape reads
//     every worker's /metrics at once; the Coordinator takes CPU from it,
//     the operator CPU, latency and the last checkpoint from the same
//     scrape.
//   - Departures (leave.go): workers join their group as static members
//     (<job>-<ordinal>), which do not leave when they stop. After a
//     scale-down from N to M the coordinator removes the members of
//     ordinals M..N-1 from the group (kadm LeaveGroup by instance ID) once
//     each pod no longer exists, its drain having committed, or once the
//     StatefulSet's termination grace period has passed, so that their
//     partitions need not wait for the session timeout. An ordinal scaled
//     up again before then is left alone.
//
// # Concurrency
//
// Decide and the simulator are single-threaded and deterministic. A Window
// is owned by one goroutine. The Coordinator's Run evaluates every job in
// turn on one goroutine, only while it holds the lease; its metrics are safe
// for concurrent scraping.
//
// # Lifecycle
//
// NewCoordinator takes the clients it is given (a Kubernetes client and a
// kadm client; the package builds none); Run blocks until its context is
// done, campaigning for the lease, then evaluating every Interval while
// leading; on cancellation it releases the lease so that a standby takes
// over at once. Callers configure it with a Config struct whose zero fields
// take the defaults documented beside them.
//
// This package is a library. The `sluice coordinator` command (flags, its
// --config file, the Kafka and Kubernetes clients, the /metrics, /healthz
// and /readyz endpoints and signal handling) lives in cmd/sluice/app and is
// documented in docs/autoscaling.md. The coordinator reaches the jobs'
// cluster the way the workers do, through the Kafka source's ClientOpts.
package scaler
