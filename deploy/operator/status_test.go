package operator_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
	"github.com/sluicehq/sluice/engine/enginetest"
)

// TestOperatorJobsPage drives a job of tenant acme, application firewall
// through create, a rescale (its minimum raised to 2), suspend and resume,
// beside a job of another tenant created suspended, and reads the
// operator's jobs page (--listen) as JSON and in headless Chromium: the
// jobs grouped by tenant and application, each job's lifecycle events
// (created, scaled, suspended, resumed) and its workers' pipelines; and its
// /metrics: sluice_job_info per job from the SluiceJobs' labels. It saves
// a screenshot (under $SLUICE_SCREENSHOTS when set, for the docs).
func TestOperatorJobsPage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e := newEnv(t, 2, "--listen", addr)
	ctx := context.Background()
	stop := e.produceEvery(10, 100*time.Millisecond)
	defer stop()

	labels := func(tenant, app string) func(*v1alpha1.SluiceJob) {
		return func(j *v1alpha1.SluiceJob) {
			j.Labels = map[string]string{v1alpha1.LabelTenant: tenant, v1alpha1.LabelApplication: app}
		}
	}
	e.apply(e.newJob("audit", "SELECT id FROM input", func(j *v1alpha1.SluiceJob) {
		labels("globex", "audit")(j)
		j.Spec.Suspend = true
	}))
	e.apply(e.newJob("fw", "SELECT id, tenant FROM input", labels("acme", "firewall")))
	e.waitJob("fw", "running", 2*time.Minute, phaseIs(v1alpha1.PhaseRunning))
	e.apply(e.newJob("fw", "SELECT id, tenant FROM input", func(j *v1alpha1.SluiceJob) {
		labels("acme", "firewall")(j)
		j.Spec.Scaling = v1alpha1.Scaling{MinWorkers: 2, MaxWorkers: 2}
	}))
	e.waitJob("fw", "scaled to 2", 2*time.Minute, func(j *v1alpha1.SluiceJob) bool {
		return j.Status.Phase == v1alpha1.PhaseRunning && j.Status.ReadyWorkers == 2
	})
	if err := e.jobs.Suspend(ctx, e.ns, "fw"); err != nil {
		t.Fatal(err)
	}
	e.waitJob("fw", "suspended", 2*time.Minute, phaseIs(v1alpha1.PhaseSuspended))
	if err := e.jobs.Resume(ctx, e.ns, "fw"); err != nil {
		t.Fatal(err)
	}
	e.waitJob("fw", "resumed", 2*time.Minute, func(j *v1alpha1.SluiceJob) bool {
		return j.Status.Phase == v1alpha1.PhaseRunning && j.Status.ReadyWorkers == 2
	})
	e.waitJob("audit", "created suspended", time.Minute, phaseIs(v1alpha1.PhaseSuspended))

	base := "http://" + addr + "/"
	// The JSON: groups, events, the workers' pipelines (once both report).
	var page struct {
		Jobs []struct {
			Name, Tenant, Application, Phase string
			Workers                          int `json:"workers_reporting"`
			Pipelines                        []struct{ Worker, Name string }
			History                          []struct{ Kind, Detail string }
		}
		Groups []struct {
			Tenant, Application string
			Jobs                int
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		page.Jobs, page.Groups = nil, nil
		getJSON(t, base+"?format=json", &page)
		if len(page.Jobs) == 2 && page.Jobs[0].Workers == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	kinds := map[string][]string{}
	for _, j := range page.Jobs {
		for _, h := range j.History {
			kinds[j.Name] = append(kinds[j.Name], h.Kind)
		}
	}
	if len(page.Jobs) != 2 || page.Jobs[0].Name != "fw" || page.Jobs[0].Tenant != "acme" || page.Jobs[0].Application != "firewall" ||
		page.Jobs[0].Workers != 2 || len(page.Jobs[0].Pipelines) != 2 {
		t.Errorf("jobs page JSON: %+v", page.Jobs)
	}
	// The latest first: resumed after suspended after scaled after created.
	want := []string{"running", "resumed", "suspended", "draining", "scaled", "running", "created"}
	if got := strings.Join(kinds["fw"], ","); !strings.Contains(got, strings.Join(want, ",")) {
		t.Errorf("fw's events %s, want %s in that order", got, strings.Join(want, ","))
	}
	if got := strings.Join(kinds["audit"], ","); got != "created" {
		t.Errorf("audit's events %s, want created", got)
	}
	if len(page.Groups) != 2 || page.Groups[0].Tenant != "acme" || page.Groups[1].Tenant != "globex" || page.Groups[1].Application != "audit" {
		t.Errorf("groups %+v, want acme/firewall then globex/audit", page.Groups)
	}

	// The page in a browser.
	dom := enginetest.Chromium(t, "--dump-dom", base)
	for _, want := range []string{
		"sluice jobs", "namespace " + e.ns, "By tenant and application",
		"tenant acme · application firewall", "tenant globex · application audit",
		`href="#job-fw"`, "fw-0", "fw-1", // the job and its workers' pipelines
		`<td class="l">scaled</td><td class="l">1 → 2 workers`, // an event row
		`<td class="l">resumed</td>`, `<td class="l">suspended</td>`, `<td class="l">created</td>`,
		`http-equiv="refresh"`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("jobs page lacks %q:\n%s", want, dom)
		}
	}
	dir := t.TempDir()
	if d := os.Getenv("SLUICE_SCREENSHOTS"); d != "" {
		dir = d
	}
	shot := filepath.Join(dir, "operator-jobs.png")
	enginetest.Chromium(t, "--window-size=1200,1600", "--screenshot="+shot, base)
	if st, err := os.Stat(shot); err != nil || st.Size() < 10000 {
		t.Errorf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)

	// The info metric, one series per job.
	resp, err := http.Get(base + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`sluice_job_info{application="firewall",job="fw",tenant="acme"} 1`,
		`sluice_job_info{application="audit",job="audit",tenant="globex"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}
