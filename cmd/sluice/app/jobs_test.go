package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
)

// TestJobFromFile: `sluice jobs apply` ships the job file verbatim and the
// schema files it names, under the paths the pod sees beside the job file.
func TestJobFromFile(t *testing.T) {
	root := repoRoot(t)
	path := filepath.Join(root, "examples", "multi.yaml")
	j, err := jobFromFile(path, "tenants", "sluice.dev/tenant=acme, sluice.dev/application=fw")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	schema, _ := os.ReadFile(filepath.Join(root, "examples", "schemas", "traffic.avsc"))
	want := &v1alpha1.SluiceJob{}
	want.Name, want.Namespace = "acme-multi", "tenants"
	want.Labels = map[string]string{v1alpha1.LabelTenant: "acme", v1alpha1.LabelApplication: "fw"}
	want.Spec = v1alpha1.Spec{Job: string(raw), Files: map[string]string{"schemas/traffic.avsc": string(schema)}}
	if diff := cmp.Diff(want, j); diff != "" {
		t.Errorf("jobFromFile (-want +got):\n%s", diff)
	}
}

// TestInspectorMatchesValidate: the operator's validation of a spec reports
// what `sluice validate` reports for the same file, at job.yaml's positions.
func TestInspectorMatchesValidate(t *testing.T) {
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "examples", "multi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	schema, _ := os.ReadFile(filepath.Join(root, "examples", "schemas", "traffic.avsc"))
	in := newInspector()
	defer in.close()
	spec := v1alpha1.Spec{Job: string(raw), Files: map[string]string{"schemas/traffic.avsc": string(schema)}}
	if _, err := in.inspect(context.Background(), "acme-multi", spec); err != nil {
		t.Fatalf("a valid example is rejected: %v", err)
	}
	bad := strings.Replace(string(raw), "SELECT ", "SELECT no_such_column, ", 1)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "schemas"), 0o755)
	os.WriteFile(filepath.Join(dir, "schemas", "traffic.avsc"), schema, 0o644)
	os.WriteFile(filepath.Join(dir, "job.yaml"), []byte(bad), 0o644)
	want := validateFile(context.Background(), filepath.Join(dir, "job.yaml"))
	if want == nil {
		t.Fatal("validate accepts the bad file")
	}
	spec.Job = bad
	_, got := in.inspect(context.Background(), "acme-multi", spec)
	if got == nil || got.Error() != strings.ReplaceAll(want.Error(), dir+"/", "") {
		t.Errorf("inspect: %v\nvalidate: %v", got, want)
	}
	if _, err := in.inspect(context.Background(), "other-name", v1alpha1.Spec{Job: string(raw), Files: spec.Files}); err == nil || !strings.Contains(err.Error(), "must equal") {
		t.Errorf("a job named unlike its resource: %v", err)
	}
}

// TestJobSummary: `sluice jobs get` shows the latency and the last
// checkpoint (key, age, size) the operator put in the status.
func TestJobSummary(t *testing.T) {
	now := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	j := &v1alpha1.SluiceJob{}
	j.Namespace, j.Name, j.Generation = "tenants", "acme", 3
	j.Status = v1alpha1.Status{
		Phase: v1alpha1.PhaseRunning, ObservedGeneration: 3, DesiredWorkers: 2, ReadyWorkers: 2,
		BacklogRecords: 120, BacklogSeconds: 4, LatencySeconds: 7,
		LastCheckpoint: &v1alpha1.Checkpoint{Key: "1a2b/acme/acme-0/41.ckpt", Time: metav1.NewTime(now.Add(-12 * time.Second)), Bytes: 96},
	}
	var b strings.Builder
	writeJobSummary(&b, j, now)
	for _, want := range []string{"Latency:         7s", "Last checkpoint: 1a2b/acme/acme-0/41.ckpt, 12s ago, 96 bytes", "Backlog:         120 records, 4s"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}
