// Package operator is `sluice operator`'s controller: it reconciles every
// SluiceJob (deploy/api/v1alpha1) it watches into the objects `sluice
// render` writes for a job (deploy.WorkerObjects: ConfigMap, headless
// Service, StatefulSet, PodDisruptionBudget), owned by the job through
// owner references, and autoscales each running job with the scaler
// package's signals and policy within the job's own bounds. It lives under
// deploy/ because it deploys what deploy renders; cmd/sluice wires it (the
// Inspector, which validates a spec exactly as `sluice validate` does).
//
// # Lifecycle of a job
//
//   - Create: the spec is validated first; an invalid one sets phase Failed
//     and condition Valid=False whose message lists every problem as
//     job.yaml:LINE:COL, and nothing is created or changed.
//   - Update (a new job file, files, image or worker type; its SpecHash
//     changes): the StatefulSet is scaled to zero with its old template, so
//     that every worker drains on SIGTERM (bundles complete, final
//     checkpoint, offsets committed); once no pod is left the ConfigMap and
//     template are replaced and the workers start again from the committed
//     offsets. Nothing is lost, nothing replayed (delivery contract 5), at
//     the price of a pause as long as the drain.
//   - Rollback: when a worker of the spec being run restarts
//     CrashLoopRestarts times, the generation is marked rolled back and
//     Status.RunningSpec (the last spec whose workers all became ready) is
//     run again through the same drain; history shows Updating→Failed
//     (CrashLoopBackOff), Failed→Updating (RollingBack) and
//     Updating→Running (RolledBack). A new spec clears it.
//   - Suspend: replicas to zero (the same drain), phase Draining, then
//     Suspended; offsets and checkpoints stay. Resume returns to the
//     workers the job had.
//   - Scale-down: once a removed worker's pod is gone (it drained), its
//     static member is removed from the consumer group (LeaveGroup by
//     instance id), so that its partitions move at once instead of after
//     the session timeout.
//   - Drift: a deleted or edited ConfigMap (data), Service (selector,
//     ports), PDB (selector, budget) or StatefulSet (container image,
//     arguments, environment; a deleted one is created again) is restored
//     from what the spec renders, on the watch event of the change.
//   - Delete: the finalizer sluice.dev/drain (the jobs client sets it on
//     create; otherwise the operator adds it) keeps the job until its
//     workers drained; with checkpoints: Delete the consumer group's
//     members and offsets are deleted and so is every object of the job in
//     its checkpoint store (keys <hash>/<job>/...; Inspection.Checkpoints
//     opens the store); then owner references let the garbage collector
//     remove the objects.
//
// # Status from the workers
//
// The autoscaler scrapes each running worker's /metrics once per Interval
// (for CPU), and reads from the same scrape the pipeline latency and the
// last committed checkpoint's time and size; the checkpoint's key is the
// metadata the job's group committed with that worker's offsets, read from
// Kafka only when a newer checkpoint is reported. Backlog, latency and
// checkpoint are handed to the reconciler (and so written to the status)
// at most every ReportInterval, and only when they changed.
//
// # Scale
//
// Jobs, StatefulSets, Pods, ConfigMaps, Services and PDBs are read from
// informer caches (all but the jobs filtered to the operator's own objects
// by label); the API server sees one watch per kind and writes only for
// changes: a status is written only when it differs, and a job at rest
// costs no request whatever the fleet's size. The autoscaler reads Kafka
// offsets and the workers' /metrics, never the API server, and enqueues a
// job only when its decision or what it observed changed. Only the
// reconciler writes. A reconciliation that finds in the cache a version of
// the job older than the operator's own last write of it waits for the
// cache (the write's event brings the job back) instead of conflicting;
// one that finds no StatefulSet just after creating it waits for its event
// instead of creating everything again.
//
// # Concurrency
//
// Config.Workers goroutines reconcile; the workqueue never hands one key to
// two of them at once. One goroutine autoscales. Both run only while the
// operator holds its Lease (client-go leader election); a standby keeps
// its caches warm and takes over at once. mu guards the inspections cache,
// the autoscaler's per-job state handed to the reconciler, and the
// per-job write, create and departure records.
//
// # Jobs page and info metric
//
// status.go serves the jobs page (scaler.ServeJobs) of every SluiceJob in
// the cache, its history as events (Events) and its workers' status read
// from the pods, and exports sluice_job_info from the jobs' labels
// sluice.dev/tenant and sluice.dev/application (InfoCollector); `sluice
// operator --listen` serves both. A rescale of a running job is noted in
// the history with reason Scaled, its phase unchanged.
package operator
