package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Stateful pipelines (an Aggregator transform) keep their state in the
// task's TaskStore, opened from Job.State before the task's first record.
//
// # Consistency with positions
//
// A pipeline's aggregate lives in memory; when the pipeline completes a
// bundle (completePipe) what changed is written to the store, so the store
// always holds every stateful pipeline's state as of its own position. A
// stateful task publishes its position only together with a snapshot of
// the store (at a checkpoint cut, and when it stops), so a checkpoint
// never names an offset whose state it does not hold: after a crash the
// task resumes from a position and the state that go together, and
// replays the same records, which emit the same rows in the same order.
//
// A bundle whose flush failed is replayed into the writers that failed:
// a stateful pipeline's aggregate is first reloaded from the store (its
// state at the bundle's start), so that the replay folds each record once.
//
// # Watermarks, lateness, idleness
//
// An aggregate's watermark is the highest event time it has folded. A
// window is emitted when the watermark passes its end plus
// Pipeline.AllowedLateness; a record of a window already emitted is late:
// it goes to the dead-letter destination with stage "late". A task whose
// input has been idle for Pipeline.IdleTimeout (since its last record, or
// since it started) advances its aggregates' watermarks with the wall
// clock, checked at each checkpoint cut, so that a quiet partition's last
// windows are emitted. A task without a watermark (no record folded) has
// nothing to advance: it tells its Idlers, which may close a bundle of
// their own (the shuffle's idle mark). At the end of a bounded input
// every open window is emitted.

// errLate is the reason of a late record's dead letter.
var errLate = errors.New("late: the record's window was already emitted (its end plus allowed_lateness is behind the task's watermark)")

// statePrefix is the prefix of a pipeline's keys in its task's store.
func statePrefix(pipeline string) []byte {
	return append([]byte(pipeline), 0)
}

// initState sets up the aggregates of the task's stateful pipelines.
func (t *task) initState() {
	for _, tp := range t.pipes {
		if a, ok := tp.p.Transform.(Aggregator); ok {
			tp.agg = a.NewAggregate(tp.p.AllowedLateness)
			tp.aggOf = a
			tp.emit = t.emitter(tp)
			t.stateful = true
		}
	}
}

// openState opens the task's store, restored from its checkpointed
// snapshot, and loads every stateful pipeline's aggregate from it. It
// reports whether the task may run.
func (t *task) openState(ctx context.Context) bool {
	if t.rt.job.State == nil {
		t.rt.log.Error("stateful pipeline without a state store; the task does not run", "task", t.id.String())
		return false
	}
	for attempt := 0; ; attempt++ {
		s, err := t.rt.job.State.Open(ctx, t.id, t.stateRef)
		if err == nil {
			t.store = s
			if err = t.loadState(); err == nil {
				return true
			}
			s.Close()
			t.store = nil
		}
		if ctx.Err() != nil {
			return false
		}
		if t.rt.warnDue("state " + t.id.String()) {
			t.rt.log.Warn("task state not restored; the task retries", "task", t.id.String(), "ref", t.stateRef, "error", t.rt.redact(err.Error()))
		}
		select {
		case <-time.After(t.rt.job.Retry.Delay(attempt)):
		case reply := <-t.cut:
			reply <- t.id
		case <-t.stop:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// loadState (re)builds every stateful pipeline's aggregate from the store.
func (t *task) loadState() error {
	for _, tp := range t.pipes {
		if tp.agg == nil {
			continue
		}
		tp.agg = tp.aggOf.NewAggregate(tp.p.AllowedLateness)
		prefix := statePrefix(tp.p.Name)
		if err := t.store.Scan(prefix, func(k, v []byte) error { return tp.agg.Load(k[len(prefix):], v) }); err != nil {
			return fmt.Errorf("engine: load state of pipeline %s: %w", tp.p.Name, err)
		}
	}
	return nil
}

// saveState writes what the pipeline's aggregate changed to the store.
func (t *task) saveState(tp *taskPipe) {
	if tp.agg == nil || t.store == nil {
		return
	}
	// The store copies keys and values: one buffer serves every key.
	key := statePrefix(tp.p.Name)
	n := len(key)
	err := t.store.Apply(func(put func(k, v []byte), del func(k []byte)) {
		tp.agg.Save(
			func(k, v []byte) { key = append(key[:n], k...); put(key, v) },
			func(k []byte) { key = append(key[:n], k...); del(key) })
	})
	if err != nil {
		// The store is local disk: a failure here is a broken disk. The
		// task stops publishing positions (the next snapshot fails too),
		// so its next owner replays from the last good checkpoint.
		t.stateErr = err
		t.rt.log.Error("task state not written; the task's position no longer advances", "task", t.id.String(), "pipeline", tp.p.Name, "error", t.rt.redact(err.Error()))
	}
}

// snapshot makes the store durable in the checkpoint store and publishes
// the task's positions with it.
func (t *task) snapshot() bool {
	if t.store == nil || t.stateErr != nil {
		return false
	}
	ref, err := t.store.Snapshot(t.ctx)
	if err != nil {
		if t.ctx.Err() == nil && t.rt.warnDue("snapshot "+t.id.String()) {
			t.rt.log.Warn("task state snapshot failed; its position waits for the next checkpoint", "task", t.id.String(), "error", t.rt.redact(err.Error()))
		}
		return false
	}
	t.stateRef = ref
	t.publishing = true
	t.publish()
	t.publishing = false
	return true
}

// aggregate folds a decoded record into a stateful pipeline and writes the
// rows of the windows it closes.
func (t *task) aggregate(tp *taskPipe, row *Row, rec *Record) {
	late, err := tp.agg.Add(row)
	switch {
	case err != nil:
		if !t.replay {
			t.counts[tp.idx].dlSQL++
		}
		t.deadLetter(tp, "sql", err, rec)
		return
	case late:
		if !t.replay {
			t.counts[tp.idx].dlLate++
		}
		t.deadLetter(tp, "late", errLate, rec)
		return
	}
	t.folded = true // lastInput is set once per batch: see processQueue
	t.fire(tp, false, rec)
}

// fire writes the rows of the windows the pipeline's watermark closed.
// It is called for every folded record, so it allocates nothing: the
// callback is the pipeline's own (emitter), told through tp.fireRec which
// record the rows come from.
func (t *task) fire(tp *taskPipe, final bool, rec *Record) {
	tp.fireRec = rec
	err := tp.agg.Fire(final, tp.emit)
	tp.fireRec = nil
	if err != nil {
		t.rt.log.Error("window rows not emitted", "task", t.id.String(), "pipeline", tp.p.Name, "error", t.rt.redact(err.Error()))
	}
}

// emitter returns the callback through which tp's aggregate emits a
// window's row: it writes the row as the output of the record being
// folded (tp.fireRec), or, when a watermark advance fired it, of the open
// bundle's last record.
func (t *task) emitter(tp *taskPipe) func(out *Row) error {
	return func(out *Row) error {
		if !t.replay {
			t.counts[tp.idx].out++
		}
		offset := t.next - 1
		if tp.fireRec != nil {
			offset = tp.fireRec.Offset
		}
		out.Origin = Origin{Task: t.id, Offset: offset}
		t.writeRow(tp, out, tp.fireRec)
		return nil
	}
}

// advance moves every stateful pipeline's watermark to wm (math.MaxInt64:
// the end of the input) and emits what it closes, as part of the open
// bundle (which it opens when none is).
func (t *task) advance(wm int64) {
	if !t.stateful {
		return
	}
	if t.n == 0 {
		t.opened = time.Now()
	}
	t.advanced = wm
	for _, tp := range t.pipes {
		if tp.agg == nil || tp.done {
			continue
		}
		if wm == math.MaxInt64 {
			t.fire(tp, true, nil)
		} else {
			tp.agg.Advance(wm)
			t.fire(tp, false, nil)
		}
	}
}

// idle advances the watermarks of a task whose input has been idle for
// its pipelines' IdleTimeout, by the wall time since its last input (or
// last advance, or the task's start: a task restored with a watermark
// that reads nothing more advances too). A task without a watermark (an
// empty partition) tells its Idlers instead.
func (t *task) idle(now time.Time) {
	if !t.stateful || t.blocked() || t.n > 0 || t.lastInput.IsZero() {
		return
	}
	timeout := time.Duration(0)
	for _, tp := range t.pipes {
		if tp.agg != nil && tp.p.IdleTimeout > 0 {
			timeout = max(timeout, tp.p.IdleTimeout)
		}
	}
	if timeout == 0 || now.Sub(t.lastInput) < timeout {
		return
	}
	d := now.Sub(t.lastInput).Microseconds()
	t.lastInput = now
	low := int64(math.MaxInt64)
	for _, tp := range t.pipes {
		if tp.agg != nil {
			low = min(low, tp.agg.Watermark())
		}
	}
	if low == math.MinInt64 {
		// No watermark to advance: an empty partition. An Idler may still
		// have something to say (that it is idle).
		if t.tellIdle() {
			t.opened = now
			t.complete()
		}
		return
	}
	t.advance(low + d)
	t.complete()
}

// tellIdle tells the Idlers without a watermark that the task's input is
// idle, and reports whether one has something to send in the open bundle.
func (t *task) tellIdle() bool {
	for _, tp := range t.pipes {
		if i, ok := tp.agg.(Idler); ok && !tp.done && tp.agg.Watermark() == math.MinInt64 && i.Idle() {
			t.idled = true
		}
	}
	return t.idled
}

// seal ends the bundle of the pipelines whose aggregates emit rows of
// their own at the end of a bundle (Sealer).
func (t *task) seal() {
	if !t.stateful {
		return
	}
	for _, tp := range t.pipes {
		sl, ok := tp.agg.(Sealer)
		if !ok || tp.done {
			continue
		}
		from := tp.pos.Offset
		to := max(from, t.next)
		err := sl.Seal(from, to, func(out *Row) error {
			out.Origin = Origin{Task: t.id, Offset: to - 1}
			t.writeRow(tp, out, nil)
			return nil
		})
		if err != nil {
			t.rt.log.Error("bundle rows not emitted", "task", t.id.String(), "pipeline", tp.p.Name, "error", t.rt.redact(err.Error()))
		}
	}
}

// replayAdvance repeats, in a replay, the watermark advance of the sealed
// bundle.
func (t *task) replayAdvance() {
	if t.advanced != 0 {
		t.advance(t.advanced)
	}
	if t.idled {
		t.tellIdle()
	}
}

func (t *task) closeState() {
	if t.store != nil {
		if err := t.store.Close(); err != nil {
			t.rt.log.Warn("task state close failed", "task", t.id.String(), "error", t.rt.redact(err.Error()))
		}
		t.store = nil
	}
}
