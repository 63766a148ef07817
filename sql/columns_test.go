package sql

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestColumns: a program lists exactly the input columns it reads, so that a
// decoder can skip the others.
func TestColumns(t *testing.T) {
	schema := trafficSchema(t)
	var top []string
	for _, f := range schema.Fields() {
		top = append(top, f.Name)
	}
	for _, tc := range []struct {
		sql  string
		want []string
	}{
		{"SELECT src_ip FROM input", []string{"src_ip"}},
		{"SELECT src_ip, dst_ip FROM input WHERE action <> 'ALLOW'", []string{"action", "dst_ip", "src_ip"}},
		{"SELECT src_location.country AS c FROM input", []string{"src_location.country"}},
		{"SELECT src_location FROM input WHERE src_location.country = 'US'", []string{"src_location", "src_location.country"}},
		{"SELECT bytes_sent + bytes_received AS b FROM input WHERE CIDR_MATCH(src_ip, '10.0.0.0/8')", []string{"bytes_received", "bytes_sent", "src_ip"}},
		{"SELECT ELEMENT_AT(tags, 1) AS t, labels->>'$.k' AS k FROM input", []string{"labels", "tags"}},
		{"SELECT i.app FROM input AS i", []string{"app"}},
		{"SELECT 1 AS one FROM input", nil},
		{"SELECT * FROM input", top},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			p, err := Compile(tc.sql, schema)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, p.Columns(), cmpopts.EquateEmpty(), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("Columns (-want +got):\n%s", diff)
			}
		})
	}
}
