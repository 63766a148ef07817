package operator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/util/workqueue"

	"github.com/sluicehq/sluice/deploy"
	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
	"github.com/sluicehq/sluice/scaler"
)

// Inspection is what the operator needs to know of a valid job spec.
type Inspection struct {
	// Workers is the job file's worker settings (worker type, bounds,
	// metrics port, drain deadline, env and secret files); the operator sets
	// the name, namespace, image, job file and files.
	Workers deploy.JobSpec
	// Scale names the job's input for the autoscaler (Topics, TopicRegex).
	Scale scaler.JobConfig
	// Admin reads the job's offsets; nil disables autoscaling of the job.
	Admin *kadm.Client
	// Checkpoints opens the job's checkpoint store, for deleting its
	// checkpoints when the job is deleted with checkpoints: Delete; close
	// releases it. Nil when the job has none.
	Checkpoints func(ctx context.Context) (store CheckpointStore, close func(), err error)
}

// CheckpointStore is what the operator needs of a checkpoint store
// (checkpoint.Store has it): listing keys by prefix and deleting one. It is
// used from one goroutine at a time.
type CheckpointStore interface {
	List(ctx context.Context, prefix string) ([]string, error)
	Delete(ctx context.Context, key string) error
}

// Inspector validates a spec as `sluice validate` validates a job file and
// returns what the operator needs of it. An invalid spec's error lists every
// problem as FILE:LINE:COL. It is called from several goroutines at once,
// once per distinct spec.
type Inspector func(ctx context.Context, name string, spec v1alpha1.Spec) (Inspection, error)

// Config configures an Operator. Zero fields take the defaults named.
type Config struct {
	// Namespace to watch; "" watches every namespace.
	Namespace string
	// Image is the workers' image when a spec names none.
	Image string
	// LeaseName and LeaseNamespace locate the Lease the operators elect a
	// leader with. Defaults "sluice-operator" and "default".
	LeaseName, LeaseNamespace string
	// Identity names this operator in the Lease. Default $POD_NAME, else
	// the host name.
	Identity string
	// Workers is the number of reconciling goroutines. Default 16: a
	// reconciliation mostly waits on the API server.
	Workers int
	// Interval between autoscaling evaluations. Default 15s.
	Interval time.Duration
	// Window is the smoothing span of the signals. Default 1m.
	Window time.Duration
	// Policy holds the autoscaler's thresholds; each job's bounds replace
	// MinWorkers, MaxWorkers and ScaleToZero.
	Policy scaler.Policy
	// ReportInterval is the least time between two status writes of a
	// job that only refresh what the autoscaler observed (backlog,
	// latency, last checkpoint): under traffic these change at every
	// evaluation, and a write per job per Interval would grow the API
	// server's load with the fleet. A change of phase, workers or
	// conditions is written at once. Default 30s.
	ReportInterval time.Duration
	// CrashLoopRestarts is the restart count at which a worker of a new spec
	// counts as crash-looping. Default 3.
	CrashLoopRestarts int32
	// Leader election timings. Defaults 15s, 10s, 2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

func (c Config) withDefaults() Config {
	if c.LeaseName == "" {
		c.LeaseName = "sluice-operator"
	}
	if c.LeaseNamespace == "" {
		c.LeaseNamespace = deploy.DefaultNamespace
	}
	if c.Identity == "" {
		c.Identity = os.Getenv("POD_NAME")
	}
	if c.Identity == "" {
		c.Identity, _ = os.Hostname()
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.CrashLoopRestarts <= 0 {
		c.CrashLoopRestarts = 3
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Interval, 15*time.Second)
	def(&c.Window, time.Minute)
	def(&c.ReportInterval, 30*time.Second)
	def(&c.LeaseDuration, 15*time.Second)
	def(&c.RenewDeadline, 10*time.Second)
	def(&c.RetryPeriod, 2*time.Second)
	return c
}

// Labels and annotations the operator puts on what it owns.
const (
	managedBy = "sluice-operator"
	// AnnotationSpecHash on a StatefulSet and its pods names the spec they
	// run.
	AnnotationSpecHash = "sluice.dev/spec-hash"
	// annotationDesired on a StatefulSet remembers the workers to return
	// to after a drain for an update.
	annotationDesired = "sluice.dev/desired-workers"
	// Finalizer makes deletion wait for the workers' drain.
	Finalizer = v1alpha1.Finalizer
)

// Operator reconciles SluiceJobs while it holds the lease. Its state is
// guarded by mu; informer caches are safe for concurrent reads.
type Operator struct {
	cfg     Config
	kube    kubernetes.Interface
	dyn     dynamic.Interface
	inspect Inspector
	log     *slog.Logger
	http    *http.Client

	jobInformer cache.SharedIndexInformer
	dynFactory  dynamicinformer.DynamicSharedInformerFactory
	kubeFactory informers.SharedInformerFactory
	sets        appslisters.StatefulSetLister
	pods        corelisters.PodLister
	configMaps  corelisters.ConfigMapLister
	services    corelisters.ServiceLister
	pdbs        policylisters.PodDisruptionBudgetLister
	queue       workqueue.TypedRateLimitingInterface[string]

	mu          sync.Mutex // guards inspections, scale, written, created, departing
	inspections map[string]inspected
	scale       map[string]*scaleState
	// written remembers, per job, the resource versions its own writes
	// made obsolete: a reconciliation that sees one of them in the cache
	// reads a job older than its own last write and would redo (and
	// conflict on) what that write did, so it waits for the cache instead.
	written map[string]writes
	// created remembers when each job's objects were created, so that a
	// reconciliation that runs before the StatefulSet reaches the cache
	// does not create them all again.
	created map[string]time.Time
	// departing holds, per job, the static members (pod names) a
	// scale-down removed, to be removed from the consumer group once
	// their pods are gone.
	departing map[string]map[string]time.Time

	leading atomic.Bool // holds the lease: the jobs page says so
}

// writes are one job's resource versions made obsolete by the operator's
// own writes, and the version the last one returned.
type writes struct {
	latest string
	old    map[string]bool
}

// inspected caches the inspection of one spec, by its hash.
type inspected struct {
	ins Inspection
	err error
}

// scaleState is the autoscaler's memory of one job.
type scaleState struct {
	window  *scaler.Window
	history scaler.History
	// desired is the policy's last decision; 0 with set false means none.
	desired int
	set     bool
	// checkpoint is the newest checkpoint known (autoscaler only).
	checkpoint *v1alpha1.Checkpoint
	// observed is what the status shows of the last signals; reported
	// when it was last handed to the reconciler.
	observed observation
	reported time.Time
}

// observation is what the autoscaler read of a job for its status.
type observation struct {
	backlog, backlogSeconds int64
	latencySeconds          int64
	checkpoint              *v1alpha1.Checkpoint
}

// New returns an operator over the API server cfg points at.
func New(cfg Config, rc *rest.Config, inspect Inspector, log *slog.Logger) (*Operator, error) {
	cfg = cfg.withDefaults()
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("operator: kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("operator: dynamic client: %w", err)
	}
	o := &Operator{
		cfg: cfg, kube: kube, dyn: dyn, inspect: inspect, log: log.With("identity", cfg.Identity),
		http:        &http.Client{Timeout: 5 * time.Second},
		queue:       workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		inspections: map[string]inspected{},
		scale:       map[string]*scaleState{},
		written:     map[string]writes{},
		created:     map[string]time.Time{},
		departing:   map[string]map[string]time.Time{},
	}
	o.dynFactory = dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, cfg.Namespace, nil)
	o.jobInformer = o.dynFactory.ForResource(v1alpha1.GroupVersionResource).Informer()
	owned := func(lo *metav1.ListOptions) { lo.LabelSelector = "app.kubernetes.io/managed-by=" + managedBy }
	o.kubeFactory = informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(cfg.Namespace), informers.WithTweakListOptions(owned))
	setInformer := o.kubeFactory.Apps().V1().StatefulSets()
	podInformer := o.kubeFactory.Core().V1().Pods()
	cmInformer := o.kubeFactory.Core().V1().ConfigMaps()
	svcInformer := o.kubeFactory.Core().V1().Services()
	pdbInformer := o.kubeFactory.Policy().V1().PodDisruptionBudgets()
	o.sets, o.pods = setInformer.Lister(), podInformer.Lister()
	o.configMaps, o.services, o.pdbs = cmInformer.Lister(), svcInformer.Lister(), pdbInformer.Lister()

	// The caches keep no managed fields: for a thousand jobs and their
	// objects they are a good part of the operator's memory, and it never
	// reads them.
	for name, inf := range map[string]cache.SharedIndexInformer{
		"sluicejob": o.jobInformer, "statefulset": setInformer.Informer(), "pod": podInformer.Informer(),
		"configmap": cmInformer.Informer(), "service": svcInformer.Informer(), "poddisruptionbudget": pdbInformer.Informer(),
	} {
		if err := inf.SetTransform(dropManagedFields); err != nil {
			return nil, fmt.Errorf("operator: %s informer: %w", name, err)
		}
	}
	enqueueJob := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			o.queue.Add(key)
		}
	}
	enqueueOwner := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if m, err := metaOf(obj); err == nil {
			if job := m.GetLabels()["app.kubernetes.io/instance"]; job != "" {
				o.queue.Add(m.GetNamespace() + "/" + job)
			}
		}
	}
	handlers := func(f func(any)) cache.ResourceEventHandlerFuncs {
		return cache.ResourceEventHandlerFuncs{AddFunc: f, UpdateFunc: func(_, n any) { f(n) }, DeleteFunc: f}
	}
	if _, err := o.jobInformer.AddEventHandler(handlers(enqueueJob)); err != nil {
		return nil, fmt.Errorf("operator: job informer: %w", err)
	}
	if _, err := setInformer.Informer().AddEventHandler(handlers(enqueueOwner)); err != nil {
		return nil, fmt.Errorf("operator: statefulset informer: %w", err)
	}
	// The owned objects are watched so that an edit or a deletion by
	// anyone else is repaired; the pods so that a job follows its workers.
	for name, inf := range map[string]cache.SharedIndexInformer{
		"pod": podInformer.Informer(), "configmap": cmInformer.Informer(),
		"service": svcInformer.Informer(), "poddisruptionbudget": pdbInformer.Informer(),
	} {
		if _, err := inf.AddEventHandler(handlers(enqueueOwner)); err != nil {
			return nil, fmt.Errorf("operator: %s informer: %w", name, err)
		}
	}
	return o, nil
}

func dropManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

func metaOf(obj any) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("operator: %T has no object meta", obj)
	}
	return m, nil
}

// Run fills the caches, campaigns for the lease and reconciles while it
// leads. It returns when ctx ends, releasing the lease.
func (o *Operator) Run(ctx context.Context) error {
	defer o.queue.ShutDown()
	o.dynFactory.Start(ctx.Done())
	o.kubeFactory.Start(ctx.Done())
	defer o.dynFactory.Shutdown()
	defer o.kubeFactory.Shutdown()
	for gvr, ok := range o.dynFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("operator: cache of %s did not sync", gvr)
		}
	}
	for typ, ok := range o.kubeFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("operator: cache of %s did not sync", typ)
		}
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: o.cfg.LeaseName, Namespace: o.cfg.LeaseNamespace},
		Client:     o.kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: o.cfg.Identity},
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, Name: o.cfg.LeaseName, ReleaseOnCancel: true,
		LeaseDuration: o.cfg.LeaseDuration, RenewDeadline: o.cfg.RenewDeadline, RetryPeriod: o.cfg.RetryPeriod,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				o.log.Info("leading")
				o.leading.Store(true)
				defer o.leading.Store(false)
				o.lead(ctx)
			},
			OnStoppedLeading: func() { o.log.Info("stopped leading") },
		},
	})
	if err != nil {
		return fmt.Errorf("operator: leader election: %w", err)
	}
	for ctx.Err() == nil {
		le.Run(ctx)
	}
	return nil
}

// lead reconciles with cfg.Workers goroutines and autoscales until ctx ends
// (leadership lost or shutdown), and waits for them.
func (o *Operator) lead(ctx context.Context) {
	var wg sync.WaitGroup
	// Everything known is reconciled once on taking the lead: the previous
	// leader may have stopped half-way.
	for _, obj := range o.jobInformer.GetStore().List() {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			o.queue.Add(key)
		}
	}
	for range o.cfg.Workers {
		wg.Go(func() {
			for o.next(ctx) {
			}
		})
	}
	wg.Go(func() { o.autoscale(ctx) })
	<-ctx.Done()
	o.queue.ShutDownWithDrain()
	wg.Wait()
}

// next reconciles one key from the queue; false once the queue shuts down.
func (o *Operator) next(ctx context.Context) bool {
	key, quit := o.queue.Get()
	if quit {
		return false
	}
	defer o.queue.Done(key)
	if ctx.Err() != nil {
		return false
	}
	requeue, err := o.reconcile(ctx, key)
	switch {
	case err != nil:
		o.log.Warn("reconcile failed", "job", key, "err", err)
		o.queue.AddRateLimited(key)
	case requeue > 0:
		o.queue.Forget(key)
		o.queue.AddAfter(key, requeue)
	default:
		o.queue.Forget(key)
	}
	return true
}

// job returns the cached SluiceJob of a key; nil when it is gone.
func (o *Operator) job(key string) (*v1alpha1.SluiceJob, error) {
	obj, exists, err := o.jobInformer.GetStore().GetByKey(key)
	if err != nil || !exists {
		return nil, err
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("operator: cached %s is a %T", key, obj)
	}
	return v1alpha1.FromUnstructured(u)
}

// SpecHash identifies what the workers of a spec run: a change of it is an
// update that drains the workers first. Suspend and scaling bounds are not
// part of it: they change the replicas, not the workers.
func SpecHash(s v1alpha1.Spec, image string) string {
	b, _ := json.Marshal(struct {
		Job    string            `json:"job"`
		Files  map[string]string `json:"files"`
		Image  string            `json:"image"`
		Worker string            `json:"worker"`
	}{s.Job, s.Files, image, s.Worker})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// inspection validates a spec once per distinct content.
func (o *Operator) inspection(ctx context.Context, name string, s v1alpha1.Spec) (Inspection, error) {
	h := name + "/" + SpecHash(s, "")
	o.mu.Lock()
	c, ok := o.inspections[h]
	o.mu.Unlock()
	if ok {
		return c.ins, c.err
	}
	ins, err := o.inspect(ctx, name, s)
	if ctx.Err() != nil {
		return ins, err // not cached: the answer may be the cancellation's
	}
	o.mu.Lock()
	o.inspections[h] = inspected{ins, err}
	o.mu.Unlock()
	return ins, err
}
