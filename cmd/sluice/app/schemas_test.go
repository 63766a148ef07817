package app

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/bench/gen"
)

// TestTwoWriterSchemasEndToEnd: topics receive records of two writer schema
// versions (traffic.avsc and traffic_v2.avsc), one topic with registry
// framing, one with the schema in a header. A job reading both with the v2
// reader schema decodes every record into the same reader rows, end to end
// over kfake, with no restart.
func TestTwoWriterSchemasEndToEnd(t *testing.T) {
	root := repoRoot(t)
	v1, err := os.ReadFile(filepath.Join(root, "examples/schemas/traffic.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := os.ReadFile(filepath.Join(root, "examples/schemas/traffic_v2.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		schemas := map[string][]byte{"/schemas/ids/1": v1, "/schemas/ids/2": v2}
		s, ok := schemas[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"schema": string(s)})
	}))
	defer registry.Close()

	cluster, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(2, "t.registry", "t.header"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const perTopic = 2000
	g := gen.New(3)
	var recs []*kgo.Record
	for i := 0; i < perTopic; i++ {
		r := g.Next()
		r.SequenceNumber = int64(i)
		body, id, schema := r.AppendAvro(nil), uint32(1), v1
		if i%2 == 1 {
			body, id, schema = r.AppendAvroV2(nil), 2, v2
		}
		framed := binary.BigEndian.AppendUint32([]byte{0}, id)
		recs = append(recs,
			&kgo.Record{Topic: "t.registry", Value: append(framed, body...)},
			&kgo.Record{Topic: "t.header", Value: body, Headers: []kgo.RecordHeader{{Key: "sluice.schema", Value: schema}}})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	t.Chdir(dir) // the default dead-letter files are relative to the working directory
	os.WriteFile(filepath.Join(dir, "v2.avsc"), v2, 0o644)
	job := filepath.Join(dir, "job.yaml")
	pipeline := func(name, topic, mode string) string {
		return fmt.Sprintf(`  - name: %s
    source: {kafka: {topics: [%s], stop_at: end}}
    format: {avro: {schema_file: v2.avsc, writer_schema: %s}}
    sql: SELECT sequence_number, repeat_count, xff_ip, rule_uuid FROM input
    sinks: [{file: {path: %s/%s.jsonl}}]
`, name, topic, mode, dir, name)
	}
	os.WriteFile(job, []byte(fmt.Sprintf("job: schemas\nkafka: {brokers: [%s], schema_registry: {url: %s}}\ncheckpoint: {store: file://%s/ckpt}\nmetrics: {listen: \"off\"}\npipelines:\n%s%s",
		cluster.ListenAddrs()[0], registry.URL, dir, pipeline("registry", "t.registry", "registry"), pipeline("header", "t.header", "header"))), 0o644)
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"run", job}, &stdout, &stderr); code != 0 {
		t.Fatalf("sluice run exit %d:\n%s", code, stderr.String())
	}
	for _, name := range []string{"registry", "header"} {
		lines := readLines(t, filepath.Join(dir, name+".jsonl"))
		if len(lines) != perTopic {
			t.Fatalf("%s: %d rows, want %d; dead letters in %s/.sluice/dlq?\n%s", name, len(lines), perTopic, dir, stderr.String())
		}
		seen := map[int64]bool{}
		for _, l := range lines {
			var row struct {
				SequenceNumber int64   `json:"sequence_number"`
				RepeatCount    int64   `json:"repeat_count"`
				XffIP          *string `json:"xff_ip"`
				RuleUUID       *string `json:"rule_uuid"`
			}
			if err := json.Unmarshal([]byte(l), &row); err != nil {
				t.Fatalf("%s: %q: %v", name, l, err)
			}
			if row.XffIP == nil || row.RepeatCount < 1 {
				t.Fatalf("%s: row %q lacks the reader's fields", name, l)
			}
			if row.SequenceNumber%2 == 0 && (*row.XffIP != "" || row.RuleUUID != nil) {
				t.Fatalf("%s: a v1 record's v2-only fields must be the reader defaults, got %q", name, l)
			}
			seen[row.SequenceNumber] = true
		}
		if len(seen) != perTopic {
			t.Fatalf("%s: %d distinct records, want %d", name, len(seen), perTopic)
		}
	}
}
