package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/deploy"
	"github.com/sluicehq/sluice/scaler"
)

// TestDashboardQueries runs every PromQL expression of the rendered
// dashboards, and every measure of the rendered alert rules (an alert's
// expression without its threshold: a silent alert's full expression is
// empty by design), against the real Prometheus after it scraped a running
// worker and loaded the job's rules file, and requires each to return
// something; the fleet view's, joined with sluice_job_info, must carry the
// job's tenant and application. The coordinator's series (sluice_scaler_*,
// sluice_job_info) come from a coordinator's own metrics, served beside the
// worker: it exports the job's info from its configuration; the rest of
// its values are set here, as a coordinator needs a Kubernetes API server
// to decide anything.
func TestDashboardQueries(t *testing.T) {
	prom := sharedPrometheus(t)
	j := startObsJob(t, prom)
	stop := j.traffic()
	defer stop()

	reg := prometheus.NewRegistry()
	sm := scaler.NewMetrics(reg)
	if _, err := scaler.NewCoordinator(scaler.Config{Namespace: "default", Identity: "coordinator-0",
		Jobs: []scaler.JobConfig{{Name: "obs", Tenant: "acme", Application: "firewall", Topics: []string{slowTopic, fastTopic}, MetricsURLs: map[string]string{"obs-0": "http://" + j.metrics + "/metrics"}}}},
		nil, nil, slog.New(slog.DiscardHandler), sm); err != nil {
		t.Fatal(err)
	}
	for state, n := range map[string]float64{"current": 2, "ready": 2, "desired": 2, "max": 4} {
		sm.Workers.WithLabelValues("obs", state).Set(n)
	}
	sm.Desired.WithLabelValues("obs").Set(2)
	sm.Decisions.WithLabelValues("obs", "none").Inc()
	coord := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(coord.Close)
	prom.target(t, strings.TrimPrefix(coord.URL, "http://"))

	spec := deploy.MonitoringSpec{Job: "obs", SLALatency: 30 * time.Second, SLAFor: time.Minute, DeadLetters: 1, CheckpointInterval: 2 * time.Second}
	rules, err := deploy.RulesFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	prom.rules(t, "obs", rules)

	// The dashboards' variables at All.
	all := strings.NewReplacer("$tenant", ".*", "$application", ".*")
	var queries, fleet, silent []string
	for _, p := range deploy.JobPanels("obs") {
		for _, q := range p.Queries {
			queries = append(queries, q.Expr)
		}
	}
	for _, p := range deploy.FleetPanels() {
		for _, q := range p.Queries {
			queries = append(queries, all.Replace(q.Expr))
			fleet = append(fleet, all.Replace(q.Expr))
		}
	}
	for _, v := range deploy.FleetVariables() {
		// label_values(M, L) is Grafana's: M must answer with label L.
		m := strings.TrimSuffix(strings.TrimPrefix(v.Query, "label_values("), ", "+v.Name+")")
		queries = append(queries, all.Replace(m))
	}
	for _, a := range deploy.Alerts(spec) {
		queries = append(queries, a.Measure)
		if a.AndMeasure != "" {
			queries = append(queries, a.AndMeasure)
		}
		if a.Or != "" {
			silent = append(silent, a.Or) // empty while the job commits; it must parse
		}
	}
	// Wait until every query answers (rates need two scrapes, checkpoint
	// series the first commit), then require all of them at once.
	deadline := time.Now().Add(60 * time.Second)
	var empty []string
	for {
		empty = empty[:0]
		for _, q := range queries {
			if len(prom.query(t, q)) == 0 {
				empty = append(empty, q)
			}
		}
		if len(empty) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for _, q := range empty {
		t.Errorf("no result: %s", q)
	}
	for _, q := range fleet {
		for _, s := range prom.query(t, q) {
			if s.labels["tenant"] != "acme" || s.labels["application"] != "firewall" {
				t.Errorf("fleet query %s: a result without the job's tenant and application: %v", q, s.labels)
			}
		}
	}
	for _, q := range silent {
		prom.query(t, q)
	}
	t.Logf("%d queries answered", len(queries))
}

// TestMetricsCardinality runs a job of 10 pipelines over 600 partitions and
// counts the series its worker exports: at most 40 by default (3 per
// pipeline, 10 per job for this job, which has no shuffle), every task's with metrics.per_partition.
func TestMetricsCardinality(t *testing.T) {
	var topics []string
	for i := range 10 {
		topics = append(topics, fmt.Sprintf("t%d", i))
	}
	kc, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(60, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for _, topic := range topics {
		for p := range int32(60) {
			prod.Produce(context.Background(), &kgo.Record{Topic: topic, Partition: p, Value: []byte(`{"p": 1, "seq": 1}`)}, nil)
		}
	}
	if err := prod.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, perPartition := range []bool{false, true} {
		t.Run(fmt.Sprintf("per_partition=%v", perPartition), func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "ev.avsc"), []byte(obsSchema), 0o644)
			addr := freeAddr(t)
			job := "wide"
			if perPartition {
				job = "wide-pp" // its own group: it reads the records again
			}
			var b strings.Builder
			fmt.Fprintf(&b, "job: %s\nkafka: {brokers: [%s]}\ncheckpoint: {store: file://%s/ckpt, interval: 1s}\nmetrics: {listen: %q, admin_listen: \"off\", per_partition: %v}\npipelines:\n",
				job, kc.ListenAddrs()[0], dir, addr, perPartition)
			for i, topic := range topics {
				fmt.Fprintf(&b, "  - name: p%d\n    source: {kafka: {topics: [%s]}}\n    format: {json: {schema_file: ev.avsc}}\n    sql: SELECT p, seq FROM input\n    sinks: [{file: {path: out%d.jsonl, format: json}}]\n", i, topic, i)
			}
			path := filepath.Join(dir, "job.yaml")
			os.WriteFile(path, []byte(b.String()), 0o644)
			c := &cluster{t: t, bin: sharedBinary(t), dir: dir, job: path}
			w := c.start(job + "-0")
			defer c.kill(w)
			var body string
			deadline := time.Now().Add(60 * time.Second)
			for {
				body = scrape(addr)
				done := strings.Contains(body, `sluice_pipeline_records_out_total{job="`+job+`"} 600`)
				if perPartition {
					done = true
					for i := range topics {
						done = done && strings.Contains(body, fmt.Sprintf(`sluice_pipeline_records_out_total{job=%q,pipeline="p%d"} 60`, job, i))
					}
				}
				if done {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("job did not process its 600 records in 60 s; metrics:\n%s\nlogs:\n%s", body, w.logs.String())
				}
				time.Sleep(200 * time.Millisecond)
			}
			time.Sleep(1500 * time.Millisecond) // a checkpoint is committed
			body = scrape(addr)
			n := 0
			for _, line := range strings.Split(body, "\n") {
				if line != "" && !strings.HasPrefix(line, "#") {
					n++
				}
			}
			t.Logf("%d series exported", n)
			if !perPartition && n > 40 {
				t.Errorf("%d series exported by default, want at most 40:\n%s", n, body)
			}
			if perPartition && n < 600 {
				t.Errorf("%d series exported with per_partition, want every task's", n)
			}
		})
	}
}

func scrape(addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
