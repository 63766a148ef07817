// Package deploy renders the Kubernetes manifests of a sluice job: the job
// file as a ConfigMap, a headless Service, the workers' StatefulSet (probes
// on /healthz and /readyz at the metrics port, termination grace above the
// drain deadline, pod resources from the worker type) and
// PodDisruptionBudget, and the coordinator's Deployment, ServiceAccount,
// RoleBinding and a Role granting only the verbs the coordinator calls.
// A job that asks for workload identity (JobSpec.WorkloadIdentity) also gets
// the workers' own ServiceAccount, annotated for GKE, EKS (IRSA) and AKS, and
// its pods run as it.
// `sluice render JOB.yaml` is Render with a JobSpec filled from the job file.
// The Dockerfile beside this file builds the static, non-root image.
//
// Concurrency: Render and Objects are pure functions of their JobSpec and
// safe for concurrent use. Lifecycle: none; nothing is kept.
package deploy
