package https

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/file"
)

// A row the destination rejects is dead-lettered with the topic, partition
// and offset of the input record it came from (engine.Row.Origin), and its
// reason is redacted.
func TestSinkDeadLetterOrigin(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), "poison") {
			http.Error(w, `{"error":"rejected for key s3cret"}`, http.StatusBadRequest)
			return
		}
	}))
	defer srv.Close()
	dlPath := filepath.Join(t.TempDir(), "dlq.jsonl")
	dl, err := file.New(ctx, file.Config{Path: dlPath}, engine.DeadLetterSchema, engine.SinkEnv{Name: "dlq"})
	if err != nil {
		t.Fatal(err)
	}
	redact := engine.Redactor(func(s string) string { return strings.ReplaceAll(s, "s3cret", "[redacted]") })
	s, err := New(ctx, Config{URL: srv.URL, MaxBatchRows: 1}, schema,
		engine.SinkEnv{Job: "job", Pipeline: "pipe", Name: "siem", DeadLetter: dl, Redact: redact})
	if err != nil {
		t.Fatal(err)
	}
	task := engine.TaskID{Topic: "acme.traffic", Partition: 3}
	w, err := s.Open(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	row := engine.NewRow(schema.Width())
	for i, msg := range []string{"ok", "poison", "ok"} {
		row.SetInt(0, int64(i))
		row.SetStr(1, msg)
		row.Origin = engine.Origin{Task: task, Offset: 4200 + int64(i)}
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close(ctx)
	s.Close(ctx)
	dl.Close(ctx)
	b, err := os.ReadFile(dlPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d dead letters, want 1:\n%s", len(lines), b)
	}
	var d struct {
		Topic     string
		Partition int32
		Offset    int64
		Error     string
	}
	if err := json.Unmarshal([]byte(lines[0]), &d); err != nil {
		t.Fatal(err)
	}
	if d.Topic != "acme.traffic" || d.Partition != 3 || d.Offset != 4201 {
		t.Errorf("dead letter names %s/%d@%d, want acme.traffic/3@4201", d.Topic, d.Partition, d.Offset)
	}
	if strings.Contains(d.Error, "s3cret") || !strings.Contains(d.Error, "[redacted]") {
		t.Errorf("dead letter reason %q is not redacted", d.Error)
	}
}
