package config

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
