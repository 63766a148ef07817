package deploy

import (
	"fmt"
	"io"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
)

// OperatorSpec is what RenderOperator needs: where the operator runs and
// with which image.
type OperatorSpec struct {
	// Namespace of the operator's Deployment, ServiceAccount and Lease.
	// Default "sluice-system".
	Namespace string
	// Image is the sluice image, for the operator and (its default) the
	// workers.
	Image string
	// Replicas of the operator; one leads. Default 2.
	Replicas int
}

// OperatorName names the operator's Deployment, ServiceAccount,
// ClusterRole, bindings and Lease.
const OperatorName = "sluice-operator"

// OperatorPort is where the rendered operator serves its jobs page,
// /metrics (sluice_job_info), /healthz and /readyz (--listen).
const OperatorPort = 9091

// OperatorRules are exactly the API calls the operator makes, cluster-wide:
// reading and updating SluiceJobs and their status, watching the objects
// each job owns, creating them and restoring them when they drift, scaling
// or updating its StatefulSet, watching the workers' pods. It deletes
// nothing itself: owner references let the garbage collector remove a
// job's objects.
var OperatorRules = []rbacv1.PolicyRule{
	{APIGroups: []string{v1alpha1.Group}, Resources: []string{v1alpha1.Resource}, Verbs: []string{"get", "list", "watch", "patch"}},
	{APIGroups: []string{v1alpha1.Group}, Resources: []string{v1alpha1.Resource + "/status"}, Verbs: []string{"update"}},
	{APIGroups: []string{v1alpha1.Group}, Resources: []string{v1alpha1.Resource + "/finalizers"}, Verbs: []string{"update"}},
	{APIGroups: []string{"apps"}, Resources: []string{"statefulsets"}, Verbs: []string{"list", "watch", "create", "update", "patch"}},
	{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"configmaps", "services"}, Verbs: []string{"list", "watch", "create", "update"}},
	{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"create"}},
	{APIGroups: []string{"policy"}, Resources: []string{"poddisruptionbudgets"}, Verbs: []string{"list", "watch", "create", "update"}},
}

// OperatorObjects returns the CRD and what runs the operator: its
// ServiceAccount, ClusterRole (OperatorRules) and ClusterRoleBinding, a Role
// and RoleBinding for its Lease, and its Deployment.
func OperatorObjects(s OperatorSpec) []any {
	if s.Namespace == "" {
		s.Namespace = "sluice-system"
	}
	if s.Replicas == 0 {
		s.Replicas = 2
	}
	labels := map[string]string{"app.kubernetes.io/name": "sluice", "app.kubernetes.io/component": "operator"}
	meta := func(name, ns string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}
	}
	replicas := int32(s.Replicas)
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: OperatorName, Namespace: s.Namespace}}
	podNS := corev1.EnvVar{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}
	return []any{
		v1alpha1.CRD(),
		&corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: meta(OperatorName, s.Namespace)},
		&rbacv1.ClusterRole{
			TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"}, ObjectMeta: meta(OperatorName, ""),
			Rules: OperatorRules,
		},
		&rbacv1.ClusterRoleBinding{
			TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"}, ObjectMeta: meta(OperatorName, ""),
			Subjects: subject, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: OperatorName},
		},
		&rbacv1.Role{
			TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"}, ObjectMeta: meta(OperatorName, s.Namespace),
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{coordv1.GroupName}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}}},
		},
		&rbacv1.RoleBinding{
			TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"}, ObjectMeta: meta(OperatorName, s.Namespace),
			Subjects: subject, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: OperatorName},
		},
		&appsv1.Deployment{
			TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}, ObjectMeta: meta(OperatorName, s.Namespace),
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{
						ServiceAccountName: OperatorName,
						SecurityContext:    &corev1.PodSecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(runAsUser))},
						Containers: []corev1.Container{{
							Name: "operator", Image: s.Image,
							Args:  []string{"operator", "--image=" + s.Image, "--listen=:" + strconv.Itoa(OperatorPort)},
							Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: OperatorPort}},
							Env:   []corev1.EnvVar{podName, podNS},
							Resources: corev1.ResourceRequirements{
								Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
								Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
							},
							SecurityContext: secCtx,
						}},
					},
				},
			},
		},
	}
}

// RenderOperator writes OperatorObjects as multi-document YAML.
func RenderOperator(w io.Writer, s OperatorSpec) error {
	if s.Image == "" {
		return fmt.Errorf("deploy: render operator: image is empty")
	}
	for i, o := range OperatorObjects(s) {
		var b []byte
		var err error
		if crd, ok := o.(map[string]any); ok {
			// Not pruned: the CRD's empty status subresource is meant.
			b, err = yaml.Marshal(crd)
		} else {
			b, err = marshal(o)
		}
		if err != nil {
			return fmt.Errorf("deploy: render operator: %w", err)
		}
		sep := "---\n"
		if i == 0 {
			sep = ""
		}
		if _, err := io.WriteString(w, sep+string(b)); err != nil {
			return fmt.Errorf("deploy: render operator: %w", err)
		}
	}
	return nil
}
