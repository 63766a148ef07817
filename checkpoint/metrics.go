package checkpoint

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Checkpointer's, labelled by job (the pod is the scrape
// target's own label). A nil *metrics records nothing.
type metrics struct {
	bytes       *prometheus.GaugeVec
	written     *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	failures    *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	retries     *prometheus.CounterVec
	corrupt     *prometheus.CounterVec
	collected   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	job := []string{"job"}
	m := &metrics{
		bytes:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_checkpoint_bytes", Help: "Size of the last checkpoint object written."}, job),
		written:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_checkpoint_written_bytes_total", Help: "Bytes of checkpoint objects written."}, job),
		duration:    prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_checkpoint_duration_seconds", Help: "Time to encode and durably write one checkpoint, retries included.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}, job),
		failures:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_checkpoint_failures_total", Help: "Failed checkpoint operations, by op (save, load, collect)."}, []string{"job", "op"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_checkpoint_last_success_timestamp_seconds", Help: "Unix time of the last checkpoint written."}, job),
		retries:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_checkpoint_retries_total", Help: "Retried requests to the checkpoint store, by op."}, []string{"op"}),
		corrupt:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_checkpoint_corrupt_total", Help: "Checkpoint objects found corrupt or truncated on load."}, job),
		collected:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_checkpoint_collected_total", Help: "Checkpoint and state objects deleted by garbage collection."}, job),
	}
	reg.MustRegister(m.bytes, m.written, m.duration, m.failures, m.lastSuccess, m.retries, m.corrupt, m.collected)
	return m
}

func (m *metrics) saved(job string, size int, seconds float64, unix float64) {
	if m == nil {
		return
	}
	m.bytes.WithLabelValues(job).Set(float64(size))
	m.written.WithLabelValues(job).Add(float64(size))
	m.duration.WithLabelValues(job).Observe(seconds)
	m.lastSuccess.WithLabelValues(job).Set(unix)
}

func (m *metrics) failed(job, op string) {
	if m != nil {
		m.failures.WithLabelValues(job, op).Inc()
	}
}

func (m *metrics) retried(op string) {
	if m != nil {
		m.retries.WithLabelValues(op).Inc()
	}
}

func (m *metrics) corrupted(job string) {
	if m != nil {
		m.corrupt.WithLabelValues(job).Inc()
	}
}

func (m *metrics) deleted(job string, n int) {
	if m != nil && n > 0 {
		m.collected.WithLabelValues(job).Add(float64(n))
	}
}
