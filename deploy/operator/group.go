package operator

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	corev1 "k8s.io/api/core/v1"
)

// Static membership: a worker joins its job's group with its pod's name as
// instance ID, and does not leave the group when it stops (that lets a
// restarted pod take its partitions back without a rebalance). After a
// scale-down the removed pods' members would therefore keep their
// partitions until the session timeout. The operator removes them itself
// once their pods are gone (a pod is deleted only after its drain
// committed, or after its grace period, when it has been killed anyway),
// so that their partitions move at once.

// departed records that a scale-down of job from `from` to `to` workers
// removes the members of pods [to, from), to be removed from the group
// once those pods are gone or at the latest after departGrace.
func (o *Operator) departed(key, job string, to, from int, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	d := o.departing[key]
	if d == nil {
		d = map[string]time.Time{}
		o.departing[key] = d
	}
	for i := to; i < from; i++ {
		id := job + "-" + strconv.Itoa(i)
		if _, ok := d[id]; !ok {
			d[id] = now.Add(departGrace)
		}
	}
}

// departGrace bounds the wait for a departing pod: past it its member is
// removed even if the pod still exists.
const departGrace = 2 * time.Minute

// leaveGroup removes from the job's group the departed members whose pods
// are gone (or whose grace ran out). It returns how soon to look again
// when some still wait for their pods (0 when none wait: a pod's deletion
// is an event that brings the job back anyway, this is the safety net).
// A member scaled up again is a member once more and is forgotten.
func (r *run) leaveGroup(pods []*corev1.Pod) (time.Duration, error) {
	key := r.job.Namespace + "/" + r.job.Name
	r.o.mu.Lock()
	d := r.o.departing[key]
	var ids []string
	var wait time.Duration
	replicas := int(r.st.DesiredWorkers)
	for id, deadline := range d {
		ord, _ := strconv.Atoi(strings.TrimPrefix(id, r.job.Name+"-"))
		if ord < replicas {
			delete(d, id)
			continue
		}
		exists := slices.ContainsFunc(pods, func(p *corev1.Pod) bool { return p.Name == id })
		if exists && r.now.Time.Before(deadline) {
			if w := deadline.Sub(r.now.Time); wait == 0 || w < wait {
				wait = w
			}
			continue
		}
		ids = append(ids, id)
	}
	r.o.mu.Unlock()
	if len(ids) == 0 {
		return wait, nil
	}
	ins, err := r.o.inspection(r.ctx, r.job.Name, r.job.Spec)
	if err != nil || ins.Admin == nil {
		r.o.mu.Lock()
		delete(r.o.departing, key)
		r.o.mu.Unlock()
		return wait, nil // no Kafka to tell
	}
	slices.Sort(ids)
	left, err := ins.Admin.LeaveGroup(r.ctx, kadm.LeaveGroup(r.job.Name).InstanceIDs(ids...).Reason("scaled down"))
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return 0, fmt.Errorf("operator: remove scaled-down members %v from group %s: %w", ids, r.job.Name, err)
	}
	var removed []string
	r.o.mu.Lock()
	for _, id := range ids {
		if res, ok := left[id]; ok && res.Err != nil && !errors.Is(res.Err, kerr.UnknownMemberID) {
			continue // retried at the next reconciliation
		}
		removed = append(removed, id)
		delete(d, id)
	}
	r.o.mu.Unlock()
	if len(removed) > 0 {
		r.o.log.Info("removed scaled-down members from the group", "job", key, "members", removed)
	}
	if len(removed) < len(ids) {
		return 0, fmt.Errorf("operator: group %s kept members %v", r.job.Name, ids)
	}
	return wait, nil
}

// deleteProgress removes a drained job's progress for checkpoints: Delete:
// its members and offsets in the consumer group, then its checkpoint
// objects (checkpoints and keyed-state objects alike, every key of the
// layout <hash>/<job>/...), so that a job created again under the name
// starts afresh.
func (r *run) deleteProgress() error {
	j := r.job
	ins, err := r.o.inspection(r.ctx, j.Name, j.Spec)
	if err != nil {
		return nil // an invalid spec ran nothing
	}
	if adm := ins.Admin; adm != nil {
		described, err := adm.DescribeGroups(r.ctx, j.Name)
		if err != nil {
			return fmt.Errorf("operator: describe group %s: %w", j.Name, err)
		}
		var ids []string
		for _, g := range described {
			for _, m := range g.Members {
				if m.InstanceID != nil {
					ids = append(ids, *m.InstanceID)
				}
			}
		}
		if len(ids) > 0 {
			if _, err := adm.LeaveGroup(r.ctx, kadm.LeaveGroup(j.Name).InstanceIDs(ids...).Reason("job deleted")); err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
				return fmt.Errorf("operator: remove members of group %s: %w", j.Name, err)
			}
		}
		if _, err := adm.DeleteGroup(r.ctx, j.Name); err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
			return fmt.Errorf("operator: delete group %s: %w", j.Name, err)
		}
	}
	if ins.Checkpoints == nil {
		return nil
	}
	store, closeStore, err := ins.Checkpoints(r.ctx)
	if err != nil {
		return fmt.Errorf("operator: open the checkpoint store of %s: %w", j.Name, err)
	}
	defer closeStore()
	// The key's first segment is a hash, so the job's keys share no
	// prefix: the store is listed whole.
	keys, err := store.List(r.ctx, "")
	if err != nil {
		return fmt.Errorf("operator: list checkpoints of %s: %w", j.Name, err)
	}
	deleted := 0
	for _, k := range keys {
		if parts := strings.SplitN(k, "/", 3); len(parts) == 3 && parts[1] == j.Name {
			if err := store.Delete(r.ctx, k); err != nil {
				return fmt.Errorf("operator: delete checkpoint %s of %s: %w", k, j.Name, err)
			}
			deleted++
		}
	}
	r.o.log.Info("deleted the job's checkpoints", "job", j.Namespace+"/"+j.Name, "objects", deleted)
	return nil
}
