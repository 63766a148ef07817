package sql

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// Deduplication drops the records whose key was seen, in the same task,
// within a span of event time, then runs the pipeline's own transform (a
// stateless *Program or an *Aggregation) over the others. It is immutable
// and implements engine.Aggregator; each task keeps the keys it has seen in
// its own state (NewAggregate), which expires a key once the task's
// watermark is past its first sighting plus the span.
//
// A record whose event time is before the watermark minus the span is
// passed on: its key may have expired already, and dropping it could lose
// a record never seen.
type Deduplication struct {
	key    *Program // SELECT <key> AS k, <event time> AS t FROM input
	within int64
	inner  engine.Transform
	reads  []string
}

var _ engine.Aggregator = (*Deduplication)(nil)

// CompileDedup compiles the key expression of a dedup (its text, an SQL
// expression over input) and the event time column, around inner.
func CompileDedup(keyExpr, eventTime string, within time.Duration, inner engine.Transform, input *engine.Schema) (*Deduplication, error) {
	if within <= 0 {
		return nil, errors.New("sql: dedup: within must be positive")
	}
	if eventTime == "" {
		return nil, errors.New("sql: dedup needs the pipeline's event_time column")
	}
	text := "SELECT " + keyExpr + " AS k, " + eventTime + " AS t FROM input"
	p, err := Compile(text, input)
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			return nil, fmt.Errorf("sql: dedup key %s: %s", keyExpr, se.Msg)
		}
		return nil, fmt.Errorf("sql: dedup key %s: %w", keyExpr, err)
	}
	if t, _ := sqlType(baseType(p.Output().Fields()[1].Type)); t != tTime {
		return nil, fmt.Errorf("sql: dedup: event time column %s is not a timestamp", eventTime)
	}
	if baseType(p.Output().Fields()[0].Type).Width() != 1 {
		return nil, fmt.Errorf("sql: dedup key %s: a record cannot be a key", keyExpr)
	}
	d := &Deduplication{key: p, within: int64(within / time.Microsecond), inner: inner, reads: slices.Clone(p.reads)}
	if cr, ok := inner.(engine.ColumnReader); ok {
		d.reads = append(d.reads, cr.Columns()...)
		slices.Sort(d.reads)
		d.reads = slices.Compact(d.reads)
	}
	return d, nil
}

// Output is the inner transform's.
func (d *Deduplication) Output() *engine.Schema { return d.inner.Output() }

// Columns lists the input columns read (engine.ColumnReader).
func (d *Deduplication) Columns() []string { return d.reads }

// Eval is not how a dedup runs (NewAggregate); it reports an error.
func (d *Deduplication) Eval(in, out *engine.Row) (bool, error) {
	return false, errors.New("sql: a dedup runs through NewAggregate, not Eval")
}

// NewAggregate returns the state of one task.
func (d *Deduplication) NewAggregate(lateness time.Duration) engine.Aggregate {
	s := &dedupState{d: d, seen: map[string]int64{}, wm: math.MinInt64, wmSaved: math.MinInt64, row: engine.NewRow(d.key.Output().Width())}
	if a, ok := d.inner.(engine.Aggregator); ok {
		s.inner = a.NewAggregate(lateness)
	} else {
		s.out = engine.NewRow(d.inner.Output().Width())
	}
	return s
}

type dedupState struct {
	d       *Deduplication
	inner   engine.Aggregate // nil: inner is stateless, out holds its row
	out     *engine.Row
	pending bool // out holds a row Fire has not emitted

	seen    map[string]int64 // key → event time of its first sighting
	expiry  dueHeap[string]  // end = sighting + within
	wm      int64
	wmSaved int64
	changed []string // keys set or expired since the last Save
	row     *engine.Row
}

func (s *dedupState) Watermark() int64 {
	if s.inner != nil {
		return max(s.wm, s.inner.Watermark())
	}
	return s.wm
}

func (s *dedupState) Advance(wm int64) {
	s.wm = max(s.wm, wm)
	s.expire()
	if s.inner != nil {
		s.inner.Advance(wm)
	}
}

func (s *dedupState) Add(in *engine.Row) (bool, error) {
	s.pending = false
	if _, err := s.d.key.Eval(in, s.row); err != nil {
		return false, err
	}
	ts := s.row.Slots[1]
	if ts.Null {
		return false, &engine.EvalError{Expr: "dedup event time", Err: errors.New("the event time is NULL")}
	}
	t := int64(ts.N)
	key := string(appendSlot(nil, &s.row.Slots[0]))
	if first, ok := s.seen[key]; ok && t-first < s.d.within && first-t < s.d.within {
		s.wm = max(s.wm, t)
		s.expire()
		return false, nil // a duplicate: dropped
	}
	if t+s.d.within > s.wm {
		s.seen[key] = t
		s.changed = append(s.changed, key)
		s.expiry.push(heapEntry[string]{end: t + s.d.within, v: key})
	}
	s.wm = max(s.wm, t)
	s.expire()
	if s.inner != nil {
		return s.inner.Add(in)
	}
	keep, err := s.d.inner.Eval(in, s.out)
	s.pending = keep && err == nil
	return false, err
}

// expire forgets the keys whose span the watermark has passed.
func (s *dedupState) expire() {
	for len(s.expiry) > 0 && s.expiry[0].end <= s.wm {
		e := s.expiry.pop()
		if first, ok := s.seen[e.v]; ok && first+s.d.within == e.end {
			delete(s.seen, e.v)
			s.changed = append(s.changed, e.v)
		}
	}
}

func (s *dedupState) Fire(final bool, emit func(out *engine.Row) error) error {
	if s.inner != nil {
		return s.inner.Fire(final, emit)
	}
	if !s.pending {
		return nil
	}
	s.pending = false
	return emit(s.out)
}

// Keys: 'd' + key for a sighting, 'w' for the watermark, 'i' + the inner
// aggregate's keys.
func (s *dedupState) Save(put func(k, v []byte), del func(k []byte)) {
	var kb, vb []byte
	for _, key := range s.changed {
		kb = append(append(kb[:0], 'd'), key...)
		if first, ok := s.seen[key]; ok {
			vb = binary.AppendVarint(vb[:0], first)
			put(kb, vb)
		} else {
			del(kb)
		}
	}
	clear(s.changed)
	s.changed = s.changed[:0]
	if s.wm != s.wmSaved {
		s.wmSaved = s.wm
		put([]byte{'w'}, binary.AppendVarint(nil, s.wm))
	}
	if s.inner != nil {
		s.inner.Save(func(k, v []byte) { put(append([]byte{'i'}, k...), v) }, func(k []byte) { del(append([]byte{'i'}, k...)) })
	}
}

func (s *dedupState) Load(k, v []byte) error {
	if len(k) == 0 {
		return errors.New("sql: dedup state: empty key")
	}
	switch k[0] {
	case 'i':
		if s.inner == nil {
			return errors.New("sql: dedup state: inner state for a stateless query")
		}
		return s.inner.Load(k[1:], v)
	case 'w', 'd':
		t, n := binary.Varint(v)
		if n <= 0 {
			return errors.New("sql: dedup state: bad value")
		}
		if k[0] == 'w' {
			s.wm, s.wmSaved = t, t
			return nil
		}
		key := string(k[1:])
		s.seen[key] = t
		s.expiry.push(heapEntry[string]{end: t + s.d.within, v: key})
		return nil
	}
	return fmt.Errorf("sql: dedup state: unknown key kind %q", k[0])
}
