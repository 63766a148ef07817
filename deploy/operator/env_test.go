package operator_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
	"github.com/sluicehq/sluice/deploy/jobs"
	"github.com/sluicehq/sluice/deploy/kubetest"
)

// env is one test's world: a namespace, a Kafka cluster, a kubelet running
// the namespace's pods as local `sluice run` processes, a `sluice operator`
// process and a jobs client.
type env struct {
	t       testing.TB
	ns      string
	dir     string
	kube    kubernetes.Interface
	jobs    *jobs.Client
	kfake   *kfake.Cluster
	brokers []string
	prod    *kgo.Client
	kubelet *kubetest.Kubelet
	// operatorPID is the `sluice operator` process.
	operatorPID int

	mu       sync.Mutex // guards produced
	produced int64
}

const recSchema = `{"type":"record","name":"rec","fields":[{"name":"id","type":"long"},{"name":"tenant","type":"string"}]}`

var nsSeq int

func newEnv(t testing.TB, partitions int32, operatorArgs ...string) *env {
	t.Helper()
	return newEnvWith(t, setup{partitions: partitions, kubelet: true, operatorArgs: operatorArgs})
}

// setup says what an env runs.
type setup struct {
	partitions int32
	// kubelet runs the pods; without it they stay Pending.
	kubelet      bool
	operatorArgs []string
}

func newEnvWith(t testing.TB, s setup) *env {
	t.Helper()
	partitions, operatorArgs := s.partitions, s.operatorArgs
	nsSeq++
	e := &env{t: t, ns: fmt.Sprintf("t%d-%s", nsSeq, strings.ToLower(strconv.FormatInt(time.Now().UnixNano()%1e6, 36))), dir: t.TempDir()}
	var err error
	if e.kube, err = kubernetes.NewForConfig(cp.REST()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := e.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := grantLease(ctx, e.kube, e.ns); err != nil {
		t.Fatal(err)
	}
	e.kfake, err = kfake.NewCluster(kfake.Ports(0, 0, 0), kfake.SeedTopics(partitions, "in"), kfake.SeedTopics(1, "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.kfake.Close)
	e.brokers = e.kfake.ListenAddrs()
	e.prod, err = kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.DefaultProduceTopic("in"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.prod.Close)

	if s.kubelet {
		e.startKubelet()
	}
	os.MkdirAll(filepath.Join(e.dir, "pods"), 0o755)
	e.startOperator(operatorArgs...)

	if e.jobs, err = jobs.New(cp.REST(), e.ns); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := e.jobs.Start(sctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.jobs.Stop)
	return e
}

func (e *env) startKubelet() {
	t := e.t
	var err error
	e.kubelet, err = kubetest.StartKubelet(cp.REST(), kubetest.KubeletOptions{
		Namespace: e.ns, Dir: filepath.Join(e.dir, "pods"),
		Image: func(image string) ([]string, error) {
			switch image {
			case "sluice:test":
				return []string{sluiceBin}, nil
			case "sluice:broken":
				// A release that cannot start: it exits at once.
				return []string{"/bin/sh", "-c", "echo broken image >&2; exit 3", "sh"}, nil
			}
			return nil, fmt.Errorf("image %s is not known to the test kubelet", image)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.kubelet.Stop()
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				if len(b) > 1500 {
					b = b[len(b)-1500:]
				}
				t.Logf("%s:\n%s", filepath.Base(l), b)
			}
		}
	})
}

// startOperator runs `sluice operator` for the namespace as a process.
func (e *env) startOperator(extra ...string) {
	args := append([]string{"operator",
		"--server", cp.URL, "--token", operatorToken, "--insecure",
		"--namespace", e.ns, "--lease-namespace", e.ns, "--identity", "op-" + e.ns,
		"--image", "sluice:test", "--interval", "1s", "--crash-loop-restarts", "2",
	}, extra...)
	logPath := filepath.Join(e.dir, "operator.log")
	f, err := os.Create(logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(sluiceBin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.operatorPID = cmd.Process.Pid
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		f.Close()
		close(done)
	}()
	e.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if e.t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			e.t.Logf("operator log tail:\n%s", b)
		}
	})
}

// jobFile is a job reading "in" and writing "out" on the env's Kafka.
func (e *env) jobFile(name, sql string) string {
	return fmt.Sprintf(`job: %s
kafka: {brokers: [%s]}
checkpoint: {store: "file://%s/ckpt", interval: 1s}
worker: n2d-standard-1
scaling: {min_workers: 1, max_workers: 3}
metrics: {listen: ":9090"}
drain: {deadline: 20s}
pipelines:
  - name: copy
    source: {kafka: {topics: [in]}}
    format: {json: {schema_file: schemas/rec.avsc}}
    sql: %s
    bundle: {max_records: 200, max_wait: 100ms}
    sinks:
      - kafka: {topic: out, format: json}
`, name, strings.Join(e.brokers, ", "), e.dir, sql)
}

func (e *env) newJob(name, sql string, mod func(*v1alpha1.SluiceJob)) *v1alpha1.SluiceJob {
	j := &v1alpha1.SluiceJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns, Labels: map[string]string{v1alpha1.LabelTenant: "acme"}},
		Spec:       v1alpha1.Spec{Job: e.jobFile(name, sql), Files: map[string]string{"schemas/rec.avsc": recSchema}},
	}
	if mod != nil {
		mod(j)
	}
	return j
}

func (e *env) apply(j *v1alpha1.SluiceJob) {
	e.t.Helper()
	if err := e.jobs.Apply(context.Background(), j); err != nil {
		e.t.Fatal(err)
	}
}

// waitJob waits until cond holds for the cached job, or fails with what.
func (e *env) waitJob(name, what string, timeout time.Duration, cond func(*v1alpha1.SluiceJob) bool) *v1alpha1.SluiceJob {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		j, err := e.jobs.Get(e.ns, name)
		if err == nil && cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not after %s; job: %s", what, timeout, describe(j))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func describe(j *v1alpha1.SluiceJob) string {
	if j == nil {
		return "gone"
	}
	var h []string
	for _, t := range j.Status.History {
		h = append(h, fmt.Sprintf("%s→%s(%s,g%d)", t.From, t.To, t.Reason, t.Generation))
	}
	var c []string
	for _, x := range j.Status.Conditions {
		c = append(c, fmt.Sprintf("%s=%s(%s: %s)", x.Type, x.Status, x.Reason, x.Message))
	}
	return fmt.Sprintf("phase %s gen %d observed %d desired %d ready %d backlog %d; history %v; conditions %v",
		j.Status.Phase, j.Generation, j.Status.ObservedGeneration, j.Status.DesiredWorkers, j.Status.ReadyWorkers, j.Status.BacklogRecords, h, c)
}

func phaseIs(p v1alpha1.Phase) func(*v1alpha1.SluiceJob) bool {
	return func(j *v1alpha1.SluiceJob) bool {
		return j.Status.Phase == p && j.Status.ObservedGeneration == j.Generation
	}
}

func (e *env) statefulSet(name string) (*appsv1.StatefulSet, error) {
	return e.kube.AppsV1().StatefulSets(e.ns).Get(context.Background(), name, metav1.GetOptions{})
}

// pods is the number of the job's pods that exist.
func (e *env) pods(name string) int {
	l, err := e.kube.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + name})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(l.Items)
}

func (e *env) waitPods(name string, n int, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for e.pods(name) != n {
		if time.Now().After(deadline) {
			j, _ := e.jobs.Get(e.ns, name)
			e.t.Fatalf("job %s has %d pods after %s, want %d; job: %s", name, e.pods(name), timeout, n, describe(j))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// produce writes n records with consecutive ids.
func (e *env) produce(n int) {
	e.mu.Lock()
	from := e.produced
	e.produced += int64(n)
	e.mu.Unlock()
	for i := from; i < from+int64(n); i++ {
		e.prod.Produce(context.Background(), &kgo.Record{Value: fmt.Appendf(nil, `{"id":%d,"tenant":"acme"}`, i)}, func(_ *kgo.Record, err error) {
			if err != nil {
				e.t.Errorf("produce: %v", err)
			}
		})
	}
	if err := e.prod.Flush(context.Background()); err != nil {
		e.t.Error(err)
	}
}

// produceEvery writes n records every d until the returned stop is called
// (or the test ends).
func (e *env) produceEvery(n int, d time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var once sync.Once
	wg.Go(func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				e.produce(n)
			}
		}
	})
	stop = func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *env) total() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.produced
}

// output reads every record of "out" and counts each id.
func (e *env) output() map[int64]int {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	counts := map[int64]int{}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			var id int64
			if _, err := fmt.Sscanf(string(r.Value), `{"id":%d`, &id); err != nil {
				e.t.Errorf("output record %q: %v", r.Value, err)
				return
			}
			counts[id]++
		})
		if err := fs.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			e.t.Fatal(err)
		}
		if n == 0 {
			return counts
		}
	}
}

// waitOutput waits until the sink holds every produced id.
func (e *env) waitOutput(timeout time.Duration) map[int64]int {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		counts := e.output()
		if int64(len(counts)) >= e.total() {
			return counts
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("sink holds %d distinct ids after %s, want %d", len(counts), timeout, e.total())
		}
		time.Sleep(time.Second)
	}
}

// exactlyOnce checks that every produced id is in the sink exactly once.
func (e *env) exactlyOnce(counts map[int64]int) {
	e.t.Helper()
	missing, dups := 0, 0
	for id := range e.total() {
		switch counts[id] {
		case 0:
			missing++
		case 1:
		default:
			dups++
		}
	}
	if missing > 0 || dups > 0 {
		e.t.Fatalf("of %d produced records, %d are missing from the sink and %d are there more than once", e.total(), missing, dups)
	}
}

// slowSink delays every produce request to "out" by perRecord for each
// record it carries, until the returned release is called. A bundle
// completes only when its produce is acknowledged, so the job's workers
// then write at most one record per perRecord, however fast the machine
// and however many records a request carries, and a burst stays a
// backlog long enough for the autoscaler to act on it.
func (e *env) slowSink(perRecord time.Duration) (release func()) {
	var released atomic.Bool
	e.kfake.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		if released.Load() {
			e.kfake.DropControl()
			return nil, nil, false
		}
		e.kfake.KeepControl()
		for _, t := range r.(*kmsg.ProduceRequest).Topics {
			if t.Topic != "out" {
				continue
			}
			n := 0
			for _, p := range t.Partitions {
				n += batchRecords(p.Records)
			}
			e.kfake.SleepControl(func() { time.Sleep(time.Duration(n) * perRecord) })
		}
		return nil, nil, false
	})
	return func() { released.Store(true) }
}

// batchRecords is the number of records in b, a run of v2 record batches:
// each batch's length is at bytes 8-12 (counting what follows it) and its
// record count at bytes 57-61.
func batchRecords(b []byte) int {
	n := 0
	for len(b) >= 61 {
		n += int(int32(binary.BigEndian.Uint32(b[57:61])))
		l := 12 + int(int32(binary.BigEndian.Uint32(b[8:12])))
		if l < 61 || l > len(b) {
			break
		}
		b = b[l:]
	}
	return n
}
