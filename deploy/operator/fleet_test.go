package operator_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
	"github.com/sluicehq/sluice/deploy/kubetest"
)

// BenchmarkOperatorFleet creates 1,000 SluiceJobs at once and reports the
// seconds until every one is reconciled (its StatefulSet created, its
// status written), the operator's peak RSS, the latency of listing the
// 1,000 jobs by label through the jobs client's cache, and the API
// server's request rate at steady state (apiserver_request_total, every
// client included: the controller manager and leases too) with 100 and
// with 1,000 jobs running, which should be the same.
//
// For the steady state a kubelet that starts no process (Pretend) reports
// every pod Running and Ready, so that every job is Running and the
// autoscaler evaluates each of them every --interval, as it would in a
// cluster; no record flows, so nothing changes and the operator should
// write nothing. The reconcile figure is taken before that kubelet starts.
func BenchmarkOperatorFleet(b *testing.B) {
	for _, n := range []int{100, 1000} {
		// A sub-benchmark each, so that the first fleet's operator and
		// kubelet stop before the second starts.
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			for range b.N {
				f := fleetRun(b, n)
				b.ReportMetric(f.reconciled.Seconds(), "s_to_reconciled")
				b.ReportMetric(float64(f.peakRSS)/(1<<20), "operator_peak_MiB")
				b.ReportMetric(f.steady, "apiserver_steady_requests/min")
				b.ReportMetric(f.operator, "operator_steady_requests/min")
				b.ReportMetric(f.idle, "apiserver_idle_requests/min")
				b.ReportMetric(float64(f.listP50.Microseconds())/1000, "list_p50_ms")
				b.ReportMetric(float64(f.listP99.Microseconds())/1000, "list_p99_ms")
			}
		})
	}
}

// fleetFigures are what one fleetRun measured.
type fleetFigures struct {
	reconciled       time.Duration
	peakRSS          int64
	idle, steady     float64 // API requests per minute, every client
	operator         float64 // the share of steady only the operator makes
	listP50, listP99 time.Duration
}

// fleetRun runs a fleet of n jobs in a namespace of its own and measures it.
func fleetRun(b *testing.B, n int) fleetFigures {
	var f fleetFigures
	// The autoscaler's default interval: a fleet is evaluated every 15 s.
	e := newEnvWith(b, setup{partitions: 1, operatorArgs: []string{"--interval", "15s"}})
	ctx := context.Background()
	// The request rate with the operator idle: the control plane's own
	// traffic (controller manager, leases, earlier fleets at rest).
	time.Sleep(5 * time.Second)
	const span = 30 * time.Second
	f.idle = requestRate(b, span, "idle", n)

	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
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
	e.waitFleet(n, "reconciled", func(j *v1alpha1.SluiceJob) bool {
		return j.Status.ObservedGeneration == j.Generation && j.Status.SpecHash != ""
	})
	f.reconciled = time.Since(start)
	sets, err := e.kube.AppsV1().StatefulSets(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if len(sets.Items) != n {
		b.Fatalf("%d StatefulSets, want %d", len(sets.Items), n)
	}
	fmt.Printf("fleet of %d: reconciled in %s\n", n, f.reconciled.Round(time.Millisecond))

	// Every pod Running and Ready, so every job Running and autoscaled.
	var kerr error
	e.kubelet, kerr = kubetest.StartKubelet(cp.REST(), kubetest.KubeletOptions{Namespace: e.ns, Dir: b.TempDir(), Pretend: true})
	if kerr != nil {
		b.Fatal(kerr)
	}
	b.Cleanup(e.kubelet.Stop)
	running := time.Now()
	e.waitFleet(n, "running", func(j *v1alpha1.SluiceJob) bool {
		return j.Status.Phase == v1alpha1.PhaseRunning && j.Status.ReadyWorkers == 1
	})
	fmt.Printf("fleet of %d: running %s later\n", n, time.Since(running).Round(time.Millisecond))

	// Steady state: nothing changes. Two autoscaler intervals, then until
	// the controller manager has caught up with the fleet's pods (its
	// disruption controller writes every PDB's status and events, one
	// worker, after the pods became ready), at most three minutes; then
	// count.
	time.Sleep(20 * time.Second)
	for settle := time.Now(); time.Since(settle) < 3*time.Minute; {
		by0 := apiRequestsBy(b)
		time.Sleep(10 * time.Second)
		by1 := apiRequestsBy(b)
		if rate, _ := perMinute(by0, by1, 10*time.Second); rate < f.idle+60 {
			break
		}
	}
	by0 := apiRequestsBy(b)
	time.Sleep(span)
	by1 := apiRequestsBy(b)
	f.steady, f.operator = perMinute(by0, by1, span)
	for _, k := range slices.Sorted(maps.Keys(by1)) {
		if d := (by1[k] - by0[k]) * float64(time.Minute) / float64(span); d > 0 {
			fmt.Printf("fleet of %d, steady state: %7.1f requests/min %s\n", n, d, k)
		}
	}
	fmt.Printf("fleet of %d, steady state: %7.1f requests/min in all, %.1f the operator's\n", n, f.steady, f.operator)

	var lat []time.Duration
	for range 200 {
		t0 := time.Now()
		l, err := e.jobs.List("bench=fleet")
		lat = append(lat, time.Since(t0))
		if err != nil || len(l) != n {
			b.Fatalf("list: %d jobs, %v", len(l), err)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	f.listP50, f.listP99 = lat[len(lat)/2], lat[len(lat)*99/100]
	f.peakRSS = e.operatorPeakRSS()
	return f
}

// perMinute is the rate of the requests between two samples of
// apiRequestsBy: all of them, and those only the operator makes (anything
// on SluiceJobs, and writes of the kinds it owns other than their status,
// which the controller manager writes).
func perMinute(by0, by1 map[string]float64, span time.Duration) (all, operator float64) {
	for k, v := range by1 {
		d := (v - by0[k]) * float64(time.Minute) / float64(span)
		all += d
		verb, rest, _ := strings.Cut(k, " ")
		res, _, _ := strings.Cut(rest, " ")
		resource, sub, _ := strings.Cut(res, "/")
		owned := slices.Contains([]string{"statefulsets", "configmaps", "services", "poddisruptionbudgets", "serviceaccounts"}, resource) &&
			sub == "" && slices.Contains([]string{"POST", "PUT", "PATCH", "DELETE"}, verb)
		if resource == v1alpha1.Resource || owned {
			operator += d
		}
	}
	return all, operator
}

// waitFleet waits until cond holds for every job of the fleet.
func (e *env) waitFleet(n int, what string, cond func(*v1alpha1.SluiceJob) bool) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		list, err := e.jobs.List("bench=fleet")
		if err != nil {
			e.t.Fatal(err)
		}
		done := 0
		for _, j := range list {
			if cond(j) {
				done++
			}
		}
		if done == n {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d of %d jobs %s after 5 minutes", done, n, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// requestRate counts the API server's requests over span and returns them
// per minute, logging the rate of each verb and resource.
func requestRate(b *testing.B, span time.Duration, what string, n int) float64 {
	by0 := apiRequestsBy(b)
	time.Sleep(span)
	by1 := apiRequestsBy(b)
	var perMinute float64
	// Straight to stdout: a benchmark's log keeps only its first lines.
	for _, k := range slices.Sorted(maps.Keys(by1)) {
		if d := (by1[k] - by0[k]) * float64(time.Minute) / float64(span); d > 0 {
			perMinute += d
			fmt.Printf("fleet of %d, %s: %7.1f requests/min %s\n", n, what, d, k)
		}
	}
	fmt.Printf("fleet of %d, %s: %7.1f requests/min in all\n", n, what, perMinute)
	return perMinute
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
			by[label(line, "verb")+" "+label(line, "resource")+"/"+label(line, "subresource")+" "+label(line, "code")] += v
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
