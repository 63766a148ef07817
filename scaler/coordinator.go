package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
)

// JobConfig says how to watch one job. The job name is the StatefulSet's
// name and the Kafka consumer group.
type JobConfig struct {
	Name string
	// Tenant and Application group the job in the fleet view: the
	// coordinator exports them as sluice_job_info and shows them on its
	// jobs page. Optional.
	Tenant, Application string
	// Topics or TopicRegex name the job's input; with neither, the topics
	// the group has committed offsets for.
	Topics     []string
	TopicRegex string
	// MetricsURLs are the pods' /metrics URLs, by pod name. When empty, the
	// pods are found with PodSelector (default: the labels deploy renders)
	// and scraped at http://POD_IP:MetricsPort/metrics.
	MetricsURLs map[string]string
	PodSelector string
	MetricsPort int
	// Policy holds the job's thresholds; zero fields take the defaults.
	Policy Policy
}

// Config configures a Coordinator.
type Config struct {
	Namespace string
	Jobs      []JobConfig
	// LeaseName is the Lease the coordinators of this namespace elect a
	// leader with. Default "sluice-coordinator".
	LeaseName string
	// Identity names this coordinator in the Lease and in events. Default
	// $POD_NAME, else the host name.
	Identity string
	// Interval between evaluations. Default 15s.
	Interval time.Duration
	// Window is the smoothing span of the signals. Default 1m.
	Window time.Duration
	// PrometheusURL, when set, is queried for the pods' CPU counters instead
	// of scraping the pods.
	PrometheusURL string
	// Leader election timings. Defaults 15s, 10s, 2s (client-go's usual).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

func (c Config) withDefaults() Config {
	if c.LeaseName == "" {
		c.LeaseName = "sluice-coordinator"
	}
	if c.Identity == "" {
		c.Identity = os.Getenv("POD_NAME")
	}
	if c.Identity == "" {
		c.Identity, _ = os.Hostname()
	}
	setDur(&c.Interval, 15*time.Second)
	setDur(&c.Window, time.Minute)
	setDur(&c.LeaseDuration, 15*time.Second)
	setDur(&c.RenewDeadline, 10*time.Second)
	setDur(&c.RetryPeriod, 2*time.Second)
	for i := range c.Jobs {
		j := &c.Jobs[i]
		if j.MetricsPort == 0 {
			j.MetricsPort = 9090
		}
		if j.PodSelector == "" && len(j.MetricsURLs) == 0 {
			j.PodSelector = "app.kubernetes.io/name=sluice,app.kubernetes.io/instance=" + j.Name + ",app.kubernetes.io/component=worker"
		}
		j.Policy = j.Policy.WithDefaults()
	}
	return c
}

// Validate reports what is wrong with a defaulted config.
func (c Config) Validate() error {
	var errs []error
	if c.Namespace == "" {
		errs = append(errs, errors.New("namespace is empty"))
	}
	if len(c.Jobs) == 0 {
		errs = append(errs, errors.New("no jobs to watch"))
	}
	seen := map[string]bool{}
	for _, j := range c.Jobs {
		if j.Name == "" {
			errs = append(errs, errors.New("a job has no name"))
		}
		if seen[j.Name] {
			errs = append(errs, fmt.Errorf("job %s is listed twice", j.Name))
		}
		seen[j.Name] = true
		if err := j.Policy.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("job %s: %w", j.Name, err))
		}
	}
	if c.RenewDeadline >= c.LeaseDuration {
		errs = append(errs, fmt.Errorf("renew deadline %s must be shorter than lease duration %s", c.RenewDeadline, c.LeaseDuration))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	return nil
}

// Metrics of the coordinator, built by one constructor.
type Metrics struct {
	Desired   *prometheus.GaugeVec   // sluice_scaler_desired_workers{job}
	Decisions *prometheus.CounterVec // sluice_scaler_decisions_total{job,direction}
	Leader    prometheus.Gauge       // sluice_scaler_leader
	Workers   *prometheus.GaugeVec   // sluice_scaler_workers{job,state}: observe.go
	JobInfo   *prometheus.GaugeVec   // sluice_job_info{job,tenant,application}: export.go
}

// NewMetrics registers the coordinator's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Desired: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_scaler_desired_workers", Help: "Workers the policy last asked for, per job.",
		}, []string{"job"}),
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_scaler_decisions_total", Help: "Policy evaluations per job and direction (up, down, none).",
		}, []string{"job", "direction"}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_scaler_leader", Help: "1 while this coordinator holds the lease.",
		}),
		Workers: newWorkersGauge(),
		JobInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: jobInfoName, Help: jobInfoHelp}, jobInfoLabels),
	}
	reg.MustRegister(m.Desired, m.Decisions, m.Leader, m.Workers, m.JobInfo)
	return m
}

// jobState is what the loop keeps per job. Only the loop goroutine touches it.
type jobState struct {
	cfg     JobConfig
	window  *Window
	history History
	// departing maps the ordinals a scale-down removed to the time by which
	// their static members leave the group whether or not their pods are
	// gone yet (leave.go).
	departing map[int]time.Time
}

// Coordinator watches jobs and rescales their StatefulSets while it holds
// the lease. Run is called once; the exported counters are safe to read
// from any goroutine.
type Coordinator struct {
	cfg     Config
	kube    kubernetes.Interface
	kafka   kafkaReader
	http    *http.Client
	log     *slog.Logger
	metrics *Metrics
	jobs    []*jobState

	leading atomic.Bool
	scaled  atomic.Int64 // replicas changes this coordinator made
	hist    history      // per job, for the jobs page (status.go)
}

// NewCoordinator returns a coordinator over a Kubernetes client and a kadm
// client. metrics may be nil (then nothing is exported).
func NewCoordinator(cfg Config, kube kubernetes.Interface, adm *kadm.Client, log *slog.Logger, metrics *Metrics) (*Coordinator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if metrics == nil {
		metrics = NewMetrics(prometheus.NewRegistry())
	}
	c := &Coordinator{
		cfg: cfg, kube: kube, kafka: kafkaReader{adm: adm},
		http: &http.Client{Timeout: 10 * time.Second},
		log:  log.With("identity", cfg.Identity, "namespace", cfg.Namespace), metrics: metrics,
	}
	for _, j := range cfg.Jobs {
		c.jobs = append(c.jobs, &jobState{cfg: j, window: NewWindow(cfg.Window)})
		metrics.JobInfo.WithLabelValues(j.Name, j.Tenant, j.Application).Set(1)
		c.hist.add(j.Name, JobEvent{At: time.Now(), Kind: "watched", Detail: "by coordinator " + cfg.Identity})
	}
	return c, nil
}

// Leading reports whether this coordinator holds the lease now.
func (c *Coordinator) Leading() bool { return c.leading.Load() }

// Rescales is how many times this coordinator changed a job's replicas.
func (c *Coordinator) Rescales() int64 { return c.scaled.Load() }

// Run campaigns for the lease and, while it holds it, evaluates every job
// every Interval. It returns when ctx is done, releasing the lease.
func (c *Coordinator) Run(ctx context.Context) error {
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.kube.CoreV1().Events(c.cfg.Namespace)})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "sluice-coordinator", Host: c.cfg.Identity})

	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: c.cfg.LeaseName, Namespace: c.cfg.Namespace},
		Client:     c.kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: c.cfg.Identity},
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   c.cfg.LeaseDuration,
		RenewDeadline:   c.cfg.RenewDeadline,
		RetryPeriod:     c.cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            c.cfg.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				c.leading.Store(true)
				c.metrics.Leader.Set(1)
				c.log.Info("leading")
				c.loop(ctx, recorder)
			},
			OnStoppedLeading: func() {
				c.leading.Store(false)
				c.metrics.Leader.Set(0)
				c.log.Info("stopped leading")
			},
		},
	})
	if err != nil {
		return fmt.Errorf("coordinator: leader election: %w", err)
	}
	// Run returns when leadership is lost; campaign again until ctx ends.
	for ctx.Err() == nil {
		le.Run(ctx)
	}
	return nil
}

func (c *Coordinator) loop(ctx context.Context, rec record.EventRecorder) {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		for _, j := range c.jobs {
			if ctx.Err() != nil {
				return
			}
			c.evaluate(ctx, j, rec, time.Now())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// evaluate samples one job, runs the policy and applies the decision.
func (c *Coordinator) evaluate(ctx context.Context, j *jobState, rec record.EventRecorder, now time.Time) {
	log := c.log.With("job", j.cfg.Name)
	sts := c.kube.AppsV1().StatefulSets(c.cfg.Namespace)
	set, err := sts.Get(ctx, j.cfg.Name, metav1.GetOptions{})
	if err != nil {
		log.Warn("statefulset unavailable", "err", err)
		return
	}
	scale, err := sts.GetScale(ctx, j.cfg.Name, metav1.GetOptions{})
	if err != nil {
		log.Warn("scale unavailable", "err", err)
		return
	}
	current := int(scale.Spec.Replicas)
	c.removeDeparted(ctx, j, current, now, log)

	if k, err := c.kafka.sample(ctx, j.cfg, now); err != nil {
		log.Warn("kafka sample failed", "err", err)
	} else {
		j.window.AddKafka(k)
	}
	if secs, err := c.cpuCounters(ctx, j); err != nil {
		log.Warn("cpu sample failed", "err", err)
	} else if len(secs) > 0 {
		j.window.AddCPU(CPUSample{At: time.Now(), Seconds: secs, CPUs: requestedCPUs(set.Spec.Template.Spec.Containers)})
	}

	sig := j.window.Signals(now, current)
	d, h := Decide(j.cfg.Policy, j.history, sig)
	j.history = h
	c.metrics.Decisions.WithLabelValues(j.cfg.Name, d.Direction.String()).Inc()
	c.metrics.Desired.WithLabelValues(j.cfg.Name).Set(float64(d.Desired))
	c.observeWorkers(j, set, d, sig)
	log.Info("decision",
		"current", d.Current, "desired", d.Desired, "direction", d.Direction.String(), "no_decision", d.NoDecision,
		"input_rate", sig.InputRate, "throughput", sig.Throughput, "backlog", sig.Backlog,
		"backlog_growth", sig.BacklogGrowth, "backlog_time", fmtDur(sig.BacklogTime()), "cpu", sig.CPU,
		"reasons", d.Reasons)
	if d.NoDecision || d.Desired == current {
		return
	}
	patch := []byte(`{"spec":{"replicas":` + strconv.Itoa(d.Desired) + `}}`)
	if _, err := sts.Patch(ctx, j.cfg.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "scale"); err != nil {
		log.Error("rescale failed", "desired", d.Desired, "err", err)
		return
	}
	c.scaled.Add(1)
	c.noteScaled(j, current, d, now)
	reason := "ScaledUp"
	if d.Direction == Down {
		reason = "ScaledDown"
		j.departingAfter(current, d.Desired, now, terminationGrace(set.Spec.Template.Spec.TerminationGracePeriodSeconds))
	}
	rec.Eventf(set, corev1.EventTypeNormal, reason, "replicas %d -> %d: %v", current, d.Desired, d.Reasons)
}

// cpuCounters returns process_cpu_seconds_total by pod for a job.
func (c *Coordinator) cpuCounters(ctx context.Context, j *jobState) (map[string]float64, error) {
	if c.cfg.PrometheusURL != "" {
		return queryPrometheus(ctx, c.http, c.cfg.PrometheusURL, c.cfg.Namespace, j.cfg.Name)
	}
	targets := j.cfg.MetricsURLs
	if len(targets) == 0 {
		pods, err := c.kube.CoreV1().Pods(c.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: j.cfg.PodSelector})
		if err != nil {
			return nil, fmt.Errorf("list pods: %w", err)
		}
		targets = map[string]string{}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
				continue
			}
			targets[p.Name] = "http://" + p.Status.PodIP + ":" + strconv.Itoa(j.cfg.MetricsPort) + "/metrics"
		}
	}
	return scrapePods(ctx, c.http, targets), nil
}

// requestedCPUs is the CPU request of the pod's containers, cores; 1 when
// none is set.
func requestedCPUs(cs []corev1.Container) float64 {
	var total resource.Quantity
	for _, c := range cs {
		if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
			total.Add(q)
		}
	}
	if total.IsZero() {
		return 1
	}
	return total.AsApproximateFloat64()
}

// terminationGrace is a pod's termination grace period: after it the
// kubelet has killed the pod, drained or not. Kubernetes' default is 30 s.
func terminationGrace(seconds *int64) time.Duration {
	if seconds == nil {
		return 30 * time.Second
	}
	return time.Duration(*seconds) * time.Second
}
