package sql

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/engine"
)

// windowSchema is the input of the window tests: ts (timestamp-micros),
// src (string), n (long, nullable).
func windowSchema(t testing.TB) *engine.Schema {
	t.Helper()
	s, err := engine.NewSchema(&engine.Type{Kind: engine.KindRecord, Name: "w", EnumDefault: -1, Fields: []engine.Field{
		{Name: "ts", Type: &engine.Type{Kind: engine.KindLong, Logical: engine.TimestampMicros, EnumDefault: -1}},
		{Name: "src", Type: &engine.Type{Kind: engine.KindString, EnumDefault: -1}},
		{Name: "n", Type: nullable(&engine.Type{Kind: engine.KindLong, EnumDefault: -1})},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type wrec struct {
	ts   int64 // seconds
	src  string
	n    int64
	null bool
}

// runWindow folds recs and returns each emitted row formatted, and the
// indexes of the late records. With reload set, the state is saved and
// loaded into a fresh aggregate after every record.
func runWindow(t *testing.T, q string, lateness int64, recs []wrec, reload bool) (rows []string, late []int) {
	t.Helper()
	tr, err := CompileTransform(q, windowSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	a := tr.(*Aggregation)
	st := a.NewAggregate(0)
	st.(*aggregate).lateness = lateness * 1e6
	kv := map[string][]byte{}
	in := engine.NewRow(3)
	emit := func(out *engine.Row) error {
		var b strings.Builder
		for i, f := range a.Output().Fields() {
			s := out.Slots[i]
			switch {
			case s.Null:
				fmt.Fprintf(&b, "%s=NULL ", f.Name)
			case baseType(f.Type).Kind == engine.KindDouble:
				fmt.Fprintf(&b, "%s=%g ", f.Name, out.Float(i))
			case baseType(f.Type).Kind == engine.KindString:
				fmt.Fprintf(&b, "%s=%s ", f.Name, s.S)
			case baseType(f.Type).Logical == engine.TimestampMicros:
				fmt.Fprintf(&b, "%s=%d ", f.Name, int64(s.N)/1e6)
			default:
				fmt.Fprintf(&b, "%s=%d ", f.Name, int64(s.N))
			}
		}
		rows = append(rows, strings.TrimSpace(b.String()))
		return nil
	}
	for i, r := range recs {
		in.Reset(3)
		in.SetInt(0, r.ts*1e6)
		in.SetStr(1, r.src)
		in.SetInt(2, r.n)
		if r.null {
			in.SetNull(2)
		}
		l, err := st.Add(in)
		if err != nil {
			t.Fatal(err)
		}
		if l {
			late = append(late, i)
		}
		if err := st.Fire(false, emit); err != nil {
			t.Fatal(err)
		}
		if reload {
			st.Save(func(k, v []byte) { kv[string(k)] = append([]byte(nil), v...) }, func(k []byte) { delete(kv, string(k)) })
			st = a.NewAggregate(0)
			st.(*aggregate).lateness = lateness * 1e6
			// In key order, as a TaskStore's Scan gives them.
			for _, k := range slices.Sorted(maps.Keys(kv)) {
				if err := st.Load([]byte(k), kv[k]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := st.Fire(true, emit); err != nil {
		t.Fatal(err)
	}
	return rows, late
}

func TestWindowTumble(t *testing.T) {
	recs := []wrec{
		{ts: 1, src: "a", n: 5}, {ts: 2, src: "b", n: 1}, {ts: 3, src: "a", null: true},
		{ts: 61, src: "a", n: 7},   // closes [0,60) with lateness 0... at 60+0 <= 61
		{ts: 59, src: "a", n: 100}, // late
		{ts: 62, src: "b", n: 2},
	}
	q := `SELECT window_start, window_end, src, COUNT(*) AS c, COUNT(n) AS cn, SUM(n) AS s, MIN(n) AS lo, MAX(n) AS hi, AVG(n) AS av
	      FROM input GROUP BY TUMBLE(ts, '1 minute'), src HAVING COUNT(*) >= 1`
	want := []string{
		"window_start=0 window_end=60 src=a c=2 cn=1 s=5 lo=5 hi=5 av=5",
		"window_start=0 window_end=60 src=b c=1 cn=1 s=1 lo=1 hi=1 av=1",
		"window_start=60 window_end=120 src=a c=1 cn=1 s=7 lo=7 hi=7 av=7",
		"window_start=60 window_end=120 src=b c=1 cn=1 s=2 lo=2 hi=2 av=2",
	}
	for _, reload := range []bool{false, true} {
		rows, late := runWindow(t, q, 0, recs, reload)
		if diff := cmp.Diff(want, rows); diff != "" {
			t.Errorf("reload=%v rows (-want +got):\n%s", reload, diff)
		}
		if diff := cmp.Diff([]int{4}, late); diff != "" {
			t.Errorf("late (-want +got):\n%s", diff)
		}
	}
}

func TestWindowHopSessionHaving(t *testing.T) {
	recs := []wrec{{ts: 1, src: "a", n: 1}, {ts: 11, src: "a", n: 2}, {ts: 12, src: "b", n: 3}, {ts: 45, src: "a", n: 4}}
	rows, _ := runWindow(t, `SELECT window_start AS s, window_end AS e, COUNT(DISTINCT src) AS d, APPROX_COUNT_DISTINCT(src) AS ad, SUM(n) * 2 AS x
		FROM input GROUP BY HOP(ts, '10s', '20 seconds') HAVING SUM(n) > 1`, 0, recs, false)
	want := []string{
		"s=0 e=20 d=2 ad=2 x=12",
		"s=10 e=30 d=2 ad=2 x=10",
		"s=30 e=50 d=1 ad=1 x=8",
		"s=40 e=60 d=1 ad=1 x=8",
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("hop (-want +got):\n%s", diff)
	}
	recs = []wrec{{ts: 1, src: "a", n: 1}, {ts: 20, src: "a", n: 2}, {ts: 8, src: "a", n: 3}, {ts: 40, src: "a", n: 4}, {ts: 5, src: "b", n: 9}}
	rows, _ = runWindow(t, `SELECT window_start, window_end, src, ANY_VALUE(n) AS any1, COUNT(*) AS c
		FROM input GROUP BY SESSION(ts, '10s'), src`, 100, recs, true)
	want = []string{
		"window_start=5 window_end=15 src=b any1=9 c=1",
		"window_start=1 window_end=18 src=a any1=1 c=2",
		"window_start=20 window_end=30 src=a any1=2 c=1",
		"window_start=40 window_end=50 src=a any1=4 c=1",
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("session (-want +got):\n%s", diff)
	}
}

func TestWindowErrors(t *testing.T) {
	for _, tc := range []struct{ q, want string }{
		{"SELECT src, COUNT(*) FROM input GROUP BY src", "1:33: GROUP BY needs a window over the event time"},
		{"SELECT COUNT(*) FROM input", "1:1: aggregates need a windowed GROUP BY"},
		{"SELECT n, COUNT(*) FROM input GROUP BY TUMBLE(ts, '1m')", "column n must be in GROUP BY"},
		{"SELECT COUNT(*) FROM input GROUP BY TUMBLE(ts, '1 fortnight')", "unknown unit"},
		{"SELECT COUNT(*) FROM input GROUP BY TUMBLE(src, '1m')", "must be a timestamp"},
		{"SELECT COUNT(*) FROM input GROUP BY HOP(ts, '7s', '10s')", "multiple of the slide"},
		{"SELECT SUM(src) FROM input GROUP BY TUMBLE(ts, '1m')", "SUM needs a number"},
		{"SELECT COUNT(*) FROM input GROUP BY TUMBLE(ts, '1m'), nope", "nope"},
	} {
		_, err := CompileTransform(tc.q, windowSchema(t))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.q, err, tc.want)
		}
	}
}

func TestDedup(t *testing.T) {
	schema := windowSchema(t)
	inner, err := CompileTransform("SELECT src, n FROM input WHERE n > 0", schema)
	if err != nil {
		t.Fatal(err)
	}
	d, err := CompileDedup("src", "ts", 10*time.Second, inner, schema)
	if err != nil {
		t.Fatal(err)
	}
	recs := []wrec{{1, "a", 1, false}, {2, "a", 2, false}, {5, "b", 3, false}, {11, "a", 4, false}, {12, "a", 5, false}, {3, "c", 0, false}, {30, "b", 6, false}, {31, "b", 7, false}}
	for _, reload := range []bool{false, true} {
		st := d.NewAggregate(0)
		kv := map[string][]byte{}
		in := engine.NewRow(3)
		var got []string
		for _, r := range recs {
			in.Reset(3)
			in.SetInt(0, r.ts*1e6)
			in.SetStr(1, r.src)
			in.SetInt(2, r.n)
			if _, err := st.Add(in); err != nil {
				t.Fatal(err)
			}
			st.Fire(false, func(out *engine.Row) error {
				got = append(got, fmt.Sprintf("%s%d", out.Str(0), out.Int(1)))
				return nil
			})
			if reload {
				st.Save(func(k, v []byte) { kv[string(k)] = append([]byte(nil), v...) }, func(k []byte) { delete(kv, string(k)) })
				st = d.NewAggregate(0)
				for k, v := range kv {
					if err := st.Load([]byte(k), v); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		// a@1 kept, a@2 dropped, b@5 kept, a@11 kept (10 s after a@1),
		// a@12 dropped, c@3 kept by dedup then filtered by WHERE, b@30
		// kept, b@31 dropped.
		if diff := cmp.Diff([]string{"a1", "b3", "a4", "b6"}, got); diff != "" {
			t.Errorf("reload=%v (-want +got):\n%s", reload, diff)
		}
		if reload && len(kv) > 4 {
			t.Errorf("expired keys stay in the state: %d entries", len(kv))
		}
	}
}
