package bigquery_test

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/bigquery"
	"github.com/sluicehq/sluice/sink/bigquery/bqtest"
)

// BenchmarkWrite measures Write (the proto encoding of a row into the
// writer's buffer) on testSchema rows; Flush runs every 10,000 rows against
// bqtest outside the timer.
func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	srv := bqtest.Start(b)
	schema := testSchema()
	s, err := bigquery.New(ctx, bigquery.Config{Project: "p", Dataset: "d", Table: "t"}, schema, engine.SinkEnv{}, bigquery.WithClient(srv.Client(b, "p")))
	if err != nil {
		b.Fatal(err)
	}
	w, err := s.Open(ctx, engine.TaskID{Topic: "in"})
	if err != nil {
		b.Fatal(err)
	}
	rows := make([]*engine.Row, 64)
	for i := range rows {
		rows[i] = engine.NewRow(schema.Width())
		fill(schema, rows[i], i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := w.Write(rows[i%len(rows)]); err != nil {
			b.Fatal(err)
		}
		if i%10000 == 9999 {
			b.StopTimer()
			if err := w.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
