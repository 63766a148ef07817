package bigquery_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/bigquery"
	"github.com/sluicehq/sluice/sink/bigquery/bqtest"
)

// Errors that retrying cannot fix (a missing table, denied permission, a
// schema BigQuery refuses) fail the flush as permanent, so that the runtime
// reports the sink as failing and retries slowly; an outage stays retryable.
func TestPermanentAppendErrors(t *testing.T) {
	for _, tc := range []struct {
		code      codes.Code
		permanent bool
	}{
		{codes.PermissionDenied, true},
		{codes.NotFound, true},
		{codes.Unauthenticated, true},
		{codes.Unavailable, false},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			ctx := t.Context()
			srv := bqtest.Start(t)
			srv.Fail = func(bqtest.Append) error { return status.Error(tc.code, "refused") }
			schema := testSchema()
			cfg := bigquery.Config{Project: "p", Dataset: "d", Table: "t", Mode: bigquery.ModeDefault, MaxBatchRows: 16}
			s, err := bigquery.New(ctx, cfg, schema, engine.SinkEnv{Name: "bigquery/0"},
				bigquery.WithClient(srv.Client(t, "p")), bigquery.WithBackoff(time.Millisecond, 5*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			w, err := s.Open(ctx, engine.TaskID{Topic: "in", Partition: 0})
			if err != nil {
				t.Fatal(err)
			}
			writeRange(t, schema, w, 0, 3)
			var fctx context.Context = ctx
			if !tc.permanent {
				var cancel func()
				fctx, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
			}
			err = w.Flush(fctx)
			if err == nil {
				t.Fatal("Flush succeeded against a failing table")
			}
			if got := engine.IsPermanent(err); got != tc.permanent {
				t.Fatalf("%s: Flush error %v, permanent %v, want %v", tc.code, err, got, tc.permanent)
			}
		})
	}
}
