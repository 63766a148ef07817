package operator_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/sluicehq/sluice/deploy"

	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
	"github.com/sluicehq/sluice/deploy/kubetest"
)

// One control plane (etcd, kube-apiserver, kube-controller-manager) and one
// sluice binary serve every test of the package; each test has its own
// namespace, Kafka cluster, operator and kubelet.
var (
	cp        *kubetest.ControlPlane
	sluiceBin string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sluice-operator-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	sluiceBin = filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", sluiceBin, "github.com/sluicehq/sluice/cmd/sluice")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build sluice: %v\n%s", err, out)
		return 1
	}
	cp, err = kubetest.Start(filepath.Join(dir), kubetest.Options{
		Controllers: []string{"statefulset-controller", "garbage-collector-controller", "serviceaccount-controller", "serviceaccount-token-controller", "disruption-controller"},
		Log:         os.Stdout,
		Users:       map[string]string{operatorToken: operatorUser},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cp.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := installCRD(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err, cp.Logs(2000))
		return 1
	}
	if err := grantOperator(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if code != 0 && testing.Verbose() {
		fmt.Fprintln(os.Stderr, cp.Logs(3000))
	}
	return code
}

// The operator runs as its own user, granted only the ClusterRole `sluice
// render --operator` writes (and, per test namespace, its Lease Role): a
// call the rendered RBAC does not allow fails the tests.
const (
	operatorToken = "operator-token"
	operatorUser  = "sluice-operator"
)

func grantOperator(ctx context.Context) error {
	kube, err := kubernetes.NewForConfig(cp.REST())
	if err != nil {
		return err
	}
	for _, o := range deploy.OperatorObjects(deploy.OperatorSpec{Image: "sluice:test"}) {
		if cr, ok := o.(*rbacv1.ClusterRole); ok {
			if _, err := kube.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil {
				return err
			}
			_, err := kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: cr.Name},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: operatorUser}},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name},
			}, metav1.CreateOptions{})
			return err
		}
	}
	return fmt.Errorf("no ClusterRole among the operator's objects")
}

// grantLease gives the operator user the rendered Lease Role in ns.
func grantLease(ctx context.Context, kube kubernetes.Interface, ns string) error {
	for _, o := range deploy.OperatorObjects(deploy.OperatorSpec{Image: "sluice:test", Namespace: ns}) {
		if r, ok := o.(*rbacv1.Role); ok {
			if _, err := kube.RbacV1().Roles(ns).Create(ctx, r, metav1.CreateOptions{}); err != nil {
				return err
			}
			_, err := kube.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: r.Name},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: operatorUser}},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: r.Name},
			}, metav1.CreateOptions{})
			return err
		}
	}
	return fmt.Errorf("no Role among the operator's objects")
}

// installCRD creates the CRD as `sluice render --crd` writes it and waits
// until the API server serves the resource.
func installCRD(ctx context.Context) error {
	// The CRD exactly as `sluice render --operator` writes it.
	var crd bytes.Buffer
	if err := deploy.RenderOperator(&crd, deploy.OperatorSpec{Image: "sluice:test"}); err != nil {
		return err
	}
	first, _, _ := strings.Cut(crd.String(), "\n---\n")
	if err := kubetest.Apply(ctx, cp.REST(), []byte(first)); err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cp.REST())
	if err != nil {
		return err
	}
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	for {
		u, err := crds.Get(ctx, v1alpha1.Resource+"."+v1alpha1.Group, metav1.GetOptions{})
		if err == nil {
			conds, _, _ := unstructuredSlice(u.Object, "status", "conditions")
			for _, c := range conds {
				if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
					_, err := dyn.Resource(v1alpha1.GroupVersionResource).Namespace("default").List(ctx, metav1.ListOptions{})
					if err == nil || !apierrors.IsNotFound(err) {
						return nil
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD not established: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func unstructuredSlice(obj map[string]any, path ...string) ([]any, bool, error) {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		cur = m[p]
	}
	s, ok := cur.([]any)
	return s, ok, nil
}
