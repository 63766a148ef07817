package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCoordinatorConfigErrors: a --config file is decoded as strictly as a
// job file, and every problem is reported at its FILE:LINE:COL.
func TestCoordinatorConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		seeded     bool // --brokers given
		want       []string
	}{
		{
			name: "unknown top-level key",
			file: "namespace: ns\nbrokers: [k:9092]\nnamespaces: [x]\njobs: [{name: a}]\n",
			want: []string{`:3:1: unknown key "namespaces"`},
		},
		{
			name: "unknown job key and wrong type",
			file: "brokers: [k:9092]\njobs:\n  - name: a\n    max_worker: 3\n    metrics_port: http\n",
			want: []string{`:4:5: unknown key "max_worker"`, `:5:19: expected an integer, got "http"`},
		},
		{
			name: "job without a name",
			file: "brokers: [k:9092]\njobs:\n  - topics: [t]\n",
			want: []string{`:3:5: missing required key "name"`},
		},
		{
			name: "job listed twice",
			file: "brokers: [k:9092]\njobs:\n  - name: a\n  - name: a\n",
			want: []string{`:4:11: job a is listed twice`},
		},
		{
			name: "bounds the policy rejects",
			file: "brokers: [k:9092]\njobs:\n  - name: a\n    min_workers: 9\n    max_workers: 4\n",
			want: []string{`:3:5: job a: policy: max workers 4 must be at least 1 and at least min workers 9`},
		},
		{
			name: "kafka block as in a job file",
			file: "kafka:\n  brokers: [nohost]\n  tls: {ca: x}\n  sasl: {mechanism: MD5}\njobs: [{name: a}]\n",
			want: []string{`:2:12: kafka broker "nohost" must be host:port`, `:3:9: unknown key "ca"`, `:4:21: sasl mechanism "MD5"`},
		},
		{
			name: "kafka block without brokers",
			file: "kafka:\n  tls: {}\njobs: [{name: a}]\n",
			want: []string{`:2:3: missing required key "brokers"`},
		},
		{
			name: "syntax error",
			file: "jobs:\n  - name: [a\n",
			want: []string{`:2:`},
		},
		{
			name: "empty",
			file: "",
			want: []string{`:1:1: the file is empty`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "coordinator.yaml")
			if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := loadCoordinatorFile(path, tc.seeded)
			if err == nil {
				t.Fatal("no error")
			}
			got := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(got, path+w) {
					t.Errorf("error lacks %q:\n%s", path+w, got)
				}
			}
			if n := strings.Count(got, "\n") + 1; n != len(tc.want) {
				t.Errorf("%d errors, want %d:\n%s", n, len(tc.want), got)
			}
		})
	}
}

// TestCoordinatorConfigSeeds: --brokers replaces the kafka block's brokers,
// so a block may leave them out when it is given; a job's tenant and
// application reach its JobConfig.
func TestCoordinatorConfigSeeds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "coordinator.yaml")
	os.WriteFile(path, []byte("namespace: ns\nkafka:\n  tls: {server_name: kafka}\njobs:\n  - name: a\n    metrics_port: 8080\n    tenant: acme\n    application: firewall\n  - name: b\n"), 0o644)
	f := coordinatorFlags{cfgFile: path, brokers: "k1:9092, k2:9092", metricsPort: 9090}
	cfg, k, err := f.config()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(k.Brokers, ","); got != "k1:9092,k2:9092" || k.TLS == nil || k.TLS.ServerName != "kafka" {
		t.Errorf("kafka = %+v, want the block's TLS with the seeds from --brokers", k)
	}
	if cfg.Namespace != "ns" || len(cfg.Jobs) != 2 || cfg.Jobs[0].MetricsPort != 8080 || cfg.Jobs[1].MetricsPort != 9090 ||
		cfg.Jobs[0].Tenant != "acme" || cfg.Jobs[0].Application != "firewall" {
		t.Errorf("config = %+v", cfg)
	}
}

// TestCoordinatorBadConfigExit: a bad --config file is wrong usage (exit 2)
// reported as FILE:LINE:COL, before any client is built.
func TestCoordinatorBadConfigExit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "coordinator.yaml")
	os.WriteFile(path, []byte("brokers: [k:9092]\njobs:\n  - name: a\n    min_workerz: 2\n"), 0o644)
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"coordinator", "--config", path, "--listen", ""}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), path+`:4:5: unknown key "min_workerz"`) {
		t.Errorf("exit %d, stderr:\n%s", code, stderr.String())
	}
}
