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
	if len(members) == 0 {
		return map[string]map[string][]int32{}
	}
	p := newPlan(members, partitions)
	p.keepOwners()
	p.setQuotas()
	p.releaseExcess()
	p.placeFree()
	return p.result()
}

// plan is the state of one run of assign. Members are referred to by their
// index in members.
type plan struct {
	members    []groupMember
	partitions map[string]int32
	interested []map[string]bool // member → subscribed topics
	tasks      []tp              // every task some member can take, in topic/partition order
	takers     map[string]int    // topic → members subscribed to it
	weighted   bool              // some member reported rates
	rate       map[tp]uint64     // reported bytes/s
	mean       float64           // mean reported rate

	owner    map[tp]int // task → member, -1 when free
	count    []int      // member → tasks
	perTopic []map[string]int
	load     []float64 // member → summed weight
	held     [][]tp    // member → tasks kept, in topic/partition order
	quota    []int     // member → most tasks
	active   int       // members subscribed to anything (at least 1)
	released map[string]int
}

// newPlan lists the tasks, the members that can take each topic, and the
// tasks' weights.
func newPlan(members []groupMember, partitions map[string]int32) *plan {
	m := len(members)
	p := &plan{
		members: members, partitions: partitions, interested: make([]map[string]bool, m),
		takers: map[string]int{}, rate: map[tp]uint64{}, released: map[string]int{},
		count: make([]int, m), perTopic: make([]map[string]int, m), load: make([]float64, m),
		held: make([][]tp, m), quota: make([]int, m),
	}
	for i, mb := range members {
		p.interested[i] = make(map[string]bool, len(mb.Topics))
		for _, t := range mb.Topics {
			p.interested[i][t] = true
		}
		p.perTopic[i] = map[string]int{}
	}
	for _, t := range sortedKeys(partitions) {
		for i := range members {
			if p.interested[i][t] {
				p.takers[t]++
			}
		}
		if p.takers[t] == 0 {
			continue
		}
		for part := int32(0); part < partitions[t]; part++ {
			p.tasks = append(p.tasks, tp{t, part})
		}
	}
	// Weights: reported rates, where any member reported one.
	var known, sum uint64
	for _, mb := range members {
		for t, ps := range mb.Rates {
			for part, r := range ps {
				k := tp{t, part}
				if _, ok := p.rate[k]; !ok && r > 0 {
					known++
					sum += r
				}
				p.rate[k] = max(p.rate[k], r)
			}
		}
	}
	if known > 0 {
		p.weighted = true
		p.mean = float64(sum) / float64(known)
	}
	return p
}

// weight is a task's share of the load: 1 each without rates; with rates,
// its rate plus a little (a silent task still costs something), or the mean
// for a task nobody measured.
func (p *plan) weight(k tp) float64 {
	if !p.weighted {
		return 1
	}
	r, ok := p.rate[k]
	if !ok {
		return p.mean
	}
	return float64(r) + p.mean/100
}

func (p *plan) capOf(t string) int   { return (int(p.partitions[t]) + p.takers[t] - 1) / p.takers[t] }
func (p *plan) floorOf(t string) int { return int(p.partitions[t]) / p.takers[t] }

// keepOwners is step 1: every task stays with its claimant of the newest
// generation, if that member is still here and subscribed.
func (p *plan) keepOwners() {
	p.owner = make(map[tp]int, len(p.tasks))
	ownerGen := map[tp]int32{}
	for _, k := range p.tasks {
		p.owner[k] = -1
	}
	for i, mb := range p.members {
		for t, ps := range mb.Owned {
			if !p.interested[i][t] {
				continue
			}
			for _, part := range ps {
				k := tp{t, part}
				cur, exists := p.owner[k]
				if !exists {
					continue // a partition that is gone
				}
				if cur < 0 || mb.Generation > ownerGen[k] {
					p.owner[k], ownerGen[k] = i, mb.Generation
				}
			}
		}
	}
	for _, k := range p.tasks {
		if i := p.owner[k]; i >= 0 {
			p.count[i]++
			p.perTopic[i][k.topic]++
			p.load[i] += p.weight(k)
			p.held[i] = append(p.held[i], k)
		}
	}
}

// setQuotas is the first half of step 2: n/m or n/m+1 tasks per subscribed
// member, the +1 going to the members that own the most.
func (p *plan) setQuotas() {
	n := len(p.tasks)
	for i := range p.members {
		if len(p.interested[i]) > 0 {
			p.active++
		}
	}
	p.active = max(p.active, 1)
	order := make([]int, len(p.members))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return p.count[order[a]] > p.count[order[b]] })
	extra := n % p.active
	for _, i := range order {
		if len(p.interested[i]) == 0 {
			continue
		}
		p.quota[i] = n / p.active
		if extra > 0 {
			p.quota[i]++
			extra--
		}
	}
}

// releaseExcess is the second half of step 2: a member above a topic's cap,
// then above its quota, releases tasks, from the topic where it is furthest
// above its fair share and that has released the fewest so far.
func (p *plan) releaseExcess() {
	var total float64
	for _, k := range p.tasks {
		total += p.weight(k)
	}
	target := total / float64(p.active)
	for i := range p.members {
		for _, t := range sortedKeys(p.perTopic[i]) {
			for p.perTopic[i][t] > p.capOf(t) {
				p.release(i, t, target)
			}
		}
	}
	for i := range p.members {
		for p.count[i] > p.quota[i] {
			best, bestScore := "", 0
			for _, t := range sortedKeys(p.perTopic[i]) {
				if p.perTopic[i][t] == 0 {
					continue
				}
				score := (p.perTopic[i][t]-p.floorOf(t))*1_000_000 - p.released[t]
				if best == "" || score > bestScore {
					best, bestScore = t, score
				}
			}
			p.release(i, best, target)
		}
	}
}

// release frees, of member i's tasks of topic t, the one leaving i's load
// nearest target (by count: the highest partition).
func (p *plan) release(i int, t string, target float64) {
	pick, best := -1, 0.0
	for j := len(p.held[i]) - 1; j >= 0; j-- {
		k := p.held[i][j]
		if k.topic != t {
			continue
		}
		d := p.load[i] - p.weight(k) - target
		if d < 0 {
			d = -d
		}
		if pick < 0 || d < best {
			pick, best = j, d
		}
	}
	k := p.held[i][pick]
	p.held[i] = slices.Delete(p.held[i], pick, pick+1)
	p.owner[k] = -1
	p.count[i]--
	p.perTopic[i][t]--
	p.load[i] -= p.weight(k)
	p.released[t]++
}

// placeFree is step 3: free tasks, heaviest first when rates are known,
// go to the member with room under quota and cap, below the topic's floor
// share, with the least load, then the least tasks, then next in a rotation
// that continues across topics.
func (p *plan) placeFree() {
	m := len(p.members)
	var free []tp
	for _, k := range p.tasks {
		if p.owner[k] < 0 {
			free = append(free, k)
		}
	}
	if p.weighted {
		sort.SliceStable(free, func(a, b int) bool { return p.weight(free[a]) > p.weight(free[b]) })
	}
	cursor := 0
	for _, k := range free {
		best := -1
		var bestKey [5]float64
		for off := 0; off < m; off++ {
			i := (cursor + off) % m
			if !p.interested[i][k.topic] {
				continue
			}
			key := [5]float64{
				b2f(p.count[i] >= p.quota[i]),
				b2f(p.perTopic[i][k.topic] >= p.capOf(k.topic)),
				b2f(p.perTopic[i][k.topic] >= p.floorOf(k.topic)),
				p.load[i],
				float64(p.count[i]),
			}
			if !p.weighted {
				key[3] = 0 // the count below decides
			}
			if best < 0 || less5(key, bestKey) {
				best, bestKey = i, key
			}
		}
		if best < 0 {
			continue // nobody subscribes (cannot happen: tasks were filtered)
		}
		p.owner[k] = best
		p.count[best]++
		p.perTopic[best][k.topic]++
		p.load[best] += p.weight(k)
		cursor = (best + 1) % m
	}
}

// result is member id → topic → partitions.
func (p *plan) result() map[string]map[string][]int32 {
	out := make(map[string]map[string][]int32, len(p.members))
	for _, mb := range p.members {
		out[mb.ID] = map[string][]int32{}
	}
	for _, k := range p.tasks {
		if i := p.owner[k]; i >= 0 {
			id := p.members[i].ID
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
