package kafka

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// TestBalancedAssignment runs one job of 4 pipelines × 6 partitions on 3,
// then 4, then 2 members with separate clients over kfake, and checks that
// every member owns its share of tasks (±1), that every pipeline is spread
// over all members, and that a rescale moves only the tasks it must.
func TestBalancedAssignment(t *testing.T) {
	topics := []string{"orders", "payments", "clicks", "logins"}
	parts := map[string]int32{}
	for _, tn := range topics {
		parts[tn] = 6
	}
	c, _ := cluster(t, parts)
	sink := &testSink{}
	var pipes []*engine.Pipeline
	for _, tn := range topics {
		pipes = append(pipes, pipeline("p-"+tn, tn, sink, 1000))
	}
	members := map[string]*member{}
	start := func(pod string) {
		members[pod] = startMember(t, c, "balanced", memberOpts{pod: pod, topics: topics, pipes: pipes, leave: true})
	}

	// snapshot waits until every task is owned by exactly one member and
	// nothing changed for a while, and returns task → pod.
	snapshot := func(what string) map[engine.TaskID]string {
		t.Helper()
		var last map[engine.TaskID]string
		stableSince := time.Now()
		waitFor(t, 60*time.Second, what, func() bool {
			cur := map[engine.TaskID]string{}
			dup := false
			for pod, m := range members {
				for _, id := range m.src.ownedTasks() {
					if _, ok := cur[id]; ok {
						dup = true
					}
					cur[id] = pod
				}
			}
			if dup || len(cur) != 24 || !maps.Equal(cur, last) {
				last, stableSince = cur, time.Now()
				return false
			}
			return time.Since(stableSince) > 1500*time.Millisecond
		})
		return last
	}
	check := func(owners map[engine.TaskID]string) {
		t.Helper()
		n := len(members)
		perMember := map[string]int{}
		perTopic := map[string]map[string]int{}
		for id, pod := range owners {
			perMember[pod]++
			if perTopic[id.Topic] == nil {
				perTopic[id.Topic] = map[string]int{}
			}
			perTopic[id.Topic][pod]++
		}
		for pod := range members {
			if got := perMember[pod]; got < 24/n || got > (24+n-1)/n {
				t.Errorf("%d members: %s owns %d tasks, want %d..%d", n, pod, got, 24/n, (24+n-1)/n)
			}
		}
		for _, tn := range topics {
			spread := len(perTopic[tn])
			if spread != min(n, 6) {
				t.Errorf("%d members: pipeline of %s spread over %d members (%v), want %d", n, tn, spread, perTopic[tn], min(n, 6))
			}
			for pod, k := range perTopic[tn] {
				if k < 6/n || k > (6+n-1)/n {
					t.Errorf("%d members: %s owns %d of %s, want %d..%d", n, pod, k, tn, 6/n, (6+n-1)/n)
				}
			}
		}
		t.Logf("%d members: tasks per member %v", n, perMember)
	}
	moved := func(a, b map[engine.TaskID]string) int {
		k := 0
		for id, pod := range a {
			if b[id] != pod {
				k++
			}
		}
		return k
	}
	revokes := func() int {
		k := 0
		for _, m := range members {
			k += m.src.revokeCount()
		}
		return k
	}

	for i := range 3 {
		start(fmt.Sprintf("pod-%d", i))
	}
	s3 := snapshot("3 members to settle")
	check(s3)

	r0 := revokes()
	start("pod-3")
	s4 := snapshot("4 members to settle")
	check(s4)
	if got := moved(s3, s4); got != 6 {
		t.Errorf("3→4 moved %d tasks, want 6 (the new member's share)", got)
	}
	if got := revokes() - r0; got != 6 {
		t.Errorf("3→4 revoked %d tasks, want 6: no task moves twice", got)
	}
	t.Logf("3→4: moved %d tasks, revoked %d", moved(s3, s4), revokes()-r0)

	// Scale down: the two departing members drain and leave.
	for _, pod := range []string{"pod-2", "pod-3"} {
		members[pod].stop(t)
		delete(members, pod)
	}
	r0 = revokes()
	s2 := snapshot("2 members to settle")
	check(s2)
	if got := moved(s4, s2); got != 12 {
		t.Errorf("4→2 moved %d tasks, want 12 (the departed members' tasks)", got)
	}
	if got := revokes() - r0; got != 0 {
		t.Errorf("4→2 revoked %d tasks from the remaining members, want 0", got)
	}
	t.Logf("4→2: moved %d tasks, revoked %d from the remaining members", moved(s4, s2), revokes()-r0)
}
