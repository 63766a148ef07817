package operator_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
)

// BenchmarkOperatorFleet creates 1,000 SluiceJobs at once and reports the
// seconds until every one is reconciled (its StatefulSet created, its
// status written), the operator's peak RSS, the API server's request rate
// at steady state (apiserver_request_total, every client included: the
// controller manager and leases too), and the latency of listing the 1,000
// jobs by label through the jobs client's cache. No kubelet runs: the
// controller manager creates the pods and they stay Pending.
func BenchmarkOperatorFleet(b *testing.B) {
	const fleet = 1000
	for range b.N {
		e := newEnvWith(b, setup{partitions: 1, operatorArgs: []string{"--workers", "8"}})
		ctx := context.Background()
		// The request rate with the operator idle: the control plane's own
		// traffic (controller manager, leases), which the fleet adds to.
		time.Sleep(5 * time.Second)
		const span = 30 * time.Second
		b0 := apiRequests(b)
		time.Sleep(span)
		baseline := (apiRequests(b) - b0) * float64(time.Minute) / float64(span)
		start := time.Now()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i := range fleet {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				j := e.newJob(fmt.Sprintf("job-%04d", i), "SELECT id, tenant FROM input", nil)
				j.Labels[v1alpha1.LabelTenant] = fmt.Sprintf("tenant-%d", i%50)
				j.Labels["bench"] = "fleet"
				if err := e.jobs.Apply(ctx, j); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		deadline := time.Now().Add(5 * time.Minute)
		for {
			list, err := e.jobs.List("bench=fleet")
			if err != nil {
				b.Fatal(err)
			}
			done := 0
			for _, j := range list {
				if j.Status.ObservedGeneration == j.Generation && j.Status.SpecHash != "" {
					done++
				}
			}
			if done == fleet {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d jobs reconciled after 5 minutes", done, fleet)
			}
			time.Sleep(200 * time.Millisecond)
		}
		reconciled := time.Since(start)
		sets, err := e.kube.AppsV1().StatefulSets(e.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if len(sets.Items) != fleet {
			b.Fatalf("%d StatefulSets, want %d", len(sets.Items), fleet)
		}

		// Steady state: no change for a while, then count requests.
		time.Sleep(10 * time.Second)
		by0 := apiRequestsBy(b)
		time.Sleep(span)
		by1 := apiRequestsBy(b)
		var perMinute float64
		for k, v := range by1 {
			if d := (v - by0[k]) * float64(time.Minute) / float64(span); d >= 1 {
				perMinute += d
				b.Logf("steady state: %6.0f requests/min %s", d, k)
			}
		}

		var lat []time.Duration
		for range 200 {
			t0 := time.Now()
			l, err := e.jobs.List("bench=fleet")
			lat = append(lat, time.Since(t0))
			if err != nil || len(l) != fleet {
				b.Fatalf("list: %d jobs, %v", len(l), err)
			}
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(reconciled.Seconds(), "s_to_reconciled")
		b.ReportMetric(float64(e.operatorPeakRSS())/(1<<20), "operator_peak_MiB")
		b.ReportMetric(perMinute, "apiserver_requests/min")
		b.ReportMetric(baseline, "apiserver_idle_requests/min")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "list_p50_ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "list_p99_ms")
	}
}

// apiRequests sums apiserver_request_total from the API server's /metrics.
func apiRequests(b *testing.B) float64 {
	var sum float64
	for _, v := range apiRequestsBy(b) {
		sum += v
	}
	return sum
}

// apiRequestsBy is apiserver_request_total by verb and resource.
func apiRequestsBy(b *testing.B) map[string]float64 {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, _ := http.NewRequest(http.MethodGet, cp.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+cp.AdminToken)
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	by := map[string]float64{}
	label := func(line, name string) string {
		_, rest, ok := strings.Cut(line, name+`="`)
		if !ok {
			return ""
		}
		v, _, _ := strings.Cut(rest, `"`)
		return v
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			by[label(line, "verb")+" "+label(line, "resource")+"/"+label(line, "subresource")] += v
		}
	}
	return by
}

// operatorPeakRSS is the operator process's VmHWM, bytes.
func (e *env) operatorPeakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.operatorPID))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
