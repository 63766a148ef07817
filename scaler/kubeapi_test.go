package scaler

import (
	"os"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/sluicehq/sluice/deploy/kubetest"
)

// startControlPlane starts a real etcd and kube-apiserver on loopback
// (deploy/kubetest, which the operator's tests share), stopped when t ends.
func startControlPlane(t *testing.T) *kubetest.ControlPlane {
	t.Helper()
	cp, err := kubetest.Start(t.TempDir(), kubetest.Options{Log: os.Stdout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Stop)
	return cp
}

func restFor(url, token string) *rest.Config {
	return &rest.Config{Host: url, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 100, Burst: 200}
}
