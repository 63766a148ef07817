package scaler

import (
	"bytes"
	"context"
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The coordinator's jobs page: every job it watches, the latest first by
// latency, with each job's history of rescales and its workers' recent
// checkpoints. Latency and checkpoints come from the workers' own status
// pages (their JSON, at / on the metrics port), read when the page is; the
// history is what this coordinator did. Server-rendered HTML refreshing
// itself, and JSON at the same path (Accept: application/json or
// ?format=json).

// JobEvent is one entry of a job's history.
type JobEvent struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"` // watched, scaled up, scaled down
	Detail string    `json:"detail"`
}

// noteScaled records a rescale this coordinator made.
func (c *Coordinator) noteScaled(j *jobState, from int, d Decision, at time.Time) {
	kind := "scaled up"
	if d.Direction == Down {
		kind = "scaled down"
	}
	c.hist.add(j.cfg.Name, JobEvent{At: at, Kind: kind, Detail: strconv.Itoa(from) + " → " + strconv.Itoa(d.Desired) + ": " + strings.Join(d.Reasons, "; ")})
}

// maxHistory bounds each job's history.
const maxHistory = 50

type history struct {
	mu     sync.Mutex // guards events
	events map[string][]JobEvent
}

func (h *history) add(job string, e JobEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.events == nil {
		h.events = map[string][]JobEvent{}
	}
	ev := append(h.events[job], e)
	if len(ev) > maxHistory {
		ev = ev[len(ev)-maxHistory:]
	}
	h.events[job] = ev
}

func (h *history) of(job string) []JobEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	ev := slices.Clone(h.events[job])
	slices.Reverse(ev)
	return ev
}

// JobStatus is one job on the jobs page.
type JobStatus struct {
	Name           string           `json:"name"`
	LatencySeconds float64          `json:"latency_seconds"`
	Workers        int              `json:"workers_reporting"`
	Pipelines      []WorkerPipeline `json:"pipelines"`
	Checkpoints    []WorkerCkpt     `json:"checkpoints"`
	History        []JobEvent       `json:"history"`
	Errors         []string         `json:"errors,omitempty"`
}

// WorkerPipeline and WorkerCkpt are what the jobs page reads from a
// worker's status JSON.
type WorkerPipeline struct {
	Worker         string  `json:"worker"`
	Name           string  `json:"name"`
	LatencySeconds float64 `json:"latency_seconds"`
	BacklogRecords int64   `json:"backlog_records"`
}

type WorkerCkpt struct {
	Worker          string  `json:"worker"`
	Seq             uint64  `json:"seq"`
	At              string  `json:"at"`
	DurationSeconds float64 `json:"duration_seconds"`
	Bytes           int     `json:"bytes"`
	Error           string  `json:"error,omitempty"`
}

// Jobs returns the status of every job, the latest first.
func (c *Coordinator) Jobs(ctx context.Context) []JobStatus {
	var out []JobStatus
	for _, j := range c.jobs {
		js := JobStatus{Name: j.cfg.Name, History: c.hist.of(j.cfg.Name)}
		targets, err := c.statusTargets(ctx, j)
		if err != nil {
			js.Errors = append(js.Errors, err.Error())
		}
		for _, pod := range slices.Sorted(mapsKeys(targets)) {
			var ws struct {
				Pipelines []struct {
					Name           string  `json:"name"`
					LatencySeconds float64 `json:"latency_seconds"`
					BacklogRecords int64   `json:"backlog_records"`
				} `json:"pipelines"`
				Checkpoints []WorkerCkpt `json:"checkpoints"`
			}
			if err := c.getJSON(ctx, targets[pod], &ws); err != nil {
				js.Errors = append(js.Errors, pod+": "+err.Error())
				continue
			}
			js.Workers++
			for _, p := range ws.Pipelines {
				js.Pipelines = append(js.Pipelines, WorkerPipeline{pod, p.Name, p.LatencySeconds, p.BacklogRecords})
				js.LatencySeconds = max(js.LatencySeconds, p.LatencySeconds)
			}
			for i, cp := range ws.Checkpoints {
				if i == 10 {
					break
				}
				cp.Worker = pod
				js.Checkpoints = append(js.Checkpoints, cp)
			}
		}
		out = append(out, js)
	}
	slices.SortStableFunc(out, func(a, b JobStatus) int {
		switch {
		case a.LatencySeconds > b.LatencySeconds:
			return -1
		case a.LatencySeconds < b.LatencySeconds:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// statusTargets are the workers' status URLs, by pod: MetricsURLs with the
// path replaced by /, or the running pods' IPs on the metrics port.
func (c *Coordinator) statusTargets(ctx context.Context, j *jobState) (map[string]string, error) {
	out := map[string]string{}
	if len(j.cfg.MetricsURLs) > 0 {
		for pod, u := range j.cfg.MetricsURLs {
			out[pod] = strings.TrimSuffix(u, "/metrics") + "/?format=json"
		}
		return out, nil
	}
	pods, err := c.kube.CoreV1().Pods(c.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: j.cfg.PodSelector})
	if err != nil {
		return nil, err
	}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
			out[p.Name] = "http://" + p.Status.PodIP + ":" + strconv.Itoa(j.cfg.MetricsPort) + "/?format=json"
		}
	}
	return out, nil
}

func (c *Coordinator) getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// StatusHandler serves the jobs page.
func (c *Coordinator) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		jobs := c.Jobs(r.Context())
		if r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			enc.Encode(jobs)
			return
		}
		var b bytes.Buffer
		if err := jobsPage.Execute(&b, struct {
			Namespace string
			At        time.Time
			Leading   bool
			Jobs      []JobStatus
		}{c.cfg.Namespace, time.Now(), c.Leading(), jobs}); err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(b.Bytes())
	})
}

var jobsPage = template.Must(template.New("jobs").Funcs(template.FuncMap{
	"secs": func(s float64) string {
		return (time.Duration(s * float64(time.Second))).Round(100 * time.Millisecond).String()
	},
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>sluice jobs · {{.Namespace}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .2em} h2{font-size:1.15em;margin:1.4em 0 .3em} h3{font-size:1em;margin:.8em 0 .3em}
table{border-collapse:collapse;min-width:36em} th,td{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left} .bad{color:#b00020} .muted{color:#777}
</style></head><body>
<h1>sluice jobs · namespace {{.Namespace}}</h1>
<div class="muted">{{if .Leading}}leading{{else}}standby{{end}} · {{when .At}} UTC · refreshes every 5 s · <a href="?format=json">JSON</a></div>
<h2>Jobs by latency</h2>
<table id="jobs"><tr><th class="l">job</th><th>latency</th><th>workers reporting</th><th class="l">last event</th></tr>
{{range .Jobs}}<tr><td class="l"><a href="#job-{{.Name}}">{{.Name}}</a></td><td>{{secs .LatencySeconds}}</td><td>{{.Workers}}</td><td class="l">{{with .History}}{{(index . 0).Kind}}: {{(index . 0).Detail}}{{else}}—{{end}}</td></tr>
{{end}}</table>
{{range .Jobs}}<h2 id="job-{{.Name}}">{{.Name}}</h2>
{{range .Errors}}<div class="bad">{{.}}</div>{{end}}
<h3>Pipelines</h3>
<table><tr><th class="l">worker</th><th class="l">pipeline</th><th>latency</th><th>backlog</th></tr>
{{range .Pipelines}}<tr><td class="l">{{.Worker}}</td><td class="l">{{.Name}}</td><td>{{secs .LatencySeconds}}</td><td>{{.BacklogRecords}}</td></tr>
{{end}}</table>
<h3>History</h3>
<table class="history"><tr><th class="l">when</th><th class="l">event</th><th class="l">detail</th></tr>
{{range .History}}<tr><td class="l">{{when .At}}</td><td class="l">{{.Kind}}</td><td class="l">{{.Detail}}</td></tr>
{{else}}<tr><td colspan="3" class="l muted">nothing yet</td></tr>{{end}}</table>
<h3>Checkpoints</h3>
<table class="checkpoints"><tr><th class="l">worker</th><th>seq</th><th class="l">at</th><th>duration</th><th>bytes</th><th class="l">result</th></tr>
{{range .Checkpoints}}<tr><td class="l">{{.Worker}}</td><td>{{.Seq}}</td><td class="l">{{.At}}</td><td>{{secs .DurationSeconds}}</td><td>{{.Bytes}}</td><td class="l">{{if .Error}}<span class="bad">{{.Error}}</span>{{else}}committed{{end}}</td></tr>
{{end}}</table>
{{end}}
</body></html>
`))
