package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
)

// TestRenderOperatorGolden pins what `sluice render --operator` writes:
// the CRD first, exactly as v1alpha1 generates it (its status subresource
// included), then the operator's RBAC and Deployment.
func TestRenderOperatorGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := RenderOperator(&buf, OperatorSpec{Image: "ghcr.io/sluicehq/sluice:v0.1.0"}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "operator.golden.yaml")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./deploy -update)", err)
	}
	if diff := cmp.Diff(string(want), buf.String()); diff != "" {
		t.Errorf("RenderOperator (-want +got):\n%s", diff)
	}
	crd, _, _ := strings.Cut(buf.String(), "\n---\n")
	if crd+"\n" != string(v1alpha1.CRDYAML()) {
		t.Error("the rendered CRD differs from v1alpha1.CRDYAML")
	}
}
