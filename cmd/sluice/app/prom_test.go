package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// promServer is Debian's Prometheus, started once per test process and
// stopped by TestMain. Tests add scrape targets with target(); it scrapes
// every second and keeps the labels sluice exports (honor_labels), as the
// rendered scrape configuration asks.
type promServer struct {
	url  string
	dir  string
	cmd  *exec.Cmd
	mu   sync.Mutex
	next int
}

var (
	promOnce sync.Once
	prom     *promServer
	promErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if prom != nil {
		prom.cmd.Process.Kill()
		prom.cmd.Wait()
		os.RemoveAll(prom.dir)
	}
	os.Exit(code)
}

// sharedPrometheus starts Prometheus on first use.
func sharedPrometheus(t *testing.T) *promServer {
	t.Helper()
	promOnce.Do(func() { prom, promErr = startPrometheus() })
	if promErr != nil {
		t.Fatal(promErr)
	}
	return prom
}

func startPrometheus() (*promServer, error) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		return nil, fmt.Errorf("prometheus not found: install it with `apt-get update && apt-get install -y prometheus`")
	}
	dir, err := os.MkdirTemp("", "sluice-prom")
	if err != nil {
		return nil, err
	}
	os.MkdirAll(filepath.Join(dir, "targets"), 0o755)
	os.MkdirAll(filepath.Join(dir, "rules"), 0o755)
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["%s/rules/*.yml"]
scrape_configs:
  - job_name: sluice
    honor_labels: true
    file_sd_configs: [{files: ["%s/targets/*.json"], refresh_interval: 1s}]
`, dir, dir)
	os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644)
	addr, err := loopbackAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start prometheus: %w", err)
	}
	p := &promServer{url: "http://" + addr, dir: dir, cmd: cmd}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return nil, fmt.Errorf("prometheus not ready after 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// target makes Prometheus scrape addr from now on.
func (p *promServer) target(t *testing.T, addr string) {
	t.Helper()
	p.mu.Lock()
	p.next++
	name := filepath.Join(p.dir, "targets", strconv.Itoa(p.next)+".json")
	p.mu.Unlock()
	b, _ := json.Marshal([]map[string]any{{"targets": []string{addr}}})
	if err := os.WriteFile(name+".tmp", b, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Rename(name+".tmp", name)
}

// rules loads a rules file into Prometheus (written beside its config, then
// SIGHUP) and waits until its groups are evaluated.
func (p *promServer) rules(t *testing.T, name string, content []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(p.dir, "rules", name+".yml"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/api/v1/rules")
		if err == nil {
			var body struct {
				Data struct {
					Groups []struct{ File string }
				}
			}
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			for _, g := range body.Data.Groups {
				if filepath.Base(g.File) == name+".yml" {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not load rules %s in 30 s", name)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// promSample is one sample of one series.
type promSample struct {
	labels map[string]string
	at     time.Time
	value  float64
}

// query runs an instant query at now; a range selector returns every raw
// sample (matrix), anything else one sample per series (vector).
func (p *promServer) query(t *testing.T, q string) []promSample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.url+"/api/v1/query?"+url.Values{"query": {q}}.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status, Error string
		Data          struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string
				Value  []any
				Values [][]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	if body.Status != "success" {
		t.Fatalf("query %s: %s", q, body.Error)
	}
	var out []promSample
	for _, r := range body.Data.Result {
		vals := r.Values
		if r.Value != nil {
			vals = append(vals, r.Value)
		}
		for _, v := range vals {
			ts, _ := v[0].(float64)
			s, _ := v[1].(string)
			f, _ := strconv.ParseFloat(s, 64)
			out = append(out, promSample{labels: r.Metric, at: time.UnixMicro(int64(ts * 1e6)), value: f})
		}
	}
	return out
}

// loopbackAddr returns a loopback address nothing listens on now.
func loopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
