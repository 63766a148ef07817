package operator

import (
	"context"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/sluicehq/sluice/deploy"
	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
	"github.com/sluicehq/sluice/scaler"
)

// autoscale evaluates the scaler policy for every running job each
// Interval, from the informer caches (the jobs, their pods) and Kafka (the
// offsets), and enqueues a job whose decision or backlog changed: only the
// reconciler writes to the API server.
func (o *Operator) autoscale(ctx context.Context) {
	t := time.NewTicker(o.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, obj := range o.jobInformer.GetStore().List() {
			if ctx.Err() != nil {
				return
			}
			u, ok := obj.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			j, err := v1alpha1.FromUnstructured(u)
			if err != nil || j.DeletionTimestamp != nil || j.Spec.Suspend || j.Status.Phase != v1alpha1.PhaseRunning {
				continue
			}
			if o.evaluate(ctx, j, time.Now()) {
				o.queue.Add(j.Namespace + "/" + j.Name)
			}
		}
	}
}

// evaluate samples one job and runs the policy; it reports whether the
// job's desired workers or observed backlog changed.
func (o *Operator) evaluate(ctx context.Context, j *v1alpha1.SluiceJob, now time.Time) bool {
	target := j.Spec
	if j.Status.RolledBackGeneration == j.Generation && j.Status.RunningSpec != nil {
		target = *j.Status.RunningSpec
	}
	ins, err := o.inspection(ctx, j.Name, target)
	if err != nil || ins.Admin == nil {
		return false
	}
	key := j.Namespace + "/" + j.Name
	o.mu.Lock()
	s := o.scale[key]
	if s == nil {
		s = &scaleState{window: scaler.NewWindow(o.cfg.Window)}
		o.scale[key] = s
	}
	o.mu.Unlock()
	// s is touched only by this goroutine, apart from the fields read under
	// mu (desired, set, backlog), which are written under mu below.

	jc := ins.Scale
	jc.Name = j.Name
	k, err := scaler.SampleKafka(ctx, ins.Admin, jc, now)
	if err != nil {
		o.log.Warn("kafka sample failed", "job", key, "err", err)
		return false
	}
	s.window.AddKafka(k)

	pods, _ := o.pods.Pods(j.Namespace).List(labels.SelectorFromSet(deploy.WorkerSelector(j.Name)))
	port := ins.Workers.MetricsPort
	if port == 0 {
		port = deploy.DefaultMetricsPort
	}
	targets := map[string]string{}
	var cpus float64 = 1
	for _, p := range pods {
		if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && p.DeletionTimestamp == nil {
			targets[p.Name] = "http://" + p.Status.PodIP + ":" + strconv.Itoa(port) + "/metrics"
			cpus = scaler.RequestedCPUs(p.Spec.Containers)
		}
	}
	var workers map[string]workerMetrics
	if !ins.Workers.NoMetrics && len(targets) > 0 {
		workers = scrapeWorkers(ctx, o.http, targets)
		secs := map[string]float64{}
		for pod, m := range workers {
			if m.hasCPU {
				secs[pod] = m.cpuSeconds
			}
		}
		if len(secs) > 0 {
			s.window.AddCPU(scaler.CPUSample{At: now, Seconds: secs, CPUs: cpus})
		}
	}

	p := o.cfg.Policy
	p.MinWorkers, p.MaxWorkers, p.ScaleToZero = int(j.Spec.Scaling.MinWorkers), int(j.Spec.Scaling.MaxWorkers), j.Spec.Scaling.ScaleToZero
	if p.MinWorkers == 0 && p.MaxWorkers == 0 {
		p.MinWorkers, p.MaxWorkers = ins.Workers.MinWorkers, ins.Workers.MaxWorkers
	}
	p = p.WithDefaults()
	if err := p.Validate(); err != nil {
		o.log.Warn("policy invalid", "job", key, "err", err)
		return false
	}
	current := int(j.Status.DesiredWorkers)
	sig := s.window.Signals(now, current)
	d, h := scaler.Decide(p, s.history, sig)
	s.history = h

	backlogSeconds := int64(sig.BacklogTime() / time.Second)
	if sig.Throughput <= 0 && sig.Backlog > 0 {
		backlogSeconds = -1 // no throughput: unbounded, shown as -1
	}
	obs := observation{backlog: sig.Backlog, backlogSeconds: backlogSeconds}
	obs.latencySeconds, s.checkpoint = o.workerObservation(ctx, ins, j.Name, workers, s.checkpoint)
	obs.checkpoint = s.checkpoint

	o.mu.Lock()
	defer o.mu.Unlock()
	changed := false
	if !d.NoDecision && d.Desired != current {
		o.log.Info("rescale", "job", key, "current", current, "desired", d.Desired, "reasons", d.Reasons)
		s.desired, s.set = d.Desired, true
		changed = true
	}
	// What was observed is handed on at most every ReportInterval: under
	// traffic it changes at every evaluation.
	if !obs.equal(s.observed) && now.Sub(s.reported) >= o.cfg.ReportInterval {
		s.observed, s.reported = obs, now
		changed = true
	}
	return changed
}
