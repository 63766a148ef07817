package operator_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/deploy"
	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
)

// TestOperatorRepairsDrift: the objects a job owns are restored when
// someone else deletes or edits them: the Service and the PDB deleted,
// the ConfigMap's job file and the StatefulSet's image edited, then the
// StatefulSet deleted. No kubelet runs: repair needs none.
func TestOperatorRepairsDrift(t *testing.T) {
	e := newEnvWith(t, setup{partitions: 1})
	ctx := context.Background()
	e.apply(e.newJob("drift", "SELECT id, tenant FROM input", nil))
	e.waitJob("drift", "created", time.Minute, func(j *v1alpha1.SluiceJob) bool {
		return j.Status.SpecHash != "" && j.Status.ObservedGeneration == j.Generation
	})
	core, ns := e.kube.CoreV1(), e.ns
	cmName := deploy.ConfigMapName("drift")
	var origJob string
	var origSet *metav1.ObjectMeta
	waitFor(t, "the objects exist", 30*time.Second, func() bool {
		cm, err1 := core.ConfigMaps(ns).Get(ctx, cmName, metav1.GetOptions{})
		_, err2 := core.Services(ns).Get(ctx, "drift", metav1.GetOptions{})
		_, err3 := e.kube.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "drift", metav1.GetOptions{})
		set, err4 := e.statefulSet("drift")
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			return false
		}
		origJob, origSet = cm.Data["job.yaml"], &set.ObjectMeta
		return true
	})

	start := time.Now()
	if err := core.Services(ns).Delete(ctx, "drift", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.kube.PolicyV1().PodDisruptionBudgets(ns).Delete(ctx, "drift", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cm, err := core.ConfigMaps(ns).Get(ctx, cmName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["job.yaml"] = "job: tampered\n"
	if _, err := core.ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	set, err := e.statefulSet("drift")
	if err != nil {
		t.Fatal(err)
	}
	set.Spec.Template.Spec.Containers[0].Image = "someone-else:latest"
	if _, err := e.kube.AppsV1().StatefulSets(ns).Update(ctx, set, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Service, PDB, ConfigMap and StatefulSet restored", 30*time.Second, func() bool {
		_, err1 := core.Services(ns).Get(ctx, "drift", metav1.GetOptions{})
		_, err2 := e.kube.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "drift", metav1.GetOptions{})
		cm, err3 := core.ConfigMaps(ns).Get(ctx, cmName, metav1.GetOptions{})
		set, err4 := e.statefulSet("drift")
		return err1 == nil && err2 == nil && err3 == nil && err4 == nil &&
			cm.Data["job.yaml"] == origJob && set.Spec.Template.Spec.Containers[0].Image == "sluice:test"
	})
	t.Logf("Service, PDB, ConfigMap and StatefulSet restored in %s", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	if err := e.kube.AppsV1().StatefulSets(ns).Delete(ctx, "drift", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "StatefulSet created again", 30*time.Second, func() bool {
		set, err := e.statefulSet("drift")
		return err == nil && set.UID != origSet.UID && set.DeletionTimestamp == nil
	})
	t.Logf("deleted StatefulSet created again in %s", time.Since(start).Round(time.Millisecond))
}

// TestOperatorScaleDownLeavesGroup: when the operator scales a job down,
// the removed workers' static members leave the consumer group as soon as
// their pods are gone, so that their partitions move at once rather than
// after the session timeout (45 s), since a worker does not leave on its
// own.
func TestOperatorScaleDownLeavesGroup(t *testing.T) {
	e := newEnv(t, 2)
	ctx := context.Background()
	bounds := func(n int32) func(*v1alpha1.SluiceJob) {
		return func(j *v1alpha1.SluiceJob) { j.Spec.Scaling = v1alpha1.Scaling{MinWorkers: n, MaxWorkers: n} }
	}
	e.apply(e.newJob("shrink", "SELECT id, tenant FROM input", bounds(2)))
	e.waitJob("shrink", "running 2 workers", 2*time.Minute, func(j *v1alpha1.SluiceJob) bool {
		return j.Status.Phase == v1alpha1.PhaseRunning && j.Status.ReadyWorkers == 2
	})
	adm := e.admin()
	waitFor(t, "both workers in the group", time.Minute, func() bool {
		return slices.Equal(groupMembers(ctx, adm, "shrink"), []string{"shrink-0", "shrink-1"})
	})

	e.apply(e.newJob("shrink", "SELECT id, tenant FROM input", bounds(1)))
	e.waitPods("shrink", 1, time.Minute)
	gone := time.Now()
	waitFor(t, "shrink-1 out of the group and shrink-0 owning both partitions", 15*time.Second, func() bool {
		d, err := adm.DescribeGroups(ctx, "shrink")
		if err != nil {
			return false
		}
		g := d["shrink"]
		return slices.Equal(groupMembers(ctx, adm, "shrink"), []string{"shrink-0"}) && len(g.AssignedPartitions()["in"]) == 2
	})
	t.Logf("the departed member left the group %s after its pod was gone", time.Since(gone).Round(time.Millisecond))
}

// TestOperatorDeleteRemovesCheckpoints: deleting a job with checkpoints:
// Delete drains it, then removes its consumer group and every checkpoint
// object of the job from its store; another job's objects stay.
func TestOperatorDeleteRemovesCheckpoints(t *testing.T) {
	e := newEnv(t, 1)
	ctx := context.Background()
	store, err := checkpoint.NewDir(filepath.Join(e.dir, "ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	other := checkpoint.Key("other", "other-0", 1)
	if err := store.Put(ctx, other, []byte("another job's checkpoint")); err != nil {
		t.Fatal(err)
	}
	e.apply(e.newJob("gone", "SELECT id, tenant FROM input", func(j *v1alpha1.SluiceJob) { j.Spec.Checkpoints = v1alpha1.CheckpointsDelete }))
	e.waitJob("gone", "running", 2*time.Minute, phaseIs(v1alpha1.PhaseRunning))
	e.produce(100)
	jobKeys := func() []string {
		keys, err := store.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		return slices.DeleteFunc(keys, func(k string) bool { return !strings.Contains(k, "/gone/") })
	}
	waitFor(t, "a checkpoint of the job", time.Minute, func() bool { return len(jobKeys()) > 0 })

	if err := e.jobs.Delete(ctx, e.ns, "gone"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job gone", 2*time.Minute, func() bool {
		_, err := e.kube.AppsV1().StatefulSets(e.ns).Get(ctx, "gone", metav1.GetOptions{})
		_, gerr := e.jobs.Get(e.ns, "gone")
		return apierrors.IsNotFound(err) && gerr != nil
	})
	if keys := jobKeys(); len(keys) > 0 {
		t.Errorf("checkpoint objects of the deleted job remain: %v", keys)
	}
	if _, err := store.Get(ctx, other); err != nil {
		t.Errorf("another job's checkpoint is gone: %v", err)
	}
	if m := groupMembers(ctx, e.admin(), "gone"); len(m) > 0 {
		t.Errorf("the deleted job's group still has members %v", m)
	}
	offsets, err := e.admin().FetchOffsets(ctx, "gone")
	if err == nil && len(offsets) > 0 {
		t.Errorf("the deleted job's group still has offsets: %v", offsets)
	}
	entries, _ := os.ReadDir(filepath.Join(e.dir, "ckpt"))
	t.Logf("store holds %d top-level entries after delete", len(entries))
}

// TestOperatorReportsLatencyAndCheckpoint: the status carries the job's
// latency and last checkpoint (key, time, size) read from its workers'
// metrics and its group's commit metadata.
func TestOperatorReportsLatencyAndCheckpoint(t *testing.T) {
	e := newEnv(t, 1, "--report-interval", "1s")
	e.apply(e.newJob("seen", "SELECT id, tenant FROM input", nil))
	e.waitJob("seen", "running", 2*time.Minute, phaseIs(v1alpha1.PhaseRunning))
	e.produce(100)
	j := e.waitJob("seen", "a checkpoint in the status", time.Minute, func(j *v1alpha1.SluiceJob) bool {
		c := j.Status.LastCheckpoint
		return c != nil && c.Key != "" && c.Bytes > 0 && !c.Time.IsZero()
	})
	c := j.Status.LastCheckpoint
	job, pod, _, ok := checkpoint.ParseKey(c.Key)
	if !ok || job != "seen" || pod != "seen-0" {
		t.Errorf("last checkpoint key %q is not one of seen-0's checkpoints", c.Key)
	}
	if age := time.Since(c.Time.Time); age < -2*time.Second || age > time.Minute {
		t.Errorf("last checkpoint time %s is %s from now", c.Time, age)
	}
	if j.Status.LatencySeconds < 0 || j.Status.LatencySeconds > 60 {
		t.Errorf("latency %ds", j.Status.LatencySeconds)
	}
	t.Logf("last checkpoint %s, %d bytes, at %s; latency %ds", c.Key, c.Bytes, c.Time.UTC().Format(time.RFC3339), j.Status.LatencySeconds)
}

func (e *env) admin() *kadm.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// groupMembers is the sorted instance ids of a group's members.
func groupMembers(ctx context.Context, adm *kadm.Client, group string) []string {
	d, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return nil
	}
	var ids []string
	for _, m := range d[group].Members {
		if m.InstanceID != nil {
			ids = append(ids, *m.InstanceID)
		}
	}
	slices.Sort(ids)
	return ids
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
