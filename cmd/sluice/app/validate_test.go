package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// validJob is a job that validates, with %s where a test puts a line of its
// own into the top level of the file.
const validJob = `job: v
kafka: {brokers: ["localhost:9092"]}
checkpoint: {store: "file://./ckpt"}
%s
pipelines:
  - name: p
    source: {kafka: {topics: [t]}}
    format: {avro: {schema_file: traffic.avsc}}
    sql: SELECT src_ip FROM input
    sinks:
      - file: {path: out/a.jsonl}
`

func writeJob(t *testing.T, dir, body string) string {
	t.Helper()
	schema, err := os.ReadFile(filepath.Join(repoRoot(t), "examples/schemas/traffic.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "traffic.avsc"), schema, 0o644)
	path := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var fileLineCol = regexp.MustCompile(`job\.yaml:(\d+):(\d+): `)

// TestValidateCatchesWhatRunRejects: each value that `sluice run` refuses is
// an error of `sluice validate`, at the line of the value.
func TestValidateCatchesWhatRunRejects(t *testing.T) {
	t.Setenv("EMPTY", "")
	tests := []struct {
		name  string
		line  int // of validJob, 1-based, replaced by patch
		patch string
		want  string
	}{
		{"file store without a directory", 3, `checkpoint: {store: "file://"}`, "checkpoint store"},
		{"gs store without a bucket", 3, `checkpoint: {store: "gs:/x"}`, "checkpoint store"},
		{"listen not an address", 4, `metrics: {listen: notanaddress}`, "listen"},
		{"no brokers", 2, `kafka: {brokers: []}`, "brokers"},
		{"an empty broker", 2, `kafka: {brokers: ["${EMPTY}"]}`, "broker"},
		{"negative retain", 3, `checkpoint: {store: "file://./ckpt", retain: -5}`, "retain"},
		{"negative drain deadline", 4, `drain: {deadline: -10s}`, "drain deadline"},
		{"zero interval", 3, `checkpoint: {store: "file://./ckpt", interval: 0s}`, "interval"},
		{"empty pipeline name", 6, `  - name: ""`, "name"},
		{"unknown worker", 4, `worker: bogus-machine`, "worker"},
		{"empty sink name", 11, `      - {name: "", file: {path: out/b.jsonl}}`, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := strings.Split(fmt.Sprintf(validJob, ""), "\n")
			lines[tt.line-1] = tt.patch
			path := writeJob(t, t.TempDir(), strings.Join(lines, "\n"))
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), []string{"validate", path}, &stdout, &stderr)
			if code != 1 {
				t.Fatalf("validate exit %d, want 1; file:\n%s\nstderr:\n%s", code, strings.Join(lines, "\n"), stderr.String())
			}
			m := fileLineCol.FindStringSubmatch(stderr.String())
			if m == nil || m[1] != fmt.Sprint(tt.line) || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("validate said %q; want an error about %q at line %d", stderr.String(), tt.want, tt.line)
			}
		})
	}
	// The file unpatched is valid: every row above fails for its patch alone.
	path := writeJob(t, t.TempDir(), fmt.Sprintf(validJob, ""))
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"validate", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("the base job does not validate: %s", stderr.String())
	}
}

// TestConflictingSinksRejected: two sinks writing one file, a sink writing a
// pipeline's dead-letter file, two GCS sinks under one bucket and prefix, and
// two sinks of one pipeline with one name are errors naming both positions.
func TestConflictingSinksRejected(t *testing.T) {
	tests := []struct {
		name, sinks, second string
		want                []string
	}{
		{"two pipelines, one file", "      - file: {path: out/a.jsonl}\n", "      - file: {path: ./out/../out/a.jsonl}\n",
			[]string{"job.yaml:17:9: file out/a.jsonl is also written by the sink at", "job.yaml:11:9 (pipeline \"p\")"}},
		{"a sink and a dead-letter file", "      - file: {path: .sluice/dlq/v.q.jsonl}\n", "      - stdout: {}\n",
			[]string{"is also written by the sink at"}},
		{"two gcs sinks", "      - gcs: {bucket: b, prefix: x/}\n", "      - gcs: {bucket: b, prefix: x/}\n",
			[]string{"gs://b/x/ is also written by the sink at"}},
		{"one name twice", "      - {name: siem, stdout: {}}\n      - {name: siem, file: {path: out/b.jsonl}}\n", "      - stdout: {}\n",
			[]string{`sink name "siem" is used twice in pipeline "p"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := strings.Replace(fmt.Sprintf(validJob, ""), "      - file: {path: out/a.jsonl}\n", tt.sinks, 1) +
				"  - name: q\n    source: {kafka: {topics: [t]}}\n    format: {avro: {schema_file: traffic.avsc}}\n    sql: SELECT src_ip FROM input\n    sinks:\n" + tt.second
			path := writeJob(t, t.TempDir(), body)
			var stdout, stderr bytes.Buffer
			if code := Main(context.Background(), []string{"validate", path}, &stdout, &stderr); code != 1 {
				t.Fatalf("validate exit %d, want 1:\n%s\n%s", code, body, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("validate said:\n%s\nwant %q", stderr.String(), w)
				}
			}
		})
	}
}

// TestInputSizeLimits: validate ends quickly on a FIFO whose writer never
// stops, on /dev/zero and on a file over the limit, and on a FIFO nobody
// writes once it is interrupted; a 10,000-term SQL expression compiles in
// well under a second.
func TestInputSizeLimits(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "job.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	stopWriting := make(chan struct{})
	defer close(stopWriting)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		chunk := bytes.Repeat([]byte("# endless\n"), 1<<12)
		for {
			select {
			case <-stopWriting:
				return
			default:
			}
			if _, err := f.Write(chunk); err != nil {
				return
			}
		}
	}()
	big := filepath.Join(dir, "big.yaml")
	os.WriteFile(big, bytes.Repeat([]byte("# padding\n"), 500_000), 0o644)
	for _, path := range []string{fifo, "/dev/zero", big} {
		start := time.Now()
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), []string{"validate", path}, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), "larger than 4 MiB") {
			t.Errorf("validate %s: exit %d, %q; want 1 and the size limit", path, code, stderr.String())
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("validate %s took %s", path, d)
		}
	}

	// A FIFO that nobody writes blocks the open; a signal ends validate.
	silent := filepath.Join(dir, "silent.fifo")
	syscall.Mkfifo(silent, 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"validate", silent}, &stdout, &stderr) }()
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(stderr.String(), "interrupted") {
			t.Errorf("interrupted validate: exit %d, %q", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("validate on a silent FIFO did not end on a signal")
	}
	// Unblock the goroutine still opening the FIFO.
	if f, err := os.OpenFile(silent, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
		f.Close()
	}

	terms := make([]string, 10000)
	for i := range terms {
		terms[i] = "bytes_sent"
	}
	body := strings.Replace(fmt.Sprintf(validJob, ""), "sql: SELECT src_ip FROM input", "sql: SELECT "+strings.Join(terms, " + ")+" AS b FROM input", 1)
	path := writeJob(t, t.TempDir(), body)
	start := time.Now()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), []string{"validate", path}, &out, &errOut)
	d := time.Since(start)
	if code != 0 && !strings.Contains(errOut.String(), "limit") {
		t.Fatalf("validate of a 10,000-term expression: exit %d: %s", code, errOut.String())
	}
	if d > 2*time.Second {
		t.Errorf("validate of a 10,000-term expression took %s", d)
	}
	t.Logf("10,000-term expression: exit %d in %s", code, d)
}
