package sql

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// The two halves of a shuffled aggregation as engine transforms, so that
// the runtime runs them as it runs any windowed task (state in the task's
// store, snapshots, lateness, idleness, replays): a producer pipeline reads
// the source topics through a ShuffleProducer, whose task state is a
// Partial and whose bundles end (engine.Sealer) in rows of ShuffleSchema
// (its partials and its progress) that a sink sends to the repartition
// topic; a merging pipeline reads the repartition topic, decoded into rows
// of ShuffleSchema, through a ShuffleMerger, whose task state is a
// ShuffleMerge and which emits the query's rows.

// ShuffleSchema is the row of one message of the shuffle protocol (see the
// package doc, Shuffle): what a producer's bundle hands its sink, and what
// a merging task reads from the repartition topic.
var ShuffleSchema = engine.MustSchema(&engine.Type{Kind: engine.KindRecord, Name: "sluice.Shuffle", Fields: []engine.Field{
	{Name: "kind", Type: &engine.Type{Kind: engine.KindLong}},
	{Name: "epoch", Type: &engine.Type{Kind: engine.KindLong}},
	{Name: "from", Type: &engine.Type{Kind: engine.KindLong}},
	{Name: "to", Type: &engine.Type{Kind: engine.KindLong}},
	{Name: "wm", Type: &engine.Type{Kind: engine.KindLong}},
	{Name: "producer", Type: &engine.Type{Kind: engine.KindString}},
	{Name: "key", Type: &engine.Type{Kind: engine.KindBytes}},
	{Name: "value", Type: &engine.Type{Kind: engine.KindBytes}},
}})

// Slots of ShuffleSchema.
const (
	ShuffleKind = iota
	ShuffleEpoch
	ShuffleFrom
	ShuffleTo
	ShuffleWatermark
	ShuffleProducerName
	ShuffleKey
	ShuffleValue
)

// Kinds of shuffle messages (slot ShuffleKind). Part of the repartition
// topic's format: never change a value.
const (
	// ShuffleStart: producer starts in epoch from source offset to; from
	// is the source's partition count as its process counted it at its
	// start (0: not said).
	ShuffleStart = 0
	// ShufflePartial: a group's windows (key, value) of the producer's
	// bundle [from, to).
	ShufflePartial = 1
	// ShuffleProgress: the producer's watermark wm once its bundles up to
	// to are sent.
	ShuffleProgress = 2
	// ShuffleCommit: the producer's source offsets below to are committed.
	ShuffleCommit = 3
	// ShuffleIdle: the producer's input is idle at offset to and it has
	// no watermark: leave it out of the watermark until it sends a partial
	// or a progress (ShuffleMerge.Idle).
	ShuffleIdle = 4
)

// ShuffleProducer is the source side of a shuffled aggregation: an
// engine.Aggregator whose task state is a Partial. Its rows are not the
// query's: each bundle ends in the bundle's partials and the task's
// progress, rows of ShuffleSchema (epoch and producer are the sink's to
// set). Eval is not used.
type ShuffleProducer struct{ a *Aggregation }

// Producer returns the source side of the shuffled aggregation.
func (a *Aggregation) Producer() *ShuffleProducer { return &ShuffleProducer{a: a} }

var (
	_ engine.Aggregator   = (*ShuffleProducer)(nil)
	_ engine.ColumnReader = (*ShuffleProducer)(nil)
)

// Output is ShuffleSchema.
func (p *ShuffleProducer) Output() *engine.Schema { return ShuffleSchema }

// Columns are the input columns the query reads.
func (p *ShuffleProducer) Columns() []string { return p.a.Columns() }

// Eval is not how a producer is used: it reports an error.
func (p *ShuffleProducer) Eval(in, out *engine.Row) (bool, error) {
	return false, errors.New("sql: a shuffle producer aggregates per task (NewAggregate), it does not evaluate rows")
}

// NewAggregate returns one source task's pre-aggregation.
func (p *ShuffleProducer) NewAggregate(lateness time.Duration) engine.Aggregate {
	return &producerState{p: p.a.NewPartial(lateness), out: engine.NewRow(ShuffleSchema.Width())}
}

// producerState is a Partial as a task's Aggregate, Sealer and Idler.
type producerState struct {
	p   *Partial
	out *engine.Row
	// idle: the open bundle is an idle task's without a watermark, and
	// ends in an idle mark instead of a progress.
	idle bool
	// idleSent: the last bundle sealed ended in an idle mark; no other is
	// due until the task sends something else.
	idleSent bool
}

var (
	_ engine.Sealer = (*producerState)(nil)
	_ engine.Idler  = (*producerState)(nil)
)

// Idle is called when the task's input has been idle for the idle timeout
// while the task has no watermark (it has folded no record): the bundle
// then ends in an idle mark, which tells the merging tasks not to wait for
// this producer. It reports false when there is nothing to send: the task
// has a watermark (the runtime advances it instead), or its last bundle
// already ended in an idle mark.
func (s *producerState) Idle() bool {
	if s.p.Watermark() != math.MinInt64 || s.idleSent {
		return false
	}
	s.idle = true
	return true
}

func (s *producerState) Add(in *engine.Row) (bool, error) { return s.p.Add(in) }

// Fire emits nothing: the merging tasks emit the windows. At the end of
// the input (final) the watermark becomes math.MaxInt64, which the next
// Seal sends on.
func (s *producerState) Fire(final bool, _ func(*engine.Row) error) error {
	if final {
		s.p.Advance(math.MaxInt64)
	}
	return nil
}

func (s *producerState) Watermark() int64 { return s.p.Watermark() }
func (s *producerState) Advance(wm int64) { s.p.Advance(wm) }
func (s *producerState) Save(put func(k, v []byte), del func(k []byte)) {
	s.p.Save(put, del)
}
func (s *producerState) Load(k, v []byte) error { return s.p.Load(k, v) }

// Seal ends the bundle [from, to): one row per partial, then the progress
// row with the task's watermark (the idle mark after Idle).
func (s *producerState) Seal(from, to int64, emit func(*engine.Row) error) error {
	out := s.out
	err := s.p.Flush(func(key, value []byte) error {
		out.Reset(ShuffleSchema.Width())
		out.SetInt(ShuffleKind, ShufflePartial)
		out.SetInt(ShuffleFrom, from)
		out.SetInt(ShuffleTo, to)
		out.SetStr(ShuffleKey, engine.UnsafeString(key))
		out.SetStr(ShuffleValue, engine.UnsafeString(value))
		return emit(out)
	})
	if err != nil {
		return err
	}
	out.Reset(ShuffleSchema.Width())
	kind := int64(ShuffleProgress)
	if s.idle && s.p.Watermark() == math.MinInt64 {
		kind = ShuffleIdle
	}
	s.idle, s.idleSent = false, kind == ShuffleIdle
	out.SetInt(ShuffleKind, kind)
	out.SetInt(ShuffleFrom, from)
	out.SetInt(ShuffleTo, to)
	out.SetInt(ShuffleWatermark, s.p.Watermark())
	return emit(out)
}

// ShuffleMerger is the merging side of a shuffled aggregation: an
// engine.Aggregator over rows of ShuffleSchema (the repartition topic's
// messages) whose task state is a ShuffleMerge, and which emits the
// query's rows. Eval is not used.
type ShuffleMerger struct {
	a         *Aggregation
	producers int
	late      func(windows int)
}

// Merger returns the merging side of the shuffled aggregation, whose tasks
// wait for producers distinct producers (the source's partitions).
func (a *Aggregation) Merger(producers int) *ShuffleMerger {
	return &ShuffleMerger{a: a, producers: producers}
}

var _ engine.Aggregator = (*ShuffleMerger)(nil)

// Output is the query's output.
func (m *ShuffleMerger) Output() *engine.Schema { return m.a.Output() }

// Eval is not how a merger is used: it reports an error.
func (m *ShuffleMerger) Eval(in, out *engine.Row) (bool, error) {
	return false, errors.New("sql: a shuffle merger aggregates per task (NewAggregate), it does not evaluate rows")
}

// CountLate makes every merging task call f with the partial windows it
// dropped as late (ShuffleMerge.Late) in each bundle it completes, once
// per bundle however often a failed flush replays it. f is called from
// the tasks' goroutines, concurrently. Call it before NewAggregate.
func (m *ShuffleMerger) CountLate(f func(windows int)) { m.late = f }

// NewAggregate returns one merging task's state.
func (m *ShuffleMerger) NewAggregate(lateness time.Duration) engine.Aggregate {
	return &mergerState{ShuffleMerge: m.a.NewShuffleMerge(lateness, m.producers), late: m.late}
}

// mergerState feeds rows of ShuffleSchema to a ShuffleMerge.
type mergerState struct {
	*ShuffleMerge
	late     func(windows int)
	reported int // of Late, passed to late
}

// Save passes what changed, as ShuffleMerge.Save, and reports the late
// partial windows of the bundle: Save is called once per completed
// bundle, and a replayed bundle starts from a reloaded state (Late 0).
func (s *mergerState) Save(put func(key, value []byte), del func(key []byte)) {
	s.ShuffleMerge.Save(put, del)
	if n := s.Late() - s.reported; n > 0 && s.late != nil {
		s.late(n)
	}
	s.reported = s.Late()
}

// Add applies one shuffle message. Nothing is late here: a partial behind
// the watermark counts in Late (a producer's fault, not a record's).
func (s *mergerState) Add(in *engine.Row) (bool, error) {
	name := in.Str(ShuffleProducerName)
	epoch, to := in.Int(ShuffleEpoch), in.Int(ShuffleTo)
	switch k := in.Int(ShuffleKind); k {
	case ShuffleStart:
		if n := in.Int(ShuffleFrom); n > 0 && n <= math.MaxInt32 {
			s.Announce(int(n))
		}
		return false, s.Start(name, epoch, to)
	case ShufflePartial:
		s.Partial(name, epoch, in.Int(ShuffleFrom), to, engine.UnsafeBytes(in.Str(ShuffleKey)), engine.UnsafeBytes(in.Str(ShuffleValue)))
	case ShuffleProgress:
		s.Progress(name, epoch, to, in.Int(ShuffleWatermark))
	case ShuffleCommit:
		return false, s.Commit(name, epoch, to)
	case ShuffleIdle:
		s.Idle(name, epoch, to)
	default:
		return false, fmt.Errorf("sql: shuffle: unknown message kind %d", k)
	}
	return false, nil
}

// Advance does nothing: a merging task's watermark is its producers'
// (carried in-band), never the wall clock's.
func (s *mergerState) Advance(int64) {}
