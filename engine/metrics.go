package engine

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// SinkMetrics are the metrics every sink reports, labelled by job, pipeline
// and sink (the sink's kind and its index in the pipeline, as "bigquery/0").
// Build it once per process with NewSinkMetrics and hand each sink its
// labelled view with For.
type SinkMetrics struct {
	rows, bytes, batches, retries *prometheus.CounterVec
	errors                        *prometheus.CounterVec
	latency                       *prometheus.HistogramVec
	inflight                      *prometheus.GaugeVec
}

// NewSinkMetrics registers the sink metrics with reg.
func NewSinkMetrics(reg prometheus.Registerer) *SinkMetrics {
	l := []string{"job", "pipeline", "sink"}
	m := &SinkMetrics{
		rows:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_rows_total", Help: "Rows acknowledged by the destination."}, l),
		bytes:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_bytes_total", Help: "Encoded bytes acknowledged by the destination."}, l),
		batches:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_batches_total", Help: "Batches (flushes) acknowledged by the destination."}, l),
		retries:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_retries_total", Help: "Retried requests to the destination."}, l),
		errors:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_errors_total", Help: "Errors from the destination, by kind."}, append(l, "kind")),
		latency:  prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_sink_flush_seconds", Help: "Time from flush to acknowledgement.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}, l),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_sink_inflight_rows", Help: "Rows written but not yet acknowledged."}, l),
	}
	if reg != nil {
		reg.MustRegister(m.rows, m.bytes, m.batches, m.retries, m.errors, m.latency, m.inflight)
	}
	return m
}

// SinkStats is one sink's labelled view of SinkMetrics. The zero value (and a
// nil *SinkStats) records nothing, so sinks built in tests need no registry.
type SinkStats struct {
	Rows, Bytes, Batches, Retries prometheus.Counter
	Latency                       prometheus.Observer
	InFlight                      prometheus.Gauge
	errors                        *prometheus.CounterVec
	labels                        []string
}

// For returns the view for one sink.
func (m *SinkMetrics) For(job, pipeline, sink string) *SinkStats {
	if m == nil {
		return nil
	}
	return &SinkStats{
		Rows:     m.rows.WithLabelValues(job, pipeline, sink),
		Bytes:    m.bytes.WithLabelValues(job, pipeline, sink),
		Batches:  m.batches.WithLabelValues(job, pipeline, sink),
		Retries:  m.retries.WithLabelValues(job, pipeline, sink),
		Latency:  m.latency.WithLabelValues(job, pipeline, sink),
		InFlight: m.inflight.WithLabelValues(job, pipeline, sink),
		errors:   m.errors,
		labels:   []string{job, pipeline, sink},
	}
}

// Acked records n rows of b bytes acknowledged in one batch after seconds.
func (s *SinkStats) Acked(n, b int, seconds float64) {
	if s == nil || s.Rows == nil {
		return
	}
	s.Rows.Add(float64(n))
	s.Bytes.Add(float64(b))
	s.Batches.Inc()
	s.Latency.Observe(seconds)
}

// Retry records one retried request.
func (s *SinkStats) Retry() {
	if s == nil || s.Retries == nil {
		return
	}
	s.Retries.Inc()
}

// Error records an error of a kind ("timeout", "http_429", "quota", ...).
func (s *SinkStats) Error(kind string) {
	if s == nil || s.errors == nil {
		return
	}
	s.errors.WithLabelValues(append(s.labels, kind)...).Inc()
}

// AddInFlight moves the in-flight gauge by n.
func (s *SinkStats) AddInFlight(n int) {
	if s == nil || s.InFlight == nil {
		return
	}
	s.InFlight.Add(float64(n))
}

// SinkEnv is what the runtime hands every sink it builds besides the sink's
// own settings: who it is, how to log and count, and where rows that the
// destination rejects for good go.
type SinkEnv struct {
	Job, Pipeline string
	Name          string // "bigquery/0": kind and index in the pipeline
	Logger        *slog.Logger
	Stats         *SinkStats
	// DeadLetter receives rejected rows as dead letters (DeadLetterSchema);
	// nil means the sink fails its Flush instead.
	DeadLetter Sink
	// Redact removes secrets from text the sink puts in errors and dead
	// letters; nil leaves text as it is.
	Redact Redactor
}

// Log returns the environment's logger, or a discarding one.
func (e SinkEnv) Log() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

// Metrics are the runtime's own metrics. Build them once per process.
type Metrics struct {
	Registry prometheus.Registerer

	RecordsIn     *prometheus.CounterVec   // job, pipeline
	RecordsOut    *prometheus.CounterVec   // job, pipeline
	DeadLetters   *prometheus.CounterVec   // job, pipeline, stage
	BundleRecords *prometheus.HistogramVec // job
	BundleSeconds *prometheus.HistogramVec // job: open to complete
	WatermarkLag  *prometheus.GaugeVec     // job, topic, partition: now − watermark
	Tasks         *prometheus.GaugeVec     // job
	Paused        *prometheus.GaugeVec     // job: tasks paused for backpressure
	CkptSeconds   *prometheus.HistogramVec // job
	CkptBytes     *prometheus.GaugeVec     // job
	CkptFailures  *prometheus.CounterVec   // job, stage (save, commit)
	CkptLast      *prometheus.GaugeVec     // job: unix time of the last durable checkpoint
	DrainSeconds  *prometheus.GaugeVec     // job
	FlushFailures *prometheus.CounterVec   // job, pipeline, sink, kind (retryable, permanent)
	Sinks         *SinkMetrics
}

// NewMetrics builds and registers the runtime's metrics with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	j := []string{"job"}
	m := &Metrics{
		Registry:      reg,
		RecordsIn:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_pipeline_records_in_total", Help: "Records read by a pipeline."}, []string{"job", "pipeline"}),
		RecordsOut:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_pipeline_records_out_total", Help: "Rows a pipeline's SQL passed to its sinks."}, []string{"job", "pipeline"}),
		DeadLetters:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_pipeline_dead_letters_total", Help: "Records sent to the dead-letter destination, by stage."}, []string{"job", "pipeline", "stage"}),
		BundleRecords: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_bundle_records", Help: "Records per complete bundle.", Buckets: prometheus.ExponentialBuckets(1, 4, 9)}, j),
		BundleSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_bundle_seconds", Help: "Time from a bundle's first record to its completion.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}, j),
		WatermarkLag:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_task_watermark_lag_seconds", Help: "Now minus the task's watermark."}, []string{"job", "topic", "partition"}),
		Tasks:         prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_tasks", Help: "Tasks owned by this member."}, j),
		Paused:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_tasks_paused", Help: "Tasks whose fetching is paused because their sinks are behind."}, j),
		CkptSeconds:   prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_checkpoint_cycle_seconds", Help: "Time to complete every task's bundle, save the checkpoint and commit its offsets.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}, j),
		CkptFailures:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_checkpoint_cycle_failures_total", Help: "Checkpoint cycles that failed, by stage (save, commit); no offset is committed then."}, []string{"job", "stage"}),
		CkptLast:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_checkpoint_last_commit_timestamp_seconds", Help: "Unix time of the last checkpoint whose offsets were committed."}, j),
		DrainSeconds:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_drain_seconds", Help: "Duration of the last drain."}, j),
		FlushFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_bundle_flush_failures_total", Help: "Failed flushes (or opens) of a sink's writer, by kind (retryable, permanent); the bundle is replayed into that writer alone."}, []string{"job", "pipeline", "sink", "kind"}),
		Sinks:         NewSinkMetrics(reg),
	}
	if reg != nil {
		reg.MustRegister(m.RecordsIn, m.RecordsOut, m.DeadLetters, m.BundleRecords, m.BundleSeconds, m.WatermarkLag,
			m.Tasks, m.Paused, m.CkptSeconds, m.CkptFailures, m.CkptLast, m.DrainSeconds, m.FlushFailures)
	}
	return m
}
