package app

import (
	"context"
	"flag"
	"fmt"
	"io"
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
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: sluice render [--image IMAGE] [--namespace NS] JOB.yaml")
		return 2
	}
	return interruptible(ctx, stdout, stderr, func(stdout, stderr io.Writer) int {
		return render(fl.Arg(0), *image, *namespace, stdout, stderr)
	})
}

func render(path, image, namespace string, stdout, stderr io.Writer) int {
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
	spec := deploy.JobSpec{
		Job: cj.Job, Namespace: namespace, Image: image, Worker: cj.Worker,
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
	if err := deploy.Render(stdout, spec); err != nil {
		fmt.Fprintln(stderr, "sluice render:", err)
		return 1
	}
	return 0
}
