package app

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/bench/gen"
	"github.com/sluicehq/sluice/engine/enginetest"
)

// TestValidateReportsEveryMistake is what a user sees from `sluice validate`
// on a file with an unknown key, a wrong type, a missing required key, an SQL
// syntax error and an unknown column: each at FILE:LINE:COL, exit 1.
func TestValidateReportsEveryMistake(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"validate", "testdata/invalid.yaml"}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr.String())
	}
	enginetest.Golden(t, "testdata/invalid.golden", stderr.Bytes())
	for _, kind := range []string{"unknown key \"color\"", "expected a duration", "missing required key \"name\"", "sql:", "source_country"} {
		if !strings.Contains(stderr.String(), kind) {
			t.Errorf("validate output lacks %q", kind)
		}
	}
}

func TestValidateAcceptsTheExamples(t *testing.T) {
	files, _ := filepath.Glob("../../../examples/*.yaml")
	if len(files) < 3 {
		t.Fatalf("found %d examples", len(files))
	}
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), append([]string{"validate"}, files...), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
}

// TestBoundedFileJob runs the bounded example as a user does and checks the
// rows against the sample file read independently.
func TestBoundedFileJob(t *testing.T) {
	job, _ := filepath.Abs(filepath.Join(repoRoot(t), "examples", "bounded.yaml"))
	dir := t.TempDir()
	t.Chdir(dir)
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"run", job}, &stdout, &stderr); code != 0 {
		t.Fatalf("sluice run exit %d:\n%s", code, stderr.String())
	}
	got := readLines(t, filepath.Join(dir, "out/backfill/denied.jsonl"))
	g := gen.New(42)
	var want int
	for i := 0; i < 2000; i++ {
		if g.Next().Action != "ALLOW" {
			want++
		}
	}
	if len(got) != want || want == 0 {
		t.Fatalf("sink holds %d rows, want the %d non-ALLOW records of the sample", len(got), want)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, _ := os.Getwd()
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	t.Fatal("no go.mod above the test")
	return ""
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}
