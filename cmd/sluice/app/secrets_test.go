package app

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/bench/gen"
)

// liveJob is a job over an in-process kfake cluster run by Main in this
// process: its stderr, its HTTP endpoints, and a way to stop it.
type liveJob struct {
	dir                   string
	public, admin         string
	stderr                *syncBuffer
	done                  chan int
	cancel                context.CancelFunc
	reg, hdr              string // topics: registry-framed and header-framed records
	registryURL, httpsURL string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startLiveJob produces 50 records to each of two topics, then runs a job of
// two pipelines with sinks the caller writes (YAML list items for pipeline
// "hdr"), serving its endpoints on loopback.
func startLiveJob(t *testing.T, kafkaExtra, hdrSinks string) *liveJob {
	t.Helper()
	root := repoRoot(t)
	schema, err := os.ReadFile(filepath.Join(root, "examples/schemas/traffic.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(1, "t.reg", "t.hdr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	g := gen.New(5)
	var recs []*kgo.Record
	for range 50 {
		body := g.Next().AppendAvro(nil)
		framed := binary.BigEndian.AppendUint32([]byte{0}, 7)
		recs = append(recs,
			&kgo.Record{Topic: "t.reg", Value: append(framed, body...)},
			&kgo.Record{Topic: "t.hdr", Value: body, Headers: []kgo.RecordHeader{{Key: "sluice.schema", Value: schema}}})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	j := &liveJob{dir: t.TempDir(), public: freeAddr(t), admin: freeAddr(t), stderr: &syncBuffer{}, done: make(chan int, 1)}
	t.Chdir(j.dir)
	os.WriteFile(filepath.Join(j.dir, "traffic.avsc"), schema, 0o644)
	job := fmt.Sprintf(`job: live
kafka:
  brokers: [%s]
%s
checkpoint: {store: "file://%s/ckpt", interval: 500ms}
metrics: {listen: "%s", admin_listen: "%s"}
drain: {deadline: 10s}
pipelines:
  - name: reg
    source: {kafka: {topics: [t.reg]}}
    format: {avro: {schema_file: traffic.avsc, writer_schema: registry}}
    sql: SELECT src_ip FROM input
    bundle: {max_records: 10, max_wait: 100ms}
    sinks: [{file: {path: out/reg.jsonl}}]
    dead_letter: {file: {path: out/dlq-reg.jsonl}}
  - name: hdr
    source: {kafka: {topics: [t.hdr]}}
    format: {avro: {schema_file: traffic.avsc, writer_schema: header}}
    sql: SELECT src_ip FROM input
    bundle: {max_records: 10, max_wait: 100ms}
    sinks:
%s
    dead_letter: {file: {path: out/dlq-hdr.jsonl}}
`, kc.ListenAddrs()[0], kafkaExtra, j.dir, j.public, j.admin, hdrSinks)
	path := filepath.Join(j.dir, "job.yaml")
	os.WriteFile(path, []byte(job), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	j.cancel = cancel
	go func() { j.done <- Main(ctx, []string{"run", path}, io.Discard, j.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-j.done:
		case <-time.After(30 * time.Second):
			t.Errorf("sluice run did not end 30 s after its context; logs:\n%s", j.stderr.String())
		}
	})
	// Wait for the public endpoint.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get("http://" + j.public + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		select {
		case code := <-j.done:
			j.done <- code
			t.Fatalf("sluice run exited %d; logs:\n%s", code, j.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /healthz after 20 s; logs:\n%s", j.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return j
}

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDrainEndpointNotPublic: POST /drain is not served on metrics.listen,
// only on metrics.admin_listen (loopback by default), where it drains the
// worker, which then exits 0.
func TestDrainEndpointNotPublic(t *testing.T) {
	j := startLiveJob(t, `  schema_registry: {url: "http://127.0.0.1:1"}`, "      - file: {path: out/hdr.jsonl}")
	if code, body := get(t, http.MethodPost, "http://"+j.public+"/drain"); code == http.StatusOK || strings.Contains(body, "draining") {
		t.Fatalf("POST /drain on the public listener answered %d %q", code, body)
	}
	if code, _ := get(t, http.MethodGet, "http://"+j.public+"/metrics"); code != http.StatusOK {
		t.Fatalf("GET /metrics on the public listener: %d", code)
	}
	select {
	case code := <-j.done:
		t.Fatalf("the worker exited (%d) after a POST /drain on the public listener", code)
	case <-time.After(500 * time.Millisecond):
	}
	if code, body := get(t, http.MethodPost, "http://"+j.admin+"/drain"); code != http.StatusOK || !strings.Contains(body, "draining") {
		t.Fatalf("POST /drain on the admin listener answered %d %q", code, body)
	}
	select {
	case code := <-j.done:
		j.done <- code
		if code != 0 {
			t.Fatalf("drained worker exit %d; logs:\n%s", code, j.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit 30 s after POST /drain; logs:\n%s", j.stderr.String())
	}
}

// TestSecretsNeverPrinted: a registry URL with user:${PW}@, an https sink
// URL with ?api_key=${KEY} and a header from ${TOKEN}, against a registry that
// knows no schema and an endpoint that rejects everything and echoes what it
// was sent: none of the three values appears in the logs, the dead-letter
// files, /metrics, the status page, /readyz or `sluice render`.
func TestSecretsNeverPrinted(t *testing.T) {
	secrets := map[string]string{"PW": "pw-Secret-0001", "KEY": "key-Secret-0002", "TOKEN": "tok-Secret-0003"}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, _ := r.BasicAuth()
		http.Error(w, fmt.Sprintf(`{"error_code":40403,"message":"schema not found (you sent %s %s %s)"}`, user, pw, r.URL), http.StatusNotFound)
	}))
	defer registry.Close()
	siem := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Error(w, "rejected "+r.URL.String()+" "+r.Header.Get("Authorization"), http.StatusBadRequest)
	}))
	defer siem.Close()
	regURL := strings.Replace(registry.URL, "http://", "http://user:${PW}@", 1)
	j := startLiveJob(t,
		fmt.Sprintf("  schema_registry: {url: \"%s\"}", regURL),
		fmt.Sprintf("      - https: {url: \"%s/ingest?api_key=${KEY}\", headers: {Authorization: \"Bearer ${TOKEN}\"}, max_retries: 1}", siem.URL))

	// Wait until both pipelines dead-lettered their records.
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, _ := os.ReadFile(filepath.Join(j.dir, "out/dlq-reg.jsonl"))
		b, _ := os.ReadFile(filepath.Join(j.dir, "out/dlq-hdr.jsonl"))
		if bytes.Count(a, []byte("\n")) >= 50 && bytes.Count(b, []byte("\n")) >= 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters after 30 s: %d and %d lines, want 50 each; logs:\n%s", bytes.Count(a, []byte("\n")), bytes.Count(b, []byte("\n")), j.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	seen := map[string]string{}
	for _, f := range []string{"out/dlq-reg.jsonl", "out/dlq-hdr.jsonl"} {
		b, _ := os.ReadFile(filepath.Join(j.dir, f))
		seen["dead letters "+f] = string(b)
	}
	for _, p := range []string{"/metrics", "/", "/readyz"} {
		_, body := get(t, http.MethodGet, "http://"+j.public+p)
		seen["GET "+p] = body
	}
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"render", filepath.Join(j.dir, "job.yaml")}, &out, &errOut); code != 0 {
		t.Fatalf("render exit %d: %s", code, errOut.String())
	}
	seen["render"] = out.String() + errOut.String()
	if code, _ := get(t, http.MethodPost, "http://"+j.admin+"/drain"); code != http.StatusOK {
		t.Fatalf("drain: %d", code)
	}
	select {
	case code := <-j.done:
		j.done <- code
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit 30 s after POST /drain; logs:\n%s", j.stderr.String())
	}
	seen["logs"] = j.stderr.String()
	if !strings.Contains(seen["dead letters out/dlq-hdr.jsonl"], "status 400") {
		t.Fatalf("the https sink's dead letters do not carry its rejection:\n%s", seen["dead letters out/dlq-hdr.jsonl"])
	}
	for where, text := range seen {
		for name, v := range secrets {
			if strings.Contains(text, v) {
				i := strings.Index(text, v)
				t.Errorf("%s holds the value of ${%s}: ...%s...", where, name, text[max(0, i-200):min(len(text), i+100)])
			}
		}
	}
}
