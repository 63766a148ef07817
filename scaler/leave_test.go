package scaler

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestRemoveDeparted joins three static members to a job's group on kfake,
// stops the ones a scale-down removes (a static member does not leave when
// it stops) and checks that the coordinator removes each from the group once
// its pod is gone or its grace period has passed, and never one whose
// ordinal was scaled up again.
func TestRemoveDeparted(t *testing.T) {
	const (
		ns    = "tenants"
		job   = "acme-firewall"
		topic = "acme.traffic"
	)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	admClient, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer admClient.Close()
	adm := kadm.NewClient(admClient)

	// Members <job>-0..2, each polling on its own goroutine until stopped.
	// stops[id] stops a member and waits until its client is closed.
	stops := map[string]func(){}
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, id := range []string{job + "-0", job + "-1", job + "-2"} {
		cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...),
			kgo.ConsumerGroup(job), kgo.ConsumeTopics(topic), kgo.InstanceID(id))
		if err != nil {
			t.Fatal(err)
		}
		pctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		stops[id] = sync.OnceFunc(func() { cancel(); <-done })
		wg.Go(func() {
			defer close(done)
			defer cl.Close()
			for pctx.Err() == nil {
				cl.PollFetches(pctx)
			}
		})
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	groupMembers := func() []string {
		t.Helper()
		described, err := adm.DescribeGroups(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range described[job].Members {
			if m.InstanceID != nil {
				ids = append(ids, *m.InstanceID)
			}
		}
		slices.Sort(ids)
		return ids
	}
	for len(groupMembers()) != 3 {
		if ctx.Err() != nil {
			t.Fatal("the three members never joined")
		}
		time.Sleep(50 * time.Millisecond)
	}

	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	}
	c := &Coordinator{
		cfg:   Config{Namespace: ns},
		kube:  fake.NewClientset(pod(job+"-0"), pod(job+"-1")),
		kafka: kafkaReader{adm: adm}, log: slog.New(slog.DiscardHandler),
	}
	j := &jobState{cfg: JobConfig{Name: job}}
	now := time.Now()

	// 3 -> 1: pod 2 is gone (its member stopped without leaving), pod 1
	// still drains.
	stops[job+"-2"]()
	if diff := cmp.Diff([]string{job + "-0", job + "-1", job + "-2"}, groupMembers()); diff != "" {
		t.Errorf("a stopped static member left the group by itself (-want +got):\n%s", diff)
	}
	j.departingAfter(3, 1, now, time.Minute)
	c.removeDeparted(ctx, j, 1, now, c.log)
	if diff := cmp.Diff([]string{job + "-0", job + "-1"}, groupMembers()); diff != "" {
		t.Errorf("members after pod 2 is gone (-want +got):\n%s", diff)
	}
	if _, ok := j.departing[1]; !ok || len(j.departing) != 1 {
		t.Errorf("departing %v, want ordinal 1 only", j.departing)
	}

	// Scaled up to 2 again before pod 1 went: it stays a member.
	c.removeDeparted(ctx, j, 2, now, c.log)
	if diff := cmp.Diff([]string{job + "-0", job + "-1"}, groupMembers()); diff != "" {
		t.Errorf("members after scaling up again (-want +got):\n%s", diff)
	}
	if len(j.departing) != 0 {
		t.Errorf("departing %v after scaling up again, want none", j.departing)
	}

	// 2 -> 1 and the pod outlives its grace period (a lost node): the member
	// is removed at the deadline.
	stops[job+"-1"]()
	j.departingAfter(2, 1, now, 30*time.Second)
	c.removeDeparted(ctx, j, 1, now, c.log)
	if diff := cmp.Diff([]string{job + "-0", job + "-1"}, groupMembers()); diff != "" {
		t.Errorf("members within the grace period (-want +got):\n%s", diff)
	}
	c.removeDeparted(ctx, j, 1, now.Add(31*time.Second), c.log)
	if diff := cmp.Diff([]string{job + "-0"}, groupMembers()); diff != "" {
		t.Errorf("members after the grace period (-want +got):\n%s", diff)
	}
	if len(j.departing) != 0 {
		t.Errorf("departing %v, want none", j.departing)
	}

	// A job without a group: nothing to remove, nothing left pending.
	other := &jobState{cfg: JobConfig{Name: "no-such-group"}}
	other.departingAfter(2, 1, now, 0)
	c.removeDeparted(ctx, other, 1, now, c.log)
	if len(other.departing) != 0 {
		t.Errorf("departing %v for a job without a group, want none", other.departing)
	}
}
