package deploy

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
	"github.com/sluicehq/sluice/engine/enginetest"
)

// TestRenderOperatorGolden pins what `sluice render --operator` writes:
// the CRD first, exactly as v1alpha1 generates it (its status subresource
// included), then the operator's RBAC and Deployment.
func TestRenderOperatorGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := RenderOperator(&buf, OperatorSpec{Image: "ghcr.io/sluicehq/sluice:v0.1.0"}); err != nil {
		t.Fatal(err)
	}
	enginetest.Golden(t, filepath.Join("testdata", "operator.golden.yaml"), buf.Bytes())
	crd, _, _ := strings.Cut(buf.String(), "\n---\n")
	if crd+"\n" != string(v1alpha1.CRDYAML()) {
		t.Error("the rendered CRD differs from v1alpha1.CRDYAML")
	}
}
