package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine/enginetest"
)

func jobFile(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "acme-firewall.job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name string
		spec JobSpec
	}{
		{"standard", JobSpec{
			Job: "acme-firewall", Namespace: "tenants", Image: "ghcr.io/sluicehq/sluice:v0.1.0",
			Worker: "n2d-standard-2", MinWorkers: 2, MaxWorkers: 24, Brokers: []string{"kafka-0.kafka:9092", "kafka-1.kafka:9092"},
		}},
		{"highmem-defaults", JobSpec{
			Job: "beta-dns", Image: "sluice:dev", Worker: "n2-highmem-4", MetricsPort: 9100,
			DrainDeadline: 2 * time.Minute, Brokers: []string{"kafka:9092"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.JobYAML = jobFile(t)
			var buf bytes.Buffer
			if err := Render(&buf, tt.spec); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tt.name+".golden.yaml")
			enginetest.Golden(t, path, buf.Bytes())
		})
	}
}

func TestResources(t *testing.T) {
	tests := []struct {
		worker   string
		cpu, mem int
		err      bool
	}{
		{"n2d-standard-1", 1, 4, false},
		{"n2d-standard-8", 8, 32, false},
		{"n2-highmem-4", 4, 32, false},
		{"c2-highcpu-16", 16, 16, false},
		{"n2d-standard-0", 0, 0, true},
		{"n2d-megamem-2", 0, 0, true},
		{"standard-2", 0, 0, true},
		{"", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.worker, func(t *testing.T) {
			cpu, mem, err := Resources(tt.worker)
			if (err != nil) != tt.err || cpu != tt.cpu || mem != tt.mem {
				t.Errorf("Resources(%q) = %d, %d, %v; want %d, %d, error %v", tt.worker, cpu, mem, err, tt.cpu, tt.mem, tt.err)
			}
		})
	}
}

func TestRenderRejects(t *testing.T) {
	good := JobSpec{Job: "a", Image: "i", Worker: "n2d-standard-1", JobYAML: []byte("job: a\n"), Brokers: []string{"k:9092"}}
	tests := []struct {
		name string
		edit func(*JobSpec)
		want string
	}{
		{"unknown worker type", func(s *JobSpec) { s.Worker = "m5.large" }, "unknown worker type"},
		{"bad job name", func(s *JobSpec) { s.Job = "Acme_FW" }, "DNS-1123"},
		{"no image", func(s *JobSpec) { s.Image = "" }, "image is empty"},
		{"bounds", func(s *JobSpec) { s.MinWorkers, s.MaxWorkers = 5, 2 }, "bounds"},
		{"no brokers", func(s *JobSpec) { s.Brokers = nil }, "brokers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			tt.edit(&s)
			err := Render(&bytes.Buffer{}, s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Render error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if err := Render(&bytes.Buffer{}, good); err != nil {
		t.Errorf("Render(good) = %v", err)
	}
}
