package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Runtime runs one job in this process. It implements Handler for the job's
// Source. Build it with New, then call Run once.
type Runtime struct {
	job     *Job
	log     *slog.Logger
	metrics *Metrics

	hard    context.Context // cancelled only past the drain deadline or on failure
	cancel  context.CancelFunc
	mu      sync.Mutex // guards tasks, ending
	tasks   map[TaskID]*task
	ending  []*task // tasks that reached the end of a bounded source
	endedCh chan struct{}

	ckptMu   sync.Mutex // serializes checkpoints; guards seq, lastKeys, committed
	seq      uint64
	lastKeys []string
	// committed is the last committed position of each task, to skip
	// checkpoints that would change nothing.
	committed map[TaskID]Position

	knownMu sync.Mutex // guards known
	// known is each task's entry in the last checkpoint this pod saved (or
	// found at start), to restore stateful writers of reassigned tasks.
	known map[TaskID]TaskState

	stats     Stats
	ready     atomic.Pointer[string] // nil when ready; else the reason
	drainReq  chan struct{}
	drainOnce sync.Once
}

// Stats is a live summary for terminals and status pages. Read it with
// Runtime.Stats.
type Stats struct {
	RecordsIn, RecordsOut, DeadLetters atomic.Int64
	Checkpoints                        atomic.Int64
	LastCheckpointBytes                atomic.Int64
	LastCheckpointUnixMicro            atomic.Int64
	LastCheckpointKey                  atomic.Pointer[string]
	Tasks                              atomic.Int64
}

func (s *Stats) add(c pipeCount) {
	s.RecordsIn.Add(int64(c.in))
	s.RecordsOut.Add(int64(c.out))
	s.DeadLetters.Add(int64(c.dlDecode + c.dlSQL))
}

// New checks job and returns its runtime.
func New(job *Job) (*Runtime, error) {
	if job.Name == "" || job.Source == nil || job.Store == nil || len(job.Pipelines) == 0 {
		return nil, errors.New("engine: a job needs a name, a source, a checkpoint store and pipelines")
	}
	for _, p := range job.Pipelines {
		if p.Decoder == nil || p.Transform == nil || p.Reads == nil || len(p.Sinks) == 0 {
			return nil, fmt.Errorf("engine: pipeline %q needs a decoder, a transform, topics and a sink", p.Name)
		}
		seen := map[string]bool{}
		for i := range p.Sinks {
			if p.Sinks[i].Name == "" {
				p.Sinks[i].Name = strconv.Itoa(i)
			}
			if seen[p.Sinks[i].Name] {
				return nil, fmt.Errorf("engine: pipeline %q has two sinks named %q", p.Name, p.Sinks[i].Name)
			}
			seen[p.Sinks[i].Name] = true
		}
	}
	job.defaults()
	if err := project(job.Pipelines); err != nil {
		return nil, err
	}
	r := &Runtime{
		job:       job,
		log:       job.Logger.With("job", job.Name, "pod", job.Pod),
		metrics:   job.Metrics,
		tasks:     map[TaskID]*task{},
		committed: map[TaskID]Position{},
		known:     map[TaskID]TaskState{},
		endedCh:   make(chan struct{}, 1),
		drainReq:  make(chan struct{}),
	}
	// Checkpoint sequence numbers start at the current time in microseconds,
	// so that a restarted pod never reuses the key of an object it wrote
	// before (stores refuse to overwrite one) and keys still sort in order.
	r.seq = uint64(time.Now().UnixMicro())
	starting := "starting"
	r.ready.Store(&starting)
	return r, nil
}

// Stats returns the live summary.
func (r *Runtime) Stats() *Stats { return &r.stats }

// Ready reports whether the runtime is processing, and if not, why.
func (r *Runtime) Ready() (bool, string) {
	if p := r.ready.Load(); p != nil {
		return false, *p
	}
	return true, ""
}

// SetUnready marks the runtime not ready with a reason (a source that cannot
// reach its brokers, say); SetUnready("") marks it ready again.
func (r *Runtime) SetUnready(reason string) {
	if reason == "" {
		r.ready.Store(nil)
		return
	}
	r.ready.Store(&reason)
}

// Drain asks a running job to drain and stop, as SIGTERM does.
func (r *Runtime) Drain() { r.drainOnce.Do(func() { close(r.drainReq) }) }

// Run runs the job until ctx is done (then it drains: stops fetching,
// completes every bundle, checkpoints, commits) or, for bounded sources, until
// every task has ended and been checkpointed. It returns nil after a clean
// drain or end.
func (r *Runtime) Run(ctx context.Context) error {
	r.hard, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer r.cancel()
	r.loadLatest(r.hard)
	srcCtx, stopSource := context.WithCancel(r.hard)
	defer stopSource()
	srcDone := make(chan error, 1)
	go func() { srcDone <- r.job.Source.Run(srcCtx, r) }()
	r.SetUnready("")

	tick := time.NewTicker(r.job.Interval)
	defer tick.Stop()
	sourceEnded := false
	for {
		select {
		case <-ctx.Done():
			return r.drain(stopSource, srcDone, sourceEnded)
		case <-r.drainReq:
			return r.drain(stopSource, srcDone, sourceEnded)
		case <-tick.C:
			r.checkpoint(r.hard, nil)
		case err := <-srcDone:
			if err != nil {
				r.SetUnready(err.Error())
				r.stopTasks(false)
				r.closeAll()
				return fmt.Errorf("engine: source: %w", err)
			}
			sourceEnded = true
			srcDone = nil
			if r.allEnded() {
				return r.finish()
			}
		case <-r.endedCh:
			// Ended tasks stay in the task map until the job finishes, so
			// that their positions are in every checkpoint.
			if sourceEnded && r.allEnded() {
				return r.finish()
			}
		}
	}
}

// drain stops fetching, completes every task's bundle, checkpoints and commits,
// all within the drain deadline.
func (r *Runtime) drain(stopSource context.CancelFunc, srcDone chan error, sourceEnded bool) error {
	start := time.Now()
	r.SetUnready("draining")
	r.log.Info("drain started")
	deadline := time.AfterFunc(r.job.DrainDeadline, func() {
		r.log.Error("drain deadline passed; stopping without a final checkpoint", "deadline", r.job.DrainDeadline)
		r.cancel()
	})
	defer deadline.Stop()
	stopSource()
	if !sourceEnded {
		<-srcDone
	}
	final := r.stopTasks(true)
	err := r.checkpoint(r.hard, final)
	r.closeAll()
	r.metrics.DrainSeconds.WithLabelValues(r.job.Name).Set(time.Since(start).Seconds())
	if r.hard.Err() != nil {
		return errors.New("engine: drain deadline passed; the next owner replays from the last commit")
	}
	if err != nil {
		return fmt.Errorf("engine: final checkpoint: %w", err)
	}
	r.log.Info("drain complete", "seconds", time.Since(start).Seconds())
	return nil
}

// finish ends a bounded job whose tasks have all ended.
func (r *Runtime) finish() error {
	final := r.stopTasks(true)
	err := r.checkpoint(r.hard, final)
	r.closeAll()
	if err != nil {
		return fmt.Errorf("engine: final checkpoint: %w", err)
	}
	r.log.Info("bounded job complete")
	return nil
}

func (r *Runtime) closeAll() {
	ctx := context.WithoutCancel(r.hard)
	seen := map[Sink]bool{}
	for _, p := range r.job.Pipelines {
		sinks := []Sink{p.DeadLetter}
		for _, ns := range p.Sinks {
			sinks = append(sinks, ns.Sink)
		}
		for _, s := range sinks {
			if s == nil || seen[s] {
				continue
			}
			seen[s] = true
			if err := s.Close(ctx); err != nil {
				r.log.Warn("sink close failed", "pipeline", p.Name, "error", err)
			}
		}
	}
	if c, ok := r.job.Source.(io.Closer); ok {
		if err := c.Close(); err != nil {
			r.log.Warn("source close failed", "error", err)
		}
	}
}

// stopTasks stops every task: with complete set, each first processes what was
// delivered and completes its bundle. It returns their final positions.
func (r *Runtime) stopTasks(complete bool) []Position {
	r.mu.Lock()
	ts := make([]*task, 0, len(r.tasks))
	for _, t := range r.tasks {
		ts = append(ts, t)
	}
	clear(r.tasks)
	r.ending = nil
	r.mu.Unlock()
	return r.stop(ts, complete)
}

func (r *Runtime) stop(ts []*task, complete bool) []Position {
	if !complete {
		r.cancel()
	}
	for _, t := range ts {
		close(t.stop)
	}
	var final []Position
	for _, t := range ts {
		<-t.done
		if p := t.position(); p.Offset >= 0 {
			final = append(final, p)
		}
	}
	r.stats.Tasks.Add(-int64(len(ts)))
	r.metrics.Tasks.WithLabelValues(r.job.Name).Set(float64(r.stats.Tasks.Load()))
	return final
}

// checkpoint asks every task to complete its open bundle, writes one
// checkpoint with every position, and only once it is durable commits the
// positions with the checkpoint key as metadata. extra holds the final
// positions of tasks that have just stopped.
func (r *Runtime) checkpoint(ctx context.Context, extra []Position) error {
	r.ckptMu.Lock()
	defer r.ckptMu.Unlock()
	start := time.Now()
	r.mu.Lock()
	ts := make([]*task, 0, len(r.tasks))
	for _, t := range r.tasks {
		ts = append(ts, t)
	}
	r.mu.Unlock()

	positions := slices.Clone(extra)
	replies := make(chan Position, len(ts))
	asked := 0
	for _, t := range ts {
		select {
		case t.cut <- replies:
			asked++
		case <-t.done:
			if p := t.position(); p.Offset >= 0 {
				positions = append(positions, p)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for ; asked > 0; asked-- {
		select {
		case p := <-replies:
			if p.Offset >= 0 {
				positions = append(positions, p)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	changed := false
	for _, p := range positions {
		if c, ok := r.committed[p.Task]; !ok || c.Offset != p.Offset {
			changed = true
			break
		}
	}
	if !changed {
		return nil
	}
	slices.SortFunc(positions, func(a, b Position) int {
		if a.Task.Topic != b.Task.Topic {
			if a.Task.Topic < b.Task.Topic {
				return -1
			}
			return 1
		}
		return int(a.Task.Partition - b.Task.Partition)
	})
	r.seq++
	cp := &Checkpoint{Job: r.job.Name, Pod: r.job.Pod, Seq: r.seq, Time: time.Now().UnixMicro()}
	for _, p := range positions {
		cp.Tasks = append(cp.Tasks, TaskState{Task: p.Task, Offset: p.Offset, Watermark: p.Watermark, Sinks: p.Sinks})
	}
	m := r.metrics
	key, size, err := r.job.Store.Save(ctx, cp)
	if err != nil {
		m.CkptFailures.WithLabelValues(r.job.Name, "save").Inc()
		r.log.Error("checkpoint not saved; offsets not committed", "seq", cp.Seq, "error", err)
		return err
	}
	if err := r.job.Source.Commit(ctx, positions, key); err != nil {
		m.CkptFailures.WithLabelValues(r.job.Name, "commit").Inc()
		r.log.Error("checkpoint saved but offsets not committed", "seq", cp.Seq, "key", key, "error", err)
		return err
	}
	r.knownMu.Lock()
	for i, p := range positions {
		r.committed[p.Task] = p
		r.known[p.Task] = cp.Tasks[i]
	}
	r.knownMu.Unlock()
	m.CkptSeconds.WithLabelValues(r.job.Name).Observe(time.Since(start).Seconds())
	m.CkptLast.WithLabelValues(r.job.Name).SetToCurrentTime()
	r.stats.Checkpoints.Add(1)
	r.stats.LastCheckpointBytes.Store(int64(size))
	r.stats.LastCheckpointUnixMicro.Store(cp.Time)
	r.stats.LastCheckpointKey.Store(&key)
	r.log.Debug("checkpoint committed", "seq", cp.Seq, "key", key, "bytes", size, "tasks", len(positions))
	r.lastKeys = append(r.lastKeys, key)
	if c, ok := r.job.Store.(CheckpointCollector); ok && len(r.lastKeys) > r.job.Retain {
		r.lastKeys = r.lastKeys[len(r.lastKeys)-r.job.Retain:]
		if err := c.Collect(ctx, r.job.Name, r.job.Pod, r.lastKeys); err != nil {
			r.log.Warn("checkpoint garbage collection failed", "error", err)
		}
	}
	return nil
}

// Assign implements Handler.
func (r *Runtime) Assign(ctx context.Context, as []Assignment) {
	for _, a := range as {
		var pipes []*Pipeline
		for _, p := range r.job.Pipelines {
			if p.Reads(a.Task.Topic) {
				pipes = append(pipes, p)
			}
		}
		if len(pipes) == 0 {
			continue
		}
		r.mu.Lock()
		if _, ok := r.tasks[a.Task]; ok {
			r.mu.Unlock()
			continue
		}
		t := newTask(r, a, pipes, r.restored(ctx, a))
		r.tasks[a.Task] = t
		r.mu.Unlock()
		r.stats.Tasks.Add(1)
		go t.run(r.hard)
	}
	r.metrics.Tasks.WithLabelValues(r.job.Name).Set(float64(r.stats.Tasks.Load()))
	r.log.Info("tasks assigned", "count", len(as))
}

// LatestLoader is implemented by checkpoint stores that can find a pod's
// newest checkpoint; the runtime reads it at start to restore the state of
// stateful writers (a pod restarted after a crash gets its tasks back).
type LatestLoader interface {
	LoadLatest(ctx context.Context, job, pod string) (*Checkpoint, string, error)
}

func (r *Runtime) loadLatest(ctx context.Context) {
	l, ok := r.job.Store.(LatestLoader)
	if !ok {
		return
	}
	cp, key, err := l.LoadLatest(ctx, r.job.Name, r.job.Pod)
	if err != nil || cp == nil {
		return
	}
	r.knownMu.Lock()
	for _, ts := range cp.Tasks {
		r.known[ts.Task] = ts
	}
	r.knownMu.Unlock()
	r.log.Info("latest checkpoint found", "key", key, "tasks", len(cp.Tasks))
}

// restored returns the writer states recorded at the assignment's offset:
// from the checkpoint its commit metadata names, or from this pod's own
// checkpoints. A state is used only when it was recorded at exactly the
// offset the task resumes from.
func (r *Runtime) restored(ctx context.Context, a Assignment) []SinkState {
	if a.Offset < 0 {
		return nil
	}
	r.knownMu.Lock()
	ts, ok := r.known[a.Task]
	r.knownMu.Unlock()
	if ok && ts.Offset == a.Offset {
		return ts.Sinks
	}
	if a.Meta == "" {
		return nil
	}
	cp, err := r.job.Store.Load(ctx, a.Meta)
	if err != nil {
		r.log.Warn("checkpoint named by the commit unreadable; sinks start fresh", "key", a.Meta, "task", a.Task.String(), "error", err)
		return nil
	}
	for _, ts := range cp.Tasks {
		if ts.Task == a.Task && ts.Offset == a.Offset {
			return ts.Sinks
		}
	}
	return nil
}

// Revoke implements Handler: the tasks complete their bundles, a checkpoint
// holding their final positions is saved and committed, then they are gone.
func (r *Runtime) Revoke(ctx context.Context, ids []TaskID) {
	var ts []*task
	r.mu.Lock()
	for _, id := range ids {
		if t, ok := r.tasks[id]; ok {
			ts = append(ts, t)
			delete(r.tasks, id)
		}
	}
	r.mu.Unlock()
	if len(ts) == 0 {
		return
	}
	final := r.stop(ts, true)
	if err := r.checkpoint(r.hard, final); err != nil {
		r.log.Warn("revoked tasks not committed; their next owner replays them", "error", err)
	}
	r.log.Info("tasks revoked", "count", len(ts))
}

// Deliver implements Handler.
func (r *Runtime) Deliver(id TaskID, recs []Record) {
	r.mu.Lock()
	t := r.tasks[id]
	r.mu.Unlock()
	if t != nil {
		t.deliver(recs)
	}
}

// End implements Handler.
func (r *Runtime) End(id TaskID) {
	r.mu.Lock()
	t := r.tasks[id]
	r.mu.Unlock()
	if t != nil {
		t.end()
	}
}

func (r *Runtime) taskEnded(t *task) {
	r.mu.Lock()
	r.ending = append(r.ending, t)
	r.mu.Unlock()
	select {
	case r.endedCh <- struct{}{}:
	default:
	}
}

func (r *Runtime) allEnded() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ending) == len(r.tasks)
}

func (r *Runtime) pause(id TaskID) {
	if p, ok := r.job.Source.(Pauser); ok {
		p.Pause(id)
		r.metrics.Paused.WithLabelValues(r.job.Name).Inc()
	}
}

func (r *Runtime) resume(id TaskID) {
	if p, ok := r.job.Source.(Pauser); ok {
		p.Resume(id)
		r.metrics.Paused.WithLabelValues(r.job.Name).Dec()
	}
}
