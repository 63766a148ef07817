package sql

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/axiomhq/hyperloglog"

	"github.com/sluicehq/sluice/engine"
)

// aggregate is the state of an Aggregation in one task: the open windows of
// every group, the task's watermark, and what changed since the last Save.
// It is used by the task's goroutine only.
type aggregate struct {
	a        *Aggregation
	lateness int64
	wm       int64 // the highest event time folded (or advanced to), µs
	wmSaved  int64

	groups groupTable      // by encoded group key
	due    dueHeap[*group] // windows by end, lazily invalidated
	dirty  []*group        // groups changed since the last Save
	// redue is set by Load: the due heap is rebuilt from the groups
	// before the next Fire, since a group's windows are known only once
	// every log entry is loaded.
	redue bool

	// The change log in the task's store (Save, Load).
	seq       uint64   // sequence number of the next log entry
	logSeqs   []uint64 // the log entries in the store
	nextID    uint32   // the next group id of the log
	byID      []*group // Load's groups by log id
	logV0     []uint64 // Load's log entries of the earlier layout
	logBytes  int64    // their total size
	liveBytes int64    // the encoded size of every live group
	chunk     []byte   // the log entry being filled
	val       []byte   // one encoded group

	pre, post, out *engine.Row
	keyBuf         []byte
	winSlab        []win // newWin's
	accSlab        []acc
	ready          []readyWin
	hopStarts      []int64
}

// group is the open windows of one group key.
type group struct {
	key  string // encoded key (groupkey.go); in kbuf when it fits
	hash uint64 // of key, in the aggregate's groupTable
	// wins are the group's open windows; while they fit, in winsBuf, so
	// that a group's first window allocates nothing and Fire, Save and
	// a new window read them from the group's own memory.
	wins    []*win
	winsBuf [2]*win
	// inl is a tumbling or hopping group's newest window, held in the
	// group so that a record's fold reads no other memory; it is in
	// wins while inl.accs is not nil. Its accumulators are inlAccs when
	// the query has at most len(inlAccs) aggregates.
	inl     win
	inlAccs [2]acc
	dirty   bool
	// full is set when a window was removed (or sessions merged) since
	// the last Save: the log gets the whole group, not its dirty windows.
	full bool
	size int32 // estimated bytes of its encoding, for the log's rewrite
	// logID names the group in the log once an entry has given its key
	// (0: not yet, since the last rewrite).
	logID uint32
	kbuf  [40]byte
}

// newGroup returns an empty group of key, whose hash is h. A group is
// never copied: its key and windows may point into itself.
func newGroup(key []byte, h uint64) *group {
	g := &group{hash: h}
	g.wins = g.winsBuf[:0]
	if len(key) <= len(g.kbuf) {
		g.key = engine.UnsafeString(g.kbuf[:copy(g.kbuf[:], key)])
	} else {
		g.key = string(key)
	}
	return g
}

// addGroup returns the group of key, creating it.
func (s *aggregate) addGroup(key []byte) *group {
	h := s.groups.hash(key)
	g := s.groups.find(key, h)
	if g == nil {
		g = newGroup(key, h)
		s.groups.insert(g)
	}
	return g
}

// dropWin is called when w leaves g.wins: the group's inline window is
// free again.
func dropWin(g *group, w *win) {
	if w == &g.inl {
		g.inl = win{}
		g.inlAccs = [len(g.inlAccs)]acc{}
	}
}

// win is one window of a group: [start, end) for tumbling and hopping
// windows; for a session, start is its first event time and end its last
// plus the gap.
type win struct {
	start, end int64
	accs       []acc
	fired      bool // taken by Fire (a heap entry may repeat)
	dirty      bool // folded into since the last Save
}

// acc is the accumulator of one aggregate in one window.
type acc struct {
	n int64   // values folded (rows for COUNT(*))
	i int64   // SUM of integers or decimals (unscaled)
	f float64 // SUM of doubles; AVG's sum
	// what MIN, MAX, ANY_VALUE, COUNT(DISTINCT) and APPROX_COUNT_DISTINCT
	// keep besides, allocated by the first value: COUNT, SUM and AVG
	// windows stay 32 bytes an aggregate, with one pointer for the GC.
	x *accExt
}

type accExt struct {
	v   engine.Slot
	set map[string]struct{}
	hll *hyperloglog.Sketch
}

func (x *acc) ext() *accExt {
	if x.x == nil {
		x.x = &accExt{}
	}
	return x.x
}

func (x *acc) val() engine.Slot {
	if x.x == nil {
		return engine.Slot{}
	}
	return x.x.v
}

func (x *acc) setOf() map[string]struct{} {
	if x.x == nil {
		return nil
	}
	return x.x.set
}

func (x *acc) hllOf() *hyperloglog.Sketch {
	if x.x == nil {
		return nil
	}
	return x.x.hll
}

// dueEntry is a window end of a group; the group may have left the
// table since (a Save deletes a group whose windows all closed, and the
// key's next group is a new one): its entries then find no window.
type dueEntry = heapEntry[*group]

// heapEntry is an entry of a dueHeap: a time and what is due then.
type heapEntry[T any] struct {
	end int64
	v   T
}

// dueHeap is a min-heap of ends, written out rather than through
// container/heap, whose Push and Pop box every entry.
type dueHeap[T any] []heapEntry[T]

func (h *dueHeap[T]) push(e heapEntry[T]) {
	*h = append(*h, e)
	q := *h
	for i := len(q) - 1; i > 0; {
		parent := (i - 1) / 2
		if q[parent].end <= q[i].end {
			break
		}
		q[parent], q[i] = q[i], q[parent]
		i = parent
	}
}

func (h *dueHeap[T]) pop() heapEntry[T] {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q[last] = heapEntry[T]{}
	q = q[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(q) && q[l].end < q[m].end {
			m = l
		}
		if r < len(q) && q[r].end < q[m].end {
			m = r
		}
		if m == i {
			break
		}
		q[m], q[i] = q[i], q[m]
		i = m
	}
	*h = q
	return top
}

// readyWin is a window Fire emits, with what orders it among the windows
// of its end copied beside it: sorting a hundred thousand of them reads
// this slice, not every group's window and key (a cache miss each time
// two are compared).
type readyWin struct {
	g     *group
	w     *win
	start int64
	// k0, k1 are the first 16 bytes of the group's key, big-endian and
	// padded with zeros. Where they differ they order as the keys do:
	// the first differing byte is one both keys have, or the shorter
	// key's padding against a byte that is not zero. Where they are
	// equal, the keys decide.
	k0, k1 uint64
}

func newReadyWin(g *group, w *win) readyWin {
	var p [16]byte
	copy(p[:], g.key)
	return readyWin{
		g: g, w: w, start: w.start,
		k0: binary.BigEndian.Uint64(p[:8]), k1: binary.BigEndian.Uint64(p[8:]),
	}
}

// compareReady orders windows of one end by start (sessions of one end
// may start apart) and group key.
func compareReady(x, y readyWin) int {
	if c := cmp.Compare(x.start, y.start); c != 0 {
		return c
	}
	if c := cmp.Compare(x.k0, y.k0); c != 0 {
		return c
	}
	if c := cmp.Compare(x.k1, y.k1); c != 0 {
		return c
	}
	return strings.Compare(x.g.key, y.g.key)
}

// NewAggregate returns an empty state of the aggregation for one task:
// a window's row is emitted once the task's watermark (the highest event
// time it has seen) passes the window's end plus lateness.
func (a *Aggregation) NewAggregate(lateness time.Duration) engine.Aggregate {
	return &aggregate{
		a:        a,
		lateness: int64(lateness / time.Microsecond),
		wm:       math.MinInt64,
		wmSaved:  math.MinInt64,
		groups:   newGroupTable(),
		pre:      engine.NewRow(a.pre.Output().Width()),
		post:     engine.NewRow(a.postIn.Width()),
		out:      engine.NewRow(a.post.Output().Width()),
	}
}

// Watermark returns the highest event time folded or advanced to, in unix
// microseconds (math.MinInt64 before any).
func (s *aggregate) Watermark() int64 { return s.wm }

// Advance moves the watermark to wm if it is later (an idle task's clock).
func (s *aggregate) Advance(wm int64) {
	s.wm = max(s.wm, wm)
}

// Add folds one row of the input schema. A row the WHERE clause rejects is
// ignored. A row whose windows were emitted already (its window's end plus
// the lateness is not after the watermark; for sessions, its event time
// plus the lateness is before the watermark) is late: nothing is folded.
func (s *aggregate) Add(in *engine.Row) (late bool, err error) {
	keep, err := s.a.pre.Eval(in, s.pre)
	if err != nil {
		return false, err
	}
	if !keep {
		// A row the WHERE rejects still moves the watermark: event time
		// is the task's, whatever the query keeps.
		if _, err := s.a.when.Eval(in, s.pre); err == nil && !s.pre.Slots[0].Null {
			s.wm = max(s.wm, int64(s.pre.Slots[0].N))
		}
		return false, nil
	}
	ts := s.pre.Slots[0]
	if ts.Null {
		return false, &engine.EvalError{Expr: "window column", Err: errors.New("the event time is NULL")}
	}
	t := int64(ts.N)
	spec := s.a.win
	switch spec.kind {
	case tumbling:
		start := floorDiv(t, spec.size) * spec.size
		if start+spec.size+s.lateness <= s.wm {
			return true, nil
		}
		s.wm = max(s.wm, t)
		g := s.group()
		s.fold(s.window(g, start, start+spec.size), g)
	case hopping:
		last := floorDiv(t, spec.slide) * spec.slide
		first := last - spec.size + spec.slide
		if first+spec.size+s.lateness <= s.wm {
			return true, nil
		}
		s.wm = max(s.wm, t)
		g := s.group()
		for start := first; start <= last; start += spec.slide {
			s.fold(s.window(g, start, start+spec.size), g)
		}
	case session:
		if t+s.lateness < s.wm {
			return true, nil
		}
		s.wm = max(s.wm, t)
		g := s.group()
		s.fold(s.session(g, t), g)
	}
	return false, nil
}

// group returns the group of the key in s.pre, creating it.
func (s *aggregate) group() *group {
	b := s.keyBuf[:0]
	for i, c := range s.a.keyCodes {
		b = appendKeySlot(b, c, &s.pre.Slots[1+i])
	}
	s.keyBuf = b
	return s.addGroup(b)
}

func appendSlot(b []byte, v *engine.Slot) []byte {
	if v.Null {
		return append(b, 1)
	}
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint64(b, v.N)
	b = binary.AppendUvarint(b, uint64(len(v.S)))
	return append(b, v.S...)
}

func readKeySlot(b []byte) (engine.Slot, []byte, error) {
	if len(b) == 0 {
		return engine.Slot{}, nil, errors.New("truncated key")
	}
	if b[0] == 1 {
		return engine.Slot{Null: true}, b[1:], nil
	}
	if len(b) < 9 {
		return engine.Slot{}, nil, errors.New("truncated key")
	}
	v := engine.Slot{N: binary.LittleEndian.Uint64(b[1:9])}
	n, k := binary.Uvarint(b[9:])
	if k <= 0 || uint64(len(b)-9-k) < n {
		return engine.Slot{}, nil, errors.New("truncated key")
	}
	v.S = string(b[9+k : 9+k+int(n)])
	return v, b[9+k+int(n):], nil
}

// Windows and their accumulators are carved out of slabs, two
// allocations per slabWins windows instead of two per window. A slab lives
// until its last window is emitted: windows are born and emitted in about
// the order of event time, so that is about a window's life.
const slabWins = 128

func (s *aggregate) newWin(g *group, start, end int64) *win {
	w := s.slabWin(start, end)
	s.due.push(dueEntry{end: end, v: g})
	return w
}

// slabWin returns a new window of the slabs, with zero accumulators.
func (s *aggregate) slabWin(start, end int64) *win {
	n := len(s.a.aggs)
	if len(s.winSlab) == 0 {
		s.winSlab = make([]win, slabWins)
	}
	if len(s.accSlab) < n {
		s.accSlab = make([]acc, n*slabWins)
	}
	w := &s.winSlab[0]
	s.winSlab = s.winSlab[1:]
	*w = win{start: start, end: end, accs: s.accSlab[:n:n]}
	s.accSlab = s.accSlab[n:]
	return w
}

// window returns g's window [start, end), creating it. The group's newest
// window is its inline one (group.inl): a newer one takes its place, and
// the window it held moves to the slabs.
func (s *aggregate) window(g *group, start, end int64) *win {
	if g.inl.accs != nil && g.inl.start == start {
		return &g.inl
	}
	// Newest first: a record mostly belongs to the group's latest window,
	// and each look at an older one is a cache miss.
	for i := len(g.wins) - 1; i >= 0; i-- {
		if w := g.wins[i]; w.start == start {
			return w
		}
	}
	if g.inl.accs != nil && start < g.inl.start {
		w := s.newWin(g, start, end)
		g.wins = append(g.wins, w)
		return w
	}
	if g.inl.accs != nil {
		// The inline window moves out, with its due entry unchanged.
		w := s.slabWin(g.inl.start, g.inl.end)
		copy(w.accs, g.inl.accs)
		w.dirty = g.inl.dirty
		for i, x := range g.wins {
			if x == &g.inl {
				g.wins[i] = w
			}
		}
	}
	n := len(s.a.aggs)
	g.inlAccs = [len(g.inlAccs)]acc{}
	g.inl = win{start: start, end: end}
	if n <= len(g.inlAccs) {
		g.inl.accs = g.inlAccs[:n:n]
	} else {
		g.inl.accs = s.slabWin(start, end).accs
	}
	s.due.push(dueEntry{end: end, v: g})
	g.wins = append(g.wins, &g.inl)
	return &g.inl
}

// session returns g's session that t extends, merging the sessions t joins.
func (s *aggregate) session(g *group, t int64) *win {
	gap := s.a.win.gap
	var into *win
	kept := g.wins[:0]
	for _, w := range g.wins {
		last := w.end - gap
		if t-last >= gap || w.start-t >= gap {
			kept = append(kept, w)
			continue
		}
		if into == nil {
			into = w
			kept = append(kept, w)
			continue
		}
		s.merge(into, w)
	}
	g.wins = kept
	if into == nil {
		into = s.newWin(g, t, t+gap)
		g.wins = append(g.wins, into)
		return into
	}
	into.start = min(into.start, t)
	if end := max(into.end, t+gap); end != into.end {
		into.end = end
		s.due.push(dueEntry{end: end, v: g})
	}
	return into
}

// merge folds session w into into (both of one group).
func (s *aggregate) merge(into, w *win) {
	if w.start < into.start {
		into.start = w.start
	}
	if w.end > into.end {
		into.end = w.end
		// w's entry in the heap names this end already.
	}
	for i, spec := range s.a.aggs {
		x, y := &into.accs[i], &w.accs[i]
		switch spec.kind {
		case aggSum:
			if spec.arg == tFloat {
				x.f += y.f
			} else {
				x.i += y.i
			}
		case aggAvg:
			x.f += y.f
		case aggMin, aggMax:
			if y.n > 0 && (x.n == 0 || less(spec, y.val(), x.val()) == (spec.kind == aggMin)) {
				x.ext().v = y.val()
			}
		case aggAnyValue:
			if x.n == 0 {
				x.ext().v = y.val()
			}
		case aggCountDistinct:
			if x.setOf() == nil {
				x.ext().set = map[string]struct{}{}
			}
			for k := range y.setOf() {
				x.ext().set[k] = struct{}{}
			}
		case aggApproxDistinct:
			if y.hllOf() != nil {
				if x.hllOf() == nil {
					x.ext().hll = hyperloglog.New14()
				}
				_ = x.hllOf().Merge(y.hllOf()) // same precision: never fails
			}
		}
		x.n += y.n
	}
}

// fold adds the aggregate arguments in s.pre to window w of g.
func (s *aggregate) fold(w *win, g *group) {
	w.dirty = true
	if !g.dirty {
		g.dirty = true
		s.dirty = append(s.dirty, g)
	}
	base := 1 + s.a.keys
	for i, spec := range s.a.aggs {
		x := &w.accs[i]
		v := &s.pre.Slots[base+i]
		if spec.kind == aggCountStar {
			x.n++
			continue
		}
		if v.Null {
			continue
		}
		switch spec.kind {
		case aggSum:
			switch spec.arg {
			case tFloat:
				x.f += math.Float64frombits(v.N)
			case tDecimal:
				d, _ := decodeDecimalBytes(v.S)
				x.i += d
			default:
				x.i += int64(v.N)
			}
		case aggAvg:
			x.f += numeric(spec, v)
		case aggMin, aggMax:
			if x.n == 0 || less(spec, *v, x.val()) == (spec.kind == aggMin) {
				x.ext().v = engine.Slot{N: v.N, S: strings.Clone(v.S)}
			}
		case aggAnyValue:
			if x.n == 0 {
				x.ext().v = engine.Slot{N: v.N, S: strings.Clone(v.S)}
			}
		case aggCountDistinct:
			if x.setOf() == nil {
				x.ext().set = map[string]struct{}{}
			}
			k := distinctKey(s.keyBuf[len(s.keyBuf):], spec, v)
			if _, ok := x.ext().set[string(k)]; !ok {
				x.ext().set[string(k)] = struct{}{}
			}
		case aggApproxDistinct:
			if x.hllOf() == nil {
				x.ext().hll = hyperloglog.New14()
			}
			x.hllOf().Insert(distinctKey(s.keyBuf[len(s.keyBuf):], spec, v))
		}
		x.n++
	}
}

// distinctKey is the bytes that identify a value for COUNT(DISTINCT) and
// APPROX_COUNT_DISTINCT: a string's bytes, a number's 8 bytes.
func distinctKey(b []byte, spec aggSpec, v *engine.Slot) []byte {
	if spec.arg == tString || spec.arg == tDecimal {
		return append(b, v.S...)
	}
	return binary.LittleEndian.AppendUint64(b, v.N)
}

func numeric(spec aggSpec, v *engine.Slot) float64 {
	switch spec.arg {
	case tFloat:
		return math.Float64frombits(v.N)
	case tDecimal:
		d, _ := decodeDecimalBytes(v.S)
		return float64(d) / math.Pow10(spec.scale)
	}
	return float64(int64(v.N))
}

// less orders two values of an aggregate's argument type.
func less(spec aggSpec, a, b engine.Slot) bool {
	switch spec.arg {
	case tFloat:
		return math.Float64frombits(a.N) < math.Float64frombits(b.N)
	case tString:
		return a.S < b.S
	case tDecimal:
		x, _ := decodeDecimalBytes(a.S)
		y, _ := decodeDecimalBytes(b.S)
		return x < y
	}
	return int64(a.N) < int64(b.N)
}

// Fire emits the row of every window whose end plus the lateness the
// watermark has reached — every open window when final is set (the end of
// a bounded input) — in the order of their ends, then starts, then keys,
// so that a replay emits the same rows in the same order. Emitted windows
// are forgotten. emit must not keep the row.
func (s *aggregate) Fire(final bool, emit func(out *engine.Row) error) error {
	if s.redue {
		s.rebuildDue()
	}
	var err error
	for len(s.due) > 0 && (final || s.due[0].end+s.lateness <= s.wm) {
		// One end at a time, in start and key order: the same order as
		// sorting every ready window by end first, with a slice and a
		// sort as small as one end's windows (the final Fire of a long
		// input otherwise gathers every window of the run at once).
		end := s.due[0].end
		ready := s.ready[:0]
		for len(s.due) > 0 && s.due[0].end == end {
			g := s.due.pop().v
			for _, w := range g.wins {
				if w.end == end && !w.fired {
					w.fired = true
					ready = append(ready, newReadyWin(g, w))
				}
			}
		}
		slices.SortFunc(ready, compareReady)
		for _, r := range ready {
			if err == nil {
				err = s.emit(r.g, r.w, emit)
			}
			r.g.wins = slices.DeleteFunc(r.g.wins, func(w *win) bool { return w == r.w })
			dropWin(r.g, r.w)
			r.g.full = true
			if !r.g.dirty {
				r.g.dirty = true
				s.dirty = append(s.dirty, r.g)
			}
		}
		clear(ready)
		s.ready = ready[:0]
	}
	return err
}

func (s *aggregate) emit(g *group, w *win, emit func(out *engine.Row) error) error {
	p := s.post
	p.Reset(s.a.postIn.Width())
	p.SetInt(0, w.start)
	p.SetInt(1, w.end)
	// The key's strings are substrings of g.key, which stays valid: no
	// copy per emitted row.
	rest := g.key
	for i, c := range s.a.keyCodes {
		v, r, err := keySlotIn(rest, c)
		if err != nil {
			return fmt.Errorf("sql: window key: %w", err)
		}
		p.Slots[2+i], rest = v, r
	}
	base := 2 + s.a.keys
	for i, spec := range s.a.aggs {
		x := &w.accs[i]
		slot := &p.Slots[base+i]
		switch spec.kind {
		case aggCountStar, aggCount:
			slot.N = uint64(x.n)
		case aggCountDistinct:
			slot.N = uint64(len(x.setOf()))
		case aggApproxDistinct:
			if x.hllOf() != nil {
				slot.N = x.hllOf().Estimate()
			}
		case aggSum:
			switch {
			case x.n == 0:
				slot.Null = true
			case spec.arg == tFloat:
				slot.N = math.Float64bits(x.f)
			case spec.arg == tDecimal:
				start := len(p.Arena)
				p.Arena = appendDecimalBytes(p.Arena, x.i)
				slot.S = engine.UnsafeString(p.Arena[start:])
			default:
				slot.N = uint64(x.i)
			}
		case aggAvg:
			if x.n == 0 {
				slot.Null = true
			} else {
				slot.N = math.Float64bits(x.f / float64(x.n))
			}
		default: // MIN, MAX, ANY_VALUE
			if x.n == 0 {
				slot.Null = true
			} else {
				*slot = x.val()
			}
		}
	}
	keep, err := s.a.post.Eval(p, s.out)
	if err != nil || !keep {
		return err
	}
	return emit(s.out)
}

// The task's state store holds the watermark and a log of group changes:
//
//	m                        varint watermark (µs)
//	L <seq: 8 bytes, BE>     entries, each a group change:
//	                           uvarint id<<1 | 1, uvarint len(key), key  (the group's first change)
//	                           uvarint id<<1                             (a later one)
//	                           then uvarint len(value), value
//
// Each Save appends one log entry (split at logChunk bytes) with every
// group that changed in the bundle: a value is logFull and the group's
// encoding (encodeGroup), or, for a tumbling or hopping window that only
// had records folded in, logPatch and the encoding of just the windows
// that changed; an empty value deletes a group whose windows are all
// emitted. A group's first change in the log carries its key and gives it
// a number (from 1, never reused until the next rewrite); its later
// changes name it by that number, so that a bundle's patches, a few bytes
// of windows each, do not repeat the keys. Load replays the entries in
// sequence order, later ones replacing earlier ones. Writing a bundle's
// changes as a few large values instead of one Pebble key per group costs
// the store a memcpy instead of a skiplist insert and a compaction per
// group. When the log has grown past twice the live state (and
// logRewriteMin), a Save writes the live groups afresh, with their keys
// and new numbers, and deletes every older entry in the same batch, so
// the log stays within a constant factor of the state and closed windows
// leave it. Log entries of the layout before group numbers (under 'l',
// each change with its key) are read, and the first Save rewrites them.
const (
	stateMeta  = 'm'
	stateLog   = 'L'
	stateLogV0 = 'l' // the layout before group numbers
	// The first byte of a group's value in the log.
	logFull  = 0 // the group's every window
	logPatch = 1 // windows that replace those of the same start
	// logChunk bounds one log entry's value.
	logChunk = 256 << 10
	// logRewriteMin is the log size below which it is never rewritten.
	logRewriteMin = 4 << 20
)

// Save passes what changed since the last Save: a log entry with the
// encoded state of every group that changed (or the whole state, when the
// log is due a rewrite) and the watermark.
func (s *aggregate) Save(put func(key, value []byte), del func(key []byte)) {
	s.byID = nil // Load's
	rewrite := s.logBytes > 2*s.liveBytes+logRewriteMin || len(s.logV0) > 0
	for _, g := range s.dirty {
		g.dirty = false
		if len(g.wins) == 0 {
			s.groups.remove(g)
			s.liveBytes -= int64(g.size)
			g.size = 0
			if !rewrite && g.logID != 0 {
				// A group the log never named needs no deletion.
				s.logAppend(put, g, nil)
			}
			continue
		}
		if !rewrite {
			s.logGroup(put, g, !g.full && s.a.win.kind != session)
		}
		g.full = false
	}
	clear(s.dirty)
	s.dirty = s.dirty[:0]
	if rewrite {
		for _, seq := range s.logSeqs {
			del(logKey(seq))
		}
		for _, seq := range s.logV0 {
			del(binary.BigEndian.AppendUint64([]byte{stateLogV0}, seq))
		}
		s.logV0 = nil
		s.logSeqs, s.logBytes, s.liveBytes = s.logSeqs[:0], 0, 0
		s.nextID = 0
		s.groups.each(func(g *group) {
			g.size, g.logID = 0, 0
			s.logGroup(put, g, false)
		})
	}
	s.logFlush(put)
	if s.wm != s.wmSaved {
		s.wmSaved = s.wm
		put([]byte{stateMeta}, binary.AppendVarint(nil, s.wm))
	}
}

// logGroup appends g to the log entry being filled: the whole group, or
// with patch its windows folded into since the last Save, which replace
// the windows of the same start when the log is loaded.
func (s *aggregate) logGroup(put func(key, value []byte), g *group, patch bool) {
	kind, size := byte(logFull), int64(0)
	if patch {
		kind = logPatch
	}
	s.val = s.appendWins(append(s.val[:0], kind), g, patch)
	if patch {
		// The group's size is estimated from the windows written.
		if n := countDirty(g); n > 0 {
			size = int64(len(s.val)-1) / int64(n) * int64(len(g.wins))
		}
	} else {
		size = int64(len(s.val))
	}
	for _, w := range g.wins {
		w.dirty = false
	}
	size += int64(len(g.key)) + 1 // a rewrite writes the key
	s.liveBytes += size - int64(g.size)
	g.size = int32(size)
	s.logAppend(put, g, s.val)
}

func countDirty(g *group) int {
	n := 0
	for _, w := range g.wins {
		if w.dirty {
			n++
		}
	}
	return n
}

// logAppend appends a change of g to the log entry being filled: its
// number, with its key the first time, and val.
func (s *aggregate) logAppend(put func(key, value []byte), g *group, val []byte) {
	b := s.chunk
	if g.logID == 0 {
		s.nextID++
		g.logID = s.nextID
		b = binary.AppendUvarint(b, uint64(g.logID)<<1|1)
		b = binary.AppendUvarint(b, uint64(len(g.key)))
		b = append(b, g.key...)
	} else {
		b = binary.AppendUvarint(b, uint64(g.logID)<<1)
	}
	b = binary.AppendUvarint(b, uint64(len(val)))
	s.chunk = append(b, val...)
	if len(s.chunk) >= logChunk {
		s.logFlush(put)
	}
}

// logFlush writes the log entry being filled, if any (put copies it).
func (s *aggregate) logFlush(put func(key, value []byte)) {
	if len(s.chunk) == 0 {
		return
	}
	put(logKey(s.seq), s.chunk)
	s.logSeqs = append(s.logSeqs, s.seq)
	s.logBytes += int64(len(s.chunk))
	s.seq++
	s.chunk = s.chunk[:0]
}

func logKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{stateLog}, seq)
}

// Load restores one entry that Save wrote; entries come in key order.
func (s *aggregate) Load(key, value []byte) error {
	if len(key) == 0 {
		return errors.New("sql: window state: empty key")
	}
	switch key[0] {
	case stateMeta:
		wm, n := binary.Varint(value)
		if n <= 0 {
			return errors.New("sql: window state: bad watermark")
		}
		s.wm, s.wmSaved = wm, wm
		return nil
	case stateLog:
		if len(key) != 9 {
			return fmt.Errorf("sql: window state: log key of %d bytes, want 9", len(key))
		}
		seq := binary.BigEndian.Uint64(key[1:])
		s.logSeqs = append(s.logSeqs, seq)
		s.logBytes += int64(len(value))
		s.seq = max(s.seq, seq+1)
		s.redue = true
		d := stateDecoder{b: value}
		for len(d.b) > 0 && d.err == nil {
			ref := d.uvarint()
			id := ref >> 1
			if d.err != nil || id == 0 || id > math.MaxUint32 {
				return fmt.Errorf("sql: window state: log entry %d: bad group number", seq)
			}
			var old *group
			if ref&1 != 0 {
				// The group's first change: any group of its key
				// before is gone.
				k := d.bytes()
				if d.err != nil {
					break
				}
				h := s.groups.hash(k)
				if g := s.groups.find(k, h); g != nil {
					s.liveBytes -= int64(g.size)
					s.groups.remove(g)
					if int(g.logID) < len(s.byID) && s.byID[g.logID] == g {
						s.byID[g.logID] = nil
					}
				}
				old = newGroup(k, h)
				old.logID = uint32(id)
				s.groups.insert(old)
				for uint64(len(s.byID)) <= id {
					s.byID = append(s.byID, nil)
				}
				s.byID[id] = old
				s.nextID = max(s.nextID, uint32(id))
			} else if id < uint64(len(s.byID)) && s.byID[id] != nil {
				old = s.byID[id]
			} else {
				return fmt.Errorf("sql: window state: log entry %d: unknown group number %d", seq, id)
			}
			v := d.bytes()
			if d.err != nil {
				break
			}
			if err := s.applyChange(old, v); err != nil {
				return fmt.Errorf("sql: window state: log entry %d: %w", seq, err)
			}
			if len(v) == 0 {
				s.byID[id] = nil
			}
		}
		if d.err != nil {
			return fmt.Errorf("sql: window state: log entry %d: %w", seq, d.err)
		}
		return nil
	case stateLogV0:
		// The layout before group numbers, each change with its key:
		// read, and rewritten in the present layout by the next Save.
		if len(key) != 9 {
			return fmt.Errorf("sql: window state: log key of %d bytes, want 9", len(key))
		}
		seq := binary.BigEndian.Uint64(key[1:])
		s.logV0 = append(s.logV0, seq)
		s.redue = true
		d := stateDecoder{b: value}
		for len(d.b) > 0 && d.err == nil {
			k, v := d.bytes(), d.bytes()
			if d.err != nil {
				break
			}
			h := s.groups.hash(k)
			g := s.groups.find(k, h)
			if g == nil || len(v) > 0 && v[0] == logFull {
				if g != nil {
					s.applyChange(g, nil)
				}
				g = newGroup(k, h)
				s.groups.insert(g)
			}
			if err := s.applyChange(g, v); err != nil {
				return fmt.Errorf("sql: window state: log entry %d: %w", seq, err)
			}
		}
		if d.err != nil {
			return fmt.Errorf("sql: window state: log entry %d: %w", seq, d.err)
		}
		return nil
	}
	return fmt.Errorf("sql: window state: unknown key kind %q (state written by another version of the window state format)", key[0])
}

// applyChange applies a group's value in the log to g: its windows
// (logFull), windows replacing those of the same start (logPatch), or,
// empty, its deletion.
func (s *aggregate) applyChange(g *group, v []byte) error {
	if len(v) == 0 || v[0] == logFull {
		s.liveBytes -= int64(g.size)
		g.size = 0
		for _, w := range g.wins {
			dropWin(g, w)
		}
		g.wins = g.wins[:0]
		if len(v) == 0 {
			s.groups.remove(g)
			return nil
		}
		g.size = int32(len(v) + len(g.key) + 1)
		s.liveBytes += int64(g.size)
		return s.decodeGroup(g, v[1:])
	}
	if v[0] != logPatch {
		return fmt.Errorf("unknown group value kind %d", v[0])
	}
	var p group
	if err := s.decodeGroup(&p, v[1:]); err != nil {
		return err
	}
	for _, w := range p.wins {
		if i := slices.IndexFunc(g.wins, func(x *win) bool { return x.start == w.start }); i >= 0 {
			dropWin(g, g.wins[i])
			g.wins[i] = w
		} else {
			g.wins = append(g.wins, w)
		}
	}
	s.liveBytes += int64(len(v))
	g.size += int32(len(v))
	return nil
}

// rebuildDue refills the due heap from every window after a Load.
func (s *aggregate) rebuildDue() {
	s.redue = false
	clear(s.due)
	s.due = s.due[:0]
	s.groups.each(func(g *group) {
		for _, w := range g.wins {
			if !w.fired {
				s.due.push(dueEntry{end: w.end, v: g})
			}
		}
	})
}

// The value of a group: the number of windows, then each window's start,
// its length (end - start), and per aggregate the values folded (n) and
// what its kind needs: SUM the integer (or decimal, unscaled) sum or a
// double's bits, AVG the sum's bits, MIN, MAX and ANY_VALUE the value
// (when n > 0), COUNT(DISTINCT) the set in order, APPROX_COUNT_DISTINCT the
// HyperLogLog sketch.
func (s *aggregate) encodeGroup(b []byte, g *group) []byte {
	return s.appendWins(b, g, false)
}

// appendWins appends the encoding of g's windows (only its dirty ones when
// dirty is set) in encodeGroup's layout.
func (s *aggregate) appendWins(b []byte, g *group, dirty bool) []byte {
	n := len(g.wins)
	if dirty {
		n = countDirty(g)
	}
	b = binary.AppendUvarint(b, uint64(n))
	for _, w := range g.wins {
		if dirty && !w.dirty {
			continue
		}
		b = binary.AppendVarint(b, w.start)
		b = binary.AppendUvarint(b, uint64(w.end-w.start))
		for i, spec := range s.a.aggs {
			x := &w.accs[i]
			b = binary.AppendVarint(b, x.n)
			switch spec.kind {
			case aggSum:
				if spec.arg == tFloat {
					b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x.f))
				} else {
					b = binary.AppendVarint(b, x.i)
				}
			case aggAvg:
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x.f))
			case aggMin, aggMax, aggAnyValue:
				if x.n > 0 {
					v := x.val()
					b = appendSlot(b, &v)
				}
			case aggCountDistinct:
				keys := make([]string, 0, len(x.setOf()))
				for k := range x.setOf() {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				b = binary.AppendUvarint(b, uint64(len(keys)))
				for _, k := range keys {
					b = binary.AppendUvarint(b, uint64(len(k)))
					b = append(b, k...)
				}
			case aggApproxDistinct:
				if x.hllOf() == nil {
					b = binary.AppendUvarint(b, 0)
				} else {
					h, _ := x.hllOf().MarshalBinary()
					b = binary.AppendUvarint(b, uint64(len(h)))
					b = append(b, h...)
				}
			}
		}
	}
	return b
}

func (s *aggregate) decodeGroup(g *group, b []byte) error {
	d := stateDecoder{b: b}
	n := d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		start := d.varint()
		w := &win{start: start, end: start + int64(d.uvarint()), accs: make([]acc, len(s.a.aggs))}
		for j, spec := range s.a.aggs {
			x := &w.accs[j]
			x.n = d.varint()
			switch spec.kind {
			case aggSum:
				if spec.arg == tFloat {
					x.f = math.Float64frombits(d.u64())
				} else {
					x.i = d.varint()
				}
			case aggAvg:
				x.f = math.Float64frombits(d.u64())
			case aggMin, aggMax, aggAnyValue:
				if x.n > 0 {
					x.ext().v = d.slot()
				}
			case aggCountDistinct:
				// Each value takes at least its length byte: a count
				// past the bytes left is corrupt, not a map to allocate.
				if k := d.uvarint(); k > uint64(len(d.b)) {
					d.fail()
				} else if k > 0 {
					x.ext().set = make(map[string]struct{}, k)
					for i := uint64(0); i < k && d.err == nil; i++ {
						x.ext().set[string(d.bytes())] = struct{}{}
					}
				}
			case aggApproxDistinct:
				if h := d.bytes(); len(h) > 0 && d.err == nil {
					x.ext().hll = hyperloglog.New14()
					if err := x.hllOf().UnmarshalBinary(bytes.Clone(h)); err != nil {
						return err
					}
				}
			}
		}
		g.wins = append(g.wins, w)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	return d.err
}

type stateDecoder struct {
	b   []byte
	err error
}

func (d *stateDecoder) fail() { d.err, d.b = errors.New("truncated group"), nil }

func (d *stateDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *stateDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *stateDecoder) u64() uint64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *stateDecoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *stateDecoder) slot() engine.Slot {
	if d.err != nil {
		return engine.Slot{}
	}
	v, rest, err := readKeySlot(d.b)
	if err != nil {
		d.fail()
		return engine.Slot{}
	}
	d.b = rest
	return v
}
