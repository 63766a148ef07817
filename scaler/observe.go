package scaler

import (
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
)

// newWorkersGauge is sluice_scaler_workers{job,state}: per job, the
// replicas the StatefulSet asks for (current), those ready (ready), what the
// policy decided (desired) and its bound (max). Dashboards set ready workers
// against the autoscaler's decisions; an alert fires when desired stays at
// max while the job is behind.
func newWorkersGauge() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_scaler_workers", Help: "Workers of a job by state: current (spec replicas), ready, desired (the policy's decision), max (its bound).",
	}, []string{"job", "state"})
}

// observeWorkers records the job's workers after an evaluation.
func (c *Coordinator) observeWorkers(j *jobState, set *appsv1.StatefulSet, d Decision, _ Signals) {
	w := c.metrics.Workers
	w.WithLabelValues(j.cfg.Name, "current").Set(float64(d.Current))
	w.WithLabelValues(j.cfg.Name, "ready").Set(float64(set.Status.ReadyReplicas))
	w.WithLabelValues(j.cfg.Name, "desired").Set(float64(d.Desired))
	w.WithLabelValues(j.cfg.Name, "max").Set(float64(j.cfg.Policy.WithDefaults().MaxWorkers))
}
