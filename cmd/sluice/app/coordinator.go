package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/scaler"
	"github.com/sluicehq/sluice/source/kafka"
)

// coordinatorFlags are the command line of `sluice coordinator`.
type coordinatorFlags struct {
	jobs, topics                           repeated
	kubeconfig, server, token, namespace   string
	brokers, leaseName, identity, cfgFile  string
	topicRegex, listen, promURL, selector  string
	insecure, scaleToZero, jsonLog         bool
	interval, window                       time.Duration
	minWorkers, maxWorkers, metricsPort    int
	leaseDuration, renewDeadline, retryDur time.Duration
}

func (f *coordinatorFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; default: in-cluster config, else $KUBECONFIG")
	fs.StringVar(&f.server, "server", "", "API server URL (with --token), instead of a kubeconfig")
	fs.StringVar(&f.token, "token", "", "bearer token for --server")
	fs.BoolVar(&f.insecure, "insecure", false, "skip TLS verification of --server (tests only)")
	fs.StringVar(&f.namespace, "namespace", "", "namespace of the jobs' StatefulSets and of the lease (default: $POD_NAMESPACE, else default)")
	fs.StringVar(&f.brokers, "brokers", "", "Kafka seed brokers, comma-separated")
	fs.Var(&f.jobs, "job", "job to watch (StatefulSet name = consumer group); repeat for more")
	fs.StringVar(&f.cfgFile, "config", "", "YAML file listing the jobs to watch (namespace, brokers or kafka: {brokers, tls, sasl} as in a job file, jobs[])")
	fs.Var(&f.topics, "topic", "the jobs' topic; repeat for more (default: the topics the group committed)")
	fs.StringVar(&f.topicRegex, "topic-regex", "", "the jobs' topics as a regular expression")
	fs.StringVar(&f.selector, "selector", "", "label selector of a job's pods (default: the labels `sluice render` sets)")
	fs.IntVar(&f.metricsPort, "metrics-port", 9090, "the workers' metrics port")
	fs.StringVar(&f.promURL, "prometheus-url", "", "read CPU from this Prometheus server instead of scraping pods")
	fs.IntVar(&f.minWorkers, "min-workers", 0, "lower bound of workers (default 1)")
	fs.IntVar(&f.maxWorkers, "max-workers", 0, "upper bound of workers (default 50)")
	fs.BoolVar(&f.scaleToZero, "scale-to-zero", false, "scale idle jobs to zero workers")
	fs.StringVar(&f.leaseName, "lease-name", "sluice-coordinator", "Lease used for leader election")
	fs.StringVar(&f.identity, "identity", "", "this coordinator's identity (default $POD_NAME, else host name)")
	fs.DurationVar(&f.interval, "interval", 15*time.Second, "time between evaluations")
	fs.DurationVar(&f.window, "window", time.Minute, "smoothing window of the signals")
	fs.DurationVar(&f.leaseDuration, "lease-duration", 15*time.Second, "leader lease duration")
	fs.DurationVar(&f.renewDeadline, "renew-deadline", 10*time.Second, "leader renew deadline")
	fs.DurationVar(&f.retryDur, "retry-period", 2*time.Second, "leader election retry period")
	fs.StringVar(&f.listen, "listen", ":9091", "address serving /metrics, /healthz and /readyz; empty for none")
	fs.BoolVar(&f.jsonLog, "log-json", false, "log JSON instead of text")
}

type repeated []string

func (r *repeated) String() string { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error {
	*r = append(*r, v)
	return nil
}

// cmdCoordinator is `sluice coordinator`: it runs the scaler's Coordinator
// until ctx is done and returns the exit code: 0 after a clean stop, 1 on a
// failure, 2 on wrong usage (a bad flag or config file among them).
func cmdCoordinator(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice coordinator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f coordinatorFlags
	f.register(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice coordinator: unexpected arguments %q\n", fs.Args())
		return 2
	}
	var handler slog.Handler = slog.NewTextHandler(stderr, nil)
	if f.jsonLog {
		handler = slog.NewJSONHandler(stderr, nil)
	}
	log := slog.New(handler)

	cfg, kafkaCfg, err := f.config()
	if err != nil {
		fmt.Fprintf(stderr, "sluice coordinator: %v\n", err)
		return 2
	}
	restCfg, err := restConfig(f.kubeconfig, f.server, f.token, f.insecure)
	if err != nil {
		fmt.Fprintf(stderr, "sluice coordinator: %v\n", err)
		return 2
	}
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		fmt.Fprintf(stderr, "sluice coordinator: kubernetes client: %v\n", err)
		return 1
	}
	kc, err := coordinatorKafkaClient(kafkaCfg)
	if err != nil {
		fmt.Fprintf(stderr, "sluice coordinator: %v\n", err)
		return 1
	}
	defer kc.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	coord, err := scaler.NewCoordinator(cfg, kube, kadm.NewClient(kc), log, scaler.NewMetrics(reg))
	if err != nil {
		fmt.Fprintf(stderr, "sluice coordinator: %v\n", err)
		return 2
	}

	// The first signal ends ctx (main's), which releases the lease; a
	// second one returns without waiting for that.
	aborted := make(chan struct{})
	var abortOnce sync.Once
	svc := service{registry: reg, status: coord.StatusHandler(), abort: func() { abortOnce.Do(func() { close(aborted) }) }}
	stopHTTP, err := svc.serve(endpoints{public: f.listen})
	if err != nil {
		fmt.Fprintf(stderr, "sluice coordinator: listen %s: %v\n", f.listen, errors.Unwrap(err))
		return 1
	}
	defer stopHTTP()
	defer svc.handleSignals(log)()
	done := make(chan error, 1)
	go func() { done <- coord.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			log.Error("coordinator failed", "err", err)
			return 1
		}
	case <-aborted:
		return 1
	}
	fmt.Fprintln(stdout, "sluice coordinator: stopped")
	return 0
}

// config is the coordinator's configuration from its flags and --config
// file, and the jobs' Kafka cluster. An error in the file is reported at its
// FILE:LINE:COL.
func (f *coordinatorFlags) config() (scaler.Config, *config.Kafka, error) {
	cfg := scaler.Config{
		Namespace: f.namespace, LeaseName: f.leaseName, Identity: f.identity, Interval: f.interval, Window: f.window,
		PrometheusURL: f.promURL, LeaseDuration: f.leaseDuration, RenewDeadline: f.renewDeadline, RetryPeriod: f.retryDur,
	}
	seeds := splitList(f.brokers)
	policy := scaler.Policy{MinWorkers: f.minWorkers, MaxWorkers: f.maxWorkers, ScaleToZero: f.scaleToZero}
	for _, j := range f.jobs {
		cfg.Jobs = append(cfg.Jobs, scaler.JobConfig{Name: j, Topics: f.topics, TopicRegex: f.topicRegex, PodSelector: f.selector, MetricsPort: f.metricsPort, Policy: policy})
	}
	var file coordinatorFile
	if f.cfgFile != "" {
		var err error
		if file, err = loadCoordinatorFile(f.cfgFile, len(seeds) > 0); err != nil {
			return cfg, nil, err
		}
		if cfg.Namespace == "" {
			cfg.Namespace = file.Namespace
		}
		for _, j := range file.Jobs {
			cfg.Jobs = append(cfg.Jobs, j.scaler(f.metricsPort))
		}
	}
	if cfg.Namespace == "" {
		cfg.Namespace = os.Getenv("POD_NAMESPACE")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	k := file.cluster(seeds)
	if len(k.Brokers) == 0 {
		return cfg, nil, errors.New("--brokers (or kafka.brokers in --config) is required")
	}
	if len(cfg.Jobs) == 0 {
		return cfg, nil, errors.New("name at least one --job (or jobs in --config)")
	}
	return cfg, k, nil
}

// coordinatorFile is the --config file: the jobs to watch, with per-job
// thresholds. It is decoded as strictly as a job file, and its errors carry
// FILE:LINE:COL.
type coordinatorFile struct {
	Namespace string   `yaml:"namespace"`
	Brokers   []string `yaml:"brokers"`
	// Kafka is the jobs' cluster with the keys of a job file's `kafka:`
	// block (brokers, tls, sasl): copy the block from the job file. It
	// replaces Brokers; --brokers replaces its brokers. Secrets come from
	// password_file / token_file (${NAME} is not expanded here).
	Kafka *config.Kafka    `yaml:"kafka"`
	Jobs  []coordinatorJob `yaml:"jobs"`
}

// coordinatorJob is one job of the --config file. Zero fields take the
// flags' values (metrics_port) or the policy's defaults.
type coordinatorJob struct {
	Pos         config.Pos
	Name        string            `yaml:"name" required:"true"`
	Tenant      string            `yaml:"tenant"`
	Application string            `yaml:"application"`
	Topics      []string          `yaml:"topics"`
	TopicRegex  string            `yaml:"topic_regex"`
	MetricsURLs map[string]string `yaml:"metrics_urls"`
	Selector    string            `yaml:"selector"`
	MetricsPort int               `yaml:"metrics_port"`
	MinWorkers  int               `yaml:"min_workers"`
	MaxWorkers  int               `yaml:"max_workers"`
	ScaleToZero bool              `yaml:"scale_to_zero"`
}

func (j coordinatorJob) scaler(defaultPort int) scaler.JobConfig {
	port := j.MetricsPort
	if port == 0 {
		port = defaultPort
	}
	return scaler.JobConfig{
		Name: j.Name, Tenant: j.Tenant, Application: j.Application, Topics: j.Topics, TopicRegex: j.TopicRegex, MetricsURLs: j.MetricsURLs,
		PodSelector: j.Selector, MetricsPort: port,
		Policy: scaler.Policy{MinWorkers: j.MinWorkers, MaxWorkers: j.MaxWorkers, ScaleToZero: j.ScaleToZero},
	}
}

// loadCoordinatorFile reads and checks a --config file. seeded says
// --brokers was given, so that a kafka block may leave out its brokers.
func loadCoordinatorFile(path string, seeded bool) (coordinatorFile, error) {
	var file coordinatorFile
	b, err := config.ReadFile(path)
	if err != nil {
		return file, err
	}
	var errs config.Errors
	if err := config.Unmarshal(path, b, &file); err != nil {
		var ok bool
		if errs, ok = config.AsErrors(err); !ok {
			return file, err
		}
	}
	if seeded && file.Kafka != nil {
		// --brokers replaces the block's brokers: their absence is no error.
		errs = slices.DeleteFunc(errs, func(e *config.Error) bool {
			at := file.Kafka.Pos
			return e.Line == at.Line && e.Col == at.Col && e.Msg == `missing required key "brokers"`
		})
	}
	if file.Kafka != nil {
		errs = append(errs, file.Kafka.Validate()...)
	}
	errs = append(errs, file.check()...)
	if len(errs) > 0 {
		return file, config.Merge(errs)
	}
	return file, nil
}

// check reports, at its position, what strict decoding cannot see: a job
// listed twice, bounds the policy rejects.
func (file *coordinatorFile) check() config.Errors {
	var errs config.Errors
	seen := map[string]bool{}
	for _, j := range file.Jobs {
		if j.Name != "" && seen[j.Name] {
			errs = append(errs, j.Pos.Key("name").Errorf("job %s is listed twice", j.Name))
		}
		seen[j.Name] = true
		if err := j.scaler(0).Policy.WithDefaults().Validate(); err != nil {
			errs = append(errs, j.Pos.Errorf("job %s: %v", j.Name, err))
		}
	}
	return errs
}

// cluster is the jobs' Kafka cluster: the config file's kafka block (or its
// brokers), with seeds from --brokers replacing its brokers.
func (file *coordinatorFile) cluster(seeds []string) *config.Kafka {
	k := config.Kafka{Brokers: file.Brokers}
	if file.Kafka != nil {
		k = *file.Kafka
	}
	if len(seeds) > 0 {
		k.Brokers = seeds
	}
	return &k
}

// coordinatorKafkaClient is the coordinator's Kafka client, built as the
// workers build theirs (TLS, SASL) by the Kafka source's ClientOpts.
func coordinatorKafkaClient(k *config.Kafka) (*kgo.Client, error) {
	opts, err := kafka.ClientOpts(k)
	if err != nil {
		return nil, err
	}
	kc, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return kc, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// restConfig builds the API server config from --server/--token, a
// kubeconfig, or the in-cluster service account, in that order.
func restConfig(kubeconfig, server, token string, insecure bool) (*rest.Config, error) {
	if server != "" {
		return &rest.Config{Host: server, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{Insecure: insecure}}, nil
	}
	if kubeconfig == "" && os.Getenv("KUBECONFIG") == "" {
		if c, err := rest.InClusterConfig(); err == nil {
			return c, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	c, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes config: %w", err)
	}
	return c, nil
}
