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
//   - Delete: the finalizer sluice.dev/drain keeps the job until its
//     workers drained; with checkpoints: Delete the consumer group's
//     offsets are deleted too; then owner references let the garbage
//     collector remove the objects. Checkpoint objects in the store are not
//     removed (the store's own retention applies).
//
// # Scale
//
// Jobs, StatefulSets and Pods are read from informer caches (the latter two
// filtered to the operator's own objects by label); the API server sees one
// watch per kind and writes only for changes: a status is written only
// when it differs. The autoscaler reads Kafka offsets and the workers'
// /metrics, never the API server, and enqueues a job only when its
// decision or backlog changed. Only the reconciler writes.
//
// # Concurrency
//
// Config.Workers goroutines reconcile; the workqueue never hands one key to
// two of them at once. One goroutine autoscales. Both run only while the
// operator holds its Lease (client-go leader election); a standby keeps
// its caches warm and takes over at once. mu guards the inspections cache
// and the autoscaler's per-job state.
//
// # Jobs page and info metric
//
// status.go serves the jobs page (scaler.ServeJobs) of every SluiceJob in
// the cache, its history as events (Events) and its workers' status read
// from the pods, and exports sluice_job_info from the jobs' labels
// sluice.dev/tenant and sluice.dev/application (InfoCollector); `sluice
// operator --listen` serves both. A rescale of a running job is noted in
// the history with reason Scaled, its phase unchanged.
//
// # Not done
//
// Latency (now minus the oldest watermark) and the last checkpoint are not
// yet read from the workers into the status; a drifted ConfigMap, Service
// or PDB is not repaired (only created, and the ConfigMap replaced on
// update); scale-down does not remove departed static members from the
// group as the coordinator does, so their partitions move after the
// session timeout.
package operator
