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

	hard    context.Context // cancelled by Abort, or when Run returns
	cancel  context.CancelFunc
	mu      sync.Mutex // guards tasks, ending
	tasks   map[TaskID]*task
	ending  []*task // tasks that reached the end of a bounded source
	endedCh chan struct{}

	ckptMu sync.Mutex // serializes checkpoints; guards seq, lastKeys, committed, refs, handed
	// ckptReq asks Run for a checkpoint now (askCheckpoint), and waits
	// tells the tasks that asked when one ends (opened.go).
	ckptReq  chan struct{}
	waits    ckptWaits
	seq      uint64
	lastKeys []string
	// committed is the last committed position of each task, to skip
	// checkpoints that would change nothing.
	committed map[TaskID]Position
	// refs is, for each owned task, the checkpoint key its committed
	// offset's metadata names (from its assignment until this pod commits
	// it), and handed the keys named by the final commits of tasks this pod
	// released: garbage collection keeps them (see collect).
	refs   map[TaskID]string
	handed []string

	knownMu sync.Mutex // guards known
	// known is each task's entry in the last checkpoint this pod saved (or
	// found at start), to restore stateful writers of reassigned tasks.
	known map[TaskID]TaskState

	// batches are the record slices lent to the source (Batcher).
	batches batchPool

	stats     Stats
	ready     atomic.Pointer[string] // nil when running; else "starting" or "draining"
	drainReq  chan struct{}
	drainOnce sync.Once

	faultMu sync.Mutex // guards faults, warned, owned, orphanSince
	// faults are the reasons the runtime is not ready, by what they concern.
	faults map[faultKey]string
	// warned is when a WARN was last logged for a subject (rate limit).
	warned map[string]time.Time
	// owned: this member has owned a task; orphanSince: since when it owns none.
	owned       bool
	orphanSince time.Time
	orphanGrace time.Duration

	obs observer // checkpoint and sink history, throughput (observe.go)
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
	// InFlight is the records delivered to tasks whose bundles are not
	// complete yet (RecordsIn and RecordsOut count complete bundles only).
	InFlight atomic.Int64
}

func (s *Stats) add(c pipeCount) {
	s.RecordsIn.Add(int64(c.in))
	s.RecordsOut.Add(int64(c.out))
	s.DeadLetters.Add(int64(c.dlDecode + c.dlSQL + c.dlLate))
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
		if _, ok := p.Transform.(Aggregator); ok && job.State == nil {
			return nil, fmt.Errorf("engine: pipeline %q aggregates: the job needs a state store", p.Name)
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
		job:         job,
		log:         job.Logger.With("job", job.Name, "pod", job.Pod),
		metrics:     job.Metrics,
		tasks:       map[TaskID]*task{},
		committed:   map[TaskID]Position{},
		refs:        map[TaskID]string{},
		known:       map[TaskID]TaskState{},
		faults:      map[faultKey]string{},
		warned:      map[string]time.Time{},
		orphanGrace: orphanGrace,
		endedCh:     make(chan struct{}, 1),
		ckptReq:     make(chan struct{}, 1),
		drainReq:    make(chan struct{}),
	}
	r.hard, r.cancel = context.WithCancel(context.Background())
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

// Ready reports whether the runtime is processing, and if not, why: it is
// starting or draining, the source cannot make progress, a sink keeps
// failing (or failed for good), a record waits for an unavailable
// dependency, checkpoints fail, or the member lost all its tasks. Reasons
// are redacted.
func (r *Runtime) Ready() (bool, string) {
	if p := r.ready.Load(); p != nil {
		return false, *p
	}
	if why := r.faultText(); why != "" {
		return false, why
	}
	return true, ""
}

// SetUnready records a problem of the source (brokers unreachable, say),
// which makes the runtime not ready; SetUnready("") clears it. Other reasons
// are not affected. The reason is redacted (Job.Redact).
func (r *Runtime) SetUnready(reason string) {
	r.setFault(faultKey{kind: faultSource}, r.redact(reason))
}

// Abort stops a running job at once, as a second SIGTERM does: nothing more
// is flushed or checkpointed, and the next owner of each task replays it from
// its last committed offset.
func (r *Runtime) Abort() {
	if r.cancel != nil {
		r.cancel()
	}
}

// Drain asks a running job to drain and stop, as SIGTERM does.
func (r *Runtime) Drain() { r.drainOnce.Do(func() { close(r.drainReq) }) }

// Run runs the job until ctx is done or Drain is called (then it drains:
// stops fetching, completes every bundle it can within the drain deadline,
// checkpoints the complete positions, commits) or, for bounded sources, until
// every task has ended and been checkpointed. It returns nil after a clean
// drain or end.
func (r *Runtime) Run(ctx context.Context) error {
	defer r.cancel()
	r.loadLatest(r.hard)
	srcCtx, stopSource := context.WithCancel(r.hard)
	defer stopSource()
	srcDone := make(chan error, 1)
	go func() { srcDone <- r.job.Source.Run(srcCtx, r) }()
	r.ready.Store(nil)

	// quit is done once a drain is asked for: a checkpoint waiting for its
	// tasks' cuts gives up then, so that the drain starts at once.
	quit, stopQuit := context.WithCancel(ctx)
	defer stopQuit()
	go func() {
		select {
		case <-r.drainReq:
			stopQuit()
		case <-quit.Done():
		}
	}()

	checkpoint := func() {
		cctx, cancel := context.WithTimeout(r.hard, max(r.job.Interval, r.job.FlushTimeout))
		r.checkpoint(cctx, quit.Done(), nil)
		cancel()
	}
	tick := time.NewTicker(r.job.Interval)
	defer tick.Stop()
	sourceEnded := false
	for {
		select {
		case <-quit.Done():
			return r.drain(stopSource, srcDone, sourceEnded)
		case <-r.hard.Done():
			r.stopTasks(time.Now())
			r.closeAll(r.hard)
			return errors.New("engine: aborted; each task's next owner replays it from its last commit")
		case <-tick.C:
			checkpoint()
			r.checkOrphan(time.Now())
		case <-r.ckptReq:
			checkpoint() // a task records a writer it opened fresh (opened.go)
		case err := <-srcDone:
			if err != nil {
				r.SetUnready(err.Error())
				r.stopTasks(time.Now())
				r.closeAll(r.hard)
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

// softDeadline is when tasks stopped at start must give up the bundles
// their sinks have not acknowledged, leaving the rest of the drain deadline
// (a quarter, at most 10 s) for the final checkpoint and commit.
func (r *Runtime) softDeadline(start time.Time) time.Time {
	return start.Add(r.job.DrainDeadline - min(r.job.DrainDeadline/4, 10*time.Second))
}

// drain stops fetching, completes every task's bundle that its sinks
// acknowledge in time, checkpoints every complete position and commits, all
// within the drain deadline. Abort ends it at once.
func (r *Runtime) drain(stopSource context.CancelFunc, srcDone chan error, sourceEnded bool) error {
	start := time.Now()
	draining := "draining"
	r.ready.Store(&draining)
	r.log.Info("drain started", "deadline", r.job.DrainDeadline)
	dctx, cancel := context.WithDeadline(r.hard, start.Add(r.job.DrainDeadline))
	defer cancel()
	stopSource()
	if !sourceEnded {
		select {
		case <-srcDone:
		case <-dctx.Done():
		}
	}
	final, incomplete := r.stopTasks(r.softDeadline(start))
	err := r.checkpoint(dctx, nil, final)
	r.closeAll(dctx)
	r.metrics.DrainSeconds.WithLabelValues(r.job.Name).Set(time.Since(start).Seconds())
	switch {
	case r.hard.Err() != nil:
		return errors.New("engine: drain aborted; each task's next owner replays it from its last commit")
	case err != nil:
		return fmt.Errorf("engine: final checkpoint: %w", err)
	case incomplete > 0:
		r.log.Error("drain deadline passed with bundles their sinks did not acknowledge; the final checkpoint holds every complete position",
			"tasks", incomplete, "deadline", r.job.DrainDeadline)
		return fmt.Errorf("engine: drain deadline passed: %d tasks had bundles their sinks did not acknowledge; they are replayed from the final checkpoint", incomplete)
	}
	r.log.Info("drain complete", "seconds", time.Since(start).Seconds())
	return nil
}

// finish ends a bounded job whose tasks have all ended.
func (r *Runtime) finish() error {
	start := time.Now()
	final, _ := r.stopTasks(r.softDeadline(start))
	ctx, cancel := context.WithDeadline(r.hard, start.Add(r.job.DrainDeadline))
	defer cancel()
	err := r.checkpoint(ctx, nil, final)
	r.closeAll(ctx)
	if err != nil {
		return fmt.Errorf("engine: final checkpoint: %w", err)
	}
	r.log.Info("bounded job complete")
	return nil
}

func (r *Runtime) closeAll(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
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
				r.log.Warn("sink close failed", "pipeline", p.Name, "error", r.redact(err.Error()))
			}
		}
	}
	if c, ok := r.job.Source.(io.Closer); ok {
		if err := c.Close(); err != nil {
			r.log.Warn("source close failed", "error", r.redact(err.Error()))
		}
	}
}

// stopTasks stops every task (see stop).
func (r *Runtime) stopTasks(soft time.Time) ([]Position, int) {
	r.mu.Lock()
	ts := make([]*task, 0, len(r.tasks))
	for _, t := range r.tasks {
		ts = append(ts, t)
	}
	clear(r.tasks)
	r.ending = nil
	r.mu.Unlock()
	return r.stop(ts, soft)
}

// stop stops tasks: each processes what was delivered and completes its
// bundle, until soft; then the tasks still waiting for their sinks give up
// their open or sealed bundles. It returns the tasks' complete positions and
// how many gave up a bundle.
func (r *Runtime) stop(ts []*task, soft time.Time) ([]Position, int) {
	for _, t := range ts {
		close(t.stop)
	}
	giveUp := time.AfterFunc(time.Until(soft), func() {
		for _, t := range ts {
			t.cancel()
		}
	})
	defer giveUp.Stop()
	var final []Position
	incomplete := 0
	for _, t := range ts {
		<-t.done
		if p := t.position(); p.Offset >= 0 {
			final = append(final, p)
		}
		if t.abandoned > 0 {
			incomplete++
		}
	}
	r.stats.Tasks.Add(-int64(len(ts)))
	r.metrics.Tasks.WithLabelValues(r.job.Name).Set(float64(r.stats.Tasks.Load()))
	return final, incomplete
}

// checkpoint asks every task to complete its open bundle (waiting at most
// one interval, and not at all for a task whose bundle is sealed or whose
// flush is still running: such a task contributes its last complete
// positions), writes one checkpoint with every position, and only once it
// is durable commits the positions with the checkpoint key as metadata.
// extra holds the final positions of tasks that have just stopped. A
// checkpoint never waits on a bundle that cannot complete; quit (a drain
// starting) ends the wait and skips the checkpoint.
func (r *Runtime) checkpoint(ctx context.Context, quit <-chan struct{}, extra []Position) error {
	r.ckptMu.Lock()
	defer r.ckptMu.Unlock()
	start := time.Now()
	r.mu.Lock()
	ts := make([]*task, 0, len(r.tasks))
	for _, t := range r.tasks {
		ts = append(ts, t)
	}
	r.mu.Unlock()

	replies := make(chan TaskID, len(ts))
	asked := 0
	for _, t := range ts {
		select {
		case t.cut <- replies:
			asked++
		default: // a cut is still pending: the task is busy flushing
		}
	}
	if asked > 0 {
		wait := time.NewTimer(r.job.Interval)
	cuts:
		for ; asked > 0; asked-- {
			select {
			case <-replies:
			case <-wait.C:
				break cuts
			case <-quit:
				wait.Stop()
				return nil
			case <-ctx.Done():
				wait.Stop()
				return ctx.Err()
			}
		}
		wait.Stop()
	}
	read, wanted := r.waits.begin()
	settled := false
	defer func() {
		if !settled {
			r.waits.end(read, false)
		}
	}()
	positions := slices.Clone(extra)
	for _, t := range ts {
		if p := t.position(); p.Offset >= 0 {
			positions = append(positions, p)
		}
	}
	changed := wanted
	for _, p := range positions {
		if c, ok := r.committed[p.Task]; !ok || c.Offset != p.Offset || !slices.Equal(c.Pipelines, p.Pipelines) {
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
		cp.Tasks = append(cp.Tasks, TaskState{Task: p.Task, Offset: p.Offset, Watermark: p.Watermark, State: p.State, Pipelines: p.Pipelines, Sinks: p.Sinks})
	}
	m := r.metrics
	key, size, err := r.job.Store.Save(ctx, cp)
	if err != nil {
		r.noteCheckpoint(CheckpointView{Seq: cp.Seq, At: time.Now(), Duration: time.Since(start), Tasks: len(positions), Error: "not saved: " + r.redact(err.Error())})
		m.CkptFailures.WithLabelValues(r.job.Name, "save").Inc()
		msg := r.redact(err.Error())
		r.setFault(faultKey{kind: faultCheckpoint}, "checkpoint not saved: "+describe("", err, msg))
		r.log.Error("checkpoint not saved; offsets not committed", "seq", cp.Seq, "error", msg)
		return err
	}
	if err := r.job.Source.Commit(ctx, positions, key); err != nil {
		r.noteCheckpoint(CheckpointView{Seq: cp.Seq, Key: key, At: time.Now(), Duration: time.Since(start), Bytes: size, Tasks: len(positions), Error: "not committed: " + r.redact(err.Error())})
		m.CkptFailures.WithLabelValues(r.job.Name, "commit").Inc()
		msg := r.redact(err.Error())
		r.setFault(faultKey{kind: faultCheckpoint}, "offsets not committed: "+msg)
		r.log.Error("checkpoint saved but offsets not committed", "seq", cp.Seq, "key", key, "error", msg)
		return err
	}
	r.setFault(faultKey{kind: faultCheckpoint}, "")
	settled = true
	r.waits.end(read, true)
	stopped := make(map[TaskID]bool, len(extra))
	for _, p := range extra {
		stopped[p.Task] = true
	}
	r.knownMu.Lock()
	for i, p := range positions {
		r.committed[p.Task] = p
		r.known[p.Task] = cp.Tasks[i]
		if stopped[p.Task] {
			delete(r.refs, p.Task)
		} else {
			r.refs[p.Task] = key
		}
	}
	r.knownMu.Unlock()
	if len(extra) > 0 {
		r.handed = append(r.handed, key)
	}
	r.noteCheckpoint(CheckpointView{Seq: cp.Seq, Key: key, At: time.Now(), Duration: time.Since(start), Bytes: size, Tasks: len(positions)})
	m.CkptSeconds.WithLabelValues(r.job.Name).Observe(time.Since(start).Seconds())
	m.CkptLast.WithLabelValues(r.job.Name).SetToCurrentTime()
	r.stats.Checkpoints.Add(1)
	r.stats.LastCheckpointBytes.Store(int64(size))
	r.stats.LastCheckpointUnixMicro.Store(cp.Time)
	r.stats.LastCheckpointKey.Store(&key)
	r.log.Debug("checkpoint committed", "seq", cp.Seq, "key", key, "bytes", size, "tasks", len(positions))
	r.lastKeys = append(r.lastKeys, key)
	if len(r.lastKeys) > r.job.Retain {
		r.lastKeys = r.lastKeys[len(r.lastKeys)-r.job.Retain:]
	}
	r.collect(ctx)
	return nil
}

// maxHanded bounds the keys kept for tasks this pod released.
const maxHanded = 16

// collect deletes this pod's checkpoints that nothing needs any more. The
// rule: a checkpoint may go only when it is older than the pod's newest
// Retain ones and no committed offset this pod knows of names it. Those are
// the offsets of the tasks it owns (the key of its own last commit, or, until
// it commits a task, the key its assignment's metadata named, which may be a
// checkpoint of an earlier life of the pod), and the final commits of the
// tasks it released (the next owner's commit names that key until it
// commits itself; the newest maxHanded such keys are kept). It runs after
// every commit, so a pod restarted again and again still deletes what its
// earlier lives left (the store lists them at the first collection).
func (r *Runtime) collect(ctx context.Context) {
	c, ok := r.job.Store.(CheckpointCollector)
	if !ok {
		return
	}
	if len(r.handed) > maxHanded {
		r.handed = r.handed[len(r.handed)-maxHanded:]
	}
	keep := slices.Clone(r.lastKeys)
	keep = append(keep, r.handed...)
	r.knownMu.Lock()
	for _, k := range r.refs {
		if k != "" {
			keep = append(keep, k)
		}
	}
	r.knownMu.Unlock()
	slices.Sort(keep)
	keep = slices.Compact(keep)
	if err := c.Collect(ctx, r.job.Name, r.job.Pod, keep); err != nil {
		r.log.Warn("checkpoint garbage collection failed", "error", r.redact(err.Error()))
	}
}

// Assign implements Handler.
func (r *Runtime) Assign(ctx context.Context, as []Assignment) {
	n := 0
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
		r.mu.Unlock()
		t := newTask(r, a, pipes, r.restored(ctx, a))
		r.mu.Lock()
		r.tasks[a.Task] = t
		r.mu.Unlock()
		r.knownMu.Lock()
		r.refs[a.Task] = a.Meta
		r.knownMu.Unlock()
		r.stats.Tasks.Add(1)
		n++
		go t.run()
	}
	if n > 0 {
		r.faultMu.Lock()
		r.owned = true
		r.orphanSince = time.Time{}
		r.faultMu.Unlock()
		r.setFault(faultKey{kind: faultTasks}, "")
	}
	r.metrics.Tasks.WithLabelValues(r.job.Name).Set(float64(r.stats.Tasks.Load()))
	r.log.Info("tasks assigned", "count", len(as))
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

// restored returns the task's entry in the checkpoint that recorded the
// assignment's offset: the one its commit metadata names, or this pod's own
// latest. An entry is used only when it was recorded at exactly the offset
// the task resumes from (the pipelines ahead of it and the writers' states
// are relative to it).
func (r *Runtime) restored(ctx context.Context, a Assignment) *TaskState {
	if a.Offset < 0 {
		return nil
	}
	r.knownMu.Lock()
	ts, ok := r.known[a.Task]
	r.knownMu.Unlock()
	if ok && ts.Offset == a.Offset {
		return &ts
	}
	if a.Meta == "" {
		return nil
	}
	cp, err := r.job.Store.Load(ctx, a.Meta)
	if err != nil {
		r.log.Warn("checkpoint named by the commit unreadable; sinks start fresh and every pipeline replays from the committed offset",
			"key", a.Meta, "task", a.Task.String(), "error", r.redact(err.Error()))
		return nil
	}
	if cp == nil {
		return nil
	}
	for i := range cp.Tasks {
		if cp.Tasks[i].Task == a.Task && cp.Tasks[i].Offset == a.Offset {
			return &cp.Tasks[i]
		}
	}
	return nil
}

// Revoke implements Handler: the tasks complete their bundles (within the
// drain deadline; past it they give up the bundles their sinks did not
// acknowledge), a checkpoint holding their complete positions is saved and
// committed, then they are gone.
func (r *Runtime) Revoke(ctx context.Context, ids []TaskID) {
	start := time.Now()
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
	final, incomplete := r.stop(ts, r.softDeadline(start))
	cctx, cancel := context.WithDeadline(r.hard, start.Add(r.job.DrainDeadline))
	defer cancel()
	if err := r.checkpoint(cctx, nil, final); err != nil {
		r.log.Warn("revoked tasks not committed; their next owner replays them", "error", r.redact(err.Error()))
	}
	if incomplete > 0 {
		r.log.Warn("revoked tasks gave up bundles their sinks did not acknowledge; their next owner replays them", "tasks", incomplete)
	}
	r.log.Info("tasks revoked", "count", len(ts))
	r.checkOrphan(time.Now())
}

// Deliver implements Handler.
func (r *Runtime) Deliver(id TaskID, recs []Record) {
	r.mu.Lock()
	t := r.tasks[id]
	r.mu.Unlock()
	if t != nil {
		t.deliver(recs)
	} else {
		r.batches.forget(recs)
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
