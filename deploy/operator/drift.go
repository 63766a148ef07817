package operator

import (
	"fmt"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicehq/sluice/deploy"
)

// repair restores a running job's objects that someone else deleted or
// edited, comparing each cached object with what the spec renders: the
// ConfigMap's data, the Service's selector and ports, the PDB's selector
// and budget, and the StatefulSet's container (image, arguments,
// environment). It reads only the caches: an object at rest costs no
// request. A deleted StatefulSet takes the create path instead; its
// replicas are the autoscaler's, restored by the scaling below.
func (r *run) repair(ws deploy.JobSpec, hash string, set *appsv1.StatefulSet) error {
	ctx, k, ns := r.ctx, r.o.kube, r.job.Namespace
	name := r.job.Name
	for _, obj := range r.objects(ws, hash, int(ptrOr(set.Spec.Replicas, 0))) {
		var err error
		what := ""
		switch want := obj.(type) {
		case *corev1.ConfigMap:
			have, gerr := r.o.configMaps.ConfigMaps(ns).Get(want.Name)
			switch {
			case apierrors.IsNotFound(gerr):
				what = "created"
				_, err = k.CoreV1().ConfigMaps(ns).Create(ctx, want, metav1.CreateOptions{})
			case gerr == nil && !maps.Equal(have.Data, want.Data):
				what = "restored"
				c := have.DeepCopy()
				c.Data, c.BinaryData = want.Data, nil
				_, err = k.CoreV1().ConfigMaps(ns).Update(ctx, c, metav1.UpdateOptions{})
			}
		case *corev1.Service:
			have, gerr := r.o.services.Services(ns).Get(want.Name)
			switch {
			case apierrors.IsNotFound(gerr):
				what = "created"
				_, err = k.CoreV1().Services(ns).Create(ctx, want, metav1.CreateOptions{})
			case gerr == nil && !serviceMatches(have, want):
				what = "restored"
				c := have.DeepCopy()
				c.Spec.Selector, c.Spec.Ports, c.Spec.PublishNotReadyAddresses = want.Spec.Selector, want.Spec.Ports, want.Spec.PublishNotReadyAddresses
				_, err = k.CoreV1().Services(ns).Update(ctx, c, metav1.UpdateOptions{})
			}
		case *policyv1.PodDisruptionBudget:
			have, gerr := r.o.pdbs.PodDisruptionBudgets(ns).Get(want.Name)
			switch {
			case apierrors.IsNotFound(gerr):
				what = "created"
				_, err = k.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, want, metav1.CreateOptions{})
			case gerr == nil && (!equality.Semantic.DeepEqual(have.Spec.Selector, want.Spec.Selector) ||
				!equality.Semantic.DeepEqual(have.Spec.MaxUnavailable, want.Spec.MaxUnavailable) || have.Spec.MinAvailable != nil):
				what = "restored"
				c := have.DeepCopy()
				c.Spec.Selector, c.Spec.MaxUnavailable, c.Spec.MinAvailable = want.Spec.Selector, want.Spec.MaxUnavailable, nil
				_, err = k.PolicyV1().PodDisruptionBudgets(ns).Update(ctx, c, metav1.UpdateOptions{})
			}
		case *appsv1.StatefulSet:
			if !containerMatches(set.Spec.Template.Spec.Containers, want.Spec.Template.Spec.Containers) {
				what = "restored"
				c := set.DeepCopy()
				c.Spec.Template = want.Spec.Template
				_, err = k.AppsV1().StatefulSets(ns).Update(ctx, c, metav1.UpdateOptions{})
			}
		}
		if apierrors.IsAlreadyExists(err) {
			err = nil // the cache was behind
		}
		if err != nil {
			return fmt.Errorf("operator: repair %T %s/%s: %w", obj, ns, name, err)
		}
		if what != "" {
			r.o.log.Info("repaired a drifted object", "job", ns+"/"+name, "kind", fmt.Sprintf("%T", obj), "action", what)
		}
	}
	return nil
}

// serviceMatches compares what the operator sets of a Service; the API
// server's defaults (protocol, cluster IPs) are not compared.
func serviceMatches(have, want *corev1.Service) bool {
	if !maps.Equal(have.Spec.Selector, want.Spec.Selector) || have.Spec.PublishNotReadyAddresses != want.Spec.PublishNotReadyAddresses ||
		len(have.Spec.Ports) != len(want.Spec.Ports) {
		return false
	}
	for i, p := range want.Spec.Ports {
		h := have.Spec.Ports[i]
		if h.Name != p.Name || h.Port != p.Port || h.TargetPort != p.TargetPort {
			return false
		}
	}
	return true
}

// containerMatches compares what a worker runs: the image, the arguments
// and the environment variables (names and literal values: the API server
// fills defaults into references) of each container.
func containerMatches(have, want []corev1.Container) bool {
	if len(have) != len(want) {
		return false
	}
	env := func(e corev1.EnvVar) string { return e.Name + "=" + e.Value }
	for i := range want {
		h, w := have[i], want[i]
		if h.Name != w.Name || h.Image != w.Image || !slices.Equal(h.Args, w.Args) ||
			!slices.Equal(mapSlice(h.Env, env), mapSlice(w.Env, env)) {
			return false
		}
	}
	return true
}

func mapSlice[T, U any](s []T, f func(T) U) []U {
	out := make([]U, len(s))
	for i, v := range s {
		out[i] = f(v)
	}
	return out
}
