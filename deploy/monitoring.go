package deploy

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"sigs.k8s.io/yaml"
)

// MonitoringSpec is what the alert rules and dashboards of a job depend on;
// cmd/sluice fills it from the job file.
type MonitoringSpec struct {
	Job, Namespace string
	// SLALatency and SLAFor: the latency alert fires when a pipeline's
	// latency stays above SLALatency for SLAFor.
	SLALatency, SLAFor time.Duration
	// DeadLetters is the dead-letter rate (per second, over 10 minutes)
	// above which an alert fires.
	DeadLetters float64
	// CheckpointInterval: no checkpoint for three of them fires an alert.
	CheckpointInterval time.Duration
}

// BehindSeconds is how much backlog, in seconds of throughput, counts as
// behind for the workers-pinned-at-max alert: the coordinator's own
// scale-up threshold.
const BehindSeconds = 120

// Alert is one alert rule. Its expression is Measure compared with Cond,
// and, when AndMeasure is set, only where AndMeasure meets AndCond too; or,
// when Or is set, wherever that expression has a result as well. The
// measures alone are what a dashboard would plot; Or is a condition whose
// result is empty while all is well.
type Alert struct {
	Name                string
	Measure, Cond       string
	AndMeasure, AndCond string
	Or                  string
	For                 time.Duration
	Summary             string
}

// Expr is the rule's PromQL expression.
func (a Alert) Expr() string {
	e := "(" + a.Measure + ") " + a.Cond
	if a.AndMeasure != "" {
		e = "(" + e + ") and on (job) ((" + a.AndMeasure + ") " + a.AndCond + ")"
	}
	if a.Or != "" {
		e = "(" + e + ") or (" + a.Or + ")"
	}
	return e
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

// Alerts returns the job's alert rules.
func Alerts(s MonitoringSpec) []Alert {
	j := fmt.Sprintf("job=%q", s.Job)
	return []Alert{
		{Name: "SluiceLatencyAboveSLA",
			Measure: `max by (job, pipeline) (sluice_pipeline_latency_seconds{` + j + `})`, Cond: "> " + secs(s.SLALatency),
			For:     s.SLAFor,
			Summary: "Pipeline {{ $labels.pipeline }} of job {{ $labels.job }} is {{ $value | humanizeDuration }} behind, above its SLA of " + s.SLALatency.String() + "."},
		{Name: "SluiceBacklogGrowing",
			Measure: `sum by (job) (deriv(sluice_pipeline_backlog_records{` + j + `}[5m]))`, Cond: "> 0",
			For:     15 * time.Minute,
			Summary: "The backlog of job {{ $labels.job }} has been growing for 15 minutes ({{ $value | humanize }} records/s)."},
		{Name: "SluiceDeadLetters",
			Measure: `sum by (job) (rate(sluice_pipeline_dead_letters_total{` + j + `}[10m]))`, Cond: "> " + strconv.FormatFloat(s.DeadLetters, 'f', -1, 64),
			For:     5 * time.Minute,
			Summary: "Job {{ $labels.job }} sends {{ $value | humanize }} records/s to its dead-letter destination."},
		// A worker that never committed has no commit timestamp at all: the
		// second arm catches it once it has been up (its CPU counter
		// scraped, under the same instance) for three intervals with none,
		// its value those three intervals. A restarted worker's timestamp
		// starts absent again, so a crash loop that never commits fires too.
		{Name: "SluiceNoCheckpoint",
			Measure: `time() - sluice_checkpoint_last_commit_timestamp_seconds{` + j + `}`, Cond: "> " + secs(3*s.CheckpointInterval),
			Or: `0 * (process_cpu_seconds_total{` + j + `} offset ` + promDuration(3*s.CheckpointInterval) + `) + ` + secs(3*s.CheckpointInterval) +
				` unless on (job, instance) sluice_checkpoint_last_commit_timestamp_seconds{` + j + `}`,
			For:     time.Minute,
			Summary: "A worker of job {{ $labels.job }} ({{ $labels.instance }}) has committed no checkpoint for at least {{ $value | humanizeDuration }} (3 intervals: " + (3 * s.CheckpointInterval).String() + ")."},
		{Name: "SluiceSinkFailingPermanently",
			Measure: `sum by (job) (increase(sluice_bundle_flush_failures_total{` + j + `,kind="permanent"}[5m]))`, Cond: "> 0",
			For:     5 * time.Minute,
			Summary: "A sink of job {{ $labels.job }} keeps failing with an error retrying cannot fix (bad credentials, a missing table); its status page names it."},
		{Name: "SluiceWorkersPinnedAtMax",
			Measure: `max by (job) (sluice_scaler_workers{` + j + `,state="desired"}) - on (job) max by (job) (sluice_scaler_workers{` + j + `,state="max"})`, Cond: ">= 0",
			AndMeasure: `max by (job) (sluice_pipeline_backlog_seconds{` + j + `})`, AndCond: "> " + strconv.Itoa(BehindSeconds),
			For:     15 * time.Minute,
			Summary: "Job {{ $labels.job }} runs its maximum of workers and is still behind: raise scaling.max_workers or the worker type."},
	}
}

type ruleGroup struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

type rule struct {
	Record      string            `json:"record,omitempty"`
	Alert       string            `json:"alert,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func groups(s MonitoringSpec) []ruleGroup {
	g := ruleGroup{Name: "sluice-" + s.Job}
	// The job's SLA as a series, for the fleet view's jobs over their SLA.
	g.Rules = append(g.Rules, rule{Record: SLAMetric, Expr: "vector(" + secs(s.SLALatency) + ")", Labels: map[string]string{"job": s.Job}})
	for _, a := range Alerts(s) {
		g.Rules = append(g.Rules, rule{
			Alert: a.Name, Expr: a.Expr(), For: promDuration(a.For),
			Labels:      map[string]string{"severity": "page"},
			Annotations: map[string]string{"summary": a.Summary},
		})
	}
	return []ruleGroup{g}
}

// promDuration writes d as Prometheus does: 5m, 90s, 1h.
func promDuration(d time.Duration) string {
	switch {
	case d == 0:
		return ""
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	case d%time.Minute == 0:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	}
	return strconv.Itoa(int(d.Seconds())) + "s"
}

// RulesFile returns the job's alert rules as a Prometheus rules file.
func RulesFile(s MonitoringSpec) ([]byte, error) {
	return yaml.Marshal(map[string]any{"groups": groups(s)})
}

// PrometheusRule returns the job's alert rules as a prometheus-operator
// PrometheusRule.
func PrometheusRule(s MonitoringSpec) ([]byte, error) {
	return yaml.Marshal(map[string]any{
		"apiVersion": "monitoring.coreos.com/v1",
		"kind":       "PrometheusRule",
		"metadata": map[string]any{
			"name": s.Job + "-sluice", "namespace": s.Namespace,
			"labels": map[string]string{"app.kubernetes.io/name": "sluice", "app.kubernetes.io/instance": s.Job},
		},
		"spec": map[string]any{"groups": groups(s)},
	})
}

// Panel is one dashboard panel: a title and its PromQL queries.
type Panel struct {
	Title, Unit, Description string
	Queries                  []Query
}

// Query is one PromQL expression of a panel with its legend.
type Query struct{ Expr, Legend string }

// JobPanels are the panels of a job's dashboard.
func JobPanels(job string) []Panel {
	j := fmt.Sprintf("job=%q", job)
	return []Panel{
		{Title: "Latency per pipeline", Unit: "s", Description: "Now minus the event time of the oldest record not yet written, over the tasks with input.",
			Queries: []Query{{`max by (pipeline) (sluice_pipeline_latency_seconds{` + j + `})`, "{{pipeline}}"}}},
		{Title: "Records in and out", Unit: "reqps", Description: "Records read, and rows passed to the sinks, per second.",
			Queries: []Query{{`sum(rate(sluice_pipeline_records_in_total{` + j + `}[5m]))`, "in"}, {`sum(rate(sluice_pipeline_records_out_total{` + j + `}[5m]))`, "out"}}},
		{Title: "Backlog records per pipeline", Unit: "short",
			Queries: []Query{{`sum by (pipeline) (sluice_pipeline_backlog_records{` + j + `})`, "{{pipeline}}"}}},
		{Title: "Backlog seconds per pipeline", Unit: "s", Description: "The backlog over the pipeline's recent throughput.",
			Queries: []Query{{`max by (pipeline) (sluice_pipeline_backlog_seconds{` + j + `})`, "{{pipeline}}"}}},
		{Title: "Dead letters", Unit: "reqps",
			Queries: []Query{{`sum(rate(sluice_pipeline_dead_letters_total{` + j + `}[5m]))`, "dead letters"}}},
		{Title: "Sink failures by kind", Unit: "short", Description: "Failed flushes (or opens) of sink writers in 5 minutes: retryable (an outage) or permanent (a mistake).",
			Queries: []Query{{`sum by (kind) (increase(sluice_bundle_flush_failures_total{` + j + `}[5m]))`, "{{kind}}"}}},
		{Title: "Checkpoint age", Unit: "s", Description: "Since each worker's last committed checkpoint.",
			Queries: []Query{{`time() - sluice_checkpoint_last_commit_timestamp_seconds{` + j + `}`, "{{instance}}"}}},
		{Title: "Checkpoint duration and size", Unit: "s",
			Queries: []Query{{`max(sluice_checkpoint_last_duration_seconds{` + j + `})`, "duration"}, {`max(sluice_checkpoint_bytes{` + j + `})`, "bytes"}}},
		{Title: "Checkpoint failures", Unit: "short",
			Queries: []Query{{`sum(increase(sluice_checkpoint_cycle_failures_total{` + j + `}[15m]))`, "failures"}}},
		{Title: "Workers: ready, desired, max", Unit: "short", Description: "From the coordinator.",
			Queries: []Query{{`max by (state) (sluice_scaler_workers{` + j + `})`, "{{state}}"}}},
		{Title: "Throughput per vCPU", Unit: "reqps",
			Queries: []Query{{`sum(rate(sluice_pipeline_records_in_total{` + j + `}[5m])) / sum(rate(process_cpu_seconds_total{` + j + `}[5m]))`, "records/s per vCPU"}}},
	}
}

// JobInfo is the info metric that carries each job's tenant and
// application: sluice_job_info{job, tenant, application} 1, one series per
// job, exported by whoever knows the fleet (the operator from each
// SluiceJob's labels, the coordinator from its configuration), never by the
// workers, so that a label costs no series per worker or pipeline. Queries
// join it in: X * on (job) group_left (tenant, application) JobInfo.
const JobInfo = "sluice_job_info"

// SLAMetric is the recorded series holding a job's latency SLA in seconds,
// written by the job's rules file (a recording rule), so that the fleet
// view can count the jobs over their own SLA.
const SLAMetric = "sluice_job_sla_latency_seconds"

// Variable is a dashboard variable over a label's values, with All (any
// value, and none) as its default.
type Variable struct{ Name, Label, Query string }

// FleetVariables are the fleet dashboard's variables: $tenant and
// $application, from the info metric.
func FleetVariables() []Variable {
	return []Variable{
		{Name: "tenant", Label: "tenant", Query: `label_values(` + JobInfo + `, tenant)`},
		{Name: "application", Label: "application", Query: `label_values(` + JobInfo + `{tenant=~"$tenant"}, application)`},
	}
}

// fleetInfo is the info metric of the jobs the variables select, one series
// per job (max by: the operator and a coordinator may both export it).
const fleetInfo = `max by (job, tenant, application) (` + JobInfo + `{tenant=~"$tenant",application=~"$application"})`

// byTenant joins the tenant and application of each job into a per-job
// expression and keeps the jobs the variables select.
func byTenant(perJob string) string {
	return "(" + perJob + ") * on (job) group_left (tenant, application) " + fleetInfo
}

// FleetPanels are the panels of the fleet dashboard: every job a
// Prometheus scrapes, with its tenant and application. Their queries hold
// the variables $tenant and $application (".*" selects all).
func FleetPanels() []Panel {
	latency := `max by (job) (sluice_pipeline_latency_seconds)`
	return []Panel{
		{Title: "Jobs over their SLA by tenant and application", Unit: "short", Description: "Jobs whose worst pipeline latency is above the SLA of their job file (" + SLAMetric + ", recorded by each job's rules).",
			Queries: []Query{{`sum by (tenant, application) (` + byTenant(latency+` > bool on (job) max by (job) (`+SLAMetric+`)`) + `)`, "{{tenant}} / {{application}}"}}},
		{Title: "Worst latency by tenant and application", Unit: "s",
			Queries: []Query{{`max by (tenant, application) (` + byTenant(latency) + `)`, "{{tenant}} / {{application}}"}}},
		{Title: "Backlog by tenant and application", Unit: "short", Description: "Records not yet written, summed over the jobs of each tenant and application.",
			Queries: []Query{{`sum by (tenant, application) (` + byTenant(`sum by (job) (sluice_pipeline_backlog_records)`) + `)`, "{{tenant}} / {{application}}"}}},
		{Title: "Worst backlog seconds by tenant and application", Unit: "s",
			Queries: []Query{{`max by (tenant, application) (` + byTenant(`max by (job) (sluice_pipeline_backlog_seconds)`) + `)`, "{{tenant}} / {{application}}"}}},
		{Title: "Jobs with the highest latency", Unit: "s",
			Queries: []Query{{`topk(20, ` + byTenant(latency) + `)`, "{{tenant}} / {{application}} / {{job}}"}}},
		{Title: "Jobs with the largest backlog", Unit: "s", Description: "Backlog in seconds of throughput.",
			Queries: []Query{{`topk(20, ` + byTenant(`max by (job) (sluice_pipeline_backlog_seconds)`) + `)`, "{{tenant}} / {{application}} / {{job}}"}}},
		{Title: "Throughput per vCPU by job", Unit: "reqps",
			Queries: []Query{{byTenant(`sum by (job) (rate(sluice_pipeline_records_in_total[5m])) / sum by (job) (rate(process_cpu_seconds_total[5m]))`), "{{tenant}} / {{application}} / {{job}}"}}},
		{Title: "Workers ready vs desired by job", Unit: "short",
			Queries: []Query{{byTenant(`max by (job) (sluice_scaler_workers{state="ready"})`), "{{job}} ready"}, {byTenant(`max by (job) (sluice_scaler_workers{state="desired"})`), "{{job}} desired"}}},
		{Title: "Autoscaler decisions", Unit: "short",
			Queries: []Query{{byTenant(`sum by (job, direction) (increase(sluice_scaler_decisions_total[15m]))`), "{{job}} {{direction}}"}}},
		{Title: "Jobs failing a sink permanently", Unit: "short",
			Queries: []Query{{byTenant(`sum by (job) (increase(sluice_bundle_flush_failures_total{kind="permanent"}[15m]))`), "{{tenant}} / {{application}} / {{job}}"}}},
	}
}

// Dashboard builds a Grafana dashboard of variables and panels with the
// foundation SDK and returns its JSON.
func Dashboard(uid, title string, vars []Variable, panels []Panel) ([]byte, error) {
	b := dashboard.NewDashboardBuilder(title).Uid(uid).Tags([]string{"sluice"}).
		Refresh("30s").Time("now-3h", "now").Timezone(common.TimeZoneBrowser)
	for _, v := range vars {
		q := v.Query
		b = b.WithVariable(dashboard.NewQueryVariableBuilder(v.Name).Label(v.Label).
			Query(dashboard.StringOrMap{String: &q}).Definition(q).
			Multi(true).IncludeAll(true).AllValue(".*").
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc))
	}
	for _, p := range panels {
		var targets []cog.Builder[variants.Dataquery]
		for i, q := range p.Queries {
			targets = append(targets, prometheus.NewDataqueryBuilder().Expr(q.Expr).LegendFormat(q.Legend).RefId(string(rune('A'+i))))
		}
		pb := timeseries.NewPanelBuilder().Title(p.Title).Unit(p.Unit).Min(0).Height(8).Span(12).Targets(targets)
		if p.Description != "" {
			pb = pb.Description(p.Description)
		}
		b = b.WithPanel(pb)
	}
	d, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("deploy: dashboard %s: %w", uid, err)
	}
	return json.MarshalIndent(d, "", "  ")
}

// JobDashboard is the Grafana JSON of a job's dashboard.
func JobDashboard(job string) ([]byte, error) {
	return Dashboard("sluice-job-"+job, "sluice job "+job, nil, JobPanels(job))
}

// FleetDashboard is the Grafana JSON of the fleet dashboard.
func FleetDashboard() ([]byte, error) {
	return Dashboard("sluice-fleet", "sluice fleet", FleetVariables(), FleetPanels())
}
