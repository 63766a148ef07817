package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"k8s.io/client-go/rest"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
	"github.com/sluicehq/sluice/deploy/operator"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/source/kafka"
)

// cmdOperator is `sluice operator`: it reconciles every SluiceJob it
// watches until a signal.
func cmdOperator(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("operator", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var (
		cfg  operator.Config
		kube kubeFlags
	)
	kube.register(fl)
	fl.StringVar(&cfg.Namespace, "namespace", "", "namespace whose SluiceJobs to reconcile (default: every namespace)")
	fl.StringVar(&cfg.Image, "image", "ghcr.io/sluicehq/sluice:latest", "the workers' image when a SluiceJob names none")
	fl.StringVar(&cfg.LeaseName, "lease-name", "sluice-operator", "Lease the operators elect a leader with")
	fl.StringVar(&cfg.LeaseNamespace, "lease-namespace", "", "namespace of the Lease (default: $POD_NAMESPACE, else default)")
	fl.StringVar(&cfg.Identity, "identity", "", "this operator's identity (default $POD_NAME, else the host name)")
	fl.IntVar(&cfg.Workers, "workers", 16, "jobs reconciled at once")
	fl.DurationVar(&cfg.Interval, "interval", 15*time.Second, "time between autoscaling evaluations")
	fl.DurationVar(&cfg.Window, "window", time.Minute, "smoothing window of the autoscaler's signals")
	fl.DurationVar(&cfg.ReportInterval, "report-interval", 30*time.Second, "least time between two status writes of a job that only refresh its backlog, latency and last checkpoint")
	fl.DurationVar(&cfg.Policy.UpBacklogTime, "up-backlog-time", 0, "scale up when backlog time exceeds this (default 120s)")
	fl.DurationVar(&cfg.Policy.DownBacklogTime, "down-backlog-time", 0, "scale down only under this backlog time (default 10s)")
	fl.DurationVar(&cfg.Policy.DownWindow, "down-window", 0, "scale-down stabilization window (default 5m)")
	fl.DurationVar(&cfg.Policy.Settle, "settle", 0, "time after a rescale before throughput is trusted (default 2m)")
	qps := fl.Float64("kube-qps", 200, "API requests per second the operator may make (client-go's limiter)")
	burst := fl.Int("kube-burst", 400, "burst above --kube-qps")
	listen := fl.String("listen", "", "address serving the jobs page at /, /metrics (sluice_job_info), /healthz and /readyz; empty for none")
	crash := fl.Int("crash-loop-restarts", 3, "restarts after which a new spec's worker counts as crash-looping and the spec is rolled back")
	if code, ok := parseFlags(fl, args); !ok {
		return code
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice operator: unexpected arguments %q\n", fl.Args())
		return 2
	}
	cfg.CrashLoopRestarts = int32(*crash)
	if cfg.LeaseNamespace == "" {
		cfg.LeaseNamespace = os.Getenv("POD_NAMESPACE")
	}
	log := newLogger(stderr, nil)
	rc, err := kube.rest()
	if err != nil {
		fmt.Fprintln(stderr, "sluice operator:", err)
		return 2
	}
	// client-go's default (5/s) would take minutes to create a thousand
	// jobs' objects.
	rc.QPS, rc.Burst = float32(*qps), *burst
	ins := newInspector()
	defer ins.close()
	op, err := operator.New(cfg, rc, ins.inspect, log)
	if err != nil {
		fmt.Fprintln(stderr, "sluice operator:", err)
		return 1
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}), op.InfoCollector())
	svc := service{registry: reg, status: op.StatusHandler()}
	stopHTTP, err := svc.serve(endpoints{public: *listen})
	if err != nil {
		fmt.Fprintf(stderr, "sluice operator: listen %s: %v\n", *listen, errors.Unwrap(err))
		return 1
	}
	defer stopHTTP()
	if err := op.Run(ctx); err != nil {
		log.Error("operator failed", "err", err)
		return 1
	}
	return 0
}

// kubeFlags locate the API server: --server and --token, a kubeconfig, or
// the in-cluster service account, in that order.
type kubeFlags struct {
	kubeconfig, server, token string
	insecure                  bool
}

func (k *kubeFlags) register(fl *flag.FlagSet) {
	fl.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file; default: in-cluster config, else $KUBECONFIG")
	fl.StringVar(&k.server, "server", "", "API server URL (with --token), instead of a kubeconfig")
	fl.StringVar(&k.token, "token", "", "bearer token for --server")
	fl.BoolVar(&k.insecure, "insecure", false, "skip TLS verification of --server (tests only)")
}

// rest is restConfig of the flags, allowed 50 requests/s (burst 100) unless
// the caller sets its own rate.
func (k *kubeFlags) rest() (*rest.Config, error) {
	c, err := restConfig(k.kubeconfig, k.server, k.token, k.insecure)
	if err != nil {
		return nil, err
	}
	c.QPS, c.Burst = 50, 100
	return c, nil
}

// inspector validates SluiceJob specs as `sluice validate` validates job
// files, and keeps one Kafka admin client per cluster for the autoscaler.
type inspector struct {
	mu     sync.Mutex // guards admins
	admins map[string]*kadm.Client
}

func newInspector() *inspector { return &inspector{admins: map[string]*kadm.Client{}} }

// jobFileName is the job file's name in the errors of an invalid spec: the
// key of spec.job, as the pod sees it beside its files.
const jobFileName = "job.yaml"

func (in *inspector) inspect(ctx context.Context, name string, spec v1alpha1.Spec) (operator.Inspection, error) {
	dir, err := os.MkdirTemp("", "sluice-inspect-")
	if err != nil {
		return operator.Inspection{}, fmt.Errorf("inspect %s: %w", name, err)
	}
	defer os.RemoveAll(dir)
	files := map[string]string{jobFileName: spec.Job}
	for p, c := range spec.Files {
		if p == "" || filepath.IsAbs(p) || slices.Contains(strings.Split(p, "/"), "..") {
			return operator.Inspection{}, fmt.Errorf("spec.files: %q must be a relative path below the job file", p)
		}
		files[p] = c
	}
	for p, c := range files {
		at := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(at), 0o755); err != nil {
			return operator.Inspection{}, fmt.Errorf("inspect %s: %w", name, err)
		}
		if err := os.WriteFile(at, []byte(c), 0o600); err != nil {
			return operator.Inspection{}, fmt.Errorf("inspect %s: %w", name, err)
		}
	}
	// As in render: ${NAME} is a Secret's key in the pod, not this process's
	// environment; a placeholder checks the rest of the file.
	path := filepath.Join(dir, jobFileName)
	cj, err := config.Load(path, func(string) (string, bool) { return "x", true })
	if cj != nil {
		_, berr := Build(ctx, cj, Options{DryRun: true})
		err = config.Merge(err, berr)
	}
	if err == nil && cj.Job != name {
		err = fmt.Errorf("%s:1:1: job %q must equal the SluiceJob's name %q", jobFileName, cj.Job, name)
	}
	if err != nil {
		// The positions name the job file as the pod sees it, not this
		// process's temporary copy.
		return operator.Inspection{}, errors.New(strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), ""))
	}
	ins := operator.Inspection{Workers: workerSpec(cj, []byte(spec.Job))}
	if url := cj.Checkpoint.Store; url != "" {
		ins.Checkpoints = func(ctx context.Context) (operator.CheckpointStore, func(), error) {
			c, err := checkpoint.Open(ctx, url)
			if err != nil {
				return nil, nil, err
			}
			return c.Store(), func() { c.Close() }, nil
		}
	}
	var regexes []string
	for _, p := range cj.Pipelines {
		if k := p.Source.Kafka; k != nil {
			ins.Scale.Topics = append(ins.Scale.Topics, k.Topics...)
			if k.TopicRegex != "" {
				regexes = append(regexes, "(?:"+k.TopicRegex+")")
			}
		}
	}
	if len(regexes) > 0 {
		// One expression for the scaler: the regexes and the named topics.
		for _, t := range ins.Scale.Topics {
			regexes = append(regexes, "^"+regexp.QuoteMeta(t)+"$")
		}
		ins.Scale.Topics, ins.Scale.TopicRegex = nil, strings.Join(regexes, "|")
	}
	slices.Sort(ins.Scale.Topics)
	ins.Scale.Topics = slices.Compact(ins.Scale.Topics)
	if cj.Kafka != nil && (len(ins.Scale.Topics) > 0 || ins.Scale.TopicRegex != "") {
		adm, err := in.admin(cj.Kafka)
		if err != nil {
			return operator.Inspection{}, err
		}
		ins.Admin = adm
	}
	return ins, nil
}

// admin returns the Kafka admin client of a cluster, one per distinct
// connection block.
func (in *inspector) admin(k *config.Kafka) (*kadm.Client, error) {
	key := fmt.Sprintf("%q %+v %+v", k.Brokers, k.TLS, k.SASL)
	in.mu.Lock()
	defer in.mu.Unlock()
	if a, ok := in.admins[key]; ok {
		return a, nil
	}
	opts, err := kafka.ClientOpts(k)
	if err != nil {
		return nil, err
	}
	kc, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	a := kadm.NewClient(kc)
	in.admins[key] = a
	return a, nil
}

func (in *inspector) close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, a := range in.admins {
		a.Close()
	}
}
