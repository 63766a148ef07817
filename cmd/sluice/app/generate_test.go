package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/source/generate"
)

// runGenerateJob runs a job file with a generate source in a directory of
// its own, as a user does, and returns the rows of the file sink out.jsonl.
func runGenerateJob(t *testing.T, job string) []string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"run", job}, &stdout, &stderr); code != 0 {
		t.Fatalf("sluice run exit %d:\n%s", code, stderr.String())
	}
	return readLines(t, filepath.Join(dir, "out.jsonl"))
}

// TestGenerateSourceBounded: a generate source with a count is bounded, so
// `sluice run` exits 0 with exactly count rows in the sink; its seed makes
// two runs write identical rows. Both generators are covered: the traffic
// schema's and the random one of any other schema.
func TestGenerateSourceBounded(t *testing.T) {
	root := repoRoot(t)
	jobs := t.TempDir()
	traffic, _ := os.ReadFile(filepath.Join(root, "examples/schemas/traffic.avsc"))
	os.WriteFile(filepath.Join(jobs, "traffic.avsc"), traffic, 0o644)
	os.WriteFile(filepath.Join(jobs, "sensor.avsc"), []byte(`{"type":"record","name":"Sensor","fields":[
		{"name":"id","type":{"type":"string","logicalType":"uuid"}},
		{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
		{"name":"kind","type":{"type":"enum","name":"Kind","symbols":["TEMP","HUMIDITY"]}},
		{"name":"value","type":["null","double"]},
		{"name":"tags","type":{"type":"map","values":"string"}},
		{"name":"place","type":{"type":"record","name":"Place","fields":[{"name":"room","type":"string"},{"name":"floor","type":"int"}]}}]}`), 0o644)
	for _, tc := range []struct {
		name, schema, sql string
		count             int
	}{
		{"traffic", "traffic.avsc", "SELECT sequence_number, src_ip, action FROM input", 5000},
		{"random", "sensor.avsc", "SELECT id, at, kind, value, place.room AS room FROM input", 3000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := filepath.Join(jobs, tc.name+".yaml")
			os.WriteFile(job, []byte(fmt.Sprintf(`job: gen-%s
checkpoint: {store: file://./ckpt, interval: 1s}
metrics: {listen: "off"}
pipelines:
  - name: all
    source:
      generate: {schema: %s, seed: 7, count: %d}
    sql: %s
    bundle: {max_records: 700, max_wait: 100ms}
    sinks:
      - file: {path: out.jsonl, format: json}
`, tc.name, tc.schema, tc.count, tc.sql)), 0o644)
			first := runGenerateJob(t, job)
			if len(first) != tc.count {
				t.Fatalf("sink holds %d rows, want exactly %d", len(first), tc.count)
			}
			second := runGenerateJob(t, job)
			if diff := cmp.Diff(first, second); diff != "" {
				t.Fatalf("two runs with one seed differ (-first +second):\n%s", diff)
			}
			if tc.name == "traffic" {
				// The rows are the traffic generator's records, in order.
				g := generate.NewTraffic(7)
				for i, row := range first {
					r := g.Next()
					want := fmt.Sprintf(`{"sequence_number":%d,"src_ip":%q,"action":%q}`, r.SequenceNumber, r.SrcIP, r.Action)
					if row != want {
						t.Fatalf("row %d is %s, want %s", i, row, want)
					}
				}
			}
		})
	}
}

// TestGenerateExample runs examples/generate.yaml: it exits 0 with the
// denied records among the generator's first 20,000 of seed 42.
func TestGenerateExample(t *testing.T) {
	job, _ := filepath.Abs(filepath.Join(repoRoot(t), "examples", "generate.yaml"))
	dir := t.TempDir()
	t.Chdir(dir)
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"run", job}, &stdout, &stderr); code != 0 {
		t.Fatalf("sluice run exit %d:\n%s", code, stderr.String())
	}
	got := readLines(t, filepath.Join(dir, "out/generate/denied.jsonl"))
	g := generate.NewTraffic(42)
	want := 0
	for range 20000 {
		if g.Next().Action != "ALLOW" {
			want++
		}
	}
	if len(got) != want || want == 0 {
		t.Fatalf("sink holds %d rows, want the %d non-ALLOW records", len(got), want)
	}
}

// TestGenerateValidation: the generate block is checked like every other,
// each mistake at FILE:LINE:COL.
func TestGenerateValidation(t *testing.T) {
	dir := t.TempDir()
	job := filepath.Join(dir, "job.yaml")
	os.WriteFile(job, []byte(`job: gen-bad
pipelines:
  - name: unknown-key
    source: {generate: {schema: traffic.avsc, colour: red}}
    sql: SELECT 1 AS one FROM input
    sinks: [{file: {path: out.jsonl}}]
  - name: negative
    source: {generate: {schema: traffic.avsc, rate: -5, count: -1}}
    sql: SELECT 1 AS one FROM input
    sinks: [{file: {path: out.jsonl}}]
  - name: missing-schema
    source: {generate: {schema: nowhere.avsc}}
    sql: SELECT 1 AS one FROM input
    sinks: [{file: {path: out.jsonl}}]
  - name: no-schema
    source: {generate: {rate: 5}}
    sql: SELECT 1 AS one FROM input
    sinks: [{file: {path: out.jsonl}}]
`), 0o644)
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"validate", job}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, stderr.String())
	}
	for _, want := range []string{
		job + `:4:47: unknown key "colour"`,
		job + ":8:53: generate rate must be 0",
		job + ":8:64: generate count must be 0",
		job + ":12:33: schema: open ",
		job + `:16:24: missing required key "schema"`,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("validate output lacks %q:\n%s", want, stderr.String())
		}
	}
}
