package operator

import (
	"context"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
	"github.com/sluicehq/sluice/scaler"
)

// The families read from each worker's /metrics, in one scrape per pod
// per evaluation (the one the autoscaler makes for CPU anyway).
const (
	metricCPU          = "process_cpu_seconds_total"
	metricLatency      = "sluice_pipeline_latency_seconds"
	metricCkptBytes    = "sluice_checkpoint_bytes"
	metricCkptCommitAt = "sluice_checkpoint_last_commit_timestamp_seconds"
)

// workerMetrics is what one scrape of a worker said.
type workerMetrics struct {
	cpuSeconds float64
	hasCPU     bool
	// latency is the largest pipeline latency, seconds.
	latency float64
	// ckptBytes and ckptCommitted (unix seconds, 0 for none) describe the
	// worker's last committed checkpoint.
	ckptBytes, ckptCommitted float64
}

// scrapeWorkers scrapes every target (pod name to /metrics URL) at once; a
// pod that does not answer is left out.
func scrapeWorkers(ctx context.Context, hc *http.Client, targets map[string]string) map[string]workerMetrics {
	out := make(map[string]workerMetrics, len(targets))
	for pod, f := range scaler.Scrape(ctx, hc, targets) {
		out[pod] = workerMetricsFrom(f)
	}
	return out
}

// workerMetricsFrom reads the families above from one scrape; a family
// that is absent reads as zero.
func workerMetricsFrom(f scaler.Families) workerMetrics {
	var m workerMetrics
	m.cpuSeconds, m.hasCPU = f.Largest(metricCPU)
	m.latency, _ = f.Largest(metricLatency)
	m.ckptBytes, _ = f.Largest(metricCkptBytes)
	m.ckptCommitted, _ = f.Largest(metricCkptCommitAt)
	return m
}

// workerObservation is the job's latency (the largest of its workers') and
// its newest checkpoint: the time and size its workers report, and the key
// the job's consumer group committed with that worker's offsets (the
// commit metadata names the checkpoint object). The group is asked only
// when a worker reports a checkpoint newer than last, so a job at rest
// costs no request; last is returned while nothing newer is known.
func (o *Operator) workerObservation(ctx context.Context, ins Inspection, job string, workers map[string]workerMetrics, last *v1alpha1.Checkpoint) (int64, *v1alpha1.Checkpoint) {
	var latency float64
	newestPod, newest := "", workerMetrics{}
	for pod, m := range workers {
		latency = max(latency, m.latency)
		if m.ckptCommitted > newest.ckptCommitted {
			newestPod, newest = pod, m
		}
	}
	if newestPod == "" || ins.Admin == nil {
		return int64(latency), last
	}
	at := time.UnixMicro(int64(newest.ckptCommitted * 1e6)).Truncate(time.Second)
	if last != nil && !at.After(last.Time.Time) {
		return int64(latency), last
	}
	committed, err := ins.Admin.FetchOffsets(ctx, job)
	if err != nil {
		o.log.Warn("reading the checkpoint key failed", "job", job, "err", err)
		return int64(latency), last
	}
	key, seq := "", uint64(0)
	for _, ps := range committed {
		for _, r := range ps {
			if r.Err != nil {
				continue
			}
			if _, pod, s, ok := checkpoint.ParseKey(r.Metadata); ok && pod == newestPod && (key == "" || s > seq) {
				key, seq = r.Metadata, s
			}
		}
	}
	return int64(latency), &v1alpha1.Checkpoint{Key: key, Time: metav1.NewTime(at), Bytes: int64(newest.ckptBytes)}
}

func (a observation) equal(b observation) bool {
	if a.backlog != b.backlog || a.backlogSeconds != b.backlogSeconds || a.latencySeconds != b.latencySeconds {
		return false
	}
	if a.checkpoint == nil || b.checkpoint == nil {
		return a.checkpoint == b.checkpoint
	}
	return a.checkpoint.Key == b.checkpoint.Key && a.checkpoint.Bytes == b.checkpoint.Bytes && a.checkpoint.Time.Equal(&b.checkpoint.Time)
}
