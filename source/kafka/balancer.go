package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ProtocolName is the name the balancer announces in JoinGroup. Every member
// of a job's group must offer it (all sluice members do), or the group falls
// back to a protocol they have in common.
const ProtocolName = "sluice-balanced"

// rateVersion is the first byte of the member user data: part of the wire
// format, never change its meaning; bump it for a new layout.
const rateVersion = 1

// balancer is the job's kgo.GroupBalancer: cooperative, sticky, and spreading
// tasks of all topics over all members (see the package documentation for the
// rule). rates reports this member's per-task byte rates for its JoinGroup
// metadata; it may be nil.
type balancer struct {
	rates func() map[string]map[int32]uint64
}

var _ kgo.GroupBalancer = (*balancer)(nil)

func (*balancer) ProtocolName() string { return ProtocolName }
func (*balancer) IsCooperative() bool  { return true }

// JoinGroupMetadata announces the subscription, the owned partitions (for the
// cooperative protocol) and, in the user data, the byte rate of each owned
// partition.
func (b *balancer) JoinGroupMetadata(topics []string, owned map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = topics
	meta.Generation = generation
	for _, t := range sortedKeys(owned) {
		op := kmsg.NewConsumerMemberMetadataOwnedPartition()
		op.Topic = t
		op.Partitions = owned[t]
		meta.OwnedPartitions = append(meta.OwnedPartitions, op)
	}
	if b.rates != nil {
		meta.UserData = encodeRates(b.rates(), owned)
	}
	return meta.AppendTo(nil)
}

func (*balancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return kgo.ParseConsumerSyncAssignment(assignment)
}

func (b *balancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	cb, err := kgo.NewConsumerBalancer(b, members)
	if err != nil {
		return nil, nil, err
	}
	return cb, cb.MemberTopics(), nil
}

// Balance implements kgo.ConsumerBalancerBalance: it runs the pure rule
// (assign) over the members' metadata and lets kgo hold back, for one round,
// the partitions that change owner (the cooperative protocol).
func (b *balancer) Balance(cb *kgo.ConsumerBalancer, partitions map[string]int32) kgo.IntoSyncAssignment {
	var ms []groupMember
	cb.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		gm := groupMember{ID: m.MemberID, Topics: meta.Topics, Generation: meta.Generation, Owned: map[string][]int32{}}
		for _, op := range meta.OwnedPartitions {
			gm.Owned[op.Topic] = op.Partitions
		}
		// A member whose rates cannot be read is balanced by count; a bad
		// user data never fails the group.
		gm.Rates, _ = decodeRates(meta.UserData)
		ms = append(ms, gm)
	})
	planned := assign(ms, partitions)
	plan := cb.NewPlan()
	for i := range cb.Members() {
		m, _ := cb.MemberAt(i)
		for topic, ps := range planned[m.MemberID] {
			plan.AddPartitions(m, topic, ps)
		}
	}
	plan.AdjustCooperative(cb)
	return plan
}

// groupMember is what the rule knows of a member.
type groupMember struct {
	ID         string
	Topics     []string
	Generation int32
	Owned      map[string][]int32
	Rates      map[string]map[int32]uint64 // bytes/s of owned partitions
}

type tp struct {
	topic string
	part  int32
}

// assign is the balancing rule, a pure function of the members (in the
// group's order: by instance id, then member id) and the partition count of
// every topic. It returns member id → topic → partitions.
//
//  1. Every task keeps its current owner (the claimant with the newest
//     generation) if that member is still here and subscribed.
//  2. Each member gets a quota of n/m or n/m+1 tasks (the +1 going to the
//     members that own the most, so nobody gives up a task for nothing), and
//     a cap per topic of ceil(k/m) of a topic's k partitions. A member above
//     a cap or its quota releases tasks, taking them from the topic where it
//     is furthest above its fair share and that has released the fewest so
//     far, so that released tasks come from many topics.
//  3. Free tasks (new, released, or of departed members) go, heaviest first
//     when rates are known and otherwise in topic/partition order, to the
//     member with room under quota and cap that is below the topic's floor
//     share, then with the least load (bytes/s, or tasks), then the least
//     tasks, then next in a rotation that continues across topics.
func assign(members []groupMember, partitions map[string]int32) map[string]map[string][]int32 {
	m := len(members)
	out := make(map[string]map[string][]int32, m)
	for _, mb := range members {
		out[mb.ID] = map[string][]int32{}
	}
	if m == 0 {
		return out
	}
	interested := make([]map[string]bool, m)
	for i, mb := range members {
		interested[i] = make(map[string]bool, len(mb.Topics))
		for _, t := range mb.Topics {
			interested[i][t] = true
		}
	}

	// The tasks, and how many members can take each topic.
	topics := sortedKeys(partitions)
	var tasks []tp
	takers := map[string]int{}
	for _, t := range topics {
		for i := range members {
			if interested[i][t] {
				takers[t]++
			}
		}
		if takers[t] == 0 {
			continue
		}
		for p := int32(0); p < partitions[t]; p++ {
			tasks = append(tasks, tp{t, p})
		}
	}
	n := len(tasks)

	// Weights: reported rates, where any member reported one.
	rate := map[tp]uint64{}
	var known, sum uint64
	for _, mb := range members {
		for t, ps := range mb.Rates {
			for p, r := range ps {
				k := tp{t, p}
				if _, ok := rate[k]; !ok && r > 0 {
					known++
					sum += r
				}
				rate[k] = max(rate[k], r)
			}
		}
	}
	weight := func(k tp) float64 { return 1 }
	weighted := known > 0
	if weighted {
		mean := float64(sum) / float64(known)
		weight = func(k tp) float64 {
			r, ok := rate[k]
			if !ok {
				return mean // a task nobody measured counts as an average one
			}
			return float64(r) + mean/100 // a silent task still costs a little
		}
	}

	// 1. Current owners.
	owner := make(map[tp]int, n)
	ownerGen := map[tp]int32{}
	for _, k := range tasks {
		owner[k] = -1
	}
	for i, mb := range members {
		for t, ps := range mb.Owned {
			if !interested[i][t] {
				continue
			}
			for _, p := range ps {
				k := tp{t, p}
				cur, exists := owner[k]
				if !exists {
					continue // a partition that is gone
				}
				if cur < 0 || mb.Generation > ownerGen[k] {
					owner[k], ownerGen[k] = i, mb.Generation
				}
			}
		}
	}
	count := make([]int, m)
	perTopic := make([]map[string]int, m)
	load := make([]float64, m)
	for i := range perTopic {
		perTopic[i] = map[string]int{}
	}
	held := make([][]tp, m) // tasks kept, in topic/partition order
	for _, k := range tasks {
		if i := owner[k]; i >= 0 {
			count[i]++
			perTopic[i][k.topic]++
			load[i] += weight(k)
			held[i] = append(held[i], k)
		}
	}

	// 2. Quotas and caps.
	active := 0
	for i := range members {
		if len(interested[i]) > 0 {
			active++
		}
	}
	active = max(active, 1)
	quota := make([]int, m)
	order := make([]int, m)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return count[order[a]] > count[order[b]] })
	extra := n % active
	for _, i := range order {
		if len(interested[i]) == 0 {
			continue
		}
		quota[i] = n / active
		if extra > 0 {
			quota[i]++
			extra--
		}
	}
	capOf := func(t string) int { return (int(partitions[t]) + takers[t] - 1) / takers[t] }
	floorOf := func(t string) int { return int(partitions[t]) / takers[t] }

	var total float64
	for _, k := range tasks {
		total += weight(k)
	}
	target := total / float64(active)
	released := map[string]int{}
	release := func(i int, t string) {
		// Of i's tasks of t, the one leaving i's load nearest the mean
		// (by count: the highest partition).
		pick, best := -1, 0.0
		for j := len(held[i]) - 1; j >= 0; j-- {
			k := held[i][j]
			if k.topic != t {
				continue
			}
			d := load[i] - weight(k) - target
			if d < 0 {
				d = -d
			}
			if pick < 0 || d < best {
				pick, best = j, d
			}
		}
		k := held[i][pick]
		held[i] = slices.Delete(held[i], pick, pick+1)
		owner[k] = -1
		count[i]--
		perTopic[i][t]--
		load[i] -= weight(k)
		released[t]++
	}
	for i := range members {
		for _, t := range sortedKeys(perTopic[i]) {
			for perTopic[i][t] > capOf(t) {
				release(i, t)
			}
		}
	}
	for i := range members {
		for count[i] > quota[i] {
			best, bestScore := "", 0
			for _, t := range sortedKeys(perTopic[i]) {
				if perTopic[i][t] == 0 {
					continue
				}
				score := (perTopic[i][t]-floorOf(t))*1_000_000 - released[t]
				if best == "" || score > bestScore {
					best, bestScore = t, score
				}
			}
			release(i, best)
		}
	}

	// 3. Free tasks.
	var free []tp
	for _, k := range tasks {
		if owner[k] < 0 {
			free = append(free, k)
		}
	}
	if weighted {
		sort.SliceStable(free, func(a, b int) bool { return weight(free[a]) > weight(free[b]) })
	}
	cursor := 0
	for _, k := range free {
		best := -1
		var bestKey [5]float64
		for off := 0; off < m; off++ {
			i := (cursor + off) % m
			if !interested[i][k.topic] {
				continue
			}
			key := [5]float64{
				b2f(count[i] >= quota[i]),
				b2f(perTopic[i][k.topic] >= capOf(k.topic)),
				b2f(perTopic[i][k.topic] >= floorOf(k.topic)),
				load[i],
				float64(count[i]),
			}
			if !weighted {
				key[3] = 0 // the count below decides
			}
			if best < 0 || less5(key, bestKey) {
				best, bestKey = i, key
			}
		}
		if best < 0 {
			continue // nobody subscribes (cannot happen: tasks were filtered)
		}
		owner[k] = best
		count[best]++
		perTopic[best][k.topic]++
		load[best] += weight(k)
		cursor = (best + 1) % m
	}

	for _, k := range tasks {
		if i := owner[k]; i >= 0 {
			id := members[i].ID
			out[id][k.topic] = append(out[id][k.topic], k.part)
		}
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func less5(a, b [5]float64) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// encodeRates writes the byte rates of the owned partitions as the member
// user data. The layout (all integers unsigned varints):
//
//	version byte (1)
//	topic count
//	per topic: name length, name bytes, partition count,
//	           per partition: partition, bytes/s
//
// Only owned partitions with a known rate are written; topics are sorted, so
// the same rates encode to the same bytes.
func encodeRates(rates map[string]map[int32]uint64, owned map[string][]int32) []byte {
	dst := []byte{rateVersion}
	type entry struct {
		p int32
		r uint64
	}
	var names []string
	byTopic := map[string][]entry{}
	for _, t := range sortedKeys(owned) {
		for _, p := range owned[t] {
			if r, ok := rates[t][p]; ok {
				byTopic[t] = append(byTopic[t], entry{p, r})
			}
		}
		if len(byTopic[t]) > 0 {
			names = append(names, t)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(names)))
	for _, t := range names {
		dst = binary.AppendUvarint(dst, uint64(len(t)))
		dst = append(dst, t...)
		es := byTopic[t]
		slices.SortFunc(es, func(a, b entry) int { return int(a.p - b.p) })
		dst = binary.AppendUvarint(dst, uint64(len(es)))
		for _, e := range es {
			dst = binary.AppendUvarint(dst, uint64(e.p))
			dst = binary.AppendUvarint(dst, e.r)
		}
	}
	return dst
}

var errRates = errors.New("kafka: malformed rate user data")

// decodeRates reads what encodeRates wrote. Empty or foreign user data yields
// no rates and no error; a truncated or malformed one an error.
func decodeRates(b []byte) (map[string]map[int32]uint64, error) {
	if len(b) == 0 || b[0] != rateVersion {
		return nil, nil
	}
	b = b[1:]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	nt, ok := next()
	if !ok || nt > uint64(len(b)) {
		return nil, errRates
	}
	out := make(map[string]map[int32]uint64, nt)
	for range nt {
		l, ok := next()
		if !ok || l > uint64(len(b)) {
			return nil, errRates
		}
		t := string(b[:l])
		b = b[l:]
		np, ok := next()
		if !ok || np > uint64(len(b)) {
			return nil, errRates
		}
		ps := make(map[int32]uint64, np)
		for range np {
			p, ok1 := next()
			r, ok2 := next()
			if !ok1 || !ok2 || p > 1<<31-1 {
				return nil, fmt.Errorf("%w: topic %q", errRates, t)
			}
			ps[int32(p)] = r
		}
		out[t] = ps
	}
	if len(b) != 0 {
		return nil, errRates
	}
	return out, nil
}
