package app

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestRenderWiresSecrets: every ${NAME} of the job becomes an env var from
// the Secret <job>-env, a password_file is mounted from <job>-files, no value
// of this machine's environment reaches the output, and with
// metrics.listen: off there is no port and no HTTP probe.
func TestRenderWiresSecrets(t *testing.T) {
	t.Setenv("KPW", "kafka-secret-value")
	t.Setenv("SIEM_TOKEN", "siem-secret-value")
	dir := t.TempDir()
	body := `job: acme
kafka:
  brokers: [kafka:9092]
  sasl: {mechanism: SCRAM-SHA-512, username: sluice, password: "${KPW}"}
  schema_registry: {url: "http://reg:8081", username: u, password_file: /run/secrets/registry}
%s
pipelines:
  - name: p
    source: {kafka: {topics: [t]}}
    format: {avro: {schema_file: traffic.avsc}}
    sql: SELECT src_ip FROM input
    sinks:
      - https: {url: "https://siem.example/ingest", headers: {Authorization: "Bearer ${SIEM_TOKEN}"}}
`
	for _, tt := range []struct {
		name, metrics string
		probes        bool
	}{{"metrics on", "", true}, {"metrics off", `metrics: {listen: "off"}`, false}} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeJob(t, dir, fmt.Sprintf(body, tt.metrics))
			var stdout, stderr bytes.Buffer
			if code := Main(context.Background(), []string{"render", path}, &stdout, &stderr); code != 0 {
				t.Fatalf("render exit %d: %s", code, stderr.String())
			}
			out := stdout.String()
			for _, secret := range []string{"kafka-secret-value", "siem-secret-value"} {
				if strings.Contains(out, secret) {
					t.Errorf("render output holds the value of a secret %q", secret)
				}
			}
			for _, want := range []string{
				"name: KPW\n          valueFrom:\n            secretKeyRef:\n              key: KPW\n              name: acme-env",
				"name: SIEM_TOKEN\n          valueFrom:\n            secretKeyRef:\n              key: SIEM_TOKEN\n              name: acme-env",
				"mountPath: /run/secrets/registry\n            name: secret-files\n            readOnly: true\n            subPath: registry",
				"secretName: acme-files",
			} {
				if !strings.Contains(squeeze(out), squeeze(want)) {
					t.Errorf("render output lacks\n%s\n---\n%s", want, out)
				}
			}
			var sts string
			for _, doc := range strings.Split(out, "---\n") {
				if strings.Contains(doc, "kind: StatefulSet") {
					sts = doc
				}
			}
			if got := strings.Contains(sts, "httpGet:") || strings.Contains(sts, "containerPort:"); got != tt.probes {
				t.Errorf("probes and port rendered: %v, want %v", got, tt.probes)
			}
		})
	}
}

// squeeze joins the lines of s with their indentation removed.
func squeeze(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		b.WriteString(strings.TrimSpace(l))
		b.WriteByte('|')
	}
	return b.String()
}

// TestRenderShipsSchemaFiles: the schema files a job names by a relative
// path are in its ConfigMap and mounted beside the job file, as the
// operator ships a SluiceJob's files.
func TestRenderShipsSchemaFiles(t *testing.T) {
	var stdout, stderr bytes.Buffer
	path := repoRoot(t) + "/examples/multi.yaml"
	if code := Main(context.Background(), []string{"render", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("render exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{
		"file-schemas.traffic.avsc: |",
		"- key: job.yaml\n  path: job.yaml\n- key: file-schemas.traffic.avsc\n  path: schemas/traffic.avsc",
	} {
		if !strings.Contains(squeeze(stdout.String()), squeeze(want)) {
			t.Errorf("render output lacks\n%s\n---\n%s", want, stdout.String())
		}
	}
}
