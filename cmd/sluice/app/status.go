package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// The worker's status page: what an operator reads first when a job is
// late. Server-rendered HTML that refreshes itself every statusRefresh (no
// JavaScript), and the same observation as JSON for tools, at the same path
// (Accept: application/json, or ?format=json). Everything it shows passes
// through the job's redactor (serve wraps it).

// statusRefresh is how often the page reloads itself, in seconds.
const statusRefresh = 5

// statusHandler serves the observation of rt.
func statusHandler(rt *engine.Runtime) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ob := rt.Observe(time.Now())
		if wantsJSON(r) {
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			enc.Encode(statusJSON(ob))
			return
		}
		var b bytes.Buffer
		if err := statusPage.Execute(&b, ob); err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(b.Bytes())
	})
}

func wantsJSON(r *http.Request) bool {
	return r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json")
}

// statusJSON is the observation with durations in seconds and times in
// RFC 3339, the units a tool expects.
func statusJSON(ob *engine.Observation) any {
	type task struct {
		Topic          string  `json:"topic"`
		Partition      int32   `json:"partition"`
		Offset         int64   `json:"offset"`
		End            int64   `json:"end"`
		Watermark      string  `json:"watermark,omitempty"`
		LatencySeconds float64 `json:"latency_seconds"`
		Backlog        int64   `json:"backlog"`
		Bundle         string  `json:"bundle"`
		Paused         bool    `json:"paused"`
	}
	type pipeline struct {
		Name           string  `json:"name"`
		Tasks          int     `json:"tasks"`
		Behind         int     `json:"tasks_with_input"`
		LatencySeconds float64 `json:"latency_seconds"`
		BacklogRecords int64   `json:"backlog_records"`
		BacklogSeconds float64 `json:"backlog_seconds"`
		RecordsIn      int64   `json:"records_in"`
		RecordsOut     int64   `json:"records_out"`
		DeadLetters    int64   `json:"dead_letters"`
	}
	type sink struct {
		Name      string `json:"name"`
		Failing   int    `json:"failing_tasks"`
		LastError string `json:"last_error,omitempty"`
		Kind      string `json:"kind,omitempty"`
		LastAt    string `json:"last_error_at,omitempty"`
		Failures  int64  `json:"failures"`
	}
	type checkpoint struct {
		Seq             uint64  `json:"seq"`
		Key             string  `json:"key,omitempty"`
		At              string  `json:"at"`
		DurationSeconds float64 `json:"duration_seconds"`
		Bytes           int     `json:"bytes"`
		Tasks           int     `json:"tasks"`
		Error           string  `json:"error,omitempty"`
	}
	out := struct {
		Job         string       `json:"job"`
		Pod         string       `json:"pod"`
		At          string       `json:"at"`
		Ready       bool         `json:"ready"`
		NotReady    string       `json:"not_ready,omitempty"`
		Pipelines   []pipeline   `json:"pipelines"`
		Tasks       []task       `json:"tasks"`
		Sinks       []sink       `json:"sinks"`
		Checkpoints []checkpoint `json:"checkpoints"`
	}{Job: ob.Job, Pod: ob.Pod, At: rfc3339(ob.At), Ready: ob.Ready, NotReady: ob.NotReady,
		Pipelines: []pipeline{}, Tasks: []task{}, Sinks: []sink{}, Checkpoints: []checkpoint{}}
	for _, p := range ob.Pipelines {
		out.Pipelines = append(out.Pipelines, pipeline{p.Name, p.Tasks, p.Behind, p.Latency.Seconds(), p.BacklogRecords, p.BacklogSeconds, p.RecordsIn, p.RecordsOut, p.DeadLetters})
	}
	for _, t := range ob.Tasks {
		out.Tasks = append(out.Tasks, task{t.Task.Topic, t.Task.Partition, t.Offset, t.End, rfc3339(t.Watermark), t.Latency.Seconds(), t.Backlog, t.Bundle, t.Paused})
	}
	for _, s := range ob.Sinks {
		out.Sinks = append(out.Sinks, sink{s.Name, s.Failing, s.LastError, s.Kind, rfc3339(s.LastAt), s.Failures})
	}
	for _, c := range ob.Checkpoints {
		out.Checkpoints = append(out.Checkpoints, checkpoint{c.Seq, c.Key, rfc3339(c.At), c.Duration.Seconds(), c.Bytes, c.Tasks, c.Error})
	}
	return out
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// ago formats how long before now t was, for people.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return human(now.Sub(t)) + " ago"
}

// human rounds a duration to what a person reads.
func human(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"human": human,
	"ago":   ago,
	"bytes": formatBytes,
	"lateClass": func(d time.Duration) string {
		switch {
		case d >= time.Minute:
			return "late"
		case d >= 5*time.Second:
			return "warn"
		}
		return ""
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="` + strconv.Itoa(statusRefresh) + `">
<title>sluice {{.Job}} / {{.Pod}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .2em} h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;min-width:40em} th,td{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left}
.ok{color:#176e2c;font-weight:600} .bad{color:#b00020;font-weight:600}
.late{background:#fde2e2} .warn{background:#fff4d6} .err{color:#b00020;text-align:left;max-width:50em}
.muted{color:#777}
</style></head><body>
<h1>sluice job <b>{{.Job}}</b> · pod {{.Pod}}</h1>
<div>{{if .Ready}}<span class="ok">ready</span>{{else}}<span class="bad">not ready</span>: {{.NotReady}}{{end}}
 <span class="muted">· {{.At.UTC.Format "2006-01-02 15:04:05 MST"}} · refreshes every ` + strconv.Itoa(statusRefresh) + ` s · <a href="?format=json">JSON</a></span></div>

<h2>Pipelines</h2>
<table id="pipelines"><tr><th class="l">pipeline</th><th>latency</th><th>backlog</th><th>backlog time</th><th>tasks with input</th><th>records in</th><th>out</th><th>dead letters</th></tr>
{{range .Pipelines}}<tr class="{{lateClass .Latency}}"><td class="l">{{.Name}}</td><td>{{human .Latency}}</td><td>{{.BacklogRecords}}</td><td>{{printf "%.1f" .BacklogSeconds}} s</td><td>{{.Behind}} / {{.Tasks}}</td><td>{{.RecordsIn}}</td><td>{{.RecordsOut}}</td><td>{{.DeadLetters}}</td></tr>
{{end}}</table>

<h2>Sinks</h2>
<table id="sinks"><tr><th class="l">sink</th><th>failing on</th><th>failures</th><th class="l">last error</th><th>when</th></tr>
{{range .Sinks}}<tr><td class="l">{{.Name}}</td><td>{{if .Failing}}<span class="bad">{{.Failing}} task(s)</span>{{else}}—{{end}}</td><td>{{.Failures}}</td><td class="err">{{if .LastError}}{{.Kind}}: {{.LastError}}{{else}}<span class="muted">none</span>{{end}}</td><td>{{ago $.At .LastAt}}</td></tr>
{{end}}</table>

<h2>Checkpoints</h2>
<table id="checkpoints"><tr><th>seq</th><th>when</th><th>duration</th><th>size</th><th>tasks</th><th class="l">result</th></tr>
{{range .Checkpoints}}<tr><td>{{.Seq}}</td><td>{{ago $.At .At}}</td><td>{{human .Duration}}</td><td>{{bytes .Bytes}}</td><td>{{.Tasks}}</td><td class="l">{{if .Error}}<span class="bad">{{.Error}}</span>{{else}}committed <span class="muted">{{.Key}}</span>{{end}}</td></tr>
{{else}}<tr><td colspan="6" class="l muted">none yet</td></tr>
{{end}}</table>

<h2>Tasks</h2>
<table id="tasks"><tr><th class="l">task</th><th>offset</th><th>end</th><th>backlog</th><th>watermark</th><th>latency</th><th class="l">bundle</th><th class="l">fetching</th></tr>
{{range .Tasks}}<tr class="{{lateClass .Latency}}"><td class="l">{{.Task.Topic}}/{{.Task.Partition}}</td><td>{{.Offset}}</td><td>{{.End}}</td><td>{{.Backlog}}</td><td>{{ago $.At .Watermark}}</td><td>{{human .Latency}}</td><td class="l">{{.Bundle}}{{if ne .Bundle "idle"}} ({{human .BundleAge}}){{end}}</td><td class="l">{{if .Paused}}<span class="bad">paused</span>{{else}}running{{end}}</td></tr>
{{end}}</table>
</body></html>
`))

// formatBytes writes n bytes for people.
func formatBytes(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return strconv.Itoa(n) + " B"
}
