package scaler

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/engine/enginetest"
)

// The goals the default policy is held to on every
// trace: SLA in at least 99 % of minutes, at most 1.2x the oracle's
// worker-minutes, fewer rescales than the KEDA-style policy.
const (
	goalSLA       = 0.99
	goalCostRatio = 1.2
)

func TestSimulatorTraces(t *testing.T) {
	job := DefaultSimJob()
	rows := RunReport(job, Policy{}, 1)

	byTrace := map[string]map[string]ReportRow{}
	for _, r := range rows {
		if byTrace[r.Result.Trace] == nil {
			byTrace[r.Result.Trace] = map[string]ReportRow{}
		}
		byTrace[r.Result.Trace][r.Result.Policy] = r
	}
	for _, tr := range Traces() {
		t.Run(tr.Name, func(t *testing.T) {
			s, k := byTrace[tr.Name]["sluice"], byTrace[tr.Name]["keda"]
			if s.Result.SLA() < goalSLA {
				t.Errorf("sluice SLA %.2f %% < %.0f %% (violations at minutes %v)", 100*s.Result.SLA(), 100*goalSLA, s.Result.ViolationMinutes)
			}
			if s.Result.Rescales >= k.Result.Rescales {
				t.Errorf("sluice rescaled %d times, not fewer than keda's %d", s.Result.Rescales, k.Result.Rescales)
			}
			if s.CostRatio > goalCostRatio {
				t.Errorf("sluice cost %.2fx the oracle > %.1fx", s.CostRatio, goalCostRatio)
			}
		})
	}

	// Deterministic: the same seed gives the same report.
	again := RunReport(job, Policy{}, 1)
	var a, b bytes.Buffer
	if err := WriteReportTable(&a, rows); err != nil {
		t.Fatal(err)
	}
	if err := WriteReportTable(&b, again); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Fatal("two runs with one seed differ")
	}
	checkReport(t, a.Bytes())
}

const (
	reportBegin = "<!-- BEGIN simulator table: written by TestSimulatorTraces -->\n"
	reportEnd   = "<!-- END simulator table -->\n"
)

// checkReport compares the table between the markers of docs/autoscaling.md
// with the simulator's; with -update it rewrites the page instead. A stale
// table fails: the page must say what the policy does.
func checkReport(t *testing.T, table []byte) {
	t.Helper()
	path := filepath.Join("..", "docs", "autoscaling.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the report page: %v", err)
	}
	i, j := bytes.Index(doc, []byte(reportBegin)), bytes.Index(doc, []byte(reportEnd))
	if i < 0 || j < i {
		t.Fatalf("%s lacks the table markers", path)
	}
	out := append([]byte{}, doc[:i+len(reportBegin)]...)
	out = append(out, table...)
	out = append(out, doc[j:]...)
	if bytes.Equal(out, doc) {
		return
	}
	if !enginetest.Update() {
		t.Fatalf("the simulator table in %s is stale; rewrite it with: go test ./scaler -run TestSimulatorTraces -update\nwant:\n%s", path, table)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatalf("write the report: %v", err)
	}
}
