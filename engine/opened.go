package engine

import (
	"slices"
	"sync"
	"time"
)

// A writer that keeps state (StatefulWriter of a ResumableSink) and was
// opened without one starts something a replay cannot find by itself: a
// new BigQuery committed stream, a new series of objects. If its first
// flush put rows there and the pod crashed before a checkpoint named it,
// the replay would open another stream or series and write those rows
// again. So before such a writer's first flush, its task records the
// writer's state as of its pipeline's complete position (nothing flushed
// yet) with that position, publishes it, and waits until a checkpoint that
// holds it is committed; the runtime takes that checkpoint at once rather
// than at its next interval. A replay then resumes the same stream or
// series, and the destination skips what it already holds. The same record
// makes a writer reopened after a failed first flush resume the stream it
// began instead of starting another.
//
// It costs one checkpoint per writer opened fresh: when a task first runs,
// or when its pipeline's position holds no state for that sink. A task that
// is stopped (drain, revocation) while it waits flushes without it: the
// drain's final checkpoint records the state, and only a crash during the
// drain can then repeat rows.

// ckptWaits lets tasks wait for a checkpoint that read the positions they
// published.
type ckptWaits struct {
	mu sync.Mutex
	// reads counts the checkpoints that have begun reading the tasks'
	// positions; ended is the latest such read whose checkpoint ended,
	// committed the latest whose checkpoint was committed.
	reads, ended, committed uint64
	// want: a task waits, so the next checkpoint is committed even when no
	// offset moved.
	want bool
	// changed is closed when a checkpoint ends.
	changed chan struct{}
}

// begin is called by a checkpoint just before it reads positions. It
// returns the read's number and whether a task waits for it.
func (c *ckptWaits) begin() (read uint64, wanted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	wanted, c.want = c.want, false
	return c.reads, wanted
}

// end records that the checkpoint of read ended, committed or not.
func (c *ckptWaits) end(read uint64, committed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended = max(c.ended, read)
	if committed {
		c.committed = max(c.committed, read)
	}
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

// ask records that a task needs a checkpoint of the positions it has
// published, and returns the read it waits for.
func (c *ckptWaits) ask() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.want = true
	return c.reads + 1
}

// wait reports whether the checkpoint of read (or a later one) was
// committed, or else whether it failed; while it is pending, it returns a
// channel closed when a checkpoint ends.
func (c *ckptWaits) wait(read uint64) (committed, failed bool, changed <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.committed >= read {
		return true, false, nil
	}
	if c.ended >= read {
		return false, true, nil
	}
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return false, false, c.changed
}

// askCheckpoint makes the runtime take a checkpoint now.
func (r *Runtime) askCheckpoint() {
	select {
	case r.ckptReq <- struct{}{}:
	default: // one is asked for already
	}
}

// recordOpened records the state of the writers about to flush for the
// first time since they were opened fresh, and returns once a checkpoint
// holds it, or once the task is stopped or cancelled.
func (t *task) recordOpened() {
	fresh := false
	for _, tp := range t.pipes {
		if tp.done {
			continue
		}
		for _, w := range tp.writers {
			if !w.fresh || w.acked {
				continue
			}
			w.fresh = false
			st := w.w.(StatefulWriter).State()
			if st == nil {
				continue
			}
			tp.pos.Sinks = append(slices.Clip(tp.pos.Sinks), SinkState{Name: w.name, Data: st})
			fresh = true
		}
	}
	if !fresh || t.stopped {
		return
	}
	rt := t.rt
	published := t.publishNow()
	read := rt.waits.ask()
	if t.cutReply != nil {
		// A checkpoint waits for this task's cut: answering it lets that
		// checkpoint read the position just published, unless it stopped
		// waiting already; the one asked for next then does.
		t.cutReply <- t.id
		t.cutReply = nil
	}
	rt.askCheckpoint()
	var (
		retry   *time.Timer
		attempt int
	)
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		committed, failed, changed := rt.waits.wait(read)
		if committed && published {
			return
		}
		var due <-chan time.Time
		if failed || !published {
			// The checkpoint failed, or a stateful task's snapshot did:
			// try again after a backoff.
			if retry == nil {
				retry = time.NewTimer(rt.job.Retry.Delay(attempt))
				attempt++
			}
			due = retry.C
		}
		select {
		case <-changed:
		case <-due:
			retry = nil
			if !published {
				published = t.publishNow()
			}
			read = rt.waits.ask()
			rt.askCheckpoint()
		case reply := <-t.cut:
			reply <- t.id
		case <-t.stop:
			t.stopped = true
			return
		case <-t.ctx.Done():
			return
		}
	}
}

// publishNow publishes the pipelines' positions at once; a stateful task
// does so with a snapshot of its store. It reports whether it did.
func (t *task) publishNow() bool {
	if t.stateful {
		return t.snapshot()
	}
	t.publish()
	return true
}
