package bench

import (
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/sluicehq/sluice/bench/gen"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/source/avro"
	"github.com/sluicehq/sluice/sql"
)

// sqlRows decodes benchRecords generated traffic records (seed 7) into rows
// once, so that BenchmarkSQL measures the SQL program alone.
func sqlRows(b *testing.B) (*engine.Schema, []*engine.Row, []*gen.Record) {
	b.Helper()
	text, err := os.ReadFile(filepath.Join("..", "testdata", "schemas", "traffic.avsc"))
	if err != nil {
		b.Fatal(err)
	}
	typ, err := avro.ParseSchema(text)
	if err != nil {
		b.Fatal(err)
	}
	dec, err := avro.Compile(typ, typ)
	if err != nil {
		b.Fatal(err)
	}
	schema := engine.MustSchema(typ)
	g := gen.New(7)
	rows := make([]*engine.Row, benchRecords)
	recs := make([]*gen.Record, benchRecords)
	for i := range rows {
		rec := g.Next()
		cp := *rec
		cp.Tags = append([]string(nil), rec.Tags...)
		recs[i] = &cp
		rows[i] = engine.NewRow(dec.Width())
		if err := dec.Decode(rec.AppendAvro(nil), rows[i]); err != nil {
			b.Fatal(err)
		}
	}
	return schema, rows, recs
}

func BenchmarkSQL(b *testing.B) {
	schema, rows, recs := sqlRows(b)
	webApps := regexp.MustCompile(`^(ssl|web-browsing|dns)$`)
	private := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/16")}
	cases := []struct {
		name string
		sql  string
		// want computes, in plain Go over the generated records, how many
		// rows the query keeps and the sum of column check of the output
		// (length for strings), so that a fast wrong answer fails.
		want  func(r *gen.Record) (keep bool, check int64)
		check string
	}{
		{
			name:  "filter",
			sql:   "SELECT src_ip, dst_ip, app, action FROM input WHERE action <> 'ALLOW'",
			want:  func(r *gen.Record) (bool, int64) { return r.Action != "ALLOW", int64(len(r.App)) },
			check: "app",
		},
		{
			name: "filter_project",
			sql: `SELECT receive_time, tenant_id, src_ip, dst_ip, src_port, dst_port, app, rule,
			        bytes_sent + bytes_received AS bytes, LOWER(src_location.country) AS country
			      FROM input WHERE action <> 'ALLOW' AND dst_port <> 53`,
			want: func(r *gen.Record) (bool, int64) {
				return r.Action != "ALLOW" && r.DstPort != 53, r.BytesSent + r.BytesReceived
			},
			check: "bytes",
		},
		{
			name: "cidr_regexp",
			sql:  "SELECT src_ip, dst_ip, app FROM input WHERE CIDR_MATCH(src_ip, '10.0.0.0/8', '192.168.0.0/16') AND app REGEXP '^(ssl|web-browsing|dns)$'",
			want: func(r *gen.Record) (bool, int64) {
				ip, err := netip.ParseAddr(r.SrcIP)
				in := err == nil && (private[0].Contains(ip) || private[1].Contains(ip))
				return in && webApps.MatchString(r.App), int64(len(r.App))
			},
			check: "app",
		},
		{
			name:  "select_star",
			sql:   "SELECT * FROM input",
			want:  func(r *gen.Record) (bool, int64) { return true, r.BytesTotal },
			check: "bytes_total",
		},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			p, err := sql.Compile(tc.sql, schema)
			if err != nil {
				b.Fatal(err)
			}
			col, ok := p.Output().Lookup(tc.check)
			if !ok {
				b.Fatalf("no output column %s", tc.check)
			}
			isStr := col.Type.Kind == engine.KindString
			var wantKept, wantSum int64
			for _, r := range recs {
				if keep, v := tc.want(r); keep {
					wantKept++
					wantSum += v
				}
			}
			if wantKept == 0 {
				b.Fatal("the query keeps no generated row: the benchmark would measure nothing")
			}
			out := &engine.Row{}
			var kept, sum int64
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				idx := i % len(rows)
				if idx == 0 {
					kept, sum = 0, 0
				}
				keep, err := p.Eval(rows[idx], out)
				if err != nil {
					b.Fatal(err)
				}
				if keep {
					kept++
					if isStr {
						sum += int64(len(out.Str(col.Slot)))
					} else {
						sum += out.Int(col.Slot)
					}
				}
				if idx == len(rows)-1 && (kept != wantKept || sum != wantSum) {
					b.Fatalf("%s: kept %d rows with %s sum %d, want %d rows with sum %d", tc.name, kept, tc.check, sum, wantKept, wantSum)
				}
			}
			b.StopTimer()
			if b.N < len(rows) {
				// Too short a run to have checked a full cycle: check one now.
				kept, sum = 0, 0
				for _, r := range rows {
					if keep, _ := p.Eval(r, out); keep {
						kept++
						if isStr {
							sum += int64(len(out.Str(col.Slot)))
						} else {
							sum += out.Int(col.Slot)
						}
					}
				}
				if kept != wantKept || sum != wantSum {
					b.Fatalf("%s: kept %d rows with sum %d, want %d with sum %d", tc.name, kept, sum, wantKept, wantSum)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
