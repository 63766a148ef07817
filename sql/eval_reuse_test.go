package sql

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/engine"
)

// TestEvalReusedOutput checks that a row evaluated into an output row that
// earlier rows used (kept, dropped by the WHERE, or failed) comes out exactly
// as it does in a fresh one: Eval does not clear the output row of a dropped
// row, so what the last kept row left there must never show through.
func TestEvalReusedOutput(t *testing.T) {
	schema := trafficSchema(t)
	g := newGen(7)
	rows := make([]*engine.Row, 200)
	for i := range rows {
		rows[i] = g.row(schema)
	}
	queries := []string{
		"SELECT * FROM input WHERE action <> 'ALLOW'",
		"SELECT receive_time, tenant_id, src_ip, dst_ip, dst_port, app, rule, action, bytes_total FROM input WHERE action <> 'ALLOW'",
		// Computed columns whose writers set only some fields of a slot
		// (Null alone, N alone), and a WHERE that computes strings in
		// out.Arena.
		"SELECT src_port > 1000 AS hi, CONCAT(app, '/', rule) AS ar, UPPER(app) AS up, bytes_total + 1 AS b1, NULLIF(app, 'dns') AS n FROM input WHERE LOWER(app) <> 'ssl' AND src_port % 3 <> 0",
		"SELECT app, 1 / (src_port % 2) AS inv FROM input WHERE src_port % 5 <> 0",
	}
	for _, q := range queries {
		t.Run(q, func(t *testing.T) {
			p, err := Compile(q, schema)
			if err != nil {
				t.Fatal(err)
			}
			reused := &engine.Row{}
			kept := 0
			for i, in := range rows {
				fresh := &engine.Row{}
				wantKeep, wantErr := p.Eval(in, fresh)
				keep, err := p.Eval(in, reused)
				if (err != nil) != (wantErr != nil) || keep != wantKeep {
					t.Fatalf("row %d: keep %v err %v, want keep %v err %v", i, keep, err, wantKeep, wantErr)
				}
				if !keep || err != nil {
					continue
				}
				kept++
				if diff := cmp.Diff(render(p.Output(), fresh), render(p.Output(), reused)); diff != "" {
					t.Fatalf("row %d (-fresh +reused):\n%s", i, diff)
				}
			}
			if kept == 0 || kept == len(rows) {
				t.Fatalf("%d of %d rows kept: the WHERE should drop some and keep some", kept, len(rows))
			}
		})
	}
}
