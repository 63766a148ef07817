package engine

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"time"
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
// (more has arrived whenever it has processed what it took) and fills
// bundles to MaxRecords, the cheapest way to catch up. bundleWait decides;
// tests drive it tick by tick.
const (
	minOpen    = 5 * time.Millisecond
	flushRatio = 10
)

// failingAfter is how many consecutive failed attempts of a writer make its
// sink count as failing for readiness; a permanent error counts at once.
const failingAfter = 3

// task is one topic-partition owned by this member: one goroutine that owns
// every field below mu except those guarded by mu and snapMu.
//
// # Positions
//
// Each pipeline of the task has its own position (taskPipe.pos): the offset
// after the last bundle that all of its writers acknowledged. Pipelines
// usually move together; they part when one pipeline's sink fails, because
// the pipelines whose writers acknowledged a bundle complete it while the
// failing one retries. The task's position, which the Kafka group commits,
// is the lowest of its pipelines'; the checkpoint also records each pipeline
// that is ahead of it, and after a restart such a pipeline skips the records
// below its own offset (taskPipe.from). So a crash replays at most one
// checkpoint interval to each pipeline whose sinks work, and a failing
// pipeline holds back only its own position.
//
// # A failed flush
//
// A bundle whose writers did not all acknowledge it is sealed: the task
// takes no new input (the source pauses it once its inbox is full), closes
// and reopens only the writers that failed, replays the bundle's records
// into them alone (never into a writer that acknowledged it), and flushes
// them again after a jittered backoff: Job.Retry for an outage,
// Job.PermanentRetry, much slower, for an error marked Permanent. While
// sealed it still answers checkpoint cuts with its complete positions, and a
// drain or revocation that runs out of time abandons the bundle, never a
// complete position.
type task struct {
	id    TaskID
	rt    *Runtime
	start int64 // offset the assignment started at; -1 when none committed

	mu         sync.Mutex // guards inbox, inboxLent, inboxBytes, ended, paused, gone, and orders Pause/Resume calls
	inbox      [][]Record
	inboxLent  [][]Record // the batches of inbox that the runtime lent (Batcher)
	inboxBytes int
	ended      bool
	paused     bool
	gone       bool // the goroutine has exited: deliver drops what it is given

	wake chan struct{}      // a batch or the end arrived (capacity 1)
	cut  chan chan<- TaskID // checkpoint: complete the open bundle if possible, then reply (capacity 1)
	stop chan struct{}      // drain: process what was delivered, complete, exit
	done chan struct{}      // closed when the goroutine has exited

	// ctx is the task's own context, a child of the runtime's hard context:
	// cancelling it makes the task give up its open or sealed bundle and
	// exit (a drain or revocation past its deadline).
	ctx    context.Context
	cancel context.CancelFunc

	groups    []*group
	pipes     []*taskPipe
	maxRecs   int
	maxWait   time.Duration
	flushCost time.Duration // moving average of recent flushes

	// Input taken from the inbox and not processed yet: it waits while the
	// bundle is sealed or a decoder's dependency is unavailable.
	queue  [][]Record
	sawEnd bool
	// lent are the batches taken that the runtime lent to the source
	// (Batcher), in offset order, whole as delivered: finish gives each
	// back once its last record is in a complete bundle.
	lent [][]Record

	// The open bundle.
	segs    [][]Record // the records of the open bundle, kept for a replay
	n       int        // records in the open bundle
	opened  time.Time
	next    int64 // the offset after the open bundle's last record
	wm      int64 // the watermark once the open bundle completes
	hasPos  bool  // the pipelines' positions are meaningful
	counts  []pipeCount
	sealed  bool      // the bundle is closed and some writers have not acknowledged it
	held    bool      // the first queued record waits for an unavailable dependency
	heldDue bool      // its wait is over: try it again
	heldErr error     // why
	tries   int       // failed attempts of the held record
	attempt int       // failed attempts of the sealed bundle
	retryAt time.Time // when the sealed bundle or the held record is tried again
	replay  bool      // replaying a sealed bundle into the writers that failed it
	ending  bool      // reported to the runtime as ended
	stopped bool      // stop was received
	// abandoned is how many records of an incomplete bundle the task gave
	// up when it exited (read after done is closed).
	abandoned int

	// cutReply is the reply channel of the checkpoint cut being handled,
	// nil once answered.
	cutReply chan<- TaskID

	flushing []*taskWriter // scratch of flush
	errs     []error       // scratch of flush

	snapMu sync.Mutex // guards snap
	snap   Position   // the task's position, published after each bundle

	obs taskObs // what observers read (observe.go)

	// Keyed state (stateful.go): set when a pipeline is an Aggregator.
	stateful   bool
	store      TaskStore
	stateRef   string    // the snapshot the published position goes with
	stateErr   error     // the store failed: positions no longer advance
	publishing bool      // publish is called with a fresh snapshot
	lastInput  time.Time // the last record folded (or the task's start), for the idle timeout
	folded     bool      // a record was folded since lastInput was last set
	advanced   int64     // the watermark advance of the open bundle, 0 if none
	idled      bool      // the open bundle ends in an Idler's idle mark
	finalFired bool      // the end of the input emitted every window
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
	// prepared: the decoder clears what it writes (RowPreparer), so row is
	// not Reset before each record.
	prepared bool
	// Per record: the group has nothing to do (every pipe is past the
	// record or, in a replay, done), or decoding failed with err.
	skip bool
	err  error
}

type taskPipe struct {
	p       *Pipeline
	out     *Row
	dlRow   *Row
	writers []*taskWriter
	dlq     *taskWriter // nil without a dead-letter destination
	idx     int         // index into task.counts
	// from is the pipeline's restored position when it is ahead of the
	// task's: records below it were complete for this pipeline before a
	// restart and are skipped.
	from int64
	// pos is the position after the pipeline's last complete bundle, with
	// the state of its stateful writers there.
	pos Position
	// done: every writer of the pipeline acknowledged the sealed bundle.
	done bool
	// agg is the state of a stateful pipeline's Aggregator (aggOf), nil
	// for a stateless one.
	agg   Aggregate
	aggOf Aggregator
	// emit is the callback of agg.Fire (emitter); fireRec is the record
	// the rows it writes come from, nil for a watermark advance.
	emit    func(out *Row) error
	fireRec *Record
	// rejects are the rows the open bundle's writers refused in Write (and
	// sent to dead letters): a replay into the dead-letter writer alone
	// repeats them without writing to the writers again.
	rejects []reject
}

type reject struct {
	rec    *Record
	writer int
	err    error
}

// taskWriter is one writer of a task, with its acknowledgement of the sealed
// bundle and its failures.
type taskWriter struct {
	name  string // "<pipeline>/<sink name>"; "<pipeline>/dead_letter" for dead letters
	pipe  string
	sink  Sink
	w     Writer // nil while it could not be (re)opened
	acked bool   // acknowledged the sealed bundle: no replay goes to it
	// fresh: a StatefulWriter opened without a recorded state, not flushed
	// yet; its state is checkpointed before its first flush (opened.go).
	fresh bool

	fails     int   // consecutive failed flushes or opens
	err       error // the last failure
	permanent bool  // the last failure was marked Permanent
}

type pipeCount struct{ in, out, dlDecode, dlSQL, dlLate int }

// newTask builds the task of assignment a. restored is the task's entry in
// the checkpoint that recorded a.Offset, or nil.
func newTask(rt *Runtime, a Assignment, pipes []*Pipeline, restored *TaskState) *task {
	ctx, cancel := context.WithCancel(rt.hard)
	t := &task{
		id:     a.Task,
		rt:     rt,
		start:  a.Offset,
		wake:   make(chan struct{}, 1),
		cut:    make(chan chan<- TaskID, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
		next:   a.Offset,
	}
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
			if rp, ok := p.Decoder.(RowPreparer); ok {
				g.prepared = rp.PreparesRows()
			}
			byDec[p.Decoder] = g
			t.groups = append(t.groups, g)
		}
		tp := &taskPipe{p: p, out: NewRow(p.Transform.Output().Width()), dlRow: NewRow(DeadLetterSchema.Width()), idx: i, from: -1}
		for _, s := range p.Sinks {
			tp.writers = append(tp.writers, &taskWriter{name: p.Name + "/" + s.Name, pipe: p.Name, sink: s.Sink})
		}
		if p.DeadLetter != nil {
			tp.dlq = &taskWriter{name: p.Name + "/dead_letter", pipe: p.Name, sink: p.DeadLetter}
		}
		g.pipes = append(g.pipes, tp)
		t.pipes = append(t.pipes, tp)
	}
	t.counts = make([]pipeCount, len(pipes))
	t.initState()
	if a.Offset >= 0 {
		t.hasPos = true
		for _, tp := range t.pipes {
			tp.pos = Position{Task: a.Task, Offset: a.Offset}
		}
		if restored != nil {
			t.restore(restored)
			t.stateRef = restored.State
		}
	}
	t.publishing = true
	t.publish()
	t.publishing = false
	return t
}

// restore applies a checkpointed task entry recorded at the task's start
// offset: each pipeline's own position when it was ahead, and the state of
// stateful writers, matched by name. What names no pipeline or sink of this
// job any more is dropped with a log line, never given to another.
func (t *task) restore(ts *TaskState) {
	for _, po := range ts.Pipelines {
		tp := t.pipe(po.Pipeline)
		if tp == nil {
			t.rt.log.Info("checkpointed pipeline position dropped: the job has no such pipeline reading this task", "task", t.id.String(), "pipeline", po.Pipeline)
			continue
		}
		if po.Offset > tp.pos.Offset {
			tp.pos.Offset = po.Offset
			tp.from = po.Offset
		}
	}
	for _, st := range ts.Sinks {
		var owner *taskPipe
		for _, tp := range t.pipes {
			for _, w := range tp.writers {
				if w.name == st.Name {
					owner = tp
				}
			}
		}
		if owner == nil {
			t.rt.log.Warn("checkpointed sink state dropped: no sink of that name", "task", t.id.String(), "sink", st.Name)
			continue
		}
		owner.pos.Sinks = append(owner.pos.Sinks, st)
	}
}

func (t *task) pipe(name string) *taskPipe {
	for _, tp := range t.pipes {
		if tp.p.Name == name {
			return tp
		}
	}
	return nil
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
	if len(recs) == 0 {
		return
	}
	n := 0
	for i := range recs {
		n += recs[i].Bytes()
	}
	// Once recs is in the inbox the task may complete it and, if it is
	// lent, give it back and clear it: read what is needed of it first.
	next := recs[len(recs)-1].Offset + 1
	lent := t.rt.batches.owns(recs)
	t.mu.Lock()
	if t.gone {
		// The task exited: nobody takes its inbox any more.
		t.mu.Unlock()
		if lent {
			t.rt.batches.forget(recs)
		}
		return
	}
	t.inbox = append(t.inbox, recs)
	if lent {
		t.inboxLent = append(t.inboxLent, recs)
	}
	t.inboxBytes += n
	if !t.paused && t.inboxBytes > t.rt.job.MaxBufferedBytes {
		// Pause and resume happen under mu, so that a resume from take can
		// never run before the pause it undoes and leave the partition
		// paused for good.
		t.paused = true
		t.rt.pause(t.id)
	}
	t.mu.Unlock()
	t.rt.stats.InFlight.Add(int64(len(recs)))
	t.delivered(next)
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
	t.lent = append(t.lent, t.inboxLent...)
	clear(t.inboxLent)
	t.inboxLent = t.inboxLent[:0]
	t.inboxBytes = 0
	if t.paused {
		t.paused = false
		t.rt.resume(t.id)
	}
	ended = t.ended
	t.mu.Unlock()
	return batches, ended
}

// pending reports whether input waits in the inbox, or the end of the input
// that the task has not taken yet. Only the task's goroutine calls it.
func (t *task) pending() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.inbox) > 0 || (t.ended && !t.sawEnd)
}

// blocked reports whether the task cannot process input now: its bundle is
// sealed, or a record waits for an unavailable dependency.
func (t *task) blocked() bool { return t.sealed || (t.held && !t.heldDue) }

// run is the task's goroutine. When t.ctx is done the task exits at once,
// leaving its open or sealed bundle incomplete; its complete positions are
// published.
func (t *task) run() {
	defer close(t.done)
	defer t.cancel()
	ctx := t.ctx
	defer t.closeWriters(context.WithoutCancel(ctx))
	defer t.clearFaults()
	defer t.closeState()
	if t.stateful && !t.openState(ctx) {
		return
	}
	t.lastInput = time.Now() // an empty partition is idle from its start
	if !t.open(ctx) {
		return
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	stop := t.stop
	for {
		if !t.blocked() {
			if len(t.queue) == 0 {
				var ended bool
				t.queue, ended = t.take()
				t.sawEnd = t.sawEnd || ended
			}
			t.processQueue()
		}
		if t.blocked() {
			timer.Reset(max(time.Until(t.retryAt), 0))
		} else if len(t.queue) == 0 {
			switch {
			case t.stopped:
				t.complete()
				if !t.blocked() {
					if t.stateful {
						t.snapshot()
					}
					return
				}
				continue
			case t.sawEnd:
				if t.stateful && !t.finalFired {
					t.finalFired = true
					t.advance(math.MaxInt64)
				}
				t.complete()
				if t.blocked() {
					continue
				}
				if !t.ending {
					t.ending = true
					t.rt.taskEnded(t)
				}
			case t.n > 0:
				wait, closes := bundleWait(time.Since(t.opened), t.maxWait, t.flushCost, t.pending())
				if closes {
					t.complete()
					continue
				}
				if wait == 0 {
					continue // more input arrived meanwhile: it joins the bundle
				}
				timer.Reset(wait)
			}
		}
		if !t.blocked() && len(t.queue) == 0 && t.pending() {
			// Input (or its end) delivered while the task was blocked or
			// working through its queue signalled wake, and the task consumed
			// that signal without taking it (it takes only with an empty
			// queue): signal again, or the input would wait for a signal
			// that never comes. Through the select, not a loop back, so
			// that a task that is never idle still answers cuts and stop.
			t.notify()
		}
		select {
		case <-t.wake:
		case <-timer.C:
			// A timer armed for an earlier state may fire late; each
			// state checks its own deadline.
			switch {
			case t.sealed:
				if !time.Now().Before(t.retryAt) {
					t.retrySealed()
				}
			case t.held:
				if !time.Now().Before(t.retryAt) {
					t.heldDue = true // processQueue tries the record again
				}
			}
		case reply := <-t.cut:
			t.cutReply = reply
			if !t.blocked() {
				t.complete()
				t.idle(time.Now())
			}
			if t.stateful {
				t.snapshot()
			}
			if t.cutReply != nil { // recordOpened may have answered it
				reply <- t.id
				t.cutReply = nil
			}
		case <-stop:
			stop = nil
			t.stopped = true
		case <-ctx.Done():
			return
		}
	}
}

// processQueue runs queued input through the pipelines until the queue is
// empty or the task is blocked, completing a bundle whenever it reaches its
// size.
func (t *task) processQueue() {
	for len(t.queue) > 0 && !t.blocked() {
		b := t.queue[0]
		from, i := 0, 0
		waits := false
		for ; i < len(b); i++ {
			if t.n == 0 {
				t.opened = time.Now()
			}
			if !t.record(&b[i]) {
				waits = true
				break
			}
			t.n++
			if t.n == 1 {
				t.opened1(b[i].Offset)
			}
			if t.n >= t.maxRecs {
				t.segs = append(t.segs, b[from:i+1])
				from = i + 1
				t.complete()
				if t.sealed {
					i++
					break
				}
			}
		}
		if t.folded {
			// Once per batch, not per record: reading the clock costs a
			// folded record more than a hash table lookup does, and the
			// idle timeout it serves is checked at checkpoint cuts.
			t.lastInput, t.folded = time.Now(), false
		}
		if from < i {
			t.segs = append(t.segs, b[from:i])
		}
		if i < len(b) {
			t.queue[0] = b[i:]
		} else {
			t.queue[0] = nil
			t.queue = t.queue[1:]
		}
		if waits {
			// The record waits for a dependency (a schema registry):
			// nothing of it was written. Complete what came before it, so
			// that the pipelines' positions advance to it while it waits.
			t.heldDue = false
			t.holdFault()
			t.retryAt = time.Now().Add(t.rt.job.Retry.Delay(t.tries))
			t.tries++
			t.complete()
		}
	}
	if len(t.queue) == 0 {
		t.queue = nil
	}
}

// position is where the task stands after its last complete bundle, as last
// published. A task that has completed nothing and had no committed offset
// has no position (Offset -1).
func (t *task) position() Position {
	t.snapMu.Lock()
	defer t.snapMu.Unlock()
	return t.snap
}

// publish makes the pipelines' complete positions the task's position: the
// lowest offset (what the group commits), each pipeline ahead of it, and the
// state of every stateful writer at its pipeline's position.
func (t *task) publish() {
	if t.stateful && !t.publishing {
		return // a stateful task publishes with its snapshots (stateful.go)
	}
	p := Position{Task: t.id, Offset: -1, State: t.stateRef}
	if t.hasPos {
		low := t.pipes[0]
		for _, tp := range t.pipes[1:] {
			if tp.pos.Offset < low.pos.Offset {
				low = tp
			}
		}
		p.Offset, p.Watermark = low.pos.Offset, low.pos.Watermark
		for _, tp := range t.pipes {
			if tp.pos.Offset > p.Offset {
				p.Pipelines = append(p.Pipelines, PipelineOffset{Pipeline: tp.p.Name, Offset: tp.pos.Offset})
			}
			p.Sinks = append(p.Sinks, tp.pos.Sinks...)
		}
	}
	t.snapMu.Lock()
	t.snap = p
	t.snapMu.Unlock()
	t.markPipes()
}

// open opens every writer, retrying with backoff until it succeeds, the
// task is stopped or ctx ends; it reports whether the task may run. While
// it waits it answers checkpoint cuts with its (unchanged) position.
func (t *task) open(ctx context.Context) bool {
	for attempt := 0; ; attempt++ {
		failed := false
		for _, tp := range t.pipes {
			for _, w := range tp.allWriters() {
				if w.w == nil && !t.openWriter(ctx, tp, w) {
					failed = true
				}
			}
		}
		if !failed {
			return true
		}
		timer := time.NewTimer(t.pause(attempt))
	wait:
		for {
			select {
			case <-timer.C:
				break wait
			case reply := <-t.cut:
				reply <- t.id
			case <-t.stop:
				timer.Stop()
				return false
			case <-ctx.Done():
				timer.Stop()
				return false
			}
		}
	}
}

// allWriters returns the pipe's writers and its dead-letter writer.
func (tp *taskPipe) allWriters() []*taskWriter {
	if tp.dlq == nil {
		return tp.writers
	}
	return append(tp.writers[:len(tp.writers):len(tp.writers)], tp.dlq)
}

// openWriter opens w, resuming it from the state recorded with its
// pipeline's position when its sink keeps one: after a restart, and after a
// failed flush, its destination then deduplicates the replayed rows.
func (t *task) openWriter(ctx context.Context, tp *taskPipe, w *taskWriter) bool {
	var (
		wr  Writer
		err error
	)
	resumed := false
	if rs, ok := w.sink.(ResumableSink); ok {
		for _, st := range tp.pos.Sinks {
			if st.Name == w.name {
				wr, err = rs.Resume(ctx, t.id, st.Data)
				resumed = true
				break
			}
		}
	}
	if !resumed {
		wr, err = w.sink.Open(ctx, t.id)
	}
	if err != nil {
		if ctx.Err() == nil {
			t.failed(w, err, "open")
		}
		return false
	}
	w.w = wr
	if !resumed && w != tp.dlq {
		_, stateful := wr.(StatefulWriter)
		_, resumable := w.sink.(ResumableSink)
		w.fresh = stateful && resumable
	}
	return true
}

// record is the per-record path: decode once per group, evaluate each
// pipeline that has not passed the record yet, write its rows. It allocates
// nothing itself. It returns false, having written nothing, when a decoder
// says that something the record depends on is unavailable (ErrUnavailable):
// the record is then held and tried again.
func (t *task) record(rec *Record) bool {
	if !t.hasPos {
		// A task with no committed offset starts where its first record
		// is: that is where every pipeline stands before it completes one.
		t.hasPos = true
		for _, tp := range t.pipes {
			tp.pos = Position{Task: t.id, Offset: rec.Offset}
		}
		t.publish()
	}
	for _, g := range t.groups {
		g.skip, g.err = true, nil
		for _, tp := range g.pipes {
			if rec.Offset >= tp.from && !tp.done {
				g.skip = false
				break
			}
		}
		if g.skip {
			continue
		}
		if !g.prepared {
			g.row.Reset(g.width)
		}
		if err := g.dec.Decode(rec, g.row); err != nil {
			if errors.Is(err, ErrUnavailable) {
				t.held, t.heldErr = true, err
				return false
			}
			g.err = err
		}
	}
	if t.held && !t.replay {
		t.recovered()
	}
	var wm int64
	for _, g := range t.groups {
		if g.skip {
			continue
		}
		if g.err != nil {
			var de *DecodeError
			if errors.As(g.err, &de) {
				de.Origin = Origin{Task: t.id, Offset: rec.Offset}
			}
			for _, tp := range g.pipes {
				if rec.Offset < tp.from || tp.done {
					continue
				}
				if !t.replay {
					t.counts[tp.idx].in++
					t.counts[tp.idx].dlDecode++
				}
				t.deadLetter(tp, "decode", g.err, rec)
			}
			continue
		}
		if wm == 0 {
			if c := g.eventTime; c.Type != nil && !g.row.Slots[c.Slot].Null {
				wm = int64(g.row.Slots[c.Slot].N) * g.unit
			}
		}
		for _, tp := range g.pipes {
			if rec.Offset < tp.from || tp.done {
				continue
			}
			if !t.replay {
				t.counts[tp.idx].in++
			}
			if tp.agg != nil {
				t.aggregate(tp, g.row, rec)
				continue
			}
			keep, err := tp.p.Transform.Eval(g.row, tp.out)
			if err != nil {
				if !t.replay {
					t.counts[tp.idx].dlSQL++
				}
				t.deadLetter(tp, "sql", err, rec)
				continue
			}
			if !keep {
				continue
			}
			if !t.replay {
				t.counts[tp.idx].out++
			}
			tp.out.Origin = Origin{Task: t.id, Offset: rec.Offset}
			t.writeRow(tp, tp.out, rec)
		}
	}
	if wm == 0 {
		wm = rec.Timestamp.UnixMicro()
	}
	t.next, t.wm = rec.Offset+1, wm
	return true
}

// writeRow writes a pipeline's output row to its writers; a row a writer
// refuses is a dead letter of rec (logged when there is no record: a
// window emitted by a watermark advance).
func (t *task) writeRow(tp *taskPipe, row *Row, rec *Record) {
	for i, w := range tp.writers {
		if w.acked {
			if len(tp.rejects) > 0 && rec != nil {
				tp.replayRejects(t, rec, i)
			}
			continue
		}
		if err := w.w.Write(row); err != nil {
			if rec == nil {
				if !t.replay {
					t.rt.log.Error("window row refused by a sink", "pipeline", tp.p.Name, "task", t.id.String(), "sink", w.name, "error", t.rt.redact(err.Error()))
				}
				continue
			}
			if !t.replay {
				tp.rejects = append(tp.rejects, reject{rec: rec, writer: i, err: err})
			}
			t.deadLetter(tp, "sink", err, rec)
		}
	}
}

// replayRejects repeats, into a dead-letter writer being replayed, the dead
// letters of rec that writer i (which acknowledged the bundle) refused.
func (tp *taskPipe) replayRejects(t *task, rec *Record, i int) {
	for _, r := range tp.rejects {
		if r.rec == rec && r.writer == i {
			t.deadLetter(tp, "sink", r.err, rec)
		}
	}
}

func (t *task) deadLetter(tp *taskPipe, stage string, err error, rec *Record) {
	if tp.dlq == nil {
		if !t.replay {
			t.rt.log.Error("record dropped: no dead-letter destination", "pipeline", tp.p.Name, "task", t.id.String(), "offset", rec.Offset, "error", t.rt.redact(err.Error()))
		}
		return
	}
	if tp.dlq.acked {
		return
	}
	FillDeadLetter(tp.dlRow, tp.p.Name, stage, t.rt.redact(err.Error()), t.id, rec)
	if werr := tp.dlq.w.Write(tp.dlRow); werr != nil {
		t.rt.log.Error("dead letter write failed", "pipeline", tp.p.Name, "task", t.id.String(), "offset", rec.Offset, "error", t.rt.redact(werr.Error()))
	}
}

// complete closes the open bundle and flushes its writers. When some fail
// the bundle is sealed, and retrySealed tries again after a backoff; the
// pipelines whose writers all acknowledged it are complete meanwhile.
func (t *task) complete() {
	if (t.n == 0 && t.advanced == 0 && !t.idled) || t.sealed {
		return
	}
	t.sealed = true
	t.obs.state.Store(bundleFlushing)
	t.seal()
	start := time.Now()
	if t.flush() {
		d := time.Since(start)
		t.flushCost = (3*t.flushCost + d) / 4
		t.finish()
		return
	}
	t.attempt = 0
	t.retryAt = time.Now().Add(t.pause(0))
	t.obs.state.Store(bundleRetrying)
}

// retrySealed reopens the writers that failed the sealed bundle, replays the
// bundle into them alone and flushes them again.
func (t *task) retrySealed() {
	t.attempt++
	ctx := t.ctx
	ok := true
	for _, tp := range t.pipes {
		if tp.done {
			continue
		}
		for _, w := range tp.allWriters() {
			if w.acked {
				continue
			}
			if w.w != nil {
				w.w.Close(ctx)
				w.w = nil
			}
			if !t.openWriter(ctx, tp, w) {
				ok = false
			}
		}
	}
	if ctx.Err() != nil {
		return
	}
	if ok {
		// A decoder may find its dependency unavailable during the
		// replay: the writers then hold part of the bundle, so they are
		// not flushed, and the next attempt reopens them. The replay must
		// not disturb the hold of a queued record either.
		held, due, heldErr := t.held, t.heldDue, t.heldErr
		if t.stateful {
			if err := t.loadState(); err != nil {
				t.rt.log.Error("task state not reloaded for a replay", "task", t.id.String(), "error", t.rt.redact(err.Error()))
				t.retryAt = time.Now().Add(t.pause(t.attempt))
				return
			}
		}
		t.replay = true
	replay:
		for _, s := range t.segs {
			for i := range s {
				if !t.record(&s[i]) {
					ok = false
					break replay
				}
			}
		}
		if t.folded {
			t.lastInput, t.folded = time.Now(), false
		}
		if ok {
			t.replayAdvance()
			t.seal()
		}
		t.replay = false
		t.held, t.heldDue, t.heldErr = held, due, heldErr
		if ok && t.flush() {
			t.finish()
			return
		}
	}
	t.retryAt = time.Now().Add(t.pause(t.attempt))
}

// pause is the wait before attempt (0-based) of a writer that failed: slow
// while any failure is permanent, the outage backoff otherwise.
func (t *task) pause(attempt int) time.Duration {
	for _, tp := range t.pipes {
		for _, w := range tp.allWriters() {
			if w.permanent && !w.acked {
				return t.rt.job.PermanentRetry.Delay(attempt)
			}
		}
	}
	return t.rt.job.Retry.Delay(attempt)
}

// flush flushes, concurrently, every writer that has not acknowledged the
// sealed bundle, each bounded by Job.FlushTimeout. A writer that
// acknowledges is never flushed or written again for this bundle; a
// pipeline all of whose writers acknowledged is complete at once. It
// reports whether the whole bundle is complete.
func (t *task) flush() bool {
	t.recordOpened()
	ws := t.flushing[:0]
	for _, tp := range t.pipes {
		if tp.done {
			continue
		}
		for _, w := range tp.allWriters() {
			if !w.acked {
				ws = append(ws, w)
			}
		}
	}
	t.flushing = ws
	if cap(t.errs) < len(ws) {
		t.errs = make([]error, len(ws))
	}
	errs := t.errs[:len(ws)]
	ctx, cancel := context.WithTimeout(t.ctx, t.rt.job.FlushTimeout)
	if len(ws) == 1 {
		errs[0] = ws[0].w.Flush(ctx)
	} else {
		var wg sync.WaitGroup
		for i, w := range ws {
			wg.Go(func() { errs[i] = w.w.Flush(ctx) })
		}
		wg.Wait()
	}
	cancel()
	for i, w := range ws {
		if errs[i] == nil {
			w.acked = true
			t.ok(w)
		} else if t.ctx.Err() == nil {
			t.failed(w, errs[i], "flush")
		}
		errs[i] = nil
	}
	clear(ws)
	all, progressed := true, false
	for _, tp := range t.pipes {
		if tp.done {
			continue
		}
		done := true
		for _, w := range tp.allWriters() {
			done = done && w.acked
		}
		if !done {
			all = false
			continue
		}
		tp.done, progressed = true, true
		t.completePipe(tp)
	}
	if progressed && !all {
		t.publish()
	}
	return all
}

// completePipe moves a pipeline whose writers all acknowledged the bundle to
// the bundle's end, with its stateful writers' states there.
func (t *task) completePipe(tp *taskPipe) {
	var states []SinkState
	for _, w := range tp.writers {
		if sw, ok := w.w.(StatefulWriter); ok {
			if st := sw.State(); st != nil {
				states = append(states, SinkState{Name: w.name, Data: st})
			}
		}
	}
	t.saveState(tp)
	tp.pos = Position{Task: t.id, Offset: max(tp.pos.Offset, t.next), Watermark: t.wm, Sinks: states}
	tp.rejects = tp.rejects[:0]
	c := t.counts[tp.idx]
	m, job := t.rt.metrics, t.rt.job.Name
	m.RecordsIn.WithLabelValues(job, tp.p.Name).Add(float64(c.in))
	m.RecordsOut.WithLabelValues(job, tp.p.Name).Add(float64(c.out))
	if c.dlDecode > 0 {
		m.DeadLetters.WithLabelValues(job, tp.p.Name, "decode").Add(float64(c.dlDecode))
	}
	if c.dlSQL > 0 {
		m.DeadLetters.WithLabelValues(job, tp.p.Name, "sql").Add(float64(c.dlSQL))
	}
	if c.dlLate > 0 {
		m.DeadLetters.WithLabelValues(job, tp.p.Name, "late").Add(float64(c.dlLate))
	}
	t.rt.stats.add(c)
	t.rt.countPipe(tp.p.Name, c)
	t.counts[tp.idx] = pipeCount{}
}

// finish ends a bundle that every writer acknowledged.
func (t *task) finish() {
	m := t.rt.metrics
	job := t.rt.job.Name
	m.BundleRecords.WithLabelValues(job).Observe(float64(t.n))
	m.BundleSeconds.WithLabelValues(job).Observe(time.Since(t.opened).Seconds())
	t.rt.stats.InFlight.Add(-int64(t.n))
	for _, tp := range t.pipes {
		tp.done = false
		for _, w := range tp.allWriters() {
			w.acked = false
		}
	}
	t.publish()
	if t.wm > 0 {
		lag := time.Since(time.UnixMicro(t.wm)).Seconds()
		m.WatermarkLag.WithLabelValues(job, t.id.Topic, strconv.Itoa(int(t.id.Partition))).Set(lag)
	}
	t.n = 0
	t.advanced = 0
	t.idled = false
	t.sealed = false
	t.closed()
	clear(t.segs)
	t.segs = t.segs[:0]
	t.giveBack()
}

// giveBack returns to the runtime the lent batches whose every record is in
// a complete bundle: records are processed in offset order, so those whose
// last offset is below the completed bundle's end. Nothing refers to their
// records any more: the bundle's segments are cleared, the writers keep no
// row, and the rest of the queue starts past them.
func (t *task) giveBack() {
	i := 0
	for ; i < len(t.lent); i++ {
		b := t.lent[i]
		if len(b) > 0 && b[len(b)-1].Offset >= t.next {
			break
		}
		t.rt.batches.put(b)
	}
	if i > 0 {
		n := copy(t.lent, t.lent[i:])
		clear(t.lent[n:])
		t.lent = t.lent[:n]
	}
}

// ok records a writer's success, and its recovery if it was failing.
func (t *task) ok(w *taskWriter) {
	if w.fails == 0 {
		return
	}
	if w.fails >= failingAfter || w.permanent {
		t.rt.log.Info("sink recovered", "task", t.id.String(), "pipeline", w.pipe, "sink", w.name, "failures", w.fails)
	}
	w.fails, w.err, w.permanent = 0, nil, false
	t.rt.setFault(faultKey{kind: faultSink, name: w.name, task: t.id}, "")
}

// failed records a writer's failure: metrics at once, readiness once it
// keeps failing (or at once when permanent), and a WARN log at most once a
// minute per sink.
func (t *task) failed(w *taskWriter, err error, op string) {
	w.fails++
	w.err = err
	w.permanent = IsPermanent(err)
	kind := "retryable"
	if w.permanent {
		kind = "permanent"
	}
	rt := t.rt
	rt.metrics.FlushFailures.WithLabelValues(rt.job.Name, w.pipe, w.name, kind).Inc()
	msg := rt.redact(err.Error())
	rt.noteSinkError(w, kind, msg)
	if w.permanent || w.fails >= failingAfter {
		rt.setFault(faultKey{kind: faultSink, name: w.name, task: t.id}, describe(kind, err, msg))
	}
	if rt.warnDue("sink " + w.name) {
		rt.log.Warn("sink failing; its task holds the bundle and retries", "task", t.id.String(), "pipeline", w.pipe, "sink", w.name,
			"op", op, "kind", kind, "failures", w.fails, "records", t.n, "error", msg)
	}
}

// recovered clears a held record's readiness fault once it decodes.
func (t *task) recovered() {
	t.held, t.heldDue, t.heldErr, t.tries = false, false, nil, 0
	t.rt.setFault(faultKey{kind: faultDecoder, task: t.id}, "")
}

// hold records that a record waits for an unavailable dependency.
func (t *task) holdFault() {
	msg := t.rt.redact(t.heldErr.Error())
	t.rt.setFault(faultKey{kind: faultDecoder, task: t.id}, msg)
	if t.rt.warnDue("decoder " + t.id.String()) {
		t.rt.log.Warn("record waits for an unavailable dependency; its task retries", "task", t.id.String(), "attempt", t.attempt, "error", msg)
	}
}

func (t *task) clearFaults() {
	for _, tp := range t.pipes {
		for _, w := range tp.allWriters() {
			if w.fails > 0 {
				t.rt.setFault(faultKey{kind: faultSink, name: w.name, task: t.id}, "")
			}
		}
	}
	t.rt.setFault(faultKey{kind: faultDecoder, task: t.id}, "")
}

func (t *task) closeWriters(ctx context.Context) {
	for _, tp := range t.pipes {
		for _, w := range tp.allWriters() {
			if w.w == nil {
				continue
			}
			if err := w.w.Close(ctx); err != nil {
				t.rt.log.Warn("sink close failed", "task", t.id.String(), "pipeline", tp.p.Name, "sink", w.name, "error", t.rt.redact(err.Error()))
			}
			w.w = nil
		}
	}
	t.abandoned = t.n
	if t.n > 0 {
		// The open or sealed bundle is abandoned: its records are replayed
		// by whoever resumes from the complete positions.
		t.rt.stats.InFlight.Add(-int64(t.n))
		t.n = 0
	}
	for _, b := range t.queue {
		t.rt.stats.InFlight.Add(-int64(len(b)))
	}
	t.queue = nil
	batches, _ := t.take()
	t.mu.Lock()
	t.gone = true
	t.mu.Unlock()
	for _, b := range batches {
		t.rt.stats.InFlight.Add(-int64(len(b)))
	}
	// The batches of the abandoned bundle and of the queue are not given
	// back (nothing guarantees that no goroutine still reads them, e.g. a
	// writer's Flush past its deadline); the GC collects them.
	for _, b := range t.lent {
		t.rt.batches.forget(b)
	}
	t.lent = nil
}
