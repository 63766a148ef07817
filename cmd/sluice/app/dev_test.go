package app

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestDevDefaultJob runs `sluice dev` as `make demo` does, for a few
// seconds: the embedded Kafka, the traffic generator and the default job
// put denied traffic in out/denied.jsonl, and the drain exits 0.
func TestDevDefaultJob(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"dev", "--duration", "4s", "--metrics", "off", "--rate", "2000", "--partitions", "2"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("sluice dev exit %d:\n%s\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "drained") {
		t.Errorf("sluice dev did not report its drain:\n%s", stdout.String())
	}
	rows := readLines(t, filepath.Join(dir, "out", "denied.jsonl"))
	if len(rows) == 0 {
		t.Fatalf("no denied traffic in the sink after 4 s at 2000 records/s:\n%s", stdout.String())
	}
	for _, r := range rows {
		if strings.Contains(r, `"action":"ALLOW"`) {
			t.Fatalf("the default job let an ALLOW record through: %s", r)
		}
	}
}
