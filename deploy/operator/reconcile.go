package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicehq/sluice/deploy"
	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
)

// poll is how soon a job waiting on its pods is looked at again even
// without an event. Every change it waits for (a pod's readiness, restart
// count or deletion, a StatefulSet's replicas) is an event of the informers
// already; poll is only a safety net, and long, since a fleet of pending
// jobs would otherwise be reconciled over and over for nothing.
const poll = 30 * time.Second

// reconcile brings one job's objects towards its spec and writes its
// status. It returns a delay after which to look again, or an error to
// retry with backoff.
func (o *Operator) reconcile(ctx context.Context, key string) (time.Duration, error) {
	j, err := o.job(key)
	if err != nil {
		return 0, err
	}
	if j == nil {
		o.forget(key)
		return 0, nil
	}
	if o.stale(key, j.ResourceVersion) {
		// The cache has not seen this operator's last write of the job
		// yet; that write's event brings the job back.
		return 0, nil
	}
	r := &run{o: o, ctx: ctx, job: j, st: j.Status.Clone(), now: metav1.Now()}
	requeue, err := r.reconcile()
	if serr := r.writeStatus(); serr != nil && err == nil {
		err = serr
	}
	return requeue, err
}

// run is one reconciliation of one job.
type run struct {
	o   *Operator
	ctx context.Context
	job *v1alpha1.SluiceJob
	st  v1alpha1.Status
	now metav1.Time
}

func (r *run) reconcile() (time.Duration, error) {
	j := r.job
	ns, name := j.Namespace, j.Name
	set, err := r.o.sets.StatefulSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		set, err = nil, nil
	}
	if err != nil {
		return 0, err
	}
	pods, err := r.o.pods.Pods(ns).List(labels.SelectorFromSet(deploy.WorkerSelector(name)))
	if err != nil {
		return 0, err
	}

	if j.DeletionTimestamp != nil {
		return r.finalize(set, pods)
	}
	if !slices.Contains(j.Finalizers, Finalizer) {
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"finalizers": append(slices.Clone(j.Finalizers), Finalizer), "resourceVersion": j.ResourceVersion,
		}})
		u, err := r.o.dyn.Resource(v1alpha1.GroupVersionResource).Namespace(ns).Patch(r.ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
		if err != nil {
			return 0, fmt.Errorf("operator: add finalizer to %s/%s: %w", ns, name, err)
		}
		// The status below is written over this version.
		r.o.wrote(ns+"/"+name, j.ResourceVersion, u.GetResourceVersion())
		j.ResourceVersion, j.Finalizers = u.GetResourceVersion(), u.GetFinalizers()
	}

	// The spec to run: the current one, unless it was rolled back.
	target := j.Spec
	rolledBack := r.st.RolledBackGeneration == j.Generation && r.st.RunningSpec != nil
	if rolledBack {
		target = *r.st.RunningSpec
	}
	ins, err := r.o.inspection(r.ctx, name, target)
	if err != nil {
		// Nothing of an invalid spec reaches a pod: the StatefulSet is left
		// as it is, running the last valid spec if there was one.
		r.setCondition(v1alpha1.ConditionValid, metav1.ConditionFalse, "InvalidSpec", err.Error())
		r.transition(v1alpha1.PhaseFailed, "InvalidSpec", firstLine(err.Error()))
		r.st.ObservedGeneration = j.Generation
		return 0, nil
	}
	r.setCondition(v1alpha1.ConditionValid, metav1.ConditionTrue, "Validated", "the job file is valid")

	image := target.Image
	if image == "" {
		image = r.o.cfg.Image
	}
	hash := SpecHash(target, image)
	ws := ins.Workers
	ws.Job, ws.Namespace, ws.Image, ws.ManagedBy = name, ns, image, managedBy
	ws.JobYAML, ws.Files = []byte(target.Job), target.Files
	if target.Worker != "" {
		ws.Worker = target.Worker
	}
	if s := j.Spec.Scaling; s.MinWorkers > 0 || s.MaxWorkers > 0 {
		ws.MinWorkers, ws.MaxWorkers = int(s.MinWorkers), int(s.MaxWorkers)
	}
	if err := ws.ValidateWorkers(); err != nil {
		r.setCondition(v1alpha1.ConditionValid, metav1.ConditionFalse, "InvalidSpec", err.Error())
		r.transition(v1alpha1.PhaseFailed, "InvalidSpec", err.Error())
		r.st.ObservedGeneration = j.Generation
		return 0, nil
	}
	minW, maxW := ws.MinWorkers, ws.MaxWorkers
	if minW == 0 {
		minW = deploy.DefaultMinWorkers
	}
	if maxW == 0 {
		maxW = deploy.DefaultMaxWorkers
	}
	if j.Spec.Scaling.ScaleToZero {
		minW = 0
	}
	want := r.o.desiredWorkers(r.job, set, minW, maxW)
	desired := want
	if j.Spec.Suspend {
		desired = 0
	}
	r.st.DesiredWorkers = int32(desired)
	r.st.ObservedGeneration = j.Generation

	current := 0
	live := 0
	for _, p := range pods {
		if p.DeletionTimestamp == nil {
			live++
		}
	}
	if set != nil && set.Spec.Replicas != nil {
		current = int(*set.Spec.Replicas)
	}

	switch {
	case set == nil && r.o.creating(j.Namespace+"/"+name):
		// Created a moment ago: the StatefulSet's event is on its way.
		return poll, nil

	case set == nil:
		// Create: every object, owned by the job.
		if err := r.create(ws, hash, desired); err != nil {
			return 0, err
		}
		r.o.mu.Lock()
		r.o.created[j.Namespace+"/"+name] = time.Now()
		r.o.mu.Unlock()
		r.st.SpecHash = hash
		if desired == 0 {
			r.transition(v1alpha1.PhaseSuspended, "Suspended", "created suspended")
		} else {
			r.transition(v1alpha1.PhasePending, "Created", "workers starting")
		}
		return poll, nil

	case set.Annotations[AnnotationSpecHash] != hash:
		// Update: drain every worker of the old spec first (scale to zero:
		// each drains on SIGTERM, finishing its bundles, checkpointing and
		// committing), then start the new spec from the committed offsets,
		// so that nothing is lost and nothing is replayed.
		reason := "SpecChanged"
		if rolledBack {
			reason = "RollingBack"
		}
		r.transition(v1alpha1.PhaseUpdating, reason, "draining the workers of the previous spec")
		if current != 0 {
			return poll, r.scaleTo(set, 0, current)
		}
		if len(pods) > 0 {
			return poll, nil
		}
		if err := r.update(set, ws, hash, desired); err != nil {
			return 0, err
		}
		r.st.SpecHash = hash
		return poll, nil
	}

	r.o.mu.Lock()
	delete(r.o.created, ns+"/"+name)
	r.o.mu.Unlock()
	r.st.SpecHash = hash
	if err := r.repair(ws, hash, set); err != nil {
		return 0, err
	}
	if current != desired && current > 0 && desired > 0 {
		r.note(ReasonScaled, fmt.Sprintf("%d → %d workers", current, desired))
	}
	if current != desired {
		if err := r.scaleTo(set, desired, want); err != nil {
			return 0, err
		}
		if desired < current {
			r.o.departed(j.Namespace+"/"+name, name, desired, current, r.now.Time)
		}
	}
	leaveAgain, err := r.leaveGroup(pods)
	if err != nil {
		return 0, err
	}
	ready := 0
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Annotations[AnnotationSpecHash] == hash && podReady(p) {
			ready++
		}
	}
	r.st.ReadyWorkers = int32(ready)
	r.observe()

	if why := r.crashLoop(pods, hash); why != "" {
		return r.rollback(why)
	}
	switch {
	case j.Spec.Suspend && live > 0:
		r.transition(v1alpha1.PhaseDraining, "Suspending", "draining before suspend")
		return poll, nil
	case j.Spec.Suspend:
		r.transition(v1alpha1.PhaseSuspended, "Suspended", "drained and scaled to zero; checkpoints and offsets kept")
		r.setCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, "Suspended", "suspended")
		return leaveAgain, nil
	case ready == desired && live == desired:
		reason := "Ready"
		if rolledBack {
			reason = "RolledBack"
		}
		r.transition(v1alpha1.PhaseRunning, reason, fmt.Sprintf("%d workers ready", ready))
		r.setCondition(v1alpha1.ConditionReady, metav1.ConditionTrue, "WorkersReady", fmt.Sprintf("%d of %d workers ready", ready, desired))
		if !rolledBack {
			s := j.Spec
			r.st.RunningSpec = &s
		}
		return leaveAgain, nil
	default:
		if r.st.Phase != v1alpha1.PhaseUpdating && r.st.Phase != v1alpha1.PhasePending {
			// A rescale keeps the job running; only a start is pending.
			if r.st.Phase != v1alpha1.PhaseRunning {
				r.transition(v1alpha1.PhasePending, "Starting", "workers starting")
			}
		}
		r.setCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, "WorkersNotReady", fmt.Sprintf("%d of %d workers ready", ready, desired))
		return poll, nil
	}
}

// rollback reacts to workers that crash-loop on the spec they run: back to
// the last spec that ran, or Failed when there is none.
func (r *run) rollback(why string) (time.Duration, error) {
	j := r.job
	if r.st.RunningSpec == nil || r.st.RolledBackGeneration == j.Generation {
		r.transition(v1alpha1.PhaseFailed, "CrashLoopBackOff", why)
		r.setCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, "CrashLoopBackOff", why)
		return poll, nil
	}
	r.transition(v1alpha1.PhaseFailed, "CrashLoopBackOff", why)
	r.st.RolledBackGeneration = j.Generation
	r.setCondition(v1alpha1.ConditionRolledBack, metav1.ConditionTrue, "CrashLoopBackOff",
		fmt.Sprintf("generation %d rolled back to the last spec that ran: %s", j.Generation, why))
	// The next pass runs RunningSpec, through the update path.
	return time.Millisecond, nil
}

// crashLoop says why the pods of a spec crash-loop, "" when they do not.
func (r *run) crashLoop(pods []*corev1.Pod, hash string) string {
	for _, p := range pods {
		if p.Annotations[AnnotationSpecHash] != hash {
			continue
		}
		for _, c := range p.Status.ContainerStatuses {
			if c.RestartCount >= r.o.cfg.CrashLoopRestarts {
				return fmt.Sprintf("pod %s restarted %d times", p.Name, c.RestartCount)
			}
		}
	}
	return ""
}

// finalize drains a deleted job, then lets its objects go.
func (r *run) finalize(set *appsv1.StatefulSet, pods []*corev1.Pod) (time.Duration, error) {
	j := r.job
	if !slices.Contains(j.Finalizers, Finalizer) {
		return 0, nil
	}
	r.transition(v1alpha1.PhaseDraining, "Deleting", "draining before delete")
	if set != nil && (set.Spec.Replicas == nil || *set.Spec.Replicas != 0) {
		return poll, r.scaleTo(set, 0, int(ptrOr(set.Spec.Replicas, 1)))
	}
	if len(pods) > 0 {
		return poll, nil
	}
	// Drained: offsets are committed and the checkpoint written. With
	// Checkpoints: Delete the group's offsets go too, so that a job created
	// again under the name starts afresh.
	if j.Spec.Checkpoints == v1alpha1.CheckpointsDelete {
		if err := r.deleteProgress(); err != nil {
			return 0, err
		}
	}
	fins := slices.DeleteFunc(slices.Clone(j.Finalizers), func(f string) bool { return f == Finalizer })
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": fins, "resourceVersion": j.ResourceVersion}})
	if _, err := r.o.dyn.Resource(v1alpha1.GroupVersionResource).Namespace(j.Namespace).Patch(r.ctx, j.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return 0, fmt.Errorf("operator: remove finalizer of %s/%s: %w", j.Namespace, j.Name, err)
	}
	r.o.forget(j.Namespace + "/" + j.Name)
	r.job = nil // nothing left to write a status to
	return 0, nil
}

func ptrOr(p *int32, v int32) int32 {
	if p == nil {
		return v
	}
	return *p
}

// ownerRef makes the job the controller of an object: deleting the job
// (once its finalizer is gone) deletes the object.
func (r *run) ownerRef() metav1.OwnerReference {
	t := true
	return metav1.OwnerReference{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind, Name: r.job.Name, UID: r.job.UID, Controller: &t, BlockOwnerDeletion: &t}
}

// objects renders the job's worker objects, owned by the job, the
// StatefulSet and its pods marked with the spec's hash.
func (r *run) objects(ws deploy.JobSpec, hash string, replicas int) []any {
	objs := deploy.WorkerObjects(ws)
	for _, o := range objs {
		m, _ := meta.Accessor(o)
		m.SetOwnerReferences([]metav1.OwnerReference{r.ownerRef()})
		if set, ok := o.(*appsv1.StatefulSet); ok {
			n := int32(replicas)
			set.Spec.Replicas = &n
			set.Annotations = map[string]string{AnnotationSpecHash: hash, annotationDesired: strconv.Itoa(replicas)}
			set.Spec.Template.Annotations[AnnotationSpecHash] = hash
		}
	}
	return objs
}

func (r *run) create(ws deploy.JobSpec, hash string, replicas int) error {
	ctx, k, ns := r.ctx, r.o.kube, r.job.Namespace
	objs := r.objects(ws, hash, replicas)
	// The StatefulSet last: its event brings the job back, and by then the
	// other objects are most likely in the caches too (else repair would
	// create them again, in vain).
	slices.SortStableFunc(objs, func(a, b any) int {
		_, sa := a.(*appsv1.StatefulSet)
		_, sb := b.(*appsv1.StatefulSet)
		switch {
		case sa == sb:
			return 0
		case sa:
			return 1
		}
		return -1
	})
	for _, obj := range objs {
		var err error
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			_, err = k.CoreV1().ConfigMaps(ns).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Service:
			_, err = k.CoreV1().Services(ns).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.ServiceAccount:
			_, err = k.CoreV1().ServiceAccounts(ns).Create(ctx, o, metav1.CreateOptions{})
		case *appsv1.StatefulSet:
			_, err = k.AppsV1().StatefulSets(ns).Create(ctx, o, metav1.CreateOptions{})
		case *policyv1.PodDisruptionBudget:
			_, err = k.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, o, metav1.CreateOptions{})
		}
		if err != nil && !apierrors.IsAlreadyExists(err) {
			m, _ := meta.Accessor(obj)
			return fmt.Errorf("operator: create %T %s/%s: %w", obj, ns, m.GetName(), err)
		}
	}
	return nil
}

// update writes a drained job's new ConfigMap and StatefulSet.
func (r *run) update(old *appsv1.StatefulSet, ws deploy.JobSpec, hash string, replicas int) error {
	ctx, k, ns := r.ctx, r.o.kube, r.job.Namespace
	for _, obj := range r.objects(ws, hash, replicas) {
		var err error
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			_, err = k.CoreV1().ConfigMaps(ns).Update(ctx, o, metav1.UpdateOptions{})
			if apierrors.IsNotFound(err) {
				_, err = k.CoreV1().ConfigMaps(ns).Create(ctx, o, metav1.CreateOptions{})
			}
		case *appsv1.StatefulSet:
			set := old.DeepCopy()
			set.Annotations = o.Annotations
			set.Labels = o.Labels
			set.Spec.Replicas = o.Spec.Replicas
			set.Spec.Template = o.Spec.Template
			_, err = k.AppsV1().StatefulSets(ns).Update(ctx, set, metav1.UpdateOptions{})
		}
		if err != nil {
			m, _ := meta.Accessor(obj)
			return fmt.Errorf("operator: update %T %s/%s: %w", obj, ns, m.GetName(), err)
		}
	}
	return nil
}

// scaleTo sets the StatefulSet's replicas, remembering remember as the
// workers to return to.
func (r *run) scaleTo(set *appsv1.StatefulSet, replicas, remember int) error {
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{annotationDesired: strconv.Itoa(remember)}},
		"spec":     map[string]any{"replicas": replicas},
	})
	if _, err := r.o.kube.AppsV1().StatefulSets(set.Namespace).Patch(r.ctx, set.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("operator: scale %s/%s to %d: %w", set.Namespace, set.Name, replicas, err)
	}
	return nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// transition moves the status to a phase, recording it in the history when
// it changes.
func (r *run) transition(to v1alpha1.Phase, reason, msg string) {
	if r.st.Phase == to {
		return
	}
	r.record(to, reason, msg)
	r.st.Phase = to
}

// ReasonScaled is the history's reason for a rescale of a running job
// (the autoscaler's decision or new bounds), which changes no phase.
const ReasonScaled = "Scaled"

// note records an event that changes no phase in the history, once: a
// reconcile that runs again over a cache not yet showing its own write
// would note it twice.
func (r *run) note(reason, msg string) {
	if h := r.st.History; len(h) > 0 {
		if last := h[len(h)-1]; last.Reason == reason && last.Message == msg && last.Generation == r.job.Generation {
			return
		}
	}
	r.record(r.st.Phase, reason, msg)
}

// record appends a move from the present phase to the history.
func (r *run) record(to v1alpha1.Phase, reason, msg string) {
	r.st.History = append(r.st.History, v1alpha1.Transition{
		Time: r.now, From: r.st.Phase, To: to, Reason: reason, Message: msg, Generation: r.job.Generation,
	})
	if n := len(r.st.History); n > v1alpha1.MaxHistory {
		r.st.History = slices.Clone(r.st.History[n-v1alpha1.MaxHistory:])
	}
}

func (r *run) setCondition(typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&r.st.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: r.job.Generation, LastTransitionTime: r.now,
	})
}

// observe copies the autoscaler's last signals into the status.
func (r *run) observe() {
	r.o.mu.Lock()
	defer r.o.mu.Unlock()
	if s := r.o.scale[r.job.Namespace+"/"+r.job.Name]; s != nil && !s.reported.IsZero() {
		ob := s.observed
		r.st.BacklogRecords, r.st.BacklogSeconds, r.st.LatencySeconds = ob.backlog, ob.backlogSeconds, ob.latencySeconds
		if ob.checkpoint != nil {
			c := *ob.checkpoint
			r.st.LastCheckpoint = &c
		}
	}
}

// writeStatus writes the status when it changed: a job at rest costs the
// API server nothing.
func (r *run) writeStatus() error {
	if r.job == nil || reflect.DeepEqual(r.st, r.job.Status) {
		return nil
	}
	jj := *r.job
	j := &jj
	j.Status = r.st
	u, err := v1alpha1.ToUnstructured(j)
	if err != nil {
		return err
	}
	w, err := r.o.dyn.Resource(v1alpha1.GroupVersionResource).Namespace(j.Namespace).UpdateStatus(r.ctx, u, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("operator: write status of %s/%s: %w", j.Namespace, j.Name, err)
	}
	r.o.wrote(j.Namespace+"/"+j.Name, j.ResourceVersion, w.GetResourceVersion())
	return nil
}

func firstLine(s string) string {
	for i := range len(s) {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

// desiredWorkers is the replicas a job should run: the autoscaler's last
// decision, else what the StatefulSet was asked to run, else the minimum;
// within the bounds.
func (o *Operator) desiredWorkers(j *v1alpha1.SluiceJob, set *appsv1.StatefulSet, minW, maxW int) int {
	key := j.Namespace + "/" + j.Name
	d := max(minW, 1)
	o.mu.Lock()
	s := o.scale[key]
	o.mu.Unlock()
	switch {
	case s != nil && s.set:
		d = s.desired
	case set != nil:
		if n, err := strconv.Atoi(set.Annotations[annotationDesired]); err == nil {
			d = n
		}
	}
	return min(max(d, minW), maxW)
}

// forget drops what the operator remembers of a job.
func (o *Operator) forget(key string) {
	o.mu.Lock()
	delete(o.scale, key)
	delete(o.written, key)
	delete(o.created, key)
	delete(o.departing, key)
	o.mu.Unlock()
}

// wrote records that a write of a job by the operator turned version from
// into version to.
func (o *Operator) wrote(key, from, to string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.written[key]
	if w.old == nil {
		w.old = map[string]bool{}
	}
	w.old[from], w.latest = true, to
	o.written[key] = w
}

// stale reports whether the cached version of a job is one the operator's
// own writes made obsolete; once the cache holds any other version (the
// last write's, or a later one) the record is dropped.
func (o *Operator) stale(key, version string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	w, ok := o.written[key]
	if !ok {
		return false
	}
	if w.old[version] {
		return true
	}
	delete(o.written, key)
	return false
}

// creating reports whether the job's objects were created so recently that
// the StatefulSet may not have reached the cache yet.
func (o *Operator) creating(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	at, ok := o.created[key]
	if ok && time.Since(at) > createdGrace {
		delete(o.created, key)
		ok = false
	}
	return ok
}

// createdGrace bounds how long a created StatefulSet is expected to take to
// reach the cache; past it, a missing one is created again.
const createdGrace = 30 * time.Second
