package operator

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/sluicehq/sluice/deploy"
	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
	"github.com/sluicehq/sluice/scaler"
)

// The operator's jobs page and its info metric, both read from the
// informer cache: no API request per page load or scrape.

// maxWorkerReads bounds the jobs whose workers a page load reads (their
// status JSON, for pipelines and checkpoints); past it the page shows what
// the SluiceJobs' status holds.
const maxWorkerReads = 100

// cachedJobs returns every SluiceJob in the cache.
func (o *Operator) cachedJobs() []*v1alpha1.SluiceJob {
	var out []*v1alpha1.SluiceJob
	for _, obj := range o.jobInformer.GetStore().List() {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		if j, err := v1alpha1.FromUnstructured(u); err == nil {
			out = append(out, j)
		}
	}
	return out
}

// Jobs returns the jobs page's view of every SluiceJob watched, the
// highest latency first: tenant and application from the resource's
// labels, phase, backlog and lifecycle history from its status, pipelines
// and checkpoints from its workers' status pages.
func (o *Operator) Jobs(ctx context.Context) []scaler.JobStatus {
	jobs := o.cachedJobs()
	out := make([]scaler.JobStatus, len(jobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, j := range jobs {
		out[i] = JobStatus(j)
		if len(jobs) > maxWorkerReads {
			continue
		}
		targets := o.statusTargets(ctx, j)
		if len(targets) == 0 {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i].BacklogRecords = 0 // the workers' own figures replace the status's
			scaler.ReadWorkers(ctx, o.http, targets, &out[i])
		})
	}
	wg.Wait()
	scaler.SortJobs(out)
	return out
}

// statusTargets are the status URLs of a job's running workers.
func (o *Operator) statusTargets(ctx context.Context, j *v1alpha1.SluiceJob) map[string]string {
	spec := j.Spec
	if j.Status.RolledBackGeneration == j.Generation && j.Status.RunningSpec != nil {
		spec = *j.Status.RunningSpec
	}
	ins, err := o.inspection(ctx, j.Name, spec)
	if err != nil || ins.Workers.NoMetrics {
		return nil
	}
	port := ins.Workers.MetricsPort
	if port == 0 {
		port = deploy.DefaultMetricsPort
	}
	pods, _ := o.pods.Pods(j.Namespace).List(labels.SelectorFromSet(deploy.WorkerSelector(j.Name)))
	out := map[string]string{}
	for _, p := range pods {
		if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && p.DeletionTimestamp == nil {
			out[p.Name] = "http://" + p.Status.PodIP + ":" + strconv.Itoa(port) + "/?format=json"
		}
	}
	return out
}

// JobStatus is a SluiceJob as the jobs page shows it, from the resource
// alone.
func JobStatus(j *v1alpha1.SluiceJob) scaler.JobStatus {
	return scaler.JobStatus{
		Name: j.Name, Namespace: j.Namespace,
		Tenant: j.Labels[v1alpha1.LabelTenant], Application: j.Labels[v1alpha1.LabelApplication],
		Phase:          string(j.Status.Phase),
		LatencySeconds: float64(j.Status.LatencySeconds),
		BacklogRecords: j.Status.BacklogRecords,
		History:        Events(j.Status.History),
	}
}

// Events turns a SluiceJob's history into the jobs page's events, the
// latest first, each named for what happened to the job: created, updated,
// draining, suspended, resumed, running, scaled, failed, rolling back,
// rolled back, deleting.
func Events(h []v1alpha1.Transition) []scaler.JobEvent {
	out := make([]scaler.JobEvent, 0, len(h))
	for _, t := range h {
		detail := t.Message
		if t.From != t.To {
			detail = fmt.Sprintf("%s → %s: %s", phaseName(t.From), t.To, t.Message)
		}
		out = append(out, scaler.JobEvent{At: t.Time.Time, Kind: eventKind(t), Detail: fmt.Sprintf("%s (generation %d)", detail, t.Generation)})
	}
	slices.Reverse(out)
	return out
}

func phaseName(p v1alpha1.Phase) string {
	if p == "" {
		return "new"
	}
	return string(p)
}

// eventKind names a transition by the reasons reconcile records.
func eventKind(t v1alpha1.Transition) string {
	switch t.Reason {
	case "Created":
		return "created"
	case "Suspended":
		if t.From == "" {
			return "created"
		}
		return "suspended"
	case "Suspending":
		return "draining"
	case "Deleting":
		return "deleting"
	case "SpecChanged":
		return "updated"
	case "RollingBack":
		return "rolling back"
	case "RolledBack":
		return "rolled back"
	case "CrashLoopBackOff", "InvalidSpec":
		return "failed"
	case "Starting":
		if t.From == v1alpha1.PhaseSuspended {
			return "resumed"
		}
		return "starting"
	case "Ready":
		return "running"
	case ReasonScaled:
		return "scaled"
	}
	return t.Reason
}

// StatusHandler serves the jobs page of every SluiceJob watched.
func (o *Operator) StatusHandler() http.Handler {
	scope := "namespace " + o.cfg.Namespace
	if o.cfg.Namespace == "" {
		scope = "every namespace"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scaler.ServeJobs(w, r, scaler.JobsPage{Title: "sluice jobs", Scope: scope, Leading: o.leading.Load(), Jobs: o.Jobs(r.Context())})
	})
}

// InfoCollector exports sluice_job_info{job, tenant, application} 1 for
// every SluiceJob watched, from its labels sluice.dev/tenant and
// sluice.dev/application: the fleet view joins it on job.
func (o *Operator) InfoCollector() prometheus.Collector { return infoCollector{o} }

type infoCollector struct{ o *Operator }

func (c infoCollector) Describe(ch chan<- *prometheus.Desc) { ch <- scaler.JobInfoDesc }

func (c infoCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[string]bool{}
	for _, j := range c.o.cachedJobs() {
		if seen[j.Name] {
			continue // the same job name in two namespaces: metrics tell jobs apart by name only
		}
		seen[j.Name] = true
		ch <- prometheus.MustNewConstMetric(scaler.JobInfoDesc, prometheus.GaugeValue, 1,
			j.Name, j.Labels[v1alpha1.LabelTenant], j.Labels[v1alpha1.LabelApplication])
	}
}
