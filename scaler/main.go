package scaler

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
	"gopkg.in/yaml.v3"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/source/kafka"
)

type repeated []string

func (r *repeated) String() string { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error {
	*r = append(*r, v)
	return nil
}

// fileConfig is the --config file: the jobs to watch, with per-job
// thresholds. Decoded strictly: an unknown key is an error.
type fileConfig struct {
	Namespace string   `yaml:"namespace"`
	Brokers   []string `yaml:"brokers"`
	// Kafka is the jobs' cluster with the keys of a job file's `kafka:`
	// block (brokers, tls, sasl): copy the block from the job file. It
	// replaces Brokers; --brokers replaces its brokers. Secrets come from
	// password_file / token_file (${NAME} is not expanded here).
	Kafka *config.Kafka `yaml:"kafka"`
	Jobs  []struct {
		Name        string            `yaml:"name"`
		Topics      []string          `yaml:"topics"`
		TopicRegex  string            `yaml:"topic_regex"`
		MetricsURLs map[string]string `yaml:"metrics_urls"`
		Selector    string            `yaml:"selector"`
		MetricsPort int               `yaml:"metrics_port"`
		MinWorkers  int               `yaml:"min_workers"`
		MaxWorkers  int               `yaml:"max_workers"`
		ScaleToZero bool              `yaml:"scale_to_zero"`
	} `yaml:"jobs"`
}

// Main is `sluice coordinator`: it parses args (without the program and
// command names), runs the coordinator until ctx is done, and returns the
// exit code: 0 after a clean stop, 1 on a failure, 2 on wrong usage.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice coordinator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		jobs, topics                           repeated
		kubeconfig, server, token, namespace   string
		brokers, leaseName, identity, cfgFile  string
		topicRegex, listen, promURL, selector  string
		insecure, scaleToZero, jsonLog         bool
		interval, window                       time.Duration
		minWorkers, maxWorkers, metricsPort    int
		leaseDuration, renewDeadline, retryDur time.Duration
	)
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file; default: in-cluster config, else $KUBECONFIG")
	fs.StringVar(&server, "server", "", "API server URL (with --token), instead of a kubeconfig")
	fs.StringVar(&token, "token", "", "bearer token for --server")
	fs.BoolVar(&insecure, "insecure", false, "skip TLS verification of --server (tests only)")
	fs.StringVar(&namespace, "namespace", "", "namespace of the jobs' StatefulSets and of the lease (default: $POD_NAMESPACE, else default)")
	fs.StringVar(&brokers, "brokers", "", "Kafka seed brokers, comma-separated")
	fs.Var(&jobs, "job", "job to watch (StatefulSet name = consumer group); repeat for more")
	fs.StringVar(&cfgFile, "config", "", "YAML file listing the jobs to watch (namespace, brokers or kafka: {brokers, tls, sasl} as in a job file, jobs[])")
	fs.Var(&topics, "topic", "the jobs' topic; repeat for more (default: the topics the group committed)")
	fs.StringVar(&topicRegex, "topic-regex", "", "the jobs' topics as a regular expression")
	fs.StringVar(&selector, "selector", "", "label selector of a job's pods (default: the labels `sluice render` sets)")
	fs.IntVar(&metricsPort, "metrics-port", 9090, "the workers' metrics port")
	fs.StringVar(&promURL, "prometheus-url", "", "read CPU from this Prometheus server instead of scraping pods")
	fs.IntVar(&minWorkers, "min-workers", 0, "lower bound of workers (default 1)")
	fs.IntVar(&maxWorkers, "max-workers", 0, "upper bound of workers (default 50)")
	fs.BoolVar(&scaleToZero, "scale-to-zero", false, "scale idle jobs to zero workers")
	fs.StringVar(&leaseName, "lease-name", "sluice-coordinator", "Lease used for leader election")
	fs.StringVar(&identity, "identity", "", "this coordinator's identity (default $POD_NAME, else host name)")
	fs.DurationVar(&interval, "interval", 15*time.Second, "time between evaluations")
	fs.DurationVar(&window, "window", time.Minute, "smoothing window of the signals")
	fs.DurationVar(&leaseDuration, "lease-duration", 15*time.Second, "leader lease duration")
	fs.DurationVar(&renewDeadline, "renew-deadline", 10*time.Second, "leader renew deadline")
	fs.DurationVar(&retryDur, "retry-period", 2*time.Second, "leader election retry period")
	fs.StringVar(&listen, "listen", ":9091", "address serving /metrics, /healthz and /readyz; empty for none")
	fs.BoolVar(&jsonLog, "log-json", false, "log JSON instead of text")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice coordinator: unexpected arguments %q\n", fs.Args())
		return 2
	}
	var handler slog.Handler = slog.NewTextHandler(stderr, nil)
	if jsonLog {
		handler = slog.NewJSONHandler(stderr, nil)
	}
	log := slog.New(handler)

	cfg := Config{
		Namespace: namespace, LeaseName: leaseName, Identity: identity, Interval: interval, Window: window,
		PrometheusURL: promURL, LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryDur,
	}
	seeds := splitList(brokers)
	policy := Policy{MinWorkers: minWorkers, MaxWorkers: maxWorkers, ScaleToZero: scaleToZero}
	for _, j := range jobs {
		cfg.Jobs = append(cfg.Jobs, JobConfig{Name: j, Topics: topics, TopicRegex: topicRegex, PodSelector: selector, MetricsPort: metricsPort, Policy: policy})
	}
	var fc fileConfig
	if cfgFile != "" {
		var err error
		fc, err = readFileConfig(cfgFile)
		if err != nil {
			fmt.Fprintf(stderr, "sluice coordinator: %v\n", err)
			return 2
		}
		if cfg.Namespace == "" {
			cfg.Namespace = fc.Namespace
		}
		for _, j := range fc.Jobs {
			port := j.MetricsPort
			if port == 0 {
				port = metricsPort
			}
			cfg.Jobs = append(cfg.Jobs, JobConfig{
				Name: j.Name, Topics: j.Topics, TopicRegex: j.TopicRegex, MetricsURLs: j.MetricsURLs,
				PodSelector: j.Selector, MetricsPort: port,
				Policy: Policy{MinWorkers: j.MinWorkers, MaxWorkers: j.MaxWorkers, ScaleToZero: j.ScaleToZero},
			})
		}
	}
	if cfg.Namespace == "" {
		cfg.Namespace = os.Getenv("POD_NAMESPACE")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	kafkaCfg := fc.cluster(seeds)
	if len(kafkaCfg.Brokers) == 0 {
		fmt.Fprintln(stderr, "sluice coordinator: --brokers (or kafka.brokers in --config) is required")
		return 2
	}
	if len(cfg.Jobs) == 0 {
		fmt.Fprintln(stderr, "sluice coordinator: name at least one --job (or jobs in --config)")
		return 2
	}

	restCfg, err := restConfig(kubeconfig, server, token, insecure)
	if err != nil {
		fmt.Fprintf(stderr, "sluice coordinator: %v\n", err)
		return 2
	}
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		fmt.Fprintf(stderr, "sluice coordinator: kubernetes client: %v\n", err)
		return 1
	}
	kc, err := kafkaClient(kafkaCfg)
	if err != nil {
		fmt.Fprintf(stderr, "sluice coordinator: %v\n", err)
		return 1
	}
	defer kc.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	coord, err := NewCoordinator(cfg, kube, kadm.NewClient(kc), log, NewMetrics(reg))
	if err != nil {
		fmt.Fprintf(stderr, "sluice coordinator: %v\n", err)
		return 2
	}

	g, gctx := errgroup.WithContext(ctx)
	if listen != "" {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			fmt.Fprintf(stderr, "sluice coordinator: listen %s: %v\n", listen, err)
			return 1
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		ok := func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }
		mux.HandleFunc("/healthz", ok)
		mux.HandleFunc("/readyz", ok)
		mux.Handle("/{$}", coord.StatusHandler())
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve metrics: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	g.Go(func() error { return coord.Run(gctx) })
	if err := g.Wait(); err != nil {
		log.Error("coordinator failed", "err", err)
		return 1
	}
	fmt.Fprintln(stdout, "sluice coordinator: stopped")
	return 0
}

// cluster is the jobs' Kafka cluster: the config file's kafka block (or its
// brokers), with seeds from --brokers replacing its brokers.
func (fc *fileConfig) cluster(seeds []string) *config.Kafka {
	k := config.Kafka{Brokers: fc.Brokers}
	if fc.Kafka != nil {
		k = *fc.Kafka
	}
	if len(seeds) > 0 {
		k.Brokers = seeds
	}
	return &k
}

// kafkaClient is the coordinator's Kafka client, built as the workers build
// theirs (TLS, SASL) by the Kafka source's ClientOpts.
func kafkaClient(k *config.Kafka) (*kgo.Client, error) {
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

func readFileConfig(path string) (fileConfig, error) {
	var fc fileConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return fc, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil {
		return fc, fmt.Errorf("%s: %w", path, err)
	}
	return fc, nil
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
