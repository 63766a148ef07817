package engine

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// The adaptive bundle rule. A bundle closes at the first of:
//
//   - MaxRecords records;
//   - MaxWait after its first record;
//   - its task's input is idle (nothing left to process) and the bundle has
//     been open at least flushRatio times as long as the task's recent
//     flushes took, and at least minOpen.
//
// The third rule is what adapts. A quiet task (one record every few seconds)
// finds its input idle at once, so its bundle closes within minOpen plus a
// flush: its latency stays well under a second whatever MaxWait is. A busy
// task that keeps up closes a bundle each time it catches up, but never
// sooner than flushRatio × flush time, so flushing costs it at most about
// 1/flushRatio of its time. A task that is behind never finds its input idle
// and fills bundles to MaxRecords, the cheapest way to catch up.
const (
	minOpen    = 5 * time.Millisecond
	flushRatio = 10
)

// task is one topic-partition owned by this member: one goroutine that owns all
// of the fields below the mutex.
type task struct {
	id    TaskID
	rt    *Runtime
	start int64 // offset the assignment started at; -1 when none committed

	mu         sync.Mutex // guards inbox, inboxBytes, ended, paused, and orders Pause/Resume calls
	inbox      [][]Record
	inboxBytes int
	ended      bool
	paused     bool

	wake chan struct{}        // a batch or the end arrived (capacity 1)
	cut  chan chan<- Position // checkpoint: complete the open bundle, report
	stop chan struct{}        // drain: process what was delivered, complete, exit
	done chan struct{}        // closed when the goroutine has exited

	groups    []*group
	maxRecs   int
	maxWait   time.Duration
	flushCost time.Duration // moving average of recent flushes

	// The open bundle.
	segs     [][]Record // the records of the open bundle, kept for a replay
	n        int        // records in the open bundle
	opened   time.Time
	pending  Position // the position once the open bundle completes
	pos      Position // the position after the last complete bundle
	hasPos   bool     // pos is meaningful (a bundle completed, or start >= 0)
	counts   []pipeCount
	finalErr error
}

// group is the pipelines of a task that share a Decoder: each record is
// decoded once per group.
type group struct {
	dec   Decoder
	row   *Row
	width int
	pipes []*taskPipe
	// eventTime is the column driving watermarks, Slot < 0 for the record
	// timestamp.
	eventTime Column
	unit      int64
}

type taskPipe struct {
	p       *Pipeline
	out     *Row
	dlRow   *Row
	writers []Writer
	names   []string // "<pipeline>/<sink index>", parallel to writers
	dlq     Writer
	idx     int // index into task.counts
}

type pipeCount struct{ in, out, dlDecode, dlSQL int }

// newTask builds the task of assignment a. restored is the state its stateful
// writers had at a.Offset, from the checkpoint that recorded that position.
func newTask(rt *Runtime, a Assignment, pipes []*Pipeline, restored []SinkState) *task {
	t := &task{
		id:    a.Task,
		rt:    rt,
		start: a.Offset,
		wake:  make(chan struct{}, 1),
		cut:   make(chan chan<- Position),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if a.Offset >= 0 {
		t.pos = Position{Task: a.Task, Offset: a.Offset, Sinks: restored}
		t.hasPos = true
	}
	t.pending = t.pos
	t.maxRecs, t.maxWait = pipes[0].MaxRecords, pipes[0].MaxWait
	byDec := map[Decoder]*group{}
	for i, p := range pipes {
		t.maxRecs = min(t.maxRecs, p.MaxRecords)
		t.maxWait = min(t.maxWait, p.MaxWait)
		g := byDec[p.Decoder]
		if g == nil {
			w := p.Decoder.Schema().Width()
			g = &group{dec: p.Decoder, row: NewRow(w), width: w, eventTime: p.EventTime}
			g.unit = max(LogicalOf(p.EventTime.Type).MicrosPerUnit(), 1)
			byDec[p.Decoder] = g
			t.groups = append(t.groups, g)
		}
		g.pipes = append(g.pipes, &taskPipe{p: p, out: NewRow(p.Transform.Output().Width()), dlRow: NewRow(DeadLetterSchema.Width()), idx: i})
	}
	t.counts = make([]pipeCount, len(pipes))
	return t
}

// LogicalOf returns t's logical type (looking through a nullable union), or
// NoLogical for a nil type.
func LogicalOf(t *Type) Logical {
	if t == nil {
		return NoLogical
	}
	if inner, ok := t.Nullable(); ok {
		return inner.Logical
	}
	return t.Logical
}

// deliver is called by the source's goroutine.
func (t *task) deliver(recs []Record) {
	n := 0
	for i := range recs {
		n += recs[i].Bytes()
	}
	t.mu.Lock()
	t.inbox = append(t.inbox, recs)
	t.inboxBytes += n
	if !t.paused && t.inboxBytes > t.rt.job.MaxBufferedBytes {
		// Pause and resume happen under mu, so that a resume from take can
		// never run before the pause it undoes and leave the partition
		// paused for good.
		t.paused = true
		t.rt.pause(t.id)
	}
	t.mu.Unlock()
	t.notify()
}

func (t *task) end() {
	t.mu.Lock()
	t.ended = true
	t.mu.Unlock()
	t.notify()
}

func (t *task) notify() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// take removes what was delivered. Fetching resumes once the task has taken
// its backlog below half the bound.
func (t *task) take() (batches [][]Record, ended bool) {
	t.mu.Lock()
	batches, t.inbox = t.inbox, nil
	t.inboxBytes = 0
	if t.paused {
		t.paused = false
		t.rt.resume(t.id)
	}
	ended = t.ended
	t.mu.Unlock()
	return batches, ended
}

// run is the task's goroutine. ctx is the hard-stop context: when it is done
// the task exits at once, without completing its bundle.
func (t *task) run(ctx context.Context) {
	defer close(t.done)
	if err := t.open(ctx); err != nil {
		t.finalErr = err
		return
	}
	defer t.closeWriters(context.WithoutCancel(ctx))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		batches, ended := t.take()
		for _, b := range batches {
			t.process(ctx, b)
		}
		if ended {
			t.complete(ctx)
			t.rt.taskEnded(t)
			for {
				select {
				case reply := <-t.cut:
					reply <- t.position()
				case <-t.stop:
					return
				case <-ctx.Done():
					return
				}
			}
		}
		if t.n > 0 {
			age := time.Since(t.opened)
			idleAfter := max(minOpen, flushRatio*t.flushCost)
			if age >= t.maxWait || (len(batches) == 0 && age >= idleAfter) {
				t.complete(ctx)
			} else {
				wait := t.maxWait - age
				if len(batches) == 0 || idleAfter-age > 0 {
					wait = min(wait, max(idleAfter-age, time.Millisecond))
				}
				timer.Reset(wait)
			}
		}
		select {
		case <-t.wake:
		case <-timer.C:
		case reply := <-t.cut:
			t.complete(ctx)
			reply <- t.position()
		case <-t.stop:
			batches, _ := t.take()
			for _, b := range batches {
				t.process(ctx, b)
			}
			t.complete(ctx)
			return
		case <-ctx.Done():
			return
		}
	}
}

// position is where the task stands after its last complete bundle. A task
// that has completed nothing and had no committed offset has no position.
func (t *task) position() Position {
	if !t.hasPos {
		return Position{Task: t.id, Offset: -1}
	}
	return t.pos
}

func (t *task) open(ctx context.Context) error {
	var err error
	for attempt := 0; ; attempt++ {
		err = t.openOnce(ctx)
		if err == nil {
			return nil
		}
		t.closeWriters(ctx)
		t.rt.log.Warn("task sinks unavailable", "task", t.id.String(), "error", err, "attempt", attempt)
		if !sleep(ctx, backoff(attempt)) {
			return err
		}
	}
}

func (t *task) openOnce(ctx context.Context) error {
	for _, g := range t.groups {
		for _, tp := range g.pipes {
			tp.writers, tp.names = tp.writers[:0], tp.names[:0]
			for _, s := range tp.p.Sinks {
				name := tp.p.Name + "/" + s.Name
				w, err := t.openWriter(ctx, s.Sink, name)
				if err != nil {
					return err
				}
				tp.writers = append(tp.writers, w)
				tp.names = append(tp.names, name)
			}
			if tp.p.DeadLetter != nil {
				w, err := tp.p.DeadLetter.Open(ctx, t.id)
				if err != nil {
					return err
				}
				tp.dlq = w
			}
		}
	}
	return nil
}

// openWriter opens a writer of sink s, resuming it from the state recorded
// with the task's position when there is one: after a restart, and after a
// failed flush, its destination then deduplicates the replayed rows.
func (t *task) openWriter(ctx context.Context, s Sink, name string) (Writer, error) {
	if rs, ok := s.(ResumableSink); ok {
		for _, st := range t.pos.Sinks {
			if st.Name == name {
				return rs.Resume(ctx, t.id, st.Data)
			}
		}
	}
	return s.Open(ctx, t.id)
}

// sinkStates collects the state of the stateful writers after a flush; nil
// when there are none, so stateless pipelines allocate nothing.
func (t *task) sinkStates() []SinkState {
	var out []SinkState
	for _, g := range t.groups {
		for _, tp := range g.pipes {
			for i, w := range tp.writers {
				if sw, ok := w.(StatefulWriter); ok {
					if st := sw.State(); st != nil {
						out = append(out, SinkState{Name: tp.names[i], Data: st})
					}
				}
			}
		}
	}
	return out
}

func (t *task) closeWriters(ctx context.Context) {
	for _, g := range t.groups {
		for _, tp := range g.pipes {
			for _, w := range tp.writers {
				if err := w.Close(ctx); err != nil {
					t.rt.log.Warn("sink close failed", "task", t.id.String(), "pipeline", tp.p.Name, "error", err)
				}
			}
			tp.writers = tp.writers[:0]
			if tp.dlq != nil {
				tp.dlq.Close(ctx)
				tp.dlq = nil
			}
		}
	}
}

// process runs the records of one delivered batch through every pipeline,
// completing a bundle whenever it reaches its size.
func (t *task) process(ctx context.Context, b []Record) {
	from := 0
	for i := range b {
		if t.n == 0 {
			t.opened = time.Now()
		}
		t.record(&b[i])
		t.n++
		if t.n >= t.maxRecs {
			t.segs = append(t.segs, b[from:i+1])
			from = i + 1
			t.complete(ctx)
		}
	}
	if from < len(b) {
		t.segs = append(t.segs, b[from:])
	}
}

// record is the per-record path: decode once per group, evaluate each
// pipeline, write its rows. It allocates nothing itself.
func (t *task) record(rec *Record) {
	var wm int64
	for _, g := range t.groups {
		g.row.Reset(g.width)
		if err := g.dec.Decode(rec, g.row); err != nil {
			var de *DecodeError
			if errors.As(err, &de) {
				de.Origin = Origin{Task: t.id, Offset: rec.Offset}
			}
			for _, tp := range g.pipes {
				t.counts[tp.idx].in++
				t.counts[tp.idx].dlDecode++
				t.deadLetter(tp, "decode", err, rec)
			}
			continue
		}
		if wm == 0 {
			if c := g.eventTime; c.Type != nil && !g.row.Slots[c.Slot].Null {
				wm = int64(g.row.Slots[c.Slot].N) * g.unit
			}
		}
		for _, tp := range g.pipes {
			t.counts[tp.idx].in++
			keep, err := tp.p.Transform.Eval(g.row, tp.out)
			if err != nil {
				t.counts[tp.idx].dlSQL++
				t.deadLetter(tp, "sql", err, rec)
				continue
			}
			if !keep {
				continue
			}
			t.counts[tp.idx].out++
			tp.out.Origin = Origin{Task: t.id, Offset: rec.Offset}
			for _, w := range tp.writers {
				if err := w.Write(tp.out); err != nil {
					t.deadLetter(tp, "sink", err, rec)
				}
			}
		}
	}
	if wm == 0 {
		wm = rec.Timestamp.UnixMicro()
	}
	t.pending = Position{Task: t.id, Offset: rec.Offset + 1, Watermark: wm}
}

func (t *task) deadLetter(tp *taskPipe, stage string, err error, rec *Record) {
	if tp.dlq == nil {
		t.rt.log.Error("record dropped: no dead-letter destination", "pipeline", tp.p.Name, "task", t.id.String(), "offset", rec.Offset, "error", err)
		return
	}
	FillDeadLetter(tp.dlRow, tp.p.Name, stage, err, t.id, rec)
	if werr := tp.dlq.Write(tp.dlRow); werr != nil {
		t.rt.log.Error("dead letter write failed", "pipeline", tp.p.Name, "task", t.id.String(), "offset", rec.Offset, "error", werr)
	}
}

// complete flushes every writer of the open bundle. On failure the writers are
// reopened and the bundle's records replayed into them, with backoff, until it
// succeeds or ctx ends: a bundle is never skipped.
func (t *task) complete(ctx context.Context) {
	if t.n == 0 {
		return
	}
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := t.flush(ctx)
		if err == nil {
			d := time.Since(start)
			t.flushCost = (3*t.flushCost + d) / 4
			break
		}
		if ctx.Err() != nil {
			return
		}
		t.rt.metrics.FlushFailures.WithLabelValues(t.rt.job.Name, t.failedPipe(err)).Inc()
		t.rt.log.Warn("bundle flush failed; replaying it", "task", t.id.String(), "records", t.n, "attempt", attempt, "error", err)
		if !sleep(ctx, backoff(attempt)) {
			return
		}
		t.closeWriters(ctx)
		if err := t.open(ctx); err != nil {
			return
		}
		clear(t.counts)
		for _, s := range t.segs {
			for i := range s {
				t.record(&s[i])
			}
		}
	}
	m := t.rt.metrics
	job := t.rt.job.Name
	m.BundleRecords.WithLabelValues(job).Observe(float64(t.n))
	m.BundleSeconds.WithLabelValues(job).Observe(time.Since(t.opened).Seconds())
	for _, g := range t.groups {
		for _, tp := range g.pipes {
			c := t.counts[tp.idx]
			m.RecordsIn.WithLabelValues(job, tp.p.Name).Add(float64(c.in))
			m.RecordsOut.WithLabelValues(job, tp.p.Name).Add(float64(c.out))
			if c.dlDecode > 0 {
				m.DeadLetters.WithLabelValues(job, tp.p.Name, "decode").Add(float64(c.dlDecode))
			}
			if c.dlSQL > 0 {
				m.DeadLetters.WithLabelValues(job, tp.p.Name, "sql").Add(float64(c.dlSQL))
			}
			t.rt.stats.add(c)
		}
	}
	clear(t.counts)
	t.pending.Sinks = t.sinkStates()
	t.pos, t.hasPos = t.pending, true
	if t.pos.Watermark > 0 {
		lag := time.Since(time.UnixMicro(t.pos.Watermark)).Seconds()
		m.WatermarkLag.WithLabelValues(job, t.id.Topic, strconv.Itoa(int(t.id.Partition))).Set(lag)
	}
	t.n = 0
	clear(t.segs)
	t.segs = t.segs[:0]
}

type flushError struct {
	pipeline string
	err      error
}

func (e *flushError) Error() string { return "pipeline " + e.pipeline + ": " + e.err.Error() }
func (e *flushError) Unwrap() error { return e.err }

func (t *task) failedPipe(err error) string {
	var fe *flushError
	if errors.As(err, &fe) {
		return fe.pipeline
	}
	return ""
}

func (t *task) flush(ctx context.Context) error {
	var ws []Writer
	var names []string
	for _, g := range t.groups {
		for _, tp := range g.pipes {
			for _, w := range tp.writers {
				ws = append(ws, w)
				names = append(names, tp.p.Name)
			}
			if tp.dlq != nil {
				ws = append(ws, tp.dlq)
				names = append(names, tp.p.Name)
			}
		}
	}
	if len(ws) == 1 {
		if err := ws[0].Flush(ctx); err != nil {
			return &flushError{names[0], err}
		}
		return nil
	}
	eg, gctx := errgroup.WithContext(ctx)
	for i, w := range ws {
		eg.Go(func() error {
			if err := w.Flush(gctx); err != nil {
				return &flushError{names[i], err}
			}
			return nil
		})
	}
	return eg.Wait()
}

func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 7)
	return min(d, 10*time.Second)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
