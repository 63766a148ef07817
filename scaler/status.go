package scaler

import (
	"bytes"
	"cmp"
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

// The jobs page, served by the coordinator and by the operator: every job
// watched, the highest latency first, a rollup per tenant and application,
// and each job (grouped by tenant and application) with its history and its
// workers' pipelines and recent checkpoints. Latency and checkpoints come
// from the workers' own status pages (their JSON, at / on the metrics
// port), read when the page is; the history is what the control loop
// recorded (the coordinator: what it did; the operator: the SluiceJob's
// lifecycle). Server-rendered HTML refreshing itself, and JSON at the same
// path (Accept: application/json or ?format=json).

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
	Name string `json:"name"`
	// Namespace, Tenant, Application and Phase are what the control loop
	// knows of the job (the operator: from the SluiceJob); the page groups
	// jobs by tenant and application.
	Namespace      string           `json:"namespace,omitempty"`
	Tenant         string           `json:"tenant,omitempty"`
	Application    string           `json:"application,omitempty"`
	Phase          string           `json:"phase,omitempty"`
	LatencySeconds float64          `json:"latency_seconds"`
	BacklogRecords int64            `json:"backlog_records"`
	Workers        int              `json:"workers_reporting"`
	Pipelines      []WorkerPipeline `json:"pipelines"`
	Checkpoints    []WorkerCkpt     `json:"checkpoints"`
	// History is the job's lifecycle, the latest first.
	History []JobEvent `json:"history"`
	Errors  []string   `json:"errors,omitempty"`
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
		js := JobStatus{Name: j.cfg.Name, Namespace: c.cfg.Namespace, Tenant: j.cfg.Tenant, Application: j.cfg.Application, History: c.hist.of(j.cfg.Name)}
		targets, err := c.statusTargets(ctx, j)
		if err != nil {
			js.Errors = append(js.Errors, err.Error())
		}
		ReadWorkers(ctx, c.http, targets, &js)
		out = append(out, js)
	}
	SortJobs(out)
	return out
}

// ReadWorkers reads the status JSON of a job's workers (pod name to its
// status URL, `/?format=json` on the metrics port) into js: their
// pipelines, their last 10 checkpoints each, the job's worst latency and
// its backlog. A worker that does not answer is named in js.Errors.
func ReadWorkers(ctx context.Context, hc *http.Client, targets map[string]string, js *JobStatus) {
	for _, pod := range slices.Sorted(mapsKeys(targets)) {
		var ws struct {
			Pipelines []struct {
				Name           string  `json:"name"`
				LatencySeconds float64 `json:"latency_seconds"`
				BacklogRecords int64   `json:"backlog_records"`
			} `json:"pipelines"`
			Checkpoints []WorkerCkpt `json:"checkpoints"`
		}
		if err := getJSON(ctx, hc, targets[pod], &ws); err != nil {
			js.Errors = append(js.Errors, pod+": "+err.Error())
			continue
		}
		js.Workers++
		for _, p := range ws.Pipelines {
			js.Pipelines = append(js.Pipelines, WorkerPipeline{pod, p.Name, p.LatencySeconds, p.BacklogRecords})
			js.LatencySeconds = max(js.LatencySeconds, p.LatencySeconds)
			js.BacklogRecords += p.BacklogRecords
		}
		for i, cp := range ws.Checkpoints {
			if i == 10 {
				break
			}
			cp.Worker = pod
			js.Checkpoints = append(js.Checkpoints, cp)
		}
	}
}

// SortJobs orders jobs by latency, the highest first, then by name.
func SortJobs(jobs []JobStatus) {
	slices.SortStableFunc(jobs, func(a, b JobStatus) int {
		switch {
		case a.LatencySeconds > b.LatencySeconds:
			return -1
		case a.LatencySeconds < b.LatencySeconds:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// JobGroup is the jobs of one tenant and application, with their rollup.
type JobGroup struct {
	Tenant      string `json:"tenant"`
	Application string `json:"application"`
	Jobs        int    `json:"jobs"`
	// WorstLatencySeconds is the highest latency of its jobs;
	// BacklogRecords their summed backlog.
	WorstLatencySeconds float64 `json:"worst_latency_seconds"`
	BacklogRecords      int64   `json:"backlog_records"`
	// Members are the group's jobs, the highest latency first.
	Members []JobStatus `json:"-"`
}

// Group groups jobs (sorted by SortJobs) by tenant and application: the
// group of the worst job first.
func Group(jobs []JobStatus) []JobGroup {
	var out []JobGroup
	at := map[[2]string]int{}
	for _, j := range jobs {
		k := [2]string{j.Tenant, j.Application}
		i, ok := at[k]
		if !ok {
			i = len(out)
			at[k] = i
			out = append(out, JobGroup{Tenant: j.Tenant, Application: j.Application})
		}
		g := &out[i]
		g.Jobs++
		g.WorstLatencySeconds = max(g.WorstLatencySeconds, j.LatencySeconds)
		g.BacklogRecords += j.BacklogRecords
		g.Members = append(g.Members, j)
	}
	return out
}

// JobsPage is what the jobs page shows: Scope names what is listed (a
// namespace, or every namespace), Leading whether this replica acts.
type JobsPage struct {
	Title   string
	Scope   string
	Leading bool
	Jobs    []JobStatus
}

// ServeJobs writes the jobs page: HTML that refreshes itself, or, with
// Accept: application/json or ?format=json, the jobs and their groups as
// JSON.
func ServeJobs(w http.ResponseWriter, r *http.Request, p JobsPage) {
	groups := Group(p.Jobs)
	if r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			Jobs   []JobStatus `json:"jobs"`
			Groups []JobGroup  `json:"groups"`
		}{p.Jobs, groups})
		return
	}
	var b bytes.Buffer
	if err := jobsPage.Execute(&b, struct {
		JobsPage
		At     time.Time
		Groups []JobGroup
	}{p, time.Now(), groups}); err != nil {
		http.Error(w, "status: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes())
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

func getJSON(ctx context.Context, hc *http.Client, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// StatusHandler serves the jobs page.
func (c *Coordinator) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ServeJobs(w, r, JobsPage{Title: "sluice jobs", Scope: "namespace " + c.cfg.Namespace, Leading: c.Leading(), Jobs: c.Jobs(r.Context())})
	})
}

var jobsPage = template.Must(template.New("jobs").Funcs(template.FuncMap{
	"secs": func(s float64) string {
		return (time.Duration(s * float64(time.Second))).Round(100 * time.Millisecond).String()
	},
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"dash": func(s string) string { return cmp.Or(s, "—") },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>{{.Title}} · {{.Scope}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .2em} h2{font-size:1.2em;margin:1.6em 0 .3em;border-bottom:2px solid #ccc} h3{font-size:1.05em;margin:1.1em 0 .3em} h4{font-size:.95em;margin:.7em 0 .2em}
table{border-collapse:collapse;min-width:36em} th,td{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left} .bad{color:#b00020} .muted{color:#777}
</style></head><body>
<h1>{{.Title}} · {{.Scope}}</h1>
<div class="muted">{{if .Leading}}leading{{else}}standby{{end}} · {{when .At}} UTC · refreshes every 5 s · <a href="?format=json">JSON</a></div>
<h2>By tenant and application</h2>
<table id="groups"><tr><th class="l">tenant</th><th class="l">application</th><th>jobs</th><th>worst latency</th><th>backlog</th></tr>
{{range .Groups}}<tr><td class="l"><a href="#group-{{.Tenant}}-{{.Application}}">{{dash .Tenant}}</a></td><td class="l">{{dash .Application}}</td><td>{{.Jobs}}</td><td>{{secs .WorstLatencySeconds}}</td><td>{{.BacklogRecords}}</td></tr>
{{end}}</table>
<h2>Jobs by latency</h2>
<table id="jobs"><tr><th class="l">job</th><th class="l">tenant</th><th class="l">application</th><th class="l">phase</th><th>latency</th><th>backlog</th><th>workers reporting</th><th class="l">last event</th></tr>
{{range .Jobs}}<tr><td class="l"><a href="#job-{{.Name}}">{{.Name}}</a></td><td class="l">{{dash .Tenant}}</td><td class="l">{{dash .Application}}</td><td class="l">{{dash .Phase}}</td><td>{{secs .LatencySeconds}}</td><td>{{.BacklogRecords}}</td><td>{{.Workers}}</td><td class="l">{{with .History}}{{(index . 0).Kind}}: {{(index . 0).Detail}}{{else}}—{{end}}</td></tr>
{{end}}</table>
{{range .Groups}}<h2 id="group-{{.Tenant}}-{{.Application}}">tenant {{dash .Tenant}} · application {{dash .Application}}</h2>
{{range .Members}}<h3 id="job-{{.Name}}">{{.Name}}{{with .Phase}} <span class="muted">· {{.}}</span>{{end}}</h3>
{{range .Errors}}<div class="bad">{{.}}</div>{{end}}
<h4>Pipelines</h4>
<table><tr><th class="l">worker</th><th class="l">pipeline</th><th>latency</th><th>backlog</th></tr>
{{range .Pipelines}}<tr><td class="l">{{.Worker}}</td><td class="l">{{.Name}}</td><td>{{secs .LatencySeconds}}</td><td>{{.BacklogRecords}}</td></tr>
{{end}}</table>
<h4>History</h4>
<table class="history"><tr><th class="l">when</th><th class="l">event</th><th class="l">detail</th></tr>
{{range .History}}<tr class="event"><td class="l">{{when .At}}</td><td class="l">{{.Kind}}</td><td class="l">{{.Detail}}</td></tr>
{{else}}<tr><td colspan="3" class="l muted">nothing yet</td></tr>{{end}}</table>
<h4>Checkpoints</h4>
<table class="checkpoints"><tr><th class="l">worker</th><th>seq</th><th class="l">at</th><th>duration</th><th>bytes</th><th class="l">result</th></tr>
{{range .Checkpoints}}<tr><td class="l">{{.Worker}}</td><td>{{.Seq}}</td><td class="l">{{.At}}</td><td>{{secs .DurationSeconds}}</td><td>{{.Bytes}}</td><td class="l">{{if .Error}}<span class="bad">{{.Error}}</span>{{else}}committed{{end}}</td></tr>
{{end}}</table>
{{end}}{{end}}
</body></html>
`))
