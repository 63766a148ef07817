// Package kubetest runs a real Kubernetes control plane on loopback for
// tests: etcd (Debian's etcd-server), kube-apiserver and, when asked,
// kube-controller-manager, the latter two built from the Go module proxy
// once per machine by scaler/testdata/build-kube-apiserver.sh and cached.
// No kubelet runs here; Kubelet plays one for the pods of a namespace,
// running each Pod's container as a local process (or, with Pretend, only
// reporting it Running and Ready, for benchmarks of many jobs).
//
// It is a library for tests only: nothing but the tests imports
// it. A test package starts one ControlPlane in TestMain and gives each
// test its own namespace.
//
// Concurrency: a ControlPlane is immutable once started; a Kubelet runs
// its pods from its own goroutines and is stopped by Stop.
package kubetest
