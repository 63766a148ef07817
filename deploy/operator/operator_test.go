package operator_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
)

// TestOperatorRejectsInvalidSpec: a job whose SQL names a column the schema
// lacks never reaches a pod: its status says what is wrong and where, as
// `sluice validate` does, and no StatefulSet is created; an invalid update
// of a running job leaves its StatefulSet as it was.
func TestOperatorRejectsInvalidSpec(t *testing.T) {
	e := newEnv(t, 1)
	e.apply(e.newJob("bad-sql", "SELECT id, nope FROM input", nil))
	j := e.waitJob("bad-sql", "invalid spec reported", time.Minute, phaseIs(v1alpha1.PhaseFailed))
	var valid *metav1.Condition
	for i := range j.Status.Conditions {
		if j.Status.Conditions[i].Type == v1alpha1.ConditionValid {
			valid = &j.Status.Conditions[i]
		}
	}
	if valid == nil || valid.Status != metav1.ConditionFalse || valid.Reason != "InvalidSpec" {
		t.Fatalf("Valid condition = %+v, want False/InvalidSpec", valid)
	}
	// The SQL is on line 12 of the job file, the column at its column 21.
	if !regexp.MustCompile(`^job\.yaml:12:21: .*nope`).MatchString(valid.Message) {
		t.Errorf("condition message %q does not name job.yaml:LINE:COL and the column", valid.Message)
	}
	if _, err := e.statefulSet("bad-sql"); !apierrors.IsNotFound(err) {
		t.Errorf("a StatefulSet exists for an invalid spec (err %v)", err)
	}
	if n := e.pods("bad-sql"); n != 0 {
		t.Errorf("%d pods run an invalid spec", n)
	}
	t.Logf("rejected: %s", valid.Message)
}

// TestOperatorInvalidUpdateKeepsRunning: an invalid update of a running job
// does not touch its StatefulSet.
func TestOperatorInvalidUpdateKeepsRunning(t *testing.T) {
	e := newEnv(t, 1)
	e.apply(e.newJob("keep", "SELECT id, tenant FROM input", nil))
	e.waitJob("keep", "running", 2*time.Minute, phaseIs(v1alpha1.PhaseRunning))
	before, err := e.statefulSet("keep")
	if err != nil {
		t.Fatal(err)
	}
	e.apply(e.newJob("keep", "SELECT id, nope FROM input", nil))
	e.waitJob("keep", "invalid update reported", time.Minute, phaseIs(v1alpha1.PhaseFailed))
	time.Sleep(2 * time.Second)
	after, err := e.statefulSet("keep")
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation != before.Generation {
		t.Errorf("the StatefulSet changed on an invalid update: generation %d → %d", before.Generation, after.Generation)
	}
	if e.pods("keep") != 1 {
		t.Errorf("the running worker stopped on an invalid update")
	}
}

// TestOperatorRollback: an update to an image whose workers crash-loop is
// rolled back to the spec that ran; the history shows the failure and the
// rollback, and the job runs again.
func TestOperatorRollback(t *testing.T) {
	e := newEnv(t, 2)
	stop := e.produceEvery(20, 100*time.Millisecond)
	e.apply(e.newJob("rb", "SELECT id, tenant FROM input", nil))
	e.waitJob("rb", "running", 2*time.Minute, phaseIs(v1alpha1.PhaseRunning))
	e.apply(e.newJob("rb", "SELECT id, tenant FROM input", func(j *v1alpha1.SluiceJob) { j.Spec.Image = "sluice:broken" }))
	j := e.waitJob("rb", "rolled back and running", 3*time.Minute, func(j *v1alpha1.SluiceJob) bool {
		return j.Status.RolledBackGeneration == j.Generation && j.Status.Phase == v1alpha1.PhaseRunning
	})
	stop()
	var failed, rolledBack bool
	for _, h := range j.Status.History {
		if h.Generation != j.Generation {
			continue
		}
		failed = failed || (h.To == v1alpha1.PhaseFailed && h.Reason == "CrashLoopBackOff")
		rolledBack = rolledBack || (h.To == v1alpha1.PhaseRunning && h.Reason == "RolledBack")
	}
	if !failed || !rolledBack {
		t.Fatalf("history lacks the crash loop or the rollback: %s", describe(j))
	}
	set, err := e.statefulSet("rb")
	if err != nil {
		t.Fatal(err)
	}
	if img := set.Spec.Template.Spec.Containers[0].Image; img != "sluice:test" {
		t.Errorf("the StatefulSet runs %s after the rollback, want sluice:test", img)
	}
	e.exactlyOnce(e.waitOutput(time.Minute))
	t.Logf("history: %s", describe(j))
}

// TestOperatorLifecycle drives one job through its life with traffic
// flowing the whole time: create → Running; an SQL update under load (drain,
// then the new spec); suspend → no pods; resume; scale 1→3→1 by the
// autoscaler on a backlog; delete (drain first). The sink holds every
// produced record exactly once.
func TestOperatorLifecycle(t *testing.T) {
	e := newEnv(t, 3, "--window", "4s", "--up-backlog-time", "2s", "--down-backlog-time", "1s", "--down-window", "3s", "--settle", "2s")
	ctx := context.Background()
	stop := e.produceEvery(10, 100*time.Millisecond)

	// Create.
	e.apply(e.newJob("life", "SELECT id, tenant FROM input", nil))
	e.waitJob("life", "created and running", 2*time.Minute, phaseIs(v1alpha1.PhaseRunning))
	e.waitPods("life", 1, 30*time.Second)

	// Update the SQL under load.
	e.apply(e.newJob("life", "SELECT id, tenant, 'v2' AS version FROM input", nil))
	e.waitJob("life", "update observed", time.Minute, func(j *v1alpha1.SluiceJob) bool {
		return j.Status.ObservedGeneration == j.Generation && j.Generation == 2
	})
	j := e.waitJob("life", "updated and running", 2*time.Minute, phaseIs(v1alpha1.PhaseRunning))
	if !hasTransition(j, v1alpha1.PhaseUpdating, "SpecChanged") {
		t.Errorf("no Updating transition in the history: %s", describe(j))
	}

	// Suspend: drained, no pods, checkpoints and offsets kept.
	if err := e.jobs.Suspend(ctx, e.ns, "life"); err != nil {
		t.Fatal(err)
	}
	e.waitJob("life", "suspended", 2*time.Minute, phaseIs(v1alpha1.PhaseSuspended))
	e.waitPods("life", 0, 30*time.Second)

	// A burst while suspended, so that the resumed worker starts behind,
	// and a slow sink until the autoscaler has scaled out, so that it
	// stays behind whatever the machine's speed (a fast machine otherwise
	// clears the burst before the autoscaler's window has seen it).
	stop()
	e.produce(200000)
	stop = e.produceEvery(10, 100*time.Millisecond)
	// At most 20,000 records a second: the burst alone is ten seconds of
	// backlog for one worker.
	release := e.slowSink(50 * time.Microsecond)

	// Resume.
	if err := e.jobs.Resume(ctx, e.ns, "life"); err != nil {
		t.Fatal(err)
	}
	e.waitJob("life", "resumed", 2*time.Minute, phaseIs(v1alpha1.PhaseRunning))

	// The backlog the one worker cannot clear within the backlog time:
	// the autoscaler scales out to the partition count, then back in.
	e.waitJob("life", "scaled out to 3", 3*time.Minute, func(j *v1alpha1.SluiceJob) bool { return j.Status.DesiredWorkers == 3 })
	release()
	e.waitJob("life", "running 3 workers", 2*time.Minute, func(j *v1alpha1.SluiceJob) bool {
		return j.Status.Phase == v1alpha1.PhaseRunning && j.Status.ReadyWorkers == 3
	})
	e.waitJob("life", "scaled back to 1", 4*time.Minute, func(j *v1alpha1.SluiceJob) bool {
		return j.Status.DesiredWorkers == 1 && j.Status.Phase == v1alpha1.PhaseRunning
	})
	e.waitPods("life", 1, time.Minute)

	// Delete: the finalizer drains before the objects go.
	stop()
	counts := e.waitOutput(2 * time.Minute)
	if err := e.jobs.Delete(ctx, e.ns, "life"); err != nil {
		t.Fatal(err)
	}
	e.waitPods("life", 0, time.Minute)
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := e.statefulSet("life"); apierrors.IsNotFound(err) {
			if _, err := e.jobs.Get(e.ns, "life"); err != nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the job or its StatefulSet outlived the delete by a minute")
		}
		time.Sleep(200 * time.Millisecond)
	}
	counts = e.output()
	e.exactlyOnce(counts)
	t.Logf("%d records through create, update, suspend, resume, 1→3→1 and delete: each in the sink once", e.total())
}

func hasTransition(j *v1alpha1.SluiceJob, to v1alpha1.Phase, reason string) bool {
	for _, h := range j.Status.History {
		if h.To == to && (reason == "" || strings.EqualFold(h.Reason, reason)) {
			return true
		}
	}
	return false
}
