package app

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/deploy"
	"github.com/sluicehq/sluice/engine/config"
)

// cmdRender prints the Kubernetes manifests of a job: its StatefulSet,
// headless Service, ConfigMap with the job file, PodDisruptionBudget, and the
// coordinator with the RBAC it needs. Secrets stay in Secrets the user
// creates (see deploy's documentation); a signal interrupts it.
func cmdRender(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("render", flag.ContinueOnError)
	fl.SetOutput(stderr)
	image := fl.String("image", "ghcr.io/sluicehq/sluice:latest", "the sluice image")
	namespace := fl.String("namespace", "default", "namespace of every object")
	monitoring := fl.String("monitoring", "", "also write the job's alert rules and dashboards into this directory, and add its PrometheusRule to the manifests")
	op := fl.Bool("operator", false, "render the SluiceJob CRD and the operator (Deployment, least-privilege RBAC) instead of a job")
	if code, ok := parseFlags(fl, args); !ok {
		return code
	}
	if *op && fl.NArg() == 0 {
		ns := "" // the operator's own default, unless --namespace is given
		fl.Visit(func(f *flag.Flag) {
			if f.Name == "namespace" {
				ns = *namespace
			}
		})
		if err := deploy.RenderOperator(stdout, deploy.OperatorSpec{Namespace: ns, Image: *image}); err != nil {
			fmt.Fprintln(stderr, "sluice render:", err)
			return 1
		}
		return 0
	}
	if fl.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: sluice render [--image IMAGE] [--namespace NS] [--monitoring DIR] JOB.yaml\n       sluice render --operator [--image IMAGE] [--namespace NS]")
		return 2
	}
	return interruptible(ctx, stdout, stderr, func(stdout, stderr io.Writer) int {
		return render(fl.Arg(0), *image, *namespace, *monitoring, stdout, stderr)
	})
}

func render(path, image, namespace, monitoring string, stdout, stderr io.Writer) int {
	raw, err := config.ReadFile(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// Secrets stay ${NAME} in the rendered ConfigMap: substitute nothing (no
	// value from this machine's environment reaches the output), but check
	// the file with a placeholder for every variable.
	cj, err := config.Parse(path, raw, func(string) (string, bool) { return "x", true })
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	spec := workerSpec(cj, raw)
	spec.Namespace, spec.Image = namespace, image
	// The schema files ride in the ConfigMap beside the job file, as the
	// operator ships them.
	if spec.Files, err = jobFiles(path, cj); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := deploy.Render(stdout, spec); err != nil {
		fmt.Fprintln(stderr, "sluice render:", err)
		return 1
	}
	if monitoring != "" {
		if err := renderMonitoring(monitoring, cj, namespace, stdout); err != nil {
			fmt.Fprintln(stderr, "sluice render:", err)
			return 1
		}
	}
	return 0
}

// workerSpec is what a job file says about its Kubernetes objects: `sluice
// render` and the operator fill deploy.JobSpec from it alike. The name,
// namespace and image are the caller's.
func workerSpec(cj *config.Job, raw []byte) deploy.JobSpec {
	spec := deploy.JobSpec{
		Job: cj.Job, Worker: cj.Worker,
		MinWorkers: cj.Scaling.MinWorkers, MaxWorkers: cj.Scaling.MaxWorkers,
		DrainDeadline: cj.Drain.Deadline, JobYAML: raw,
		NoMetrics: cj.Metrics.Listen == "off",
	}
	for _, v := range cj.Vars {
		spec.Env = append(spec.Env, v.Name)
	}
	for _, f := range cj.SecretFiles {
		// A path made of ${NAME} is not known here: its file is the
		// user's to mount.
		if !f.Templated {
			spec.SecretFiles = append(spec.SecretFiles, f.Path)
		}
	}
	if cj.Kafka != nil {
		spec.Brokers = cj.Kafka.Brokers
	}
	if wi := cj.WorkloadIdentity; wi != nil {
		spec.WorkloadIdentity = deploy.WorkloadIdentity{GCPServiceAccount: wi.GCPServiceAccount, AWSRoleARN: wi.AWSRoleARN, AzureClientID: wi.AzureClientID}
	}
	if _, port, ok := strings.Cut(cj.Metrics.Listen, ":"); ok && !spec.NoMetrics {
		if p, err := strconv.Atoi(port); err == nil {
			spec.MetricsPort = p
		}
	}
	return spec
}

// renderMonitoring writes the job's alert rules (a Prometheus rules file and
// a PrometheusRule) and its dashboard and the fleet dashboard (Grafana JSON)
// into dir, and appends the PrometheusRule to the manifests on stdout.
func renderMonitoring(dir string, cj *config.Job, namespace string, stdout io.Writer) error {
	ms := deploy.MonitoringSpec{
		Job: cj.Job, Namespace: namespace,
		SLALatency: cj.SLA.Latency, SLAFor: cj.SLA.For, DeadLetters: cj.SLA.DeadLetters,
		CheckpointInterval: cj.Checkpoint.Interval,
	}
	rules, err := deploy.RulesFile(ms)
	if err != nil {
		return err
	}
	pr, err := deploy.PrometheusRule(ms)
	if err != nil {
		return err
	}
	job, err := deploy.JobDashboard(cj.Job)
	if err != nil {
		return err
	}
	fleet, err := deploy.FleetDashboard()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, b := range map[string][]byte{
		cj.Job + ".rules.yml":           rules,
		cj.Job + ".prometheusrule.yaml": pr,
		cj.Job + ".dashboard.json":      job,
		"fleet.dashboard.json":          fleet,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(stdout, "---\n%s", pr)
	return err
}
