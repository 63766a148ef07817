// Package deploy renders the Kubernetes manifests of a sluice job: the job
// file as a ConfigMap, a headless Service, the workers' StatefulSet (probes
// on /healthz and /readyz at the metrics port, termination grace above the
// drain deadline, pod resources from the worker type, environment and files
// from the job's Secrets) and
// PodDisruptionBudget, and the coordinator's Deployment, ServiceAccount,
// RoleBinding and a Role granting only the verbs the coordinator calls.
// A job that asks for workload identity (JobSpec.WorkloadIdentity) also gets
// the workers' own ServiceAccount, annotated for GKE, EKS (IRSA) and AKS, and
// its pods run as it.
// `sluice render JOB.yaml` is Render with a JobSpec filled from the job file.
// WorkerObjects are the job's own objects without the coordinator: what the
// operator (deploy/operator) creates for a SluiceJob, so that render and
// the operator never differ. OperatorObjects (`sluice render --operator`)
// are the SluiceJob CRD (deploy/api/v1alpha1) and the operator's
// Deployment, ServiceAccount and least-privilege RBAC (OperatorRules).
// JobSpec.Files ship further files (schemas) in the ConfigMap, mounted
// beside the job file.
//
// Subpackages: api/v1alpha1 (the SluiceJob types and CRD), operator (the
// controller), jobs (the client of the fleet) and kubetest (a real control
// plane and a test kubelet, for tests only).
//
// Secrets never appear in the manifests. Every ${NAME} the job file uses is
// set in the workers from key NAME of the Secret `<job>-env`
// (EnvSecretName); every password_file and token_file is mounted read-only
// at its path from the Secret `<job>-files` (FilesSecretName), under the
// file's base name as key (SecretFileKey). The user creates both Secrets,
// e.g. `kubectl create secret generic acme-firewall-env
// --from-literal=SIEM_TOKEN=...`; a pod whose Secret or key is missing
// does not start, and says which. With `metrics.listen: off` the pods expose
// no port and have no probes.
// Monitoring (monitoring.go): Alerts, RulesFile and PrometheusRule are a
// job's alert rules, with thresholds from its sla block (MonitoringSpec),
// and a recording rule holding its SLA (sluice_job_sla_latency_seconds);
// JobDashboard and FleetDashboard are Grafana JSON built with the Grafana
// foundation SDK, the fleet's grouped by tenant and application through
// the info metric sluice_job_info joined on job. sluice render --monitoring writes them; every metric,
// alert and panel is listed in docs/observability.md.
//
// The Dockerfile beside this file builds the static, non-root image.
//
// Concurrency: Render and Objects are pure functions of their JobSpec and
// safe for concurrent use. Lifecycle: none; nothing is kept.
package deploy
