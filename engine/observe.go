package engine

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Observation: what the runtime knows of its tasks, pipelines, sinks and
// checkpoints at one instant, for the latency metrics and the status page.
//
// # Latency
//
// A pipeline's latency is now minus the event time of the oldest record of
// its input that it has not written yet, estimated per task and taken as the
// largest over the tasks that have input to process:
//
//   - A task has input for a pipeline when records past the pipeline's
//     complete position are known: in the task's open or sealed bundle
//     (not yet acknowledged by every writer of the pipeline), delivered
//     and not yet processed, or below the task's end offset as the source
//     last listed it (EndOffsetter). A quiet partition, whose every record
//     is written, has none and counts for nothing: it neither makes a
//     healthy pipeline look late nor hides a stuck one.
//   - The oldest unwritten record is the first record of the open bundle
//     when the pipeline has not acknowledged it (its event time is known
//     exactly); otherwise the next record after the pipeline's position,
//     whose event time is not known yet and is bounded by the watermark of
//     the position (the event time of the last record written), so the
//     estimate never understates.
//
// Everything is read from atomics and short critical sections published by
// the task goroutines; observing costs no work on the per-record path.

// EndOffsetter is implemented by sources that know how far each task's
// input reaches (a Kafka source lists the end offsets of its partitions).
// The runtime calls it from the goroutine that observes (a scrape, a
// status page); it must be safe for concurrent use and must not block.
type EndOffsetter interface {
	// EndOffset returns the offset after the task's last record, and false
	// when it is not known.
	EndOffset(task TaskID) (int64, bool)
}

// taskObs is what a task publishes for observers, beside its position.
type taskObs struct {
	fetched  atomic.Int64 // offset after the last record delivered; 0 none
	openWm   atomic.Int64 // event time (unix µs) of the open bundle's first record; 0: no open bundle
	openFrom atomic.Int64 // offset of the open bundle's first record
	openedAt atomic.Int64 // unix µs the open bundle opened
	state    atomic.Int32 // bundleIdle, bundleOpen, bundleFlushing, bundleRetrying
	pipes    atomic.Pointer[[]pipeMark]
}

// pipeMark is one pipeline's complete position in a task.
type pipeMark struct {
	offset    int64 // -1 unknown
	watermark int64 // unix µs; 0 unknown
}

const (
	bundleIdle int32 = iota
	bundleOpen
	bundleFlushing
	bundleRetrying
)

var bundleStates = [...]string{"idle", "open", "flushing", "retrying"}

// opened records that the task's bundle has its first record (called by the
// task goroutine after the record was processed, so t.wm is its event time).
func (t *task) opened1(offset int64) {
	t.obs.openFrom.Store(offset)
	t.obs.openedAt.Store(time.Now().UnixMicro())
	t.obs.openWm.Store(max(t.wm, 1))
	t.obs.state.Store(bundleOpen)
}

// closed records that the task has no open bundle.
func (t *task) closed() {
	t.obs.openWm.Store(0)
	t.obs.state.Store(bundleIdle)
}

// markPipes publishes each pipeline's complete position.
func (t *task) markPipes() {
	ps := make([]pipeMark, len(t.pipes))
	for i, tp := range t.pipes {
		ps[i] = pipeMark{offset: -1}
		if t.hasPos {
			ps[i] = pipeMark{offset: tp.pos.Offset, watermark: tp.pos.Watermark}
		}
	}
	t.obs.pipes.Store(&ps)
}

// delivered records the offset after the last record delivered.
func (t *task) delivered(next int64) {
	t.obs.fetched.Store(next)
}

// TaskView is one task as observed.
type TaskView struct {
	Task TaskID
	// Offset is the task's complete position (what the group commits), -1
	// when none; End the offset after the last record known (delivered or
	// listed by the source), -1 when unknown.
	Offset, End int64
	Watermark   time.Time // of the complete position; zero when unknown
	Latency     time.Duration
	Backlog     int64
	Bundle      string // idle, open, flushing, retrying
	BundleAge   time.Duration
	Paused      bool // fetching paused: its sinks are behind
	Pipelines   []TaskPipelineView
}

// TaskPipelineView is one pipeline's standing in one task.
type TaskPipelineView struct {
	Pipeline  string
	Offset    int64
	HasInput  bool
	Latency   time.Duration
	Backlog   int64
	Watermark time.Time
}

// PipelineView is one pipeline over the tasks of this member.
type PipelineView struct {
	Name string
	// Tasks reading it; Behind: those with input to process.
	Tasks, Behind  int
	Latency        time.Duration
	BacklogRecords int64
	// BacklogSeconds is BacklogRecords over the pipeline's recent
	// throughput (records completed per second, averaged over a minute);
	// over its recent input rate when it completes nothing; 0 with no
	// backlog.
	BacklogSeconds        float64
	RecordsIn, RecordsOut int64
	DeadLetters           int64
	Throughput            float64 // records/s completed, averaged over a minute
}

// SinkView is one sink of a pipeline with its last failure.
type SinkView struct {
	Name      string // "<pipeline>/<sink>"
	Pipeline  string
	Failing   int // tasks on which it is failing now
	LastError string
	Kind      string // retryable or permanent
	LastAt    time.Time
	Failures  int64
}

// CheckpointView is one checkpoint attempt.
type CheckpointView struct {
	Seq      uint64
	Key      string
	At       time.Time
	Duration time.Duration
	Bytes    int
	Tasks    int
	Error    string // "" when saved and committed
}

// Observation is the runtime at one instant.
type Observation struct {
	Job, Pod    string
	At          time.Time
	Ready       bool
	NotReady    string
	Tasks       []TaskView
	Pipelines   []PipelineView
	Sinks       []SinkView
	Checkpoints []CheckpointView // newest first
}

// observer is the runtime's memory for observations: recent checkpoints,
// sink failures, and each pipeline's throughput estimate.
type observer struct {
	mu     sync.Mutex // guards everything below
	ckpts  []CheckpointView
	sinks  map[string]*SinkView
	rates  map[string]*rateEst
	counts map[string]*pipeTotals
}

type pipeTotals struct{ in, out, dl int64 }

type rateEst struct {
	at           time.Time
	done, in     float64 // counter values at at
	rate, inRate float64 // records/s, decayed
}

// ckptHistory bounds the checkpoints kept for the status page.
const ckptHistory = 20

// rateTau is the time constant of the throughput estimates.
const rateTau = time.Minute

func (r *Runtime) noteCheckpoint(v CheckpointView) {
	o := &r.obs
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ckpts = append(o.ckpts, v)
	if len(o.ckpts) > ckptHistory {
		o.ckpts = o.ckpts[len(o.ckpts)-ckptHistory:]
	}
}

func (r *Runtime) noteSinkError(w *taskWriter, kind, msg string) {
	o := &r.obs
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.sinks == nil {
		o.sinks = map[string]*SinkView{}
	}
	s := o.sinks[w.name]
	if s == nil {
		s = &SinkView{Name: w.name, Pipeline: w.pipe}
		o.sinks[w.name] = s
	}
	s.LastError, s.Kind, s.LastAt = msg, kind, time.Now()
	s.Failures++
}

// Observe returns the runtime as it stands at now.
func (r *Runtime) Observe(now time.Time) *Observation {
	ob := &Observation{Job: r.job.Name, Pod: r.job.Pod, At: now}
	ob.Ready, ob.NotReady = r.Ready()
	r.mu.Lock()
	ts := make([]*task, 0, len(r.tasks))
	for _, t := range r.tasks {
		ts = append(ts, t)
	}
	r.mu.Unlock()
	slices.SortFunc(ts, func(a, b *task) int {
		if a.id.Topic != b.id.Topic {
			if a.id.Topic < b.id.Topic {
				return -1
			}
			return 1
		}
		return int(a.id.Partition - b.id.Partition)
	})
	ends, _ := r.job.Source.(EndOffsetter)
	pipes := map[string]*PipelineView{}
	for _, p := range r.job.Pipelines {
		pipes[p.Name] = &PipelineView{Name: p.Name}
	}
	for _, t := range ts {
		tv := t.observe(now, ends)
		for _, pv := range tv.Pipelines {
			p := pipes[pv.Pipeline]
			p.Tasks++
			if pv.HasInput {
				p.Behind++
			}
			p.Latency = max(p.Latency, pv.Latency)
			p.BacklogRecords += pv.Backlog
		}
		ob.Tasks = append(ob.Tasks, tv)
	}
	r.obs.mu.Lock()
	if r.obs.rates == nil {
		r.obs.rates = map[string]*rateEst{}
	}
	for _, p := range r.job.Pipelines {
		pv := pipes[p.Name]
		if c := r.obs.counts[p.Name]; c != nil {
			pv.RecordsIn, pv.RecordsOut, pv.DeadLetters = c.in, c.out, c.dl
		}
		est := r.obs.rates[p.Name]
		if est == nil {
			est = &rateEst{at: now, done: float64(pv.RecordsIn)}
			r.obs.rates[p.Name] = est
		}
		var in float64
		for _, tv := range ob.Tasks {
			for _, tp := range tv.Pipelines {
				if tp.Pipeline == p.Name && tv.End >= 0 {
					in += float64(tv.End)
				}
			}
		}
		est.update(now, float64(pv.RecordsIn), in)
		pv.Throughput = est.rate
		switch {
		case pv.BacklogRecords == 0:
		case est.rate > 0:
			pv.BacklogSeconds = float64(pv.BacklogRecords) / est.rate
		case est.inRate > 0:
			pv.BacklogSeconds = float64(pv.BacklogRecords) / est.inRate
		}
		ob.Pipelines = append(ob.Pipelines, *pv)
	}
	for i := len(r.obs.ckpts) - 1; i >= 0; i-- {
		ob.Checkpoints = append(ob.Checkpoints, r.obs.ckpts[i])
	}
	failing := r.failingSinks()
	for _, p := range r.job.Pipelines {
		for _, s := range p.Sinks {
			name := p.Name + "/" + s.Name
			v := SinkView{Name: name, Pipeline: p.Name}
			if s := r.obs.sinks[name]; s != nil {
				v = *s
			}
			v.Failing = failing[name]
			ob.Sinks = append(ob.Sinks, v)
		}
	}
	r.obs.mu.Unlock()
	return ob
}

// update folds the counters read at now into the decayed rates. in is the
// sum of the known end offsets (its growth is the input rate; a task moving
// away makes it drop, which is ignored).
func (e *rateEst) update(now time.Time, done, in float64) {
	dt := now.Sub(e.at).Seconds()
	if dt < 0.5 {
		return
	}
	w := 1 - math.Exp(-dt/rateTau.Seconds())
	e.rate += w * (max(done-e.done, 0)/dt - e.rate)
	if e.in > 0 {
		e.inRate += w * (max(in-e.in, 0)/dt - e.inRate)
	}
	e.at, e.done, e.in = now, done, in
}

// failingSinks counts, per sink, the tasks on which it fails now.
func (r *Runtime) failingSinks() map[string]int {
	r.faultMu.Lock()
	defer r.faultMu.Unlock()
	out := map[string]int{}
	for k := range r.faults {
		if k.kind == faultSink {
			out[k.name]++
		}
	}
	return out
}

// observe reads the task's published state.
func (t *task) observe(now time.Time, ends EndOffsetter) TaskView {
	snap := t.position()
	tv := TaskView{Task: t.id, Offset: snap.Offset, End: -1, Bundle: bundleStates[t.obs.state.Load()]}
	if snap.Watermark > 0 {
		tv.Watermark = time.UnixMicro(snap.Watermark)
	}
	end := t.obs.fetched.Load()
	if end == 0 {
		end = -1
	}
	if ends != nil {
		if e, ok := ends.EndOffset(t.id); ok {
			end = max(end, e)
		}
	}
	tv.End = end
	t.mu.Lock()
	tv.Paused = t.paused
	t.mu.Unlock()
	openWm, openFrom := t.obs.openWm.Load(), t.obs.openFrom.Load()
	if openWm != 0 {
		tv.BundleAge = now.Sub(time.UnixMicro(t.obs.openedAt.Load()))
	}
	var marks []pipeMark
	if p := t.obs.pipes.Load(); p != nil {
		marks = *p
	}
	for i, tp := range t.pipes {
		m := pipeMark{offset: -1}
		if i < len(marks) {
			m = marks[i]
		}
		pv := TaskPipelineView{Pipeline: tp.p.Name, Offset: m.offset}
		if m.watermark > 0 {
			pv.Watermark = time.UnixMicro(m.watermark)
		}
		inBundle := openWm != 0 && (m.offset < 0 || openFrom >= m.offset)
		oldest := int64(0)
		switch {
		case inBundle:
			pv.HasInput, oldest = true, openWm
		case m.offset >= 0 && end > m.offset:
			pv.HasInput, oldest = true, m.watermark
		}
		if m.offset >= 0 && end > m.offset {
			pv.Backlog = end - m.offset
		}
		if pv.HasInput && oldest > 1 {
			pv.Latency = max(now.Sub(time.UnixMicro(oldest)), 0)
		}
		tv.Latency = max(tv.Latency, pv.Latency)
		tv.Backlog = max(tv.Backlog, pv.Backlog)
		tv.Pipelines = append(tv.Pipelines, pv)
	}
	return tv
}

// countPipe adds a complete bundle's counts to its pipeline's totals.
func (r *Runtime) countPipe(name string, c pipeCount) {
	o := &r.obs
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.counts == nil {
		o.counts = map[string]*pipeTotals{}
	}
	t := o.counts[name]
	if t == nil {
		t = &pipeTotals{}
		o.counts[name] = t
	}
	t.in += int64(c.in)
	t.out += int64(c.out)
	t.dl += int64(c.dlDecode + c.dlSQL)
}
