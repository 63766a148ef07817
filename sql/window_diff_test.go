package sql_test

import (
	"context"
	dbsql "database/sql"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	_ "modernc.org/sqlite"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sql"
)

// The test doubles below (a source of generated records, a decoder of their
// fixed layout, an in-memory sink) stand in for Kafka and Avro so that a
// million records run in seconds; the windows, the runtime, the Pebble
// state and the checkpoints are the real ones.

var trafficSchema = engine.MustSchema(&engine.Type{Kind: engine.KindRecord, Name: "t", EnumDefault: -1, Fields: []engine.Field{
	{Name: "ts", Type: &engine.Type{Kind: engine.KindLong, Logical: engine.TimestampMicros, EnumDefault: -1}},
	{Name: "bytes", Type: &engine.Type{Kind: engine.KindLong, EnumDefault: -1}},
	{Name: "src_ip", Type: &engine.Type{Kind: engine.KindString, EnumDefault: -1}},
	{Name: "action", Type: &engine.Type{Kind: engine.KindString, EnumDefault: -1}},
}})

type genRec struct {
	part   int
	offset int64
	ts     int64 // µs
	bytes  int64
	src    string
	action string
}

func encodeRec(r genRec) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(r.ts))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.bytes))
	b = append(b, byte(len(r.src)))
	b = append(b, r.src...)
	b = append(b, byte(len(r.action)))
	return append(b, r.action...)
}

type genDecoder struct{}

func (genDecoder) Schema() *engine.Schema { return trafficSchema }
func (genDecoder) Decode(rec *engine.Record, row *engine.Row) error {
	v := rec.Value
	row.SetInt(0, int64(binary.LittleEndian.Uint64(v)))
	row.SetInt(1, int64(binary.LittleEndian.Uint64(v[8:])))
	n := int(v[16])
	row.SetStr(2, engine.UnsafeString(v[17:17+n]))
	m := int(v[17+n])
	row.SetStr(3, engine.UnsafeString(v[18+n:18+n+m]))
	return nil
}

// genSource delivers the records of 6 partitions, interleaved, in batches,
// then ends them.
type genSource struct {
	parts [][]genRec
}

func (s *genSource) Run(ctx context.Context, h engine.Handler) error {
	var as []engine.Assignment
	for p := range s.parts {
		as = append(as, engine.Assignment{Task: engine.TaskID{Topic: "traffic", Partition: int32(p)}, Offset: -1})
	}
	h.Assign(ctx, as)
	const batch = 500
	for i := 0; ; i += batch {
		more := false
		for p, recs := range s.parts {
			if i >= len(recs) {
				continue
			}
			more = true
			out := make([]engine.Record, 0, batch)
			for _, r := range recs[i:min(i+batch, len(recs))] {
				out = append(out, engine.Record{Value: encodeRec(r), Offset: r.offset, Timestamp: time.UnixMicro(r.ts)})
			}
			h.Deliver(as[p].Task, out)
		}
		if !more {
			break
		}
		time.Sleep(0) // let tasks take their inboxes
	}
	for _, a := range as {
		h.End(a.Task)
	}
	return nil
}

func (s *genSource) Commit(context.Context, []engine.Position, string) error { return nil }

// rowSink keeps every acknowledged row, formatted.
type rowSink struct {
	schema *engine.Schema
	mu     sync.Mutex
	rows   []string
}

type rowWriter struct {
	s       *rowSink
	part    int32
	pending []string
}

func (s *rowSink) Open(_ context.Context, task engine.TaskID) (engine.Writer, error) {
	return &rowWriter{s: s, part: task.Partition}, nil
}
func (s *rowSink) Close(context.Context) error { return nil }
func (w *rowWriter) Write(row *engine.Row) error {
	w.pending = append(w.pending, formatRow(w.s.schema, row, w.part))
	return nil
}
func (w *rowWriter) Flush(context.Context) error {
	w.s.mu.Lock()
	w.s.rows = append(w.s.rows, w.pending...)
	w.s.mu.Unlock()
	w.pending = nil
	return nil
}
func (w *rowWriter) Close(context.Context) error { return nil }

// formatRow writes a row as "p=<partition> col=value ...", doubles rounded
// to 6 significant digits.
func formatRow(s *engine.Schema, row *engine.Row, part int32) string {
	var b strings.Builder
	fmt.Fprintf(&b, "p=%d", part)
	for i, f := range s.Fields() {
		v := row.Slots[i]
		t := f.Type
		if inner, ok := t.Nullable(); ok {
			t = inner
		}
		switch {
		case v.Null:
			fmt.Fprintf(&b, " %s=NULL", f.Name)
		case t.Kind == engine.KindDouble:
			fmt.Fprintf(&b, " %s=%.6g", f.Name, math.Float64frombits(v.N))
		case t.Kind == engine.KindString:
			fmt.Fprintf(&b, " %s=%s", f.Name, v.S)
		default:
			fmt.Fprintf(&b, " %s=%d", f.Name, int64(v.N))
		}
	}
	return b.String()
}

// dlSink keeps the dead letters: "<stage> <partition>/<offset>".
type dlSink struct {
	mu   sync.Mutex
	rows []string
}

type dlWriter struct {
	s       *dlSink
	pending []string
}

func (s *dlSink) Open(context.Context, engine.TaskID) (engine.Writer, error) {
	return &dlWriter{s: s}, nil
}
func (s *dlSink) Close(context.Context) error { return nil }
func (w *dlWriter) Write(row *engine.Row) error {
	w.pending = append(w.pending, fmt.Sprintf("%s %d/%d", row.Str(engine.DLStage), row.Int(engine.DLPartition), row.Int(engine.DLOffset)))
	return nil
}
func (w *dlWriter) Flush(context.Context) error {
	w.s.mu.Lock()
	w.s.rows = append(w.s.rows, w.pending...)
	w.s.mu.Unlock()
	w.pending = nil
	return nil
}
func (w *dlWriter) Close(context.Context) error { return nil }

// windowRecords is the size of TestWindowDifferentialSQLite's input:
// 100,000 records, 10,000 under the race detector; the
// SLUICE_WINDOW_RECORDS environment variable overrides it (1000000 is the
// full run).
func windowRecords(t *testing.T) int {
	n := 100_000
	if raceBuild {
		n = 10_000
	}
	if v := os.Getenv("SLUICE_WINDOW_RECORDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatalf("SLUICE_WINDOW_RECORDS=%q: %v", v, err)
		}
	}
	return n
}

// diffLateness is the allowed lateness of the differential tests.
const diffLateness = 10 * time.Second

// windowInput generates the differential tests' records: n records over 10
// minutes, 5 % of them out of order by up to 30 s, spread over parts
// partitions at random, independently of every group key.
func windowInput(n, parts int) (all []genRec, byPart [][]genRec) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).UnixMicro()
	srcs := make([]string, 2000)
	for i := range srcs {
		srcs[i] = fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256)
	}
	actions := []string{"ALLOW", "DENY", "DROP"}
	byPart = make([][]genRec, parts)
	for i := range n {
		r := genRec{
			part:   rng.IntN(parts),
			ts:     base + int64(i)*600_000_000/int64(n), // any n spans 10 minutes
			bytes:  rng.Int64N(100000),
			src:    srcs[rng.IntN(len(srcs))],
			action: actions[rng.IntN(len(actions))],
		}
		if rng.IntN(100) < 5 {
			r.ts -= rng.Int64N(30_000_001)
		}
		r.offset = int64(len(byPart[r.part]))
		byPart[r.part] = append(byPart[r.part], r)
		all = append(all, r)
	}
	return all, byPart
}

// windowQuery is a windowed query of the differential tests and the same
// aggregation in SQLite, per partition (perPart, over table recs, whose
// first column is the partition) and over all records (global, whose first
// column is 0).
type windowQuery struct {
	name, sql string
	late      func(wm, ts int64) bool // the window rule, µs
	drop      string                  // the action the WHERE clause rejects
	perPart   string
	global    string
}

var windowQueries = []windowQuery{
	{
		name: "tumble",
		sql: `SELECT window_start, window_end, src_ip, action, COUNT(*) AS c, SUM(bytes) AS s, MIN(bytes) AS lo, MAX(bytes) AS hi, AVG(bytes) AS av
		      FROM input WHERE action <> 'DROP' GROUP BY TUMBLE(ts, '1 minute'), src_ip, action HAVING COUNT(*) > 1`,
		drop: "DROP",
		late: func(wm, ts int64) bool {
			start := ts / 60e6 * 60e6
			return start+60e6+int64(diffLateness/time.Microsecond) <= wm
		},
		perPart: `SELECT part, ts/60000000*60000000 AS ws, ts/60000000*60000000+60000000 AS we, src_ip, action, COUNT(*), SUM(bytes), MIN(bytes), MAX(bytes), AVG(bytes)
		          FROM recs WHERE action <> 'DROP' GROUP BY part, ws, src_ip, action HAVING COUNT(*) > 1`,
		global: `SELECT 0, ts/60000000*60000000 AS ws, ts/60000000*60000000+60000000 AS we, src_ip, action, COUNT(*), SUM(bytes), MIN(bytes), MAX(bytes), AVG(bytes)
		         FROM recs WHERE action <> 'DROP' GROUP BY ws, src_ip, action HAVING COUNT(*) > 1`,
	},
	{
		name: "hop",
		sql: `SELECT window_start, window_end, action, COUNT(*) AS c, COUNT(DISTINCT src_ip) AS d, SUM(bytes) AS s
		      FROM input GROUP BY HOP(ts, '20 seconds', '1 minute'), action`,
		late: func(wm, ts int64) bool {
			last := ts / 20e6 * 20e6
			return last-40e6+60e6+int64(diffLateness/time.Microsecond) <= wm
		},
		perPart: `SELECT part, ws, ws+60000000, action, COUNT(*), COUNT(DISTINCT src_ip), SUM(bytes)
		          FROM (SELECT r.*, (r.ts/20000000 - k.k)*20000000 AS ws FROM recs r, (SELECT 0 AS k UNION ALL SELECT 1 UNION ALL SELECT 2) k)
		          GROUP BY part, ws, action`,
		global: `SELECT 0, ws, ws+60000000, action, COUNT(*), COUNT(DISTINCT src_ip), SUM(bytes)
		         FROM (SELECT r.*, (r.ts/20000000 - k.k)*20000000 AS ws FROM recs r, (SELECT 0 AS k UNION ALL SELECT 1 UNION ALL SELECT 2) k)
		         GROUP BY ws, action`,
	},
	{
		name: "session",
		sql: `SELECT window_start, window_end, src_ip, COUNT(*) AS c, MAX(bytes) AS hi
		      FROM input GROUP BY SESSION(ts, '5s'), src_ip`,
		late: func(wm, ts int64) bool { return ts+int64(diffLateness/time.Microsecond) < wm },
		perPart: `WITH o AS (SELECT part, src_ip, ts, bytes, CASE WHEN ts - LAG(ts) OVER w >= 5000000 OR LAG(ts) OVER w IS NULL THEN 1 ELSE 0 END AS brk
		                 FROM recs WINDOW w AS (PARTITION BY part, src_ip ORDER BY ts)),
		               s AS (SELECT part, src_ip, ts, bytes, SUM(brk) OVER (PARTITION BY part, src_ip ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM o)
		          SELECT part, MIN(ts), MAX(ts)+5000000, src_ip, COUNT(*), MAX(bytes) FROM s GROUP BY part, src_ip, sid`,
		global: `WITH o AS (SELECT src_ip, ts, bytes, CASE WHEN ts - LAG(ts) OVER w >= 5000000 OR LAG(ts) OVER w IS NULL THEN 1 ELSE 0 END AS brk
		                FROM recs WINDOW w AS (PARTITION BY src_ip ORDER BY ts)),
		              s AS (SELECT src_ip, ts, bytes, SUM(brk) OVER (PARTITION BY src_ip ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM o)
		         SELECT 0, MIN(ts), MAX(ts)+5000000, src_ip, COUNT(*), MAX(bytes) FROM s GROUP BY src_ip, sid`,
	},
}

// lateRecords finds the records of q that are late: each partition's
// watermark is the highest event time before the record, among records not
// late. It returns them as dead letters ("late <partition>/<offset>") and
// as a set.
func lateRecords(q windowQuery, byPart [][]genRec) ([]string, map[[2]int64]bool) {
	var late []string
	lateSet := map[[2]int64]bool{}
	for p, recs := range byPart {
		wm := int64(math.MinInt64)
		for _, r := range recs {
			if r.action != q.drop && q.late(wm, r.ts) {
				late = append(late, fmt.Sprintf("late %d/%d", p, r.offset))
				lateSet[[2]int64{int64(p), r.offset}] = true
				continue
			}
			wm = max(wm, r.ts)
		}
	}
	slices.Sort(late)
	return late, lateSet
}

// sqliteRows loads the records not in late into table recs (part, ts,
// bytes, src_ip, action) and returns the rows of query, formatted as
// formatRow does (its first column is the partition).
func sqliteRows(t *testing.T, db *dbsql.DB, all []genRec, late map[[2]int64]bool, query string, cols []engine.Field) []string {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{"DROP TABLE IF EXISTS recs", "CREATE TABLE recs (part INTEGER, ts INTEGER, bytes INTEGER, src_ip TEXT, action TEXT)"} {
		if _, err := tx.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	ins, err := tx.Prepare("INSERT INTO recs VALUES (?, ?, ?, ?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if !late[[2]int64{int64(r.part), r.offset}] {
			if _, err := ins.Exec(r.part, r.ts, r.bytes, r.src, r.action); err != nil {
				t.Fatal(err)
			}
		}
	}
	ins.Close()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(query)
	if err != nil {
		t.Fatalf("sqlite: %v", err)
	}
	defer rows.Close()
	var want []string
	for rows.Next() {
		vals := make([]any, len(cols)+1)
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "p=%d", vals[0])
		for i, f := range cols {
			switch v := vals[i+1].(type) {
			case nil:
				fmt.Fprintf(&b, " %s=NULL", f.Name)
			case float64:
				fmt.Fprintf(&b, " %s=%.6g", f.Name, v)
			case string:
				fmt.Fprintf(&b, " %s=%s", f.Name, v)
			default:
				fmt.Fprintf(&b, " %s=%d", f.Name, v)
			}
		}
		want = append(want, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	return want
}

// TestWindowDifferentialSQLite runs tumbling, hopping and session
// aggregations over generated records (5 % of them out of order by up to
// 30 s, keys spread over 6 partitions independently of the group keys)
// through the runtime, with the state in Pebble, and compares every
// emitted row with what SQLite computes over the same records: the same
// aggregation per partition (each task emits the rows of its own records),
// without the records the test itself finds late, which must be exactly
// the dead letters with stage late. TestWindowShuffleDifferentialSQLite
// compares the shuffled aggregation with SQLite's over all records.
func TestWindowDifferentialSQLite(t *testing.T) {
	n := windowRecords(t)
	const parts = 6
	all, byPart := windowInput(n, parts)
	queries := windowQueries

	ctx := t.Context()
	dir := t.TempDir()
	store, err := checkpoint.NewDir(filepath.Join(dir, "ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	states, err := checkpoint.NewTaskStates(checkpoint.NewState(store), filepath.Join(dir, "state"), "diff")
	if err != nil {
		t.Fatal(err)
	}
	job := &engine.Job{Name: "diff", Pod: "p0", Source: &genSource{parts: byPart}, Store: checkpoint.New(store), State: states, Interval: 2 * time.Second}
	sinks := make([]*rowSink, len(queries))
	dls := make([]*dlSink, len(queries))
	for i, q := range queries {
		tr, err := sql.CompileTransform(q.sql, trafficSchema)
		if err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
		sinks[i] = &rowSink{schema: tr.Output()}
		dls[i] = &dlSink{}
		job.Pipelines = append(job.Pipelines, &engine.Pipeline{
			Name: q.name, Reads: func(string) bool { return true }, Decoder: genDecoder{}, Transform: tr,
			Sinks: []engine.NamedSink{{Name: "out", Sink: sinks[i]}}, DeadLetter: dls[i],
			AllowedLateness: diffLateness, MaxRecords: 5000,
		})
	}
	rt, err := engine.New(job)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := rt.Run(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records through %d windowed pipelines in %s", n, len(queries), time.Since(start).Round(time.Millisecond))

	db, err := dbsql.Open("sqlite", filepath.Join(dir, "diff.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for qi, q := range queries {
		late, lateSet := lateRecords(q, byPart)
		gotLate := slices.Clone(dls[qi].rows)
		slices.Sort(gotLate)
		if diff := cmp.Diff(late, gotLate); diff != "" {
			t.Errorf("%s: dead letters (-want +got):\n%s", q.name, diff)
		}
		if len(late) == 0 {
			t.Errorf("%s: no record was late: the test does not exercise lateness", q.name)
		}
		want := sqliteRows(t, db, all, lateSet, q.perPart, sinks[qi].schema.Fields())
		got := slices.Clone(sinks[qi].rows)
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: %d rows emitted, SQLite has %d (-sqlite +sluice):\n%s", q.name, len(got), len(want), truncate(diff, 4000))
		}
		t.Logf("%s: %d rows, %d late records", q.name, len(got), len(late))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "\n…"
}
