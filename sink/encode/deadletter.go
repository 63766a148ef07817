package encode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// ErrNoDeadLetter is returned by DeadLetters.Flush when rows were rejected and
// the pipeline has no dead-letter destination: the bundle fails instead of
// losing them.
var ErrNoDeadLetter = errors.New("rows rejected by the destination and no dead-letter destination")

// DeadLetters collects the rows one task's writer could not deliver for good
// (rejected by the destination, or not encodable) and hands them to the
// pipeline's dead-letter sink on Flush. It belongs to the writer's goroutine.
type DeadLetters struct {
	env     engine.SinkEnv
	task    engine.TaskID
	w       engine.Writer
	row     engine.Row
	pending []deadLetter
	arena   []byte
}

type deadLetter struct {
	value, reason [2]int // spans of arena
	at            int64
	origin        engine.Origin
}

// NewDeadLetters returns the dead-letter buffer of a task's writer.
func NewDeadLetters(env engine.SinkEnv, task engine.TaskID) *DeadLetters {
	return &DeadLetters{env: env, task: task}
}

// Add queues a rejected row: origin is the input record it came from
// (engine.Row.Origin), value its encoding (copied), reason says why (an
// error, or the destination's response). reason is redacted with
// SinkEnv.Redact before it is stored.
func (d *DeadLetters) Add(origin engine.Origin, value []byte, reason string) {
	reason = d.env.Redact.Redact(reason)
	l := deadLetter{origin: origin}
	l.value[0] = len(d.arena)
	d.arena = append(d.arena, value...)
	l.value[1] = len(d.arena)
	d.arena = append(d.arena, reason...)
	l.reason = [2]int{l.value[1], len(d.arena)}
	l.at = time.Now().UnixMicro()
	d.pending = append(d.pending, l)
}

// Len is the number of queued rows.
func (d *DeadLetters) Len() int { return len(d.pending) }

// Flush writes the queued rows to the dead-letter sink and flushes it. It
// returns ErrNoDeadLetter (wrapped) when there is none.
func (d *DeadLetters) Flush(ctx context.Context) error {
	if len(d.pending) == 0 {
		return nil
	}
	if d.env.DeadLetter == nil {
		return fmt.Errorf("%s: %d %w", d.env.Name, len(d.pending), ErrNoDeadLetter)
	}
	if d.w == nil {
		w, err := d.env.DeadLetter.Open(ctx, d.task)
		if err != nil {
			return fmt.Errorf("open dead-letter writer: %w", err)
		}
		d.w = w
	}
	for _, l := range d.pending {
		r := &d.row
		r.Reset(engine.DeadLetterSchema.Width())
		r.SetStr(engine.DLPipeline, d.env.Pipeline)
		r.SetStr(engine.DLStage, "sink")
		r.SetStr(engine.DLError, engine.UnsafeString(d.arena[l.reason[0]:l.reason[1]]))
		r.SetStr(engine.DLTopic, l.origin.Task.Topic)
		r.SetInt(engine.DLPartition, int64(l.origin.Task.Partition))
		r.SetInt(engine.DLOffset, l.origin.Offset)
		r.SetInt(engine.DLTimestamp, l.at)
		r.SetNull(engine.DLKey)
		r.SetStr(engine.DLValue, engine.UnsafeString(d.arena[l.value[0]:l.value[1]]))
		if err := d.w.Write(r); err != nil {
			return fmt.Errorf("write dead letter: %w", err)
		}
	}
	if err := d.w.Flush(ctx); err != nil {
		return fmt.Errorf("flush dead letters: %w", err)
	}
	d.pending, d.arena = d.pending[:0], d.arena[:0]
	return nil
}

// Discard forgets the queued rows (their bundle is abandoned and will replay).
func (d *DeadLetters) Discard() { d.pending, d.arena = d.pending[:0], d.arena[:0] }

// Close closes the dead-letter writer, if one was opened.
func (d *DeadLetters) Close(ctx context.Context) error {
	if d.w == nil {
		return nil
	}
	w := d.w
	d.w = nil
	return w.Close(ctx)
}
