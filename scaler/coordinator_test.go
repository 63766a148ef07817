package scaler

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/deploy"
	"github.com/sluicehq/sluice/deploy/kubetest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// fakePod serves Prometheus text with a process_cpu_seconds_total that
// grows at util cores per second of wall time.
type fakePod struct {
	mu    sync.Mutex // guards the fields below
	util  float64
	secs  float64
	since time.Time
}

func (p *fakePod) setUtil(u float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance()
	p.util = u
}

func (p *fakePod) advance() {
	now := time.Now()
	if !p.since.IsZero() {
		p.secs += p.util * now.Sub(p.since).Seconds()
	}
	p.since = now
}

func (p *fakePod) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	p.advance()
	v := p.secs
	p.mu.Unlock()
	fmt.Fprintf(w, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %g\n", v)
}

// TestCoordinatorKubeAPIServer runs the coordinator against a real
// kube-apiserver and etcd: the rendered manifests apply, a coordinator
// holding only the rendered Role's token scales the StatefulSet up on a
// backlog produced on kfake and down once it is consumed, and a second
// coordinator does nothing while the first holds the lease.
func TestCoordinatorKubeAPIServer(t *testing.T) {
	const (
		ns    = "tenants"
		job   = "acme-firewall"
		topic = "acme.traffic"
	)
	// The control plane first: on a machine without a cached kube-apiserver
	// its one-time build takes minutes, and no deadline runs during it.
	cp := startControlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	admin, err := kubernetes.NewForConfig(restFor(cp.URL, cp.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The manifests `sluice render` writes apply cleanly (strict validation).
	var manifests bytes.Buffer
	jobYAML, err := os.ReadFile("../deploy/testdata/acme-firewall.job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := deploy.Render(&manifests, deploy.JobSpec{
		Job: job, Namespace: ns, Image: "sluice:test", Worker: "n2d-standard-1",
		MinWorkers: 1, MaxWorkers: 8, JobYAML: jobYAML, Brokers: []string{"kafka:9092"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := kubetest.Apply(ctx, restFor(cp.URL, cp.AdminToken), manifests.Bytes()); err != nil {
		t.Fatalf("apply rendered manifests: %v", err)
	}

	// A token for the coordinator's ServiceAccount: bound to the rendered
	// Role and nothing else.
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, deploy.CoordinatorName(job), &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptrInt64(3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kube, err := kubernetes.NewForConfig(restFor(cp.URL, tr.Status.Token))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the coordinator's token can list secrets (err %v): the Role grants too much", err)
	}
	if err := kube.AppsV1().StatefulSets(ns).Delete(ctx, job, metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the coordinator's token can delete the StatefulSet (err %v)", err)
	}

	// Kafka: 8 partitions, and the job's group committed at the start.
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(8, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	commitEnds := func() {
		t.Helper()
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		offs := kadm.Offsets{}
		ends.Each(func(o kadm.ListedOffset) { offs.AddOffset(o.Topic, o.Partition, o.Offset, -1) })
		if err := adm.CommitAllOffsets(ctx, job, offs); err != nil {
			t.Fatal(err)
		}
	}
	commitEnds()
	produce := func(n int) {
		t.Helper()
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = &kgo.Record{Value: []byte(fmt.Sprintf("record-%d", i))}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// Two worker pods' metrics.
	pods := []*fakePod{{util: 1}, {util: 1}}
	urls := map[string]string{}
	for i, p := range pods {
		srv := httptest.NewServer(p)
		defer srv.Close()
		urls[fmt.Sprintf("%s-%d", job, i)] = srv.URL + "/metrics"
	}

	cfg := func(id string) Config {
		return Config{
			Namespace: ns, LeaseName: deploy.CoordinatorName(job), Identity: id,
			Interval: 500 * time.Millisecond, Window: 3 * time.Second,
			LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond,
			Jobs: []JobConfig{{
				Name: job, Topics: []string{topic}, MetricsURLs: urls,
				Policy: Policy{MinWorkers: 1, MaxWorkers: 8, DownWindow: 3 * time.Second, Settle: time.Second, StaleAfter: 10 * time.Second},
			}},
		}
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := NewCoordinator(cfg("coordinator-a"), kube, adm, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewCoordinator(cfg("coordinator-b"), kube, adm, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	actx, stopA := context.WithCancel(ctx)
	aDone := make(chan error, 1)
	go func() { aDone <- a.Run(actx) }()
	waitFor(t, 20*time.Second, "coordinator a leads", func() bool { return a.Leading() })
	bctx, stopB := context.WithCancel(ctx)
	bDone := make(chan error, 1)
	go func() { bDone <- b.Run(bctx) }()
	defer func() {
		stopA()
		stopB()
		<-aDone
		<-bDone
	}()

	replicas := func() int {
		s, err := admin.AppsV1().StatefulSets(ns).GetScale(ctx, job, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return int(s.Spec.Replicas)
	}

	// Backlog with nothing consumed and busy pods: scale up.
	produce(20000)
	waitFor(t, 30*time.Second, "scale up on backlog", func() bool {
		produce(2000)
		return replicas() >= 4
	})
	up := replicas()

	// The backlog is consumed and the pods idle: scale down to the minimum.
	for _, p := range pods {
		p.setUtil(0.05)
	}
	waitFor(t, 40*time.Second, "scale down once the backlog is gone", func() bool {
		commitEnds()
		return replicas() == 1
	})

	if a.Rescales() < 2 {
		t.Errorf("coordinator a rescaled %d times, want up and down", a.Rescales())
	}
	if b.Leading() || b.Rescales() != 0 {
		t.Errorf("coordinator b acted while a held the lease: leading %v, rescales %d", b.Leading(), b.Rescales())
	}
	lease, err := admin.CoordinationV1().Leases(ns).Get(ctx, deploy.CoordinatorName(job), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "coordinator-a" {
		t.Errorf("lease holder %v, want coordinator-a", lease.Spec.HolderIdentity)
	}

	// Events on the StatefulSet record the decisions.
	waitFor(t, 10*time.Second, "scaling events on the StatefulSet", func() bool {
		evs, err := admin.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + job})
		if err != nil {
			t.Fatal(err)
		}
		reasons := map[string]bool{}
		for _, e := range evs.Items {
			reasons[e.Reason] = true
		}
		return reasons["ScaledUp"] && reasons["ScaledDown"]
	})

	// a stops and releases the lease: b takes over.
	stopA()
	<-aDone
	aDone <- nil
	waitFor(t, 20*time.Second, "coordinator b leads after a stops", func() bool { return b.Leading() })
	t.Logf("scaled 1 -> %d -> 1; a rescaled %d times, b took over the lease", up, a.Rescales())
}

func ptrInt64(v int64) *int64 { return &v }

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
