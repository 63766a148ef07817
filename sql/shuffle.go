package sql

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// The two halves of a shuffled aggregation (see the package doc, Shuffle):
// a Partial pre-aggregates one source task's records per window and group
// within a bundle and hands them out as partials keyed by the group key; a
// Merge folds the partials of every producer into the open windows of the
// groups its task owns and emits them as an aggregate does. A partial's
// value is the encoding of a group's windows that the task state uses
// (encodeGroup), so both halves share one format with the state.

// Partial is the pre-aggregation of a shuffled windowed GROUP BY in one
// source task. It is used by the task's goroutine only.
type Partial struct {
	s    *aggregate
	keys []*group
	val  []byte
}

// NewPartial returns an empty pre-aggregation for one source task. A record
// is late, as in NewAggregate, when its window's end plus lateness is not
// after the task's watermark (for a session: its event time plus lateness
// is before it); the task's watermark is what the merging tasks learn from
// it, so a record the Partial accepts is never behind a window they have
// emitted.
func (a *Aggregation) NewPartial(lateness time.Duration) *Partial {
	return &Partial{s: a.NewAggregate(lateness).(*aggregate)}
}

// Add folds one row of the reader schema into the bundle's partials; late
// and err are as for engine.Aggregate.Add.
func (p *Partial) Add(in *engine.Row) (late bool, err error) { return p.s.Add(in) }

// Watermark is the highest event time folded or advanced to, in unix
// microseconds (math.MinInt64 before any).
func (p *Partial) Watermark() int64 { return p.s.wm }

// Advance moves the watermark to wm if it is later (an idle task).
func (p *Partial) Advance(wm int64) { p.s.Advance(wm) }

// Flush hands out the partial of every group folded since the last Flush,
// in the order of the encoded keys, and forgets them: key is the group key
// (what the repartition topic is keyed and partitioned by), value its
// windows. emit must not keep key or value. The partials of a Flush are
// the bundle's; the caller sends them, then the watermark, before the
// bundle completes.
func (p *Partial) Flush(emit func(key, value []byte) error) error {
	s := p.s
	keys := p.keys[:0]
	s.groups.each(func(g *group) { keys = append(keys, g) })
	slices.SortFunc(keys, func(x, y *group) int { return strings.Compare(x.key, y.key) })
	var err error
	for _, g := range keys {
		if err == nil {
			p.val = s.encodeGroup(p.val[:0], g)
			err = emit(engine.UnsafeBytes(g.key), p.val)
		}
	}
	clear(keys)
	p.keys = keys[:0]
	s.groups.reset()
	clear(s.due)
	s.due = s.due[:0]
	clear(s.dirty)
	s.dirty = s.dirty[:0]
	return err
}

// Save passes the watermark when it changed: a source task's only state
// across bundles (its partials leave with each bundle).
func (p *Partial) Save(put func(key, value []byte), del func(key []byte)) {
	s := p.s
	if s.wm != s.wmSaved {
		s.wmSaved = s.wm
		put([]byte{stateMeta}, binary.AppendVarint(nil, s.wm))
	}
}

// Load restores the watermark Save wrote.
func (p *Partial) Load(key, value []byte) error {
	if len(key) != 1 || key[0] != stateMeta {
		return fmt.Errorf("sql: partial state: unexpected key %q", key)
	}
	return p.s.Load(key, value)
}

// Merge is the merging half of a shuffled windowed GROUP BY in one task of
// the repartition topic: an engine.Aggregate whose input is partials
// (MergePartial) instead of rows, and whose watermark is set by the caller
// (Advance: the lowest of its producers' watermarks). It is used by the
// task's goroutine only.
type Merge struct {
	*aggregate
	part group
}

var _ engine.Aggregate = (*Merge)(nil)

// NewMerge returns an empty merging state for one task of the repartition
// topic: a window is emitted once the watermark passes its end plus
// lateness, as in NewAggregate.
func (a *Aggregation) NewMerge(lateness time.Duration) *Merge {
	return &Merge{aggregate: a.NewAggregate(lateness).(*aggregate)}
}

// Add is not how a Merge is fed: it reports an error.
func (m *Merge) Add(*engine.Row) (bool, error) {
	return false, errors.New("sql: a merging aggregate takes partials (MergePartial), not rows")
}

// MergePartial folds one partial (a key and value of Partial.Flush) into
// the group's open windows: a tumbling or hopping window into the window of
// the same start, a session into every session of the group it comes
// within the gap of (which then become one). late counts the partial's
// windows that were already emitted (their end plus the lateness is not
// after the watermark); they are dropped. With producers' watermarks
// carried in-band behind their partials (ShuffleMerge), that happens only
// when a producer's watermark went ahead of its data.
func (m *Merge) MergePartial(key, value []byte) (late int, err error) {
	s := m.aggregate
	m.part = group{}
	if err := s.decodeGroup(&m.part, value); err != nil {
		return 0, fmt.Errorf("sql: partial: %w", err)
	}
	if err := s.a.checkKey(string(key)); err != nil {
		return 0, fmt.Errorf("sql: partial key: %w", err)
	}
	var g *group
	for _, w := range m.part.wins {
		if w.end+s.lateness <= s.wm {
			late++
			continue
		}
		if g == nil {
			g = s.addGroup(key)
			g.full = true // merged windows are not marked dirty
			if !g.dirty {
				g.dirty = true
				s.dirty = append(s.dirty, g)
			}
		}
		if s.a.win.kind == session {
			s.mergeSession(g, w)
			continue
		}
		if into := findStart(g, w.start); into != nil {
			s.merge(into, w)
			continue
		}
		g.wins = append(g.wins, w)
		s.due.push(dueEntry{end: w.end, v: g})
	}
	return late, nil
}

func findStart(g *group, start int64) *win {
	for _, w := range g.wins {
		if w.start == start {
			return w
		}
	}
	return nil
}

// mergeSession folds session w into g's sessions: the sessions whose
// records come within the gap of w's (their spans [start, end-gap] closer
// than the gap) become one with it.
func (s *aggregate) mergeSession(g *group, w *win) {
	gap := s.a.win.gap
	var into *win
	kept := g.wins[:0]
	for _, x := range g.wins {
		if w.start-(x.end-gap) >= gap || x.start-(w.end-gap) >= gap {
			kept = append(kept, x)
			continue
		}
		if into == nil {
			into = x
			kept = append(kept, x)
			continue
		}
		s.merge(into, x) // x's heap entry names its end already
	}
	clear(g.wins[len(kept):])
	g.wins = kept
	if into == nil {
		g.wins = append(g.wins, w)
		s.due.push(dueEntry{end: w.end, v: g})
		return
	}
	end := into.end
	s.merge(into, w)
	if into.end != end {
		s.due.push(dueEntry{end: into.end, v: g})
	}
}

// ShuffleMerge is a merging task's side of the shuffle protocol (see the
// package doc, Shuffle): it keeps each producer's partials pending until
// the producer says that the source offsets they cover are committed, so
// that a producer that crashed and replays its input, in bundles of other
// bounds, never counts a record twice; its watermark is the lowest of its
// producers' committed watermarks. It is an engine.Aggregate whose input
// is the calls below instead of rows. It is used by the task's goroutine
// only.
//
// A producer is named by its source task (topic/partition); epoch is the
// one its writer started (ShuffleStart), above every earlier writer's of
// the task, so a zombie's messages are told from its successor's.
type ShuffleMerge struct {
	m      *Merge
	expect int
	// announced is the highest producer count the producers' start
	// records carried (Announce), 0 until one did; saved when it changes.
	announced, announcedSaved int
	producers                 map[string]*producer
	names                     []string // sorted, for a deterministic Save
	late                      int
}

var _ engine.Aggregate = (*ShuffleMerge)(nil)

// producer is what a merging task knows of one producer.
type producer struct {
	epoch   int64
	applied int64 // source offset up to which its partials are merged
	wm      int64 // its watermark at applied
	// idle: its input was idle at applied before it had a watermark, and
	// it has sent nothing since; the task's watermark leaves it out.
	idle     bool
	progress []progressMark
	pending  []pendingPartial
	seq      uint64 // the next pending partial's number
	dirty    bool
	dropped  []uint64 // pending partials removed since the last Save
	saved    uint64   // pending partials below this number are saved
}

// progressMark is a progress (or, with idle, an idle mark) waiting for a
// commit of its offset.
type progressMark struct {
	to, wm int64
	idle   bool
}

type pendingPartial struct {
	seq        uint64
	from, to   int64
	key, value []byte
}

// NewShuffleMerge returns an empty merging state for one task of the
// repartition topic, which expects producers distinct producers (the
// source's partitions) until a start record announces their count
// (Announce): until each has shown itself, the watermark stays at
// math.MinInt64.
func (a *Aggregation) NewShuffleMerge(lateness time.Duration, producers int) *ShuffleMerge {
	return &ShuffleMerge{m: a.NewMerge(lateness), expect: producers, producers: map[string]*producer{}}
}

func (s *ShuffleMerge) producer(name string) *producer {
	p := s.producers[name]
	if p == nil {
		p = &producer{epoch: math.MinInt64, wm: math.MinInt64}
		s.producers[name] = p
		s.names = append(s.names, name)
		slices.Sort(s.names)
	}
	return p
}

// Start records that producer's task (re)starts, in epoch, from source
// offset offset: a new owner from its committed position, or the same
// owner replaying a bundle whose flush failed from the position before it.
// The pending partials from offset on are dropped, for the producer sends
// them again; those below stay pending until a commit covers them (a
// start says where the producer stands, not what is committed). A Start
// of an epoch not above the producer's is a zombie's and is ignored. A
// start below the offsets already merged is an error: its replay would
// count them again.
func (s *ShuffleMerge) Start(name string, epoch, offset int64) error {
	p := s.producer(name)
	if epoch <= p.epoch {
		return nil
	}
	if offset < p.applied {
		// The protocol never does this (a commit record follows the
		// commit, and a new owner starts from the committed offset): the
		// replay would count merged records again.
		return fmt.Errorf("sql: shuffle: producer %s starts at offset %d, below the %d already merged", name, offset, p.applied)
	}
	for _, q := range p.pending {
		if q.from < offset && offset < q.to {
			return fmt.Errorf("sql: shuffle: producer %s starts at offset %d, inside a partial of offsets [%d, %d)", name, offset, q.from, q.to)
		}
	}
	kept := p.pending[:0]
	for _, q := range p.pending {
		if q.to <= offset {
			kept = append(kept, q)
		} else {
			p.dropped = append(p.dropped, q.seq)
		}
	}
	clear(p.pending[len(kept):])
	p.pending = kept
	n := 0
	for _, m := range p.progress {
		if m.to <= offset {
			p.progress[n] = m
			n++
		}
	}
	p.progress = p.progress[:n]
	p.epoch, p.dirty = epoch, true
	return nil
}

// Announce records the producer count a start record carried: the
// source's partitions as the producer's process counted them when it
// started. Once one is announced, the highest announced replaces the
// count the state was built with, so that what the task waits for is a
// function of its input: a replay after a restart whose count differs
// (partitions added meanwhile) waits for the producers its first run
// waited for, until the restarted producers' start records say more.
func (s *ShuffleMerge) Announce(producers int) {
	if producers > s.announced {
		s.announced = producers
		s.lower()
	}
}

// Partial records a partial of the producer's bundle [from, to) of source
// offsets. It stays pending until Commit (or a Start) covers to. A
// partial of another epoch than the producer's present one is ignored.
func (s *ShuffleMerge) Partial(name string, epoch, from, to int64, key, value []byte) {
	p := s.producer(name)
	if epoch != p.epoch || to <= p.applied {
		return
	}
	p.wake()
	p.pending = append(p.pending, pendingPartial{seq: p.seq, from: from, to: to, key: bytes.Clone(key), value: bytes.Clone(value)})
	p.seq++
	p.dirty = true
}

// Progress records the producer's watermark once its bundles up to source
// offset to are sent (math.MaxInt64: the end of its input). It holds once
// a commit covers to; at once when one already does: a producer whose
// input is idle advances its watermark at the offset it committed, and
// every record it reads later is judged late against that watermark at
// the source.
func (s *ShuffleMerge) Progress(name string, epoch, to, wm int64) {
	p := s.producer(name)
	if epoch != p.epoch {
		return
	}
	p.wake()
	if to <= p.applied {
		if wm > p.wm {
			p.wm, p.dirty = wm, true
			s.lower()
		}
		return
	}
	p.progress = append(p.progress, progressMark{to: to, wm: wm})
	p.dirty = true
}

// Idle records that the producer's input was idle at source offset to
// before it had any watermark (a partition that received no record, or
// none the query could fold, for the idle timeout): once a commit covers
// to (at once when one already does), the task's watermark is the lowest
// of the other producers' and no longer waits for it. The first partial
// or progress the producer sends afterwards brings it back, with the
// watermark it had (its partials of windows emitted meanwhile are late:
// Late counts them). While every producer is idle the watermark stands.
func (s *ShuffleMerge) Idle(name string, epoch, to int64) {
	p := s.producer(name)
	if epoch != p.epoch {
		return
	}
	if to <= p.applied {
		if !p.idle {
			p.idle, p.dirty = true, true
			s.lower()
		}
		return
	}
	p.progress = append(p.progress, progressMark{to: to, idle: true})
	p.dirty = true
}

// wake brings an idle producer back into the watermark: it sent a partial
// or a progress. An idle mark still waiting for a commit is dropped, so
// that the commit does not take the producer out again while its partials
// are pending.
func (p *producer) wake() {
	if p.idle {
		p.idle, p.dirty = false, true
	}
	n := 0
	for _, m := range p.progress {
		if !m.idle {
			p.progress[n] = m
			n++
		}
	}
	if n < len(p.progress) {
		p.progress, p.dirty = p.progress[:n], true
	}
}

// Commit records that the producer's source offsets below offset are
// committed: its pending partials up to there are merged, its watermark
// moves to the one it had there, and the task's watermark to the lowest
// of its producers'.
func (s *ShuffleMerge) Commit(name string, epoch, offset int64) error {
	p := s.producer(name)
	if epoch != p.epoch {
		return nil
	}
	return s.apply(p, offset)
}

// apply merges the producer's pending partials below offset.
func (s *ShuffleMerge) apply(p *producer, offset int64) error {
	if offset <= p.applied {
		return nil
	}
	n := 0
	for _, q := range p.pending {
		if q.to > offset {
			if q.from < offset {
				return fmt.Errorf("sql: shuffle: a partial of offsets [%d, %d) straddles the committed offset %d", q.from, q.to, offset)
			}
			break
		}
		late, err := s.m.MergePartial(q.key, q.value)
		if err != nil {
			return err
		}
		s.late += late
		p.dropped = append(p.dropped, q.seq)
		n++
	}
	clear(p.pending[:n])
	p.pending = slices.Delete(p.pending, 0, n)
	n = 0
	for _, m := range p.progress {
		if m.to > offset {
			break
		}
		if p.idle = m.idle; !m.idle {
			p.wm = max(p.wm, m.wm)
		}
		n++
	}
	p.progress = slices.Delete(p.progress, 0, n)
	p.applied, p.dirty = offset, true
	s.lower()
	return nil
}

// lower moves the task's watermark to the lowest of its producers' but
// the idle ones, once every producer expected has shown itself; while
// every producer is idle, it stands.
func (s *ShuffleMerge) lower() {
	expect := s.expect
	if s.announced > 0 {
		expect = s.announced
	}
	if len(s.producers) < expect {
		return
	}
	low, active := int64(math.MaxInt64), false
	for _, p := range s.producers {
		if !p.idle {
			low, active = min(low, p.wm), true
		}
	}
	if active {
		s.m.Advance(low)
	}
}

// Late is the number of partial windows dropped because their window had
// been emitted: those of a producer that was idle (Idle) or unknown (a
// partition added while the job runs) when the window fired, and none
// otherwise unless a producer's watermark went ahead of its data.
func (s *ShuffleMerge) Late() int { return s.late }

// Add is not how a ShuffleMerge is fed: it reports an error.
func (s *ShuffleMerge) Add(*engine.Row) (bool, error) { return s.m.Add(nil) }

// Fire emits the windows the watermark closed, as engine.Aggregate.Fire
// does; once every producer has reached the end of its input
// (math.MaxInt64), every open window.
func (s *ShuffleMerge) Fire(final bool, emit func(out *engine.Row) error) error {
	return s.m.Fire(final || s.m.wm == math.MaxInt64, emit)
}

// Watermark is the lowest of the producers' committed watermarks.
func (s *ShuffleMerge) Watermark() int64 { return s.m.wm }

// Advance moves the watermark forward (an idle task).
func (s *ShuffleMerge) Advance(wm int64) { s.m.Advance(wm) }

// Keys in the task's state store besides the aggregate's: the producer
// count announced ('n'), a producer's position ('p' + name) and each of
// its pending partials ('q' + name + 0x00 + the partial's 8-byte
// big-endian number, so that a Scan returns them in order).
const (
	stateAnnounced = 'n'
	stateProducer  = 'p'
	statePending   = 'q'
)

// Save passes what changed since the last Save.
func (s *ShuffleMerge) Save(put func(key, value []byte), del func(key []byte)) {
	s.m.Save(put, del)
	if s.announced != s.announcedSaved {
		s.announcedSaved = s.announced
		put([]byte{stateAnnounced}, binary.AppendUvarint(nil, uint64(s.announced)))
	}
	var kb, vb []byte
	for _, name := range s.names {
		p := s.producers[name]
		pk := func(seq uint64) []byte {
			kb = append(append(append(kb[:0], statePending), name...), 0)
			return binary.BigEndian.AppendUint64(kb, seq)
		}
		for _, seq := range p.dropped {
			if seq < p.saved {
				del(pk(seq))
			}
		}
		p.dropped = p.dropped[:0]
		for _, q := range p.pending {
			if q.seq < p.saved {
				continue
			}
			vb = binary.AppendVarint(vb[:0], q.from)
			vb = binary.AppendVarint(vb, q.to)
			vb = binary.AppendUvarint(vb, uint64(len(q.key)))
			vb = append(vb, q.key...)
			put(pk(q.seq), append(vb, q.value...))
		}
		p.saved = p.seq
		if !p.dirty {
			continue
		}
		p.dirty = false
		vb = binary.AppendVarint(vb[:0], p.epoch)
		vb = binary.AppendVarint(vb, p.applied)
		vb = binary.AppendVarint(vb, p.wm)
		vb = binary.AppendUvarint(vb, p.seq)
		vb = binary.AppendUvarint(vb, uint64(len(p.progress)))
		for _, m := range p.progress {
			vb = binary.AppendVarint(vb, m.to)
			vb = binary.AppendVarint(vb, m.wm)
		}
		// Added after the fields above, so that a value without them
		// (written before idle producers existed) loads as not idle: the
		// producer's idle flag, then the indexes of its idle marks.
		var idle uint64
		if p.idle {
			idle = 1
		}
		vb = binary.AppendUvarint(vb, idle)
		for i, m := range p.progress {
			if m.idle {
				vb = binary.AppendUvarint(vb, uint64(i)+1)
			}
		}
		kb = append(append(kb[:0], stateProducer), name...)
		put(kb, vb)
	}
}

// Load restores one entry that Save wrote.
func (s *ShuffleMerge) Load(key, value []byte) error {
	if len(key) == 0 {
		return errors.New("sql: shuffle state: empty key")
	}
	d := stateDecoder{b: value}
	switch key[0] {
	case stateAnnounced:
		if len(key) != 1 {
			return fmt.Errorf("sql: shuffle state: bad key %q", key)
		}
		n := d.uvarint()
		if d.err == nil && n > math.MaxInt32 {
			return fmt.Errorf("sql: shuffle state: %d producers", n)
		}
		s.announced, s.announcedSaved = int(n), int(n)
	case stateProducer:
		p := s.producer(string(key[1:]))
		p.epoch, p.applied, p.wm = d.varint(), d.varint(), d.varint()
		p.seq = d.uvarint()
		p.saved = p.seq
		n := d.uvarint()
		for i := uint64(0); i < n && d.err == nil; i++ {
			p.progress = append(p.progress, progressMark{to: d.varint(), wm: d.varint()})
		}
		if len(d.b) > 0 && d.err == nil {
			p.idle = d.uvarint() == 1
			for len(d.b) > 0 && d.err == nil {
				i := d.uvarint()
				if d.err != nil {
					break
				}
				if i == 0 || i > uint64(len(p.progress)) {
					return fmt.Errorf("sql: shuffle state %q: bad idle mark %d", key, i)
				}
				p.progress[i-1].idle = true
			}
		}
	case statePending:
		rest := key[1:]
		i := bytes.IndexByte(rest, 0)
		if i < 0 || len(rest)-i-1 != 8 {
			return fmt.Errorf("sql: shuffle state: bad key %q", key)
		}
		p := s.producer(string(rest[:i]))
		q := pendingPartial{seq: binary.BigEndian.Uint64(rest[i+1:]), from: d.varint(), to: d.varint()}
		q.key = bytes.Clone(d.bytes())
		q.value = bytes.Clone(d.b)
		p.pending = append(p.pending, q)
	default:
		if err := s.m.Load(key, value); err != nil {
			return err
		}
		return nil
	}
	if d.err != nil {
		return fmt.Errorf("sql: shuffle state %q: %w", key, d.err)
	}
	return nil
}
