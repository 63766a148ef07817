package bigquery_test

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/bigquery"
	"github.com/sluicehq/sluice/sink/bigquery/bqtest"
	"github.com/sluicehq/sluice/sink/sinktest"
)

// TestConformance runs the sink conformance suite through the real
// managedwriter client against bqtest, in both modes (committed streams
// resume from their state).
func TestConformance(t *testing.T) {
	for _, mode := range []string{bigquery.ModeDefault, bigquery.ModeCommitted} {
		t.Run(mode, func(t *testing.T) {
			srv := bqtest.Start(t)
			var down atomic.Bool
			srv.Fail = func(bqtest.Append) error {
				if down.Load() {
					return status.Error(codes.Unavailable, "backend down")
				}
				return nil
			}
			sinktest.Run(t, sinktest.Harness{
				New: func(t *testing.T) engine.Sink {
					cfg := bigquery.Config{Project: "p", Dataset: "d", Table: "t", Mode: mode, MaxBatchRows: 16}
					s, err := bigquery.New(t.Context(), cfg, sinktest.Schema, engine.SinkEnv{Name: "bigquery/0"},
						bigquery.WithClient(srv.Client(t, "p")), bigquery.WithBackoff(time.Millisecond, 10*time.Millisecond))
					if err != nil {
						t.Fatal(err)
					}
					return s
				},
				Read: func(t *testing.T) []int64 {
					var out []int64
					for _, m := range srv.Maps(t, table) {
						id, err := strconv.ParseInt(m["id"].(string), 10, 64)
						if err != nil {
							t.Fatal(err)
						}
						out = append(out, id)
					}
					return out
				},
				Break: func(*testing.T) func() {
					down.Store(true)
					return func() { down.Store(false) }
				},
				Stateful: mode == bigquery.ModeCommitted,
			})
		})
	}
}
