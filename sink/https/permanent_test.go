package https

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/file"
)

// A receiver that refuses the credentials or does not exist fails the flush
// with a permanent error at once, without retrying and without dead-lettering
// rows that did nothing wrong; a status about the payload still dead-letters.
func TestPermanentStatusFailsFlush(t *testing.T) {
	for _, tc := range []struct {
		status    int
		permanent bool
	}{
		{http.StatusUnauthorized, true},
		{http.StatusForbidden, true},
		{http.StatusNotFound, true},
		{http.StatusBadRequest, false},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			ctx := context.Background()
			var requests atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				http.Error(w, "no", tc.status)
			}))
			defer srv.Close()
			dlPath := filepath.Join(t.TempDir(), "dlq.jsonl")
			dl, err := file.New(ctx, file.Config{Path: dlPath}, engine.DeadLetterSchema, engine.SinkEnv{Name: "dlq"})
			if err != nil {
				t.Fatal(err)
			}
			defer dl.Close(ctx)
			s, err := New(ctx, Config{URL: srv.URL}, schema, engine.SinkEnv{Job: "job", Pipeline: "pipe", Name: "siem", DeadLetter: dl})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			task := engine.TaskID{Topic: "t", Partition: 0}
			w, err := s.Open(ctx, task)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close(ctx)
			row := engine.NewRow(schema.Width())
			row.SetInt(0, 1)
			row.SetStr(1, "x")
			row.Origin = engine.Origin{Task: task, Offset: 9}
			if err := w.Write(row); err != nil {
				t.Fatal(err)
			}
			err = w.Flush(ctx)
			if got := engine.IsPermanent(err); got != tc.permanent {
				t.Fatalf("status %d: Flush error %v, permanent %v, want %v", tc.status, err, got, tc.permanent)
			}
			if tc.permanent && requests.Load() != 1 {
				t.Errorf("status %d was retried: %d requests", tc.status, requests.Load())
			}
			b, _ := os.ReadFile(dlPath)
			if dead := len(b) > 0; dead == tc.permanent {
				t.Errorf("status %d: dead letters written %v, want %v", tc.status, dead, !tc.permanent)
			}
		})
	}
}
