package scaler

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families is one scrape of a worker's /metrics: its metric families by
// name.
type Families map[string]*dto.MetricFamily

// Largest is the largest value among the series of the family name, and
// whether the family has any series; a counter, gauge or untyped value
// counts.
func (f Families) Largest(name string) (float64, bool) {
	fam, ok := f[name]
	if !ok || len(fam.GetMetric()) == 0 {
		return 0, false
	}
	v := math.Inf(-1)
	for _, s := range fam.GetMetric() {
		switch {
		case s.GetCounter() != nil:
			v = max(v, s.GetCounter().GetValue())
		case s.GetGauge() != nil:
			v = max(v, s.GetGauge().GetValue())
		case s.GetUntyped() != nil:
			v = max(v, s.GetUntyped().GetValue())
		}
	}
	if math.IsInf(v, -1) {
		return 0, false
	}
	return v, true
}

// Scrape reads every target (pod name to its /metrics URL) at once, each
// within 5 s, and returns each pod's families; a pod that does not answer
// or whose exposition does not parse is left out. The Coordinator reads
// CPU from it; the operator reads CPU, latency and the last checkpoint from
// the same scrape.
func Scrape(ctx context.Context, hc *http.Client, targets map[string]string) map[string]Families {
	var (
		mu  sync.Mutex // guards out
		out = make(map[string]Families, len(targets))
		wg  sync.WaitGroup
	)
	for pod, u := range targets {
		wg.Go(func() {
			f, err := scrapeOne(ctx, hc, u)
			if err != nil {
				return
			}
			mu.Lock()
			out[pod] = f
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func scrapeOne(ctx context.Context, hc *http.Client, u string) (Families, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", u, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %s", u, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	f, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: parse metrics: %w", u, err)
	}
	return f, nil
}
