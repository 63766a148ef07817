package kafka

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/backoff"
)

// metrics are the source's own. Per-task series carry job, pipeline, topic
// and partition; pipeline is the comma-joined names of the pipelines reading
// the topic, so a task has one series however many pipelines read it
// (cardinality: owned tasks per member). A revoked task's series are deleted.
type metrics struct {
	backlog, backlogBytes, wmLag *prometheus.GaugeVec // per task
	recordsIn, bytesIn           *prometheus.CounterVec
	recordsOut                   *prometheus.CounterVec // committed past
	jobBacklog, jobBacklogBytes  *prometheus.GaugeVec   // job: the summary
	assigned, revoked            *prometheus.CounterVec // job
}

func newMetrics(reg prometheus.Registerer) *metrics {
	l := []string{"job", "pipeline", "topic", "partition"}
	j := []string{"job"}
	m := &metrics{
		backlog:         prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_source_backlog_records", Help: "End offset minus committed offset, per owned task."}, l),
		backlogBytes:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_source_backlog_bytes", Help: "Backlog records times the task's observed average record size."}, l),
		wmLag:           prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_source_watermark_lag_seconds", Help: "Now minus the watermark of the task's last committed position."}, l),
		recordsIn:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_source_records_total", Help: "Records fetched and handed to the runtime (input rate)."}, l),
		bytesIn:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_source_bytes_total", Help: "Key and value bytes fetched and handed to the runtime."}, l),
		recordsOut:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_source_committed_records_total", Help: "Records committed past: completed by every sink (output rate)."}, l),
		jobBacklog:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_source_job_backlog_records", Help: "Sum of the backlog of the tasks this member owns."}, j),
		jobBacklogBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_source_job_backlog_bytes", Help: "Sum of the backlog bytes of the tasks this member owns."}, j),
		assigned:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_source_tasks_assigned_total", Help: "Tasks assigned to this member."}, j),
		revoked:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_source_tasks_revoked_total", Help: "Tasks revoked from (or lost by) this member."}, j),
	}
	if reg != nil {
		reg.MustRegister(m.backlog, m.backlogBytes, m.wmLag, m.recordsIn, m.bytesIn, m.recordsOut,
			m.jobBacklog, m.jobBacklogBytes, m.assigned, m.revoked)
	}
	return m
}

// rateTau is the time constant of the byte-rate estimate reported to the
// balancer: a minute, so that a burst does not reshuffle tasks.
const rateTau = time.Minute

// taskStats is what the source tracks of one owned task. Guarded by
// Source.mu.
type taskStats struct {
	labels    []string
	end       int64   // latest known end offset (high watermark); -1 unknown
	committed int64   // last committed offset, or the first fetched; -1 unknown
	watermark int64   // unix µs of the committed position; 0 unknown
	avg       float64 // moving average record size
	// acc is an exponentially decayed sum of delivered bytes (time
	// constant rateTau) as of accAt; acc/rateTau estimates bytes/s.
	acc   float64
	accAt time.Time

	in, bytes, out prometheus.Counter
}

func (s *Source) newTaskStats(id engine.TaskID, offset int64) *taskStats {
	pipes := ""
	if s.cfg.PipelinesOf != nil {
		names := slices.Clone(s.cfg.PipelinesOf(id.Topic))
		slices.Sort(names)
		pipes = strings.Join(names, ",")
	}
	l := []string{s.cfg.Group, pipes, id.Topic, strconv.Itoa(int(id.Partition))}
	return &taskStats{
		labels: l, end: -1, committed: offset,
		in: s.m.recordsIn.WithLabelValues(l...), bytes: s.m.bytesIn.WithLabelValues(l...), out: s.m.recordsOut.WithLabelValues(l...),
	}
}

// addBytes folds n bytes delivered at now into the decayed sum.
func (ts *taskStats) addBytes(n int, now time.Time) {
	ts.acc = ts.decayed(now) + float64(n)
	ts.accAt = now
}

func (ts *taskStats) decayed(now time.Time) float64 {
	if ts.accAt.IsZero() {
		return 0
	}
	return ts.acc * math.Exp(-now.Sub(ts.accAt).Seconds()/rateTau.Seconds())
}

// rates is the balancer's view of this member's tasks: bytes/s each.
func (s *Source) rates() map[string]map[int32]uint64 {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[int32]uint64{}
	for id, ts := range s.owned {
		if ts.accAt.IsZero() {
			continue
		}
		if out[id.Topic] == nil {
			out[id.Topic] = map[int32]uint64{}
		}
		out[id.Topic][id.Partition] = uint64(ts.decayed(now) / rateTau.Seconds())
	}
	return out
}

// Summary is this member's share of the job's backlog, for a coordinator
// that reads it in process; the same figures are the job gauges.
type Summary struct {
	Tasks                        int
	BacklogRecords, BacklogBytes int64
}

// Summary returns the backlog of the tasks this member owns.
func (s *Source) Summary() Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.summaryLocked()
}

func (s *Source) summaryLocked() Summary {
	sum := Summary{Tasks: len(s.owned)}
	for _, ts := range s.owned {
		r, b := ts.backlog()
		sum.BacklogRecords += r
		sum.BacklogBytes += b
	}
	return sum
}

func (ts *taskStats) backlog() (records, bytes int64) {
	if ts.end < 0 || ts.committed < 0 {
		return 0, 0
	}
	r := max(ts.end-ts.committed, 0)
	return r, int64(float64(r) * ts.avg)
}

// publish sets the per-task and job gauges. Called with s.mu held.
func (s *Source) publishLocked() {
	now := s.now()
	for _, ts := range s.owned {
		r, b := ts.backlog()
		s.m.backlog.WithLabelValues(ts.labels...).Set(float64(r))
		s.m.backlogBytes.WithLabelValues(ts.labels...).Set(float64(b))
		if ts.watermark > 0 {
			s.m.wmLag.WithLabelValues(ts.labels...).Set(now.Sub(time.UnixMicro(ts.watermark)).Seconds())
		}
	}
	sum := s.summaryLocked()
	s.m.jobBacklog.WithLabelValues(s.cfg.Group).Set(float64(sum.BacklogRecords))
	s.m.jobBacklogBytes.WithLabelValues(s.cfg.Group).Set(float64(sum.BacklogBytes))
}

// forget deletes a released task's series. Called with s.mu held.
func (s *Source) forgetLocked(ts *taskStats) {
	for _, v := range []*prometheus.GaugeVec{s.m.backlog, s.m.backlogBytes, s.m.wmLag} {
		v.DeleteLabelValues(ts.labels...)
	}
	for _, v := range []*prometheus.CounterVec{s.m.recordsIn, s.m.bytesIn, s.m.recordsOut} {
		v.DeleteLabelValues(ts.labels...)
	}
}

// watch runs beside the poll loop until ctx ends: every WatchInterval it
// lists the end offsets of the owned tasks (a paused task fetches nothing,
// so its fetch high watermark goes stale), publishes the backlog, probes the
// subscription for health, and for a bounded job checks whether the group
// has committed every task to its end.
func (s *Source) watch(ctx context.Context) {
	attempt := 0
	for {
		ok := s.watchOnce(ctx)
		wait := s.cfg.WatchInterval
		if ok {
			attempt = 0
		} else {
			wait = min(wait, retryPause.Delay(attempt))
			attempt++
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// watchOnce reports whether the brokers answered.
func (s *Source) watchOnce(ctx context.Context) bool {
	s.mu.Lock()
	var topics []string
	for id := range s.owned {
		if !slices.Contains(topics, id.Topic) {
			topics = append(topics, id.Topic)
		}
	}
	s.mu.Unlock()
	ok := s.probe(ctx)
	if len(topics) > 0 {
		ends, err := s.adm.ListEndOffsets(ctx, topics...)
		if err == nil {
			s.mu.Lock()
			ends.Each(func(o kadm.ListedOffset) {
				if ts := s.owned[engine.TaskID{Topic: o.Topic, Partition: o.Partition}]; ts != nil && o.Err == nil {
					ts.end = o.Offset
				}
			})
			s.mu.Unlock()
		} else if ctx.Err() == nil {
			s.log.Debug("end offsets not listed", "error", err)
		}
	}
	s.mu.Lock()
	s.publishLocked()
	s.mu.Unlock()
	if s.cfg.StopAtEnd {
		s.checkGroupEnd(ctx)
	}
	return ok
}

// retryPause is the source's wait before a retry: 200 ms doubling to 30 s,
// jittered (engine/backoff) so that many workers do not retry in lockstep.
var retryPause = backoff.Policy{Base: 200 * time.Millisecond, Max: 30 * time.Second}
