package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Static membership: a worker joins its job's group with the instance ID
// of its pod, <job>-<ordinal>. When such a member stops it does not leave
// the group (that is what lets a restarted pod take its partitions back
// without a rebalance), so after a scale-down the partitions of the removed
// pods would wait for the session timeout before anyone consumed them. The
// coordinator removes those members itself, once their pods are gone: a pod
// is deleted only after its drain has committed, or after the StatefulSet's
// termination grace period, when the kubelet has killed it anyway.

// departingAfter records a scale-down of j from `from` to `to` replicas: the
// members of ordinals [to, from) are to leave the group once their pods are
// gone, or at the latest at now + grace.
func (j *jobState) departingAfter(from, to int, now time.Time, grace time.Duration) {
	if j.departing == nil {
		j.departing = map[int]time.Time{}
	}
	for i := to; i < from; i++ {
		if _, ok := j.departing[i]; !ok {
			j.departing[i] = now.Add(grace)
		}
	}
}

// removeDeparted removes from the job's consumer group the static members
// of the pods a scale-down removed, once the pods no longer exist or their
// grace period has passed. replicas is the StatefulSet's replica count now:
// an ordinal below it has been scaled up again and is a member once more.
// A member the group no longer knows counts as removed; any other failure
// is retried at the next evaluation.
func (c *Coordinator) removeDeparted(ctx context.Context, j *jobState, replicas int, now time.Time, log *slog.Logger) {
	if len(j.departing) == 0 {
		return
	}
	pods := c.kube.CoreV1().Pods(c.cfg.Namespace)
	var ids []string
	byID := map[string]int{}
	for i, deadline := range j.departing {
		if i < replicas {
			delete(j.departing, i)
			continue
		}
		id := j.cfg.Name + "-" + strconv.Itoa(i)
		if now.Before(deadline) {
			_, err := pods.Get(ctx, id, metav1.GetOptions{})
			if !apierrors.IsNotFound(err) {
				continue // still there (draining), or unknown: ask again later
			}
		}
		ids = append(ids, id)
		byID[id] = i
	}
	if len(ids) == 0 {
		return
	}
	sort.Strings(ids)
	left, err := c.kafka.adm.LeaveGroup(ctx, kadm.LeaveGroup(j.cfg.Name).InstanceIDs(ids...).Reason("scaled down"))
	switch {
	case errors.Is(err, kerr.GroupIDNotFound):
		// No group, so no members to remove.
	case err != nil:
		log.Warn("removing scaled-down members failed", "members", ids, "err", fmt.Errorf("leave group %s: %w", j.cfg.Name, err))
		return
	}
	var removed, failed []string
	for _, id := range ids {
		r, ok := left[id]
		if ok && r.Err != nil && !errors.Is(r.Err, kerr.UnknownMemberID) {
			failed = append(failed, id)
			continue
		}
		removed = append(removed, id)
		delete(j.departing, byID[id])
	}
	if len(removed) > 0 {
		log.Info("removed scaled-down members from the group", "members", removed)
	}
	if len(failed) > 0 {
		log.Warn("removing scaled-down members failed", "members", failed)
	}
}
