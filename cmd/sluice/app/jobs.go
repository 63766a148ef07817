package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
	"github.com/sluicehq/sluice/deploy/jobs"
	"github.com/sluicehq/sluice/engine/config"
)

const jobsUsage = `usage: sluice jobs COMMAND [flags] ...

  apply [-l k=v,...] [--image I] [--suspend] JOB.yaml   create or update a SluiceJob from a job file
                                                        (its schema files ride along)
  get NAME [-o yaml|json]                               one job: its status in brief, or the whole resource
  list [-l SELECTOR] [-A]                               jobs by label selector, e.g. -l sluice.dev/tenant=acme
  suspend NAME                                          drain and scale to zero, keeping progress
  resume NAME                                           run again from where it stopped
  delete NAME                                           drain, then remove
  history NAME                                          the job's phase transitions and rescales

Every command takes -n NAMESPACE and --kubeconfig (or --server/--token).
`

// cmdJobs is `sluice jobs`: the fleet from the command line, through the
// jobs client package.
func cmdJobs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, jobsUsage)
		return 2
	}
	sub := args[0]
	fl := flag.NewFlagSet("jobs "+sub, flag.ContinueOnError)
	fl.SetOutput(stderr)
	var kube kubeFlags
	kube.register(fl)
	ns := fl.String("n", "default", "namespace")
	all := fl.Bool("A", false, "list: every namespace")
	selector := fl.String("l", "", "list: label selector; apply: labels to set (k=v,...)")
	image := fl.String("image", "", "apply: the workers' image (default: the operator's)")
	suspend := fl.Bool("suspend", false, "apply: create or leave the job suspended")
	output := fl.String("o", "", "get: yaml or json for the whole resource (default: the status in brief)")
	if code, ok := parseFlags(fl, args[1:]); !ok {
		return code
	}
	needName := map[string]bool{"get": true, "suspend": true, "resume": true, "delete": true, "history": true, "apply": true}
	if needName[sub] && fl.NArg() != 1 || sub == "list" && fl.NArg() != 0 {
		fmt.Fprint(stderr, jobsUsage)
		return 2
	}
	rc, err := kube.rest()
	if err != nil {
		fmt.Fprintln(stderr, "sluice jobs:", err)
		return 2
	}
	watchNS := *ns
	if *all {
		watchNS = ""
	}
	c, err := jobs.New(rc, watchNS)
	if err != nil {
		fmt.Fprintln(stderr, "sluice jobs:", err)
		return 1
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "sluice jobs:", err)
		return 1
	}
	switch sub {
	case "apply":
		j, err := jobFromFile(fl.Arg(0), *ns, *selector)
		if err != nil {
			return fail(err)
		}
		j.Spec.Image, j.Spec.Suspend = *image, *suspend
		if err := c.Apply(ctx, j); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "sluicejob %s/%s applied\n", j.Namespace, j.Name)
		return 0
	case "suspend", "resume", "delete":
		f := map[string]func(context.Context, string, string) error{"suspend": c.Suspend, "resume": c.Resume, "delete": c.Delete}[sub]
		if err := f(ctx, *ns, fl.Arg(0)); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "sluicejob %s/%s: %s requested\n", *ns, fl.Arg(0), sub)
		return 0
	case "get", "list", "history":
	default:
		fmt.Fprintf(stderr, "sluice jobs: unknown command %q\n\n%s", sub, jobsUsage)
		return 2
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Start(sctx); err != nil {
		return fail(err)
	}
	defer c.Stop()
	switch sub {
	case "get":
		j, err := c.Get(*ns, fl.Arg(0))
		if err != nil {
			return fail(err)
		}
		if *output == "" {
			writeJobSummary(stdout, j, time.Now())
			return 0
		}
		c := *j // the cache's copy is shared
		j = &c
		j.APIVersion, j.Kind = v1alpha1.APIVersion, v1alpha1.Kind
		var b []byte
		if *output == "json" {
			b, err = json.MarshalIndent(j, "", "  ")
		} else {
			b, err = yaml.Marshal(j)
		}
		if err != nil {
			return fail(err)
		}
		stdout.Write(b)
	case "list":
		list, err := c.List(*selector)
		if err != nil {
			return fail(err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAMESPACE\tNAME\tPHASE\tDESIRED\tREADY\tBACKLOG\tLATENCY\tCHECKPOINT\tAGE")
		now := time.Now()
		for _, j := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%ds\t%s\t%s\n", j.Namespace, j.Name, j.Status.Phase, j.Status.DesiredWorkers, j.Status.ReadyWorkers,
				j.Status.BacklogRecords, j.Status.LatencySeconds, checkpointAge(j.Status.LastCheckpoint, now), now.Sub(j.CreationTimestamp.Time).Truncate(time.Second))
		}
		tw.Flush()
	case "history":
		h, err := c.History(*ns, fl.Arg(0))
		if err != nil {
			return fail(err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tGENERATION\tFROM\tTO\tREASON\tMESSAGE")
		for _, t := range h {
			from := string(t.From)
			if from == "" {
				from = "-"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", t.Time.UTC().Format(time.RFC3339), t.Generation, from, t.To, t.Reason, t.Message)
		}
		tw.Flush()
	}
	return 0
}

// writeJobSummary writes a job's status in brief, as `sluice jobs get`
// shows it by default.
func writeJobSummary(w io.Writer, j *v1alpha1.SluiceJob, now time.Time) {
	st := j.Status
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "Name:\t%s/%s\n", j.Namespace, j.Name)
	fmt.Fprintf(tw, "Phase:\t%s (generation %d, observed %d)\n", st.Phase, j.Generation, st.ObservedGeneration)
	fmt.Fprintf(tw, "Workers:\t%d desired, %d ready\n", st.DesiredWorkers, st.ReadyWorkers)
	backlog := fmt.Sprintf("%d records, %ds", st.BacklogRecords, st.BacklogSeconds)
	if st.BacklogSeconds < 0 {
		backlog = fmt.Sprintf("%d records, not draining", st.BacklogRecords)
	}
	fmt.Fprintf(tw, "Backlog:\t%s\n", backlog)
	fmt.Fprintf(tw, "Latency:\t%ds\n", st.LatencySeconds)
	if c := st.LastCheckpoint; c != nil {
		fmt.Fprintf(tw, "Last checkpoint:\t%s, %s ago, %d bytes\n", c.Key, checkpointAge(c, now), c.Bytes)
	} else {
		fmt.Fprintf(tw, "Last checkpoint:\tnone reported\n")
	}
	for _, c := range st.Conditions {
		fmt.Fprintf(tw, "Condition %s:\t%s (%s) %s\n", c.Type, c.Status, c.Reason, firstLineOf(c.Message))
	}
	tw.Flush()
}

// checkpointAge is how long ago a checkpoint was committed, "-" for none.
func checkpointAge(c *v1alpha1.Checkpoint, now time.Time) string {
	if c == nil || c.Time.IsZero() {
		return "-"
	}
	return now.Sub(c.Time.Time).Truncate(time.Second).String()
}

func firstLineOf(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// jobFromFile reads a job file and the schema files it names by a relative
// path, as the spec of a SluiceJob; labels is "k=v,...".
func jobFromFile(path, namespace, labels string) (*v1alpha1.SluiceJob, error) {
	raw, err := config.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cj, err := config.Parse(path, raw, func(string) (string, bool) { return "x", true })
	if err != nil {
		return nil, err
	}
	files, err := jobFiles(path, cj)
	if err != nil {
		return nil, err
	}
	lbls := map[string]string{}
	for _, kv := range strings.Split(labels, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("label %q is not k=v", kv)
		}
		lbls[k] = v
	}
	return jobs.FromFile(namespace, raw, files, lbls)
}

// jobFiles reads the files a job file names by a path relative to itself
// (schema_file), by that path: what a pod needs beside the job file. Nil
// when there are none.
func jobFiles(path string, cj *config.Job) (map[string]string, error) {
	files := map[string]string{}
	for _, p := range cj.Pipelines {
		f := schemaFile(p.Format)
		if f == "" || filepath.IsAbs(f) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(path), f))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		files[filepath.ToSlash(filepath.Clean(f))] = string(b)
	}
	if len(files) == 0 {
		return nil, nil
	}
	return files, nil
}

func schemaFile(f config.Format) string {
	switch {
	case f.Avro != nil:
		return f.Avro.SchemaFile
	case f.JSON != nil:
		return f.JSON.SchemaFile
	}
	return ""
}
