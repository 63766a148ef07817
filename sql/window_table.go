package sql

import (
	"hash/maphash"

	"github.com/sluicehq/sluice/engine"
)

// groupTable is the open groups of an aggregate by encoded key: an
// open-addressed table with linear probing whose slots hold a group's key
// hash beside the group. A lookup reads one slot and the group it names,
// whose key bytes (when short), newest window and that window's
// accumulators are in the group itself (group.kbuf, group.inl): a
// record's fold touches two or three cache lines where a Go map of string
// keys, a slice of window pointers and a slab of accumulators touch six.
// Deletion shifts the following slots back (no tombstones), so the table
// stays as short as its live groups.
type groupTable struct {
	slots []groupSlot // power of two long, or nil
	n     int
	seed  maphash.Seed
}

type groupSlot struct {
	h uint64
	g *group // nil: empty
}

func newGroupTable() groupTable { return groupTable{seed: maphash.MakeSeed()} }

func (t *groupTable) hash(key []byte) uint64 { return maphash.Bytes(t.seed, key) }

func (t *groupTable) hashString(key string) uint64 { return maphash.String(t.seed, key) }

// len is the number of groups.
func (t *groupTable) len() int { return t.n }

// find returns the group of key, whose hash is h, or nil.
func (t *groupTable) find(key []byte, h uint64) *group {
	if t.n == 0 {
		return nil
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.g == nil {
			return nil
		}
		if s.h == h && s.g.key == engine.UnsafeString(key) {
			return s.g
		}
	}
}

// findString is find for a key held as a string.
func (t *groupTable) findString(key string) *group {
	return t.find(engine.UnsafeBytes(key), t.hashString(key))
}

// insert adds g, whose key is not in the table and whose hash is g.hash.
func (t *groupTable) insert(g *group) {
	if 2*(t.n+1) > len(t.slots) {
		t.grow()
	}
	mask := uint64(len(t.slots) - 1)
	i := g.hash & mask
	for t.slots[i].g != nil {
		i = (i + 1) & mask
	}
	t.slots[i] = groupSlot{h: g.hash, g: g}
	t.n++
}

func (t *groupTable) grow() {
	old := t.slots
	t.slots = make([]groupSlot, max(16, 2*len(old)))
	mask := uint64(len(t.slots) - 1)
	for _, s := range old {
		if s.g == nil {
			continue
		}
		i := s.h & mask
		for t.slots[i].g != nil {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// remove deletes g if the table holds it (not another group of its key).
func (t *groupTable) remove(g *group) {
	if t.n == 0 {
		return
	}
	mask := uint64(len(t.slots) - 1)
	i := g.hash & mask
	for t.slots[i].g != g {
		if t.slots[i].g == nil {
			return
		}
		i = (i + 1) & mask
	}
	// Shift back every following slot of the run that probing from its
	// home would no longer reach past the hole at i.
	for j := (i + 1) & mask; t.slots[j].g != nil; j = (j + 1) & mask {
		home := t.slots[j].h & mask
		// The slot at j may move to i when i lies cyclically in
		// [home, j).
		if (j-home)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = groupSlot{}
	t.n--
}

// each calls fn for every group, in no particular order; fn must not add
// or remove groups.
func (t *groupTable) each(fn func(g *group)) {
	for _, s := range t.slots {
		if s.g != nil {
			fn(s.g)
		}
	}
}

// reset empties the table, keeping its slots.
func (t *groupTable) reset() {
	clear(t.slots)
	t.n = 0
}
