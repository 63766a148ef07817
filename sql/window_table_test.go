package sql

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestGroupTable drives the open-addressed group table through random
// inserts, lookups and removals, with few slots so that probe runs wrap and
// removals shift them, against a Go map.
func TestGroupTable(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tab := newGroupTable()
	want := map[string]*group{}
	for i := 0; i < 200_000; i++ {
		key := []byte("k" + strconv.Itoa(r.IntN(3000)))
		h := tab.hash(key)
		if i%7 == 0 {
			// Colliding hashes: the key decides.
			h &= 0xff
		}
		g := want[string(key)]
		switch got := tab.find(key, g.hashOr(h)); {
		case got != g:
			t.Fatalf("step %d: find %s = %p, want %p", i, key, got, g)
		case g == nil:
			g = newGroup(key, h)
			tab.insert(g)
			want[g.key] = g
		case r.IntN(2) == 0:
			tab.remove(g)
			delete(want, g.key)
		}
		if tab.len() != len(want) {
			t.Fatalf("step %d: %d groups, want %d", i, tab.len(), len(want))
		}
	}
	n := 0
	tab.each(func(g *group) {
		if want[g.key] != g {
			t.Fatalf("each: group %s not in the table", g.key)
		}
		n++
	})
	if n != len(want) {
		t.Fatalf("each: %d groups, want %d", n, len(want))
	}
}

func (g *group) hashOr(h uint64) uint64 {
	if g == nil {
		return h
	}
	return g.hash
}
