package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// acmeMonitoring is the spec testdata/alerts_test.yml is written for.
var acmeMonitoring = MonitoringSpec{
	Job: "acme", Namespace: "default",
	SLALatency: 10 * time.Minute, SLAFor: 5 * time.Minute, DeadLetters: 1,
	CheckpointInterval: 10 * time.Second,
}

// TestAlertRulesWithPromtool checks the rendered rules with `promtool check
// rules` and runs the unit tests of testdata/alerts_test.yml over them: each
// alert fires where it should and stays silent where it should not.
func TestAlertRulesWithPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install it with `apt-get update && apt-get install -y prometheus`")
	}
	dir := t.TempDir()
	rules, err := RulesFile(acmeMonitoring)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("testdata/alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "acme.rules.yml"), rules, 0o644)
	os.WriteFile(filepath.Join(dir, "alerts_test.yml"), tests, 0o644)
	for _, args := range [][]string{{"check", "rules", "acme.rules.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
	// Every alert has a test.
	for _, a := range Alerts(acmeMonitoring) {
		if !contains(tests, "alertname: "+a.Name) {
			t.Errorf("alert %s has no promtool test", a.Name)
		}
	}
}

func contains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

// TestPrometheusRuleAndDashboardsRender checks that the PrometheusRule and
// both dashboards render, and that the dashboards hold every panel's
// queries.
func TestPrometheusRuleAndDashboardsRender(t *testing.T) {
	pr, err := PrometheusRule(acmeMonitoring)
	if err != nil || !contains(pr, "kind: PrometheusRule") || !contains(pr, "SluiceLatencyAboveSLA") {
		t.Fatalf("PrometheusRule: %v\n%s", err, pr)
	}
	for name, f := range map[string]func() ([]byte, error){
		"job":   func() ([]byte, error) { return JobDashboard("acme") },
		"fleet": FleetDashboard,
	} {
		b, err := f()
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels []struct {
				Title   string
				Targets []struct{ Expr string }
			}
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s dashboard: %v", name, err)
		}
		if len(d.Panels) < 5 {
			t.Errorf("%s dashboard has %d panels", name, len(d.Panels))
		}
		for _, p := range d.Panels {
			if len(p.Targets) == 0 || p.Targets[0].Expr == "" {
				t.Errorf("%s dashboard: panel %q has no query", name, p.Title)
			}
		}
	}
}
