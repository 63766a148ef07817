package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateWindows: a windowed job validates, shuffled (the default
// for a Kafka source) or per partition; a GROUP BY without a window, an
// unknown aggregation mode, a shuffle with what it does not run with yet,
// and a dedup on an unknown column are errors at their line and column.
func TestValidateWindows(t *testing.T) {
	const job = `job: w
kafka: {brokers: ["localhost:9092"]}
pipelines:
  - name: p
    source: {kafka: {topics: [t]}}
    format: {avro: {schema_file: traffic.avsc}}
    event_time: time_generated
%s
    sql: %s
    sinks:
      - file: {path: out/a.jsonl}
`
	const windowed = "SELECT window_start, src_ip, COUNT(*) AS n FROM input GROUP BY TUMBLE(time_generated, '1 minute'), src_ip"
	tests := []struct {
		name, keys, sql string
		want            string // "" when valid
	}{
		{"valid", "    aggregation: per_partition\n    allowed_lateness: 30s\n    dedup: {key: session_id, within: 10m}", windowed, ""},
		{"no window", "    aggregation: per_partition", "SELECT src_ip, COUNT(*) FROM input GROUP BY src_ip", "job.yaml:9:45: sql: GROUP BY needs a window over the event time"},
		{"default mode: shuffle", "    allowed_lateness: 30s", windowed, ""},
		{"shuffle", "    aggregation: shuffle\n    shuffle_partitions: 8", windowed, ""},
		{"bad mode", "    aggregation: global", windowed, "job.yaml:8:18: aggregation must be shuffle or per_partition"},
		{"default shuffle with dedup", "    dedup: {key: session_id, within: 10m}", windowed, "job.yaml:9:10: aggregation: shuffle (the default for a kafka source) does not run with dedup yet; set aggregation: per_partition"},
		{"bad dedup key", "    aggregation: per_partition\n    dedup: {key: nope, within: 10m}", windowed, "dedup: sql: dedup key nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := fmt.Sprintf(job, tt.keys, tt.sql)
			expectValidate(t, writeJob(t, t.TempDir(), body), tt.want)
		})
	}
}

// TestValidateWindowsFileSource: a windowed GROUP BY over a file (one task)
// aggregates per partition by default, which is exact; asking a file source
// for a shuffle is an error that says what to set.
func TestValidateWindowsFileSource(t *testing.T) {
	const job = `job: w
pipelines:
  - name: p
    source: {file: {path: traffic.avro}}
    format: {avro: {schema_file: traffic.avsc}}
    event_time: time_generated
%s
    sql: SELECT window_start, src_ip, COUNT(*) AS n FROM input GROUP BY TUMBLE(time_generated, '1 minute'), src_ip
    sinks:
      - file: {path: out/a.jsonl}
`
	for _, tt := range []struct{ name, keys, want string }{
		{"default", "", ""},
		{"shuffle", "    aggregation: shuffle", "job.yaml:7:18: aggregation: shuffle goes through Kafka and needs a kafka source; a file or generate source is one task, whose aggregation: per_partition is already exact"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeJob(t, dir, fmt.Sprintf(job, tt.keys))
			sample, err := os.ReadFile(filepath.Join(repoRoot(t), "examples/data/traffic-sample.avro"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "traffic.avro"), sample, 0o644); err != nil {
				t.Fatal(err)
			}
			expectValidate(t, path, tt.want)
		})
	}
}

// expectValidate runs sluice validate on path: with want empty it must
// exit 0, otherwise exit 1 with want in what it said.
func expectValidate(t *testing.T, path, want string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"validate", path}, &stdout, &stderr)
	if want == "" {
		if code != 0 {
			t.Fatalf("validate exit %d:\n%s", code, stderr.String())
		}
		return
	}
	if code != 1 || !strings.Contains(stderr.String(), want) {
		t.Fatalf("validate exit %d, said:\n%s\nwant %q", code, stderr.String(), want)
	}
}
