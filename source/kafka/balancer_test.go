package kafka

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// owners flattens a plan to task → member.
func owners(plan map[string]map[string][]int32) map[tp]string {
	o := map[tp]string{}
	for m, ts := range plan {
		for t, ps := range ts {
			for _, p := range ps {
				o[tp{t, p}] = m
			}
		}
	}
	return o
}

// rebalance runs the rule the way the cooperative protocol does: a first
// round in which moved tasks are held back (revoked), then a second round
// from what the members still own. It returns the final plan.
func rebalance(ids []string, topics []string, owned map[tp]string, parts map[string]int32, rates map[string]map[string]map[int32]uint64) map[string]map[string][]int32 {
	build := func(owned map[tp]string) []groupMember {
		var ms []groupMember
		for _, id := range ids {
			gm := groupMember{ID: id, Topics: topics, Generation: 1, Owned: map[string][]int32{}, Rates: rates[id]}
			for k, o := range owned {
				if o == id {
					gm.Owned[k.topic] = append(gm.Owned[k.topic], k.part)
				}
			}
			ms = append(ms, gm)
		}
		return ms
	}
	first := owners(assign(build(owned), parts))
	kept := map[tp]string{}
	for k, o := range owned {
		if first[k] == o {
			kept[k] = o
		}
	}
	return assign(build(kept), parts)
}

func TestAssignRule(t *testing.T) {
	topics := []string{"a", "b", "c", "d"}
	parts := map[string]int32{"a": 6, "b": 6, "c": 6, "d": 6}
	check := func(t *testing.T, plan map[string]map[string][]int32, members int) {
		t.Helper()
		total := 0
		for m, ts := range plan {
			n := 0
			for topic, ps := range ts {
				n += len(ps)
				lo, hi := 6/members, (6+members-1)/members
				if len(ps) < lo || len(ps) > hi {
					t.Errorf("member %s owns %d of topic %s, want %d..%d", m, len(ps), topic, lo, hi)
				}
			}
			lo, hi := 24/members, (24+members-1)/members
			if n < lo || n > hi {
				t.Errorf("member %s owns %d tasks, want %d..%d", m, n, lo, hi)
			}
			total += n
		}
		if total != 24 {
			t.Errorf("%d tasks assigned, want 24", total)
		}
	}
	moved := func(a, b map[tp]string) int {
		n := 0
		for k, o := range a {
			if b[k] != o {
				n++
			}
		}
		return n
	}
	p3 := rebalance([]string{"m0", "m1", "m2"}, topics, nil, parts, nil)
	check(t, p3, 3)
	p4 := rebalance([]string{"m0", "m1", "m2", "m3"}, topics, owners(p3), parts, nil)
	check(t, p4, 4)
	if got := moved(owners(p3), owners(p4)); got != 6 {
		t.Errorf("3→4 moved %d tasks, want 6", got)
	}
	p2 := rebalance([]string{"m0", "m1"}, topics, owners(p4), parts, nil)
	check(t, p2, 2)
	if got := moved(owners(p4), owners(p2)); got != 12 {
		t.Errorf("4→2 moved %d tasks, want 12 (those of the two departed members)", got)
	}
	// A rebalance with nothing changed moves nothing.
	again := rebalance([]string{"m0", "m1"}, topics, owners(p2), parts, nil)
	if d := cmp.Diff(owners(p2), owners(again), cmp.AllowUnexported(tp{})); d != "" {
		t.Errorf("stable group reshuffled (-want +got):\n%s", d)
	}
}

// TestAssignContinuesAcrossTopics is the slot allocator failure: five
// one-partition topics must not all land on the first member.
func TestAssignContinuesAcrossTopics(t *testing.T) {
	topics := []string{"t0", "t1", "t2", "t3", "t4"}
	parts := map[string]int32{}
	for _, tn := range topics {
		parts[tn] = 1
	}
	plan := rebalance([]string{"m0", "m1", "m2"}, topics, nil, parts, nil)
	got := map[string]int{}
	for m, ts := range plan {
		for _, ps := range ts {
			got[m] += len(ps)
		}
	}
	if d := cmp.Diff(map[string]int{"m0": 2, "m1": 2, "m2": 1}, got); d != "" {
		t.Errorf("tasks per member (-want +got):\n%s", d)
	}
}

// TestAssignWeighted: with rates reported, counts stay even and the two hot
// partitions end up on different members.
func TestAssignWeighted(t *testing.T) {
	topics := []string{"a"}
	parts := map[string]int32{"a": 6}
	p := rebalance([]string{"m0", "m1"}, topics, nil, parts, nil)
	// Make the two partitions m0 owns hot; the rest are near idle.
	rates := map[string]map[string]map[int32]uint64{}
	for m, ts := range p {
		rates[m] = map[string]map[int32]uint64{"a": {}}
		for _, q := range ts["a"] {
			rates[m]["a"][q] = 10
		}
	}
	hot := p["m0"]["a"][:2]
	for _, q := range hot {
		rates["m0"]["a"][q] = 1_000_000
	}
	// A third member joins: it should take one of the hot ones.
	p3 := rebalance([]string{"m0", "m1", "m2"}, topics, owners(p), parts, rates)
	o := owners(p3)
	if o[tp{"a", hot[0]}] == o[tp{"a", hot[1]}] {
		t.Errorf("hot partitions %v share member %s: %v", hot, o[tp{"a", hot[0]}], p3)
	}
	for m, ts := range p3 {
		if len(ts["a"]) != 2 {
			t.Errorf("member %s owns %v, want 2 tasks", m, ts["a"])
		}
	}
}

func TestRatesRoundTrip(t *testing.T) {
	rates := map[string]map[int32]uint64{"orders": {0: 12345, 3: 0, 7: 1 << 40}, "x": {1: 5}}
	owned := map[string][]int32{"orders": {0, 3, 7, 9}, "x": {1}, "y": {0}}
	b := encodeRates(rates, owned)
	got, err := decodeRates(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(rates, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if len(b) > 32 {
		t.Errorf("encoded %d bytes for 4 rates, want a compact encoding", len(b))
	}
}

func FuzzDecodeRates(f *testing.F) {
	f.Add(encodeRates(map[string]map[int32]uint64{"t": {0: 1, 5: 300}}, map[string][]int32{"t": {0, 5}}))
	f.Add([]byte{1, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRates(b)
		if err != nil || r == nil {
			return
		}
		owned := map[string][]int32{}
		for topic, ps := range r {
			for p := range ps {
				owned[topic] = append(owned[topic], p)
			}
		}
		again, err := decodeRates(encodeRates(r, owned))
		if err != nil {
			t.Fatal(err)
		}
		// Empty topics are dropped on re-encoding.
		for topic, ps := range r {
			if len(ps) == 0 {
				delete(r, topic)
			}
		}
		if d := cmp.Diff(r, again); d != "" {
			t.Fatal(fmt.Sprintf("(-first +again):\n%s", d))
		}
	})
}

// TestPlanSteps checks assign's steps one at a time on one group: two
// members claim t/0 (the newer generation keeps it), a departed member's
// task is free, quotas give the extra task to the member that owns most,
// and an over-quota member releases only down to its quota.
func TestPlanSteps(t *testing.T) {
	members := []groupMember{
		{ID: "a", Topics: []string{"t"}, Generation: 1, Owned: map[string][]int32{"t": {0, 1, 2, 3}}},
		{ID: "b", Topics: []string{"t"}, Generation: 2, Owned: map[string][]int32{"t": {0}}},
		{ID: "c", Topics: []string{"t"}},
	}
	p := newPlan(members, map[string]int32{"t": 7})
	p.keepOwners()
	if got := []int{p.owner[tp{"t", 0}], p.owner[tp{"t", 1}], p.owner[tp{"t", 4}]}; got[0] != 1 || got[1] != 0 || got[2] != -1 {
		t.Fatalf("owners of t/0, t/1, t/4 = %v, want b (1), a (0), free (-1)", got)
	}
	p.setQuotas()
	if want := []int{3, 2, 2}; !slices.Equal(p.quota, want) {
		t.Fatalf("quotas %v, want %v (7 tasks, the extra to a, which owns most)", p.quota, want)
	}
	p.releaseExcess()
	if p.count[0] != 3 || p.count[1] != 1 {
		t.Fatalf("after release a holds %d, b %d; want 3 and 1", p.count[0], p.count[1])
	}
	p.placeFree()
	if !slices.Equal(p.count, []int{3, 2, 2}) {
		t.Fatalf("after placing: %v tasks, want [3 2 2]", p.count)
	}
}
