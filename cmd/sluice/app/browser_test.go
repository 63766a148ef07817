package app

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine/enginetest"
	"github.com/sluicehq/sluice/scaler"
)

// artifactDir is where screenshots go: $SLUICE_SCREENSHOTS when set (to
// refresh the README's images), else the test's temporary directory.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("SLUICE_SCREENSHOTS"); d != "" {
		return d
	}
	return t.TempDir()
}

// TestStatusPagesInBrowser loads the status page of a running worker in
// headless Chromium and checks what a person reads there: a row per task,
// a committed checkpoint, and a sink's last error after the sink's receiver
// refused a request (HTTP 401, permanent); then the coordinator's jobs page
// over the same worker (the job's row, its tenant and application group,
// its history, its checkpoints). It saves a screenshot of each. The
// coordinator is built without Kubernetes: its page reads the workers named
// by MetricsURLs, and its history holds only what it did (here, that it
// watches the job). The operator's jobs page, with a SluiceJob's lifecycle
// events, is loaded by deploy/operator's TestOperatorJobsPage.
func TestStatusPagesInBrowser(t *testing.T) {
	prom := sharedPrometheus(t)
	j := startObsJob(t, prom)
	stop := j.traffic()
	defer stop()
	base := "http://" + j.metrics + "/"

	// A committed checkpoint first, then the sink error.
	waitStatus(t, base, func(s statusDoc) bool {
		return len(s.Checkpoints) > 0 && s.Checkpoints[0].Error == "" && len(s.Tasks) == 24
	})
	j.mu.Lock()
	j.failNext = http.StatusUnauthorized
	j.mu.Unlock()
	waitStatus(t, base, func(s statusDoc) bool {
		for _, k := range s.Sinks {
			if k.LastError != "" {
				return true
			}
		}
		return false
	})

	dom := enginetest.Chromium(t, "--dump-dom", base)
	for _, want := range []string{
		"sluice job", "obs", // the heading
		"slow.events/0", "slow.events/11", "fast.events/11", // task rows
		"committed",                         // a checkpoint row
		"stalled/https", "permanent", "401", // the sink's last error
		`http-equiv="refresh"`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("worker page lacks %q:\n%s", want, dom)
		}
	}
	if n := strings.Count(dom, "<tr class=") - 2; n < 24 {
		t.Errorf("worker page shows %d task rows, want 24", n)
	}
	shot := filepath.Join(artifactDir(t), "worker-status.png")
	enginetest.Chromium(t, "--window-size=1200,1500", "--screenshot="+shot, base)
	if st, err := os.Stat(shot); err != nil || st.Size() < 10000 {
		t.Errorf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)

	// The coordinator's jobs page, reading the same worker's status.
	coord, err := scaler.NewCoordinator(scaler.Config{Namespace: "default", Identity: "coordinator-0",
		Jobs: []scaler.JobConfig{{Name: "obs", Tenant: "acme", Application: "firewall", Topics: []string{slowTopic, fastTopic}, MetricsURLs: map[string]string{"obs-0": base + "metrics"}}}},
		nil, nil, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	jobs := httptest.NewServer(coord.StatusHandler())
	t.Cleanup(jobs.Close)
	dom = enginetest.Chromium(t, "--dump-dom", jobs.URL+"/")
	for _, want := range []string{
		"sluice jobs", "Jobs by latency", `href="#job-obs"`, // the job's row
		"By tenant and application", "tenant acme · application firewall", // its group
		"obs-0", "stalled", "healthy", // its worker's pipelines
		`<tr class="event"><td class="l">`, "watched", "by coordinator coordinator-0", // its history
		"committed", // a checkpoint row
		`http-equiv="refresh"`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("jobs page lacks %q:\n%s", want, dom)
		}
	}
	shot = filepath.Join(artifactDir(t), "jobs-status.png")
	enginetest.Chromium(t, "--window-size=1200,1100", "--screenshot="+shot, jobs.URL+"/")
	if st, err := os.Stat(shot); err != nil || st.Size() < 10000 {
		t.Errorf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}

type statusDoc struct {
	Tasks []struct{ Topic string }
	Sinks []struct {
		Name      string
		LastError string `json:"last_error"`
	}
	Checkpoints []struct{ Error string }
}

func waitStatus(t *testing.T, url string, ok func(statusDoc) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Accept", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var s statusDoc
			err := json.NewDecoder(resp.Body).Decode(&s)
			resp.Body.Close()
			if err == nil && ok(s) {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("status at %s never reached the state wanted", url)
}
