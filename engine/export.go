package engine

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Exported metrics and their cardinality.
//
// A fleet of tens of thousands of jobs must fit one Prometheus, so what a
// worker exports by default does not grow with its partitions or sinks: per
// pipeline, its latency, backlog records and backlog seconds; per job, the
// handful of families in jobFamilies (counters summed over their other
// labels at scrape time, so they stay monotonic). That is 3 series per
// pipeline plus at most 11 per job (the 11th only once a shuffled
// aggregation dropped a late window): a job of 10 pipelines exports at most
// 41 whatever its partition count. The instrumentation itself is unchanged:
// with per-partition metrics on (metrics: {per_partition: true} in the job
// file) every family is exported as recorded, per task, per sink, and with
// histograms, plus the per-task latency and backlog below. Queries that
// aggregate with sum by (job, ...) read the same in both modes.

// Per-pipeline families (the collector below), kept with job and pipeline.
var pipelineFamilies = []string{
	"sluice_pipeline_latency_seconds",
	"sluice_pipeline_backlog_records",
	"sluice_pipeline_backlog_seconds",
}

// jobFamilies are the other families exported by default, each with the
// labels it keeps; counters are summed over the labels dropped.
var jobFamilies = map[string][]string{
	"sluice_pipeline_records_in_total":                {"job"},
	"sluice_pipeline_records_out_total":               {"job"},
	"sluice_pipeline_dead_letters_total":              {"job"},
	"sluice_bundle_flush_failures_total":              {"job", "kind"},
	"sluice_checkpoint_last_duration_seconds":         {"job"},
	"sluice_checkpoint_bytes":                         {"job"},
	"sluice_checkpoint_last_commit_timestamp_seconds": {"job"},
	"sluice_checkpoint_cycle_failures_total":          {"job"},
	"process_cpu_seconds_total":                       {"job"},
	// Registered by cmd/sluice for a job with a shuffled aggregation:
	// windows left out of the output belong with the dead letters.
	"sluice_shuffle_late_windows_total": {"job"},
}

// Collector returns the runtime's observed metrics: per pipeline latency,
// backlog records and backlog seconds, the last checkpoint's duration, and
// with perPartition the same latency and backlog per task and pipeline.
// Register it with the registry whose Gatherer Exported filters.
// It also creates the job's counters at zero (records, dead letters, sink
// and checkpoint failures), so that rates and alerts over them read 0, not
// nothing, until the first event.
func (r *Runtime) Collector(perPartition bool) prometheus.Collector {
	m, job := r.metrics, r.job.Name
	for _, p := range r.job.Pipelines {
		m.RecordsIn.WithLabelValues(job, p.Name)
		m.RecordsOut.WithLabelValues(job, p.Name)
		for _, stage := range []string{"decode", "sql"} {
			m.DeadLetters.WithLabelValues(job, p.Name, stage)
		}
		for _, s := range p.Sinks {
			for _, kind := range []string{"retryable", "permanent"} {
				m.FlushFailures.WithLabelValues(job, p.Name, p.Name+"/"+s.Name, kind)
			}
		}
	}
	for _, stage := range []string{"save", "commit"} {
		m.CkptFailures.WithLabelValues(job, stage)
	}
	return &collector{rt: r, perTask: perPartition}
}

var (
	descLatency = prometheus.NewDesc("sluice_pipeline_latency_seconds",
		"Now minus the event time of the oldest record the pipeline has not written, over its tasks with input to process; 0 when none has.", []string{"job", "pipeline"}, nil)
	descBacklog = prometheus.NewDesc("sluice_pipeline_backlog_records",
		"Records past the pipeline's complete positions, up to the end offsets known.", []string{"job", "pipeline"}, nil)
	descBacklogSec = prometheus.NewDesc("sluice_pipeline_backlog_seconds",
		"The backlog divided by the pipeline's recent throughput (its recent input rate when it completes nothing).", []string{"job", "pipeline"}, nil)
	descCkptLast = prometheus.NewDesc("sluice_checkpoint_last_duration_seconds",
		"Duration of the last checkpoint cycle that committed: bundles completed, checkpoint saved, offsets committed.", []string{"job"}, nil)
	descTaskLatency = prometheus.NewDesc("sluice_task_latency_seconds",
		"Per task and pipeline (per_partition): the pipeline latency of one task; 0 when it has no input to process.", []string{"job", "pipeline", "topic", "partition"}, nil)
	descTaskBacklog = prometheus.NewDesc("sluice_task_backlog_records",
		"Per task and pipeline (per_partition): records past the pipeline's complete position.", []string{"job", "pipeline", "topic", "partition"}, nil)
)

type collector struct {
	rt      *Runtime
	perTask bool
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLatency, descBacklog, descBacklogSec, descCkptLast, descTaskLatency, descTaskBacklog} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ob := c.rt.Observe(time.Now())
	job := ob.Job
	for _, p := range ob.Pipelines {
		ch <- prometheus.MustNewConstMetric(descLatency, prometheus.GaugeValue, p.Latency.Seconds(), job, p.Name)
		ch <- prometheus.MustNewConstMetric(descBacklog, prometheus.GaugeValue, float64(p.BacklogRecords), job, p.Name)
		ch <- prometheus.MustNewConstMetric(descBacklogSec, prometheus.GaugeValue, p.BacklogSeconds, job, p.Name)
	}
	for _, cp := range ob.Checkpoints {
		if cp.Error == "" {
			ch <- prometheus.MustNewConstMetric(descCkptLast, prometheus.GaugeValue, cp.Duration.Seconds(), job)
			break
		}
	}
	if !c.perTask {
		return
	}
	for _, t := range ob.Tasks {
		part := strconv.Itoa(int(t.Task.Partition))
		for _, p := range t.Pipelines {
			ch <- prometheus.MustNewConstMetric(descTaskLatency, prometheus.GaugeValue, p.Latency.Seconds(), job, p.Pipeline, t.Task.Topic, part)
			ch <- prometheus.MustNewConstMetric(descTaskBacklog, prometheus.GaugeValue, float64(p.Backlog), job, p.Pipeline, t.Task.Topic, part)
		}
	}
}

// Exported returns what a worker serves on /metrics: with perPartition,
// everything g gathers; otherwise the bounded set described above.
func Exported(g prometheus.Gatherer, perPartition bool) prometheus.Gatherer {
	if perPartition {
		return g
	}
	return bounded{g}
}

type bounded struct{ g prometheus.Gatherer }

func (b bounded) Gather() ([]*dto.MetricFamily, error) {
	fams, err := b.g.Gather()
	var out []*dto.MetricFamily
	for _, f := range fams {
		name := f.GetName()
		if slices.Contains(pipelineFamilies, name) {
			out = append(out, f)
			continue
		}
		keep, ok := jobFamilies[name]
		if !ok {
			continue
		}
		out = append(out, reduce(f, keep))
	}
	return out, err
}

// reduce keeps only the labels keep of f's series, summing the values of
// series that then coincide (counters and gauges; other types are kept as
// they are).
func reduce(f *dto.MetricFamily, keep []string) *dto.MetricFamily {
	if f.GetType() != dto.MetricType_COUNTER && f.GetType() != dto.MetricType_GAUGE {
		return f
	}
	sums := map[string]*dto.Metric{}
	for _, m := range f.Metric {
		var labels []*dto.LabelPair
		var key strings.Builder
		for _, lp := range m.Label {
			if slices.Contains(keep, lp.GetName()) {
				labels = append(labels, lp)
				key.WriteString(lp.GetName() + "=" + lp.GetValue() + "\x00")
			}
		}
		v := m.GetCounter().GetValue()
		if f.GetType() == dto.MetricType_GAUGE {
			v = m.GetGauge().GetValue()
		}
		s := sums[key.String()]
		if s == nil {
			s = &dto.Metric{Label: labels}
			if f.GetType() == dto.MetricType_COUNTER {
				s.Counter = &dto.Counter{Value: new(float64)}
			} else {
				s.Gauge = &dto.Gauge{Value: new(float64)}
			}
			sums[key.String()] = s
		}
		if s.Counter != nil {
			*s.Counter.Value += v
		} else {
			*s.Gauge.Value += v
		}
	}
	r := &dto.MetricFamily{Name: f.Name, Help: f.Help, Type: f.Type}
	for _, k := range slices.Sorted(maps.Keys(sums)) {
		r.Metric = append(r.Metric, sums[k])
	}
	return r
}
