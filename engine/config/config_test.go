package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/engine/enginetest"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestLoadReportsEveryErrorAtItsPosition(t *testing.T) {
	_, err := Load("testdata/bad.yaml", env(nil))
	es, ok := AsErrors(err)
	if !ok {
		t.Fatalf("Load error %v is not Errors", err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Error())
	}
	want := []string{
		`testdata/bad.yaml:5:13: expected a duration such as 10s or 1m30s, got "often"`,
		`testdata/bad.yaml:11:9: unknown key "colour" (expected one of: topics, topic_regex, start, stop_at)`,
		`testdata/bad.yaml:18:5: missing required key "name"`,
		`testdata/bad.yaml:20:10: environment variable NOPE is not set`,
		`testdata/bad.yaml:21:12: a pipeline needs at least one sink`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("errors (-want +got):\n%s", diff)
	}
}

func TestDefaultsAndSubstitution(t *testing.T) {
	src := `job: j
kafka: {brokers: ["${BROKER}"]}
pipelines:
  - name: p
    source: {kafka: {topics: [t]}}
    format: {avro: {schema_file: s.avsc}}
    sql: SELECT a FROM input
    sinks: [{file: {path: out.jsonl}}]
`
	j, err := Parse("job.yaml", []byte(src), env(map[string]string{"BROKER": "b:9092"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := j.Kafka.Brokers[0]; got != "b:9092" {
		t.Errorf("broker %q, want the substituted b:9092", got)
	}
	p := j.Pipelines[0]
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"checkpoint store", j.Checkpoint.Store, DefaultCheckpointStore},
		{"checkpoint interval", j.Checkpoint.Interval, DefaultCheckpointInterval},
		{"max_records", p.Bundle.MaxRecords, DefaultMaxRecords},
		{"max_wait", p.Bundle.MaxWait, DefaultMaxWait},
		{"start", p.Source.Kafka.Start, DefaultStart},
		{"writer_schema", p.Format.Avro.WriterSchema, DefaultWriterSchema},
		{"drain deadline", j.Drain.Deadline, 60 * time.Second},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if p.Sinks[0].Kind != "file" {
		t.Errorf("sink kind %q", p.Sinks[0].Kind)
	}
	var fc struct {
		Path   string `yaml:"path" required:"true"`
		Format string `yaml:"format"`
	}
	if err := p.Sinks[0].Decode(&fc); err != nil || fc.Path != "out.jsonl" {
		t.Errorf("plugin decode: %+v %v", fc, err)
	}
}

func TestPluginDecodeIsStrictWithPositions(t *testing.T) {
	src := "job: j\npipelines:\n  - name: p\n    source: {file: {path: x.avro}}\n    sql: SELECT 1 FROM input\n    sinks:\n      - file: {pth: out.jsonl}\n"
	j, err := Parse("job.yaml", []byte(src), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	var fc struct {
		Path string `yaml:"path" required:"true"`
	}
	err = j.Pipelines[0].Sinks[0].Decode(&fc)
	want := "job.yaml:7:15: missing required key \"path\"\njob.yaml:7:16: unknown key \"pth\" (expected one of: path)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

// Settings several components share are embedded inline: their keys sit
// beside the component's own, strictly checked, with the outer positions.
func TestPluginDecodeInline(t *testing.T) {
	type shared struct {
		Pos    Pos    // not set: positions are the outer struct's
		Prefix string `yaml:"prefix" required:"true"`
		Format string `yaml:"format"`
	}
	type sinkConfig struct {
		Pos    Pos
		Bucket string `yaml:"bucket"`
		shared `yaml:",inline"`
	}
	parse := func(sink string) (sinkConfig, error) {
		src := "job: j\npipelines:\n  - name: p\n    source: {file: {path: x.avro}}\n    sql: SELECT 1 FROM input\n    sinks:\n      - gcs: " + sink + "\n"
		j, err := Parse("job.yaml", []byte(src), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		var c sinkConfig
		err = j.Pipelines[0].Sinks[0].Decode(&c)
		return c, err
	}
	c, err := parse("{bucket: b, prefix: x/, format: csv}")
	if err != nil {
		t.Fatal(err)
	}
	if c.Bucket != "b" || c.Prefix != "x/" || c.Format != "csv" {
		t.Errorf("decoded %+v", c)
	}
	if got := c.Pos.Key("format").Errorf("x").Error(); got != "job.yaml:7:46: x" {
		t.Errorf("error at an inline key = %q, want job.yaml:7:46: x", got)
	}
	_, err = parse("{bucket: b, prefx: x/}")
	want := "job.yaml:7:14: missing required key \"prefix\"\njob.yaml:7:26: unknown key \"prefx\" (expected one of: bucket, prefix, format)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestSQLPositionsMapIntoTheFile(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		offset    int
		line, col int
	}{
		{"block", "job: j\npipelines:\n  - name: p\n    sql: |\n      SELECT a,\n        b FROM input\n", 12, 6, 9},
		{"plain", "job: j\npipelines:\n  - name: p\n    sql: SELECT a FROM input\n", 7, 4, 17},
		{"quoted", "job: j\npipelines:\n  - name: p\n    sql: \"SELECT a FROM input\"\n", 7, 4, 18},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, _ := Parse("f.yaml", []byte(tc.src), env(nil))
			pos := j.Pipelines[0].SQL.At(tc.offset)
			if pos.Line != tc.line || pos.Col != tc.col {
				t.Fatalf("offset %d of %q at %d:%d, want %d:%d", tc.offset, j.Pipelines[0].SQL.Value, pos.Line, pos.Col, tc.line, tc.col)
			}
		})
	}
}

func FuzzJobFile(f *testing.F) {
	for _, name := range []string{"testdata/bad.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("job: j\npipelines: [{name: p, sql: 'SELECT 1 FROM input', sinks: [{file: {path: x}}]}]"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := Parse("f.yaml", data, env(nil))
		if err != nil {
			if !strings.Contains(err.Error(), "f.yaml:") {
				t.Fatalf("error without a position: %v", err)
			}
			return
		}
		for _, p := range j.Pipelines {
			p.SQL.At(len(p.SQL.Value))
		}
	})
}

// TestYAMLSyntaxErrorPositions: a YAML syntax error names the line (and for
// an unclosed bracket, the column) of the mistake, not the line before it.
// The expected errors are in testdata/syntax.golden (-update rewrites it).
func TestYAMLSyntaxErrorPositions(t *testing.T) {
	files, err := filepath.Glob("testdata/syntax/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no syntax cases: %v", err)
	}
	var got strings.Builder
	for _, f := range files {
		_, err := Load(f, env(nil))
		if err == nil {
			t.Errorf("%s: no error", f)
			continue
		}
		fmt.Fprintln(&got, err)
	}
	enginetest.Golden(t, "testdata/syntax.golden", []byte(got.String()))
	// The two cases that were reported a line early, spelled out.
	for _, w := range []string{
		"testdata/syntax/unclosed-brace.yaml:16:15: { is not closed",
		"testdata/syntax/unclosed-bracket.yaml:11:12: [ is not closed",
	} {
		if !strings.Contains(got.String(), w) {
			t.Errorf("errors lack %q:\n%s", w, got.String())
		}
	}
}

// TestRedactRemovesSecrets: values from ${NAME} and secret files, URL
// userinfo and query strings are removed; the names of the variables and
// files are kept for render.
func TestRedactRemovesSecrets(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("file-secret-123\n"), 0o600)
	src := fmt.Sprintf(`job: j
kafka:
  brokers: [b:9092]
  sasl: {mechanism: PLAIN, username: u, password_file: %s}
  schema_registry: {url: "http://user:${PW}@127.0.0.1:8081"}
pipelines:
  - name: p
    source: {kafka: {topics: [t]}}
    format: {avro: {schema_file: s.avsc}}
    sql: SELECT a FROM input
    sinks:
      - https: {url: "https://siem.example/ingest?api_key=${KEY}", headers: {Authorization: "Bearer ${TOKEN}"}}
`, pwFile)
	j, err := Parse("job.yaml", []byte(src), env(map[string]string{"PW": "pw-secret", "KEY": "key-secret", "TOKEN": "tok-secret"}))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range j.Vars {
		names = append(names, v.Name)
	}
	if diff := cmp.Diff([]string{"PW", "KEY", "TOKEN"}, names); diff != "" {
		t.Errorf("vars (-want +got):\n%s", diff)
	}
	if len(j.SecretFiles) != 1 || j.SecretFiles[0].Path != pwFile || j.SecretFiles[0].Key != "password_file" {
		t.Errorf("secret files %+v", j.SecretFiles)
	}
	redact := j.Redactor()
	for in, want := range map[string]string{
		`Get "http://user:pw-secret@127.0.0.1:8081/schemas/ids/1": refused`: `Get "http://REDACTED@127.0.0.1:8081/schemas/ids/1": refused`,
		`Post "https://siem.example/ingest?api_key=key-secret": EOF`:        `Post "https://siem.example/ingest?REDACTED": EOF`,
		"header Bearer tok-secret and file-secret-123 and pw-secret":        "header Bearer REDACTED and REDACTED and REDACTED",
		"https://other.example/p?x=1#frag and ftp://a:b@c/d":                "https://other.example/p?REDACTED#frag and ftp://REDACTED@c/d",
		"nothing secret here: b:9092":                                       "nothing secret here: b:9092",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMemorySettings(t *testing.T) {
	parse := func(memory string) (*Job, error) {
		src := "job: j\nmemory: " + memory + "\npipelines:\n  - name: p\n    source: {file: {path: x.avro}}\n    sql: SELECT 1 FROM input\n    sinks: [{file: {path: out.jsonl}}]\n"
		return Parse("job.yaml", []byte(src), env(nil))
	}
	j, err := parse("{task_buffer: 4MiB, fetch: 512KiB, gc_percent: 150}")
	if err != nil {
		t.Fatal(err)
	}
	if j.Memory.TaskBuffer != 4<<20 || j.Memory.Fetch != 512<<10 || j.Memory.GCPercent != 150 {
		t.Errorf("memory = %+v", j.Memory)
	}
	if j, err = parse("{}"); err != nil || j.Memory.TaskBuffer != 0 || j.Memory.Fetch != 0 || j.Memory.GCPercent != 0 {
		t.Errorf("empty memory block: %+v, %v; want zero values (the parts' defaults)", j, err)
	}
	for memory, want := range map[string]string{
		"{fetch: 2GiB}":       `job.yaml:2:17: memory fetch must be between 0 (the default) and 1GiB`,
		"{task_buffer: -1}":   `job.yaml:2:23: expected a size`,
		"{task_bufer: 1MiB}":  `job.yaml:2:10: unknown key "task_bufer"`,
		"{task_buffer: lots}": `job.yaml:2:23: expected a size`,
		"{gc_percent: -1}":    `job.yaml:2:22: memory gc_percent must be between 1 and 10000`,
	} {
		if _, err := parse(memory); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("memory: %s: got %v, want an error containing %q", memory, err, want)
		}
	}
}
