package scaler

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// cpuMetric is the counter read from every worker.
const cpuMetric = "process_cpu_seconds_total"

// scrapePods reads process_cpu_seconds_total from every target URL (a pod's
// /metrics), concurrently, and returns the counters by target. A target that
// fails is left out: its pod then has no rate and does not count.
func scrapePods(ctx context.Context, hc *http.Client, targets map[string]string) map[string]float64 {
	out := make(map[string]float64, len(targets))
	for pod, f := range Scrape(ctx, hc, targets) {
		if v, ok := f.Largest(cpuMetric); ok {
			out[pod] = v
		}
	}
	return out
}

// queryPrometheus reads the workers' CPU counters from a Prometheus server's
// HTTP API instead of scraping the pods: an instant query of
// process_cpu_seconds_total for the job's pods, by pod.
func queryPrometheus(ctx context.Context, hc *http.Client, base, namespace, job string) (map[string]float64, error) {
	q := fmt.Sprintf(`max by (pod) (%s{namespace=%q, pod=~%q})`, cpuMetric, namespace, job+"-[0-9]+")
	u := strings.TrimSuffix(base, "/") + "/api/v1/query?query=" + url.QueryEscape(q)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("prometheus query: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("prometheus query: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("prometheus query: decode: %w", err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("prometheus query: %s", body.Error)
	}
	out := make(map[string]float64, len(body.Data.Result))
	for _, r := range body.Data.Result {
		s, ok := r.Value[1].(string)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			continue
		}
		out[r.Metric["pod"]] = v
	}
	return out, nil
}
