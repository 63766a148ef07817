package v1alpha1

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicehq/sluice/engine/enginetest"
)

// TestCRDGolden keeps the checked-in CRD equal to what the Go types
// generate: a field added to Spec or Status without -update fails here.
func TestCRDGolden(t *testing.T) {
	enginetest.Golden(t, filepath.Join("testdata", "sluicejob-crd.golden.yaml"), CRDYAML())
}

// TestRoundTrip checks that a job survives the unstructured conversion that
// every client uses.
func TestRoundTrip(t *testing.T) {
	in := &SluiceJob{
		ObjectMeta: metav1.ObjectMeta{Name: "acme-fw", Namespace: "tenants", Labels: map[string]string{LabelTenant: "acme"}},
		Spec:       Spec{Job: "job: acme-fw\n", Files: map[string]string{"s.avsc": "{}"}, Scaling: Scaling{MinWorkers: 1, MaxWorkers: 3}, Suspend: true},
		Status:     Status{Phase: PhaseRunning, DesiredWorkers: 2, History: []Transition{{From: PhasePending, To: PhaseRunning, Reason: "Ready", Generation: 1}}},
	}
	u, err := ToUnstructured(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := FromUnstructured(u)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
