package sql

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/engine"
)

// TestWindowStateLogRewrite: when the state log is due a rewrite, Save
// writes the live groups afresh and deletes every older entry, and a state
// loaded from the store (patches, deletions, a rewrite, more patches) emits
// what the state that never left memory emits.
func TestWindowStateLogRewrite(t *testing.T) {
	tr, err := CompileTransform(`SELECT window_start, src, COUNT(*) AS c, SUM(n) AS s, MAX(n) AS hi
		FROM input GROUP BY TUMBLE(ts, '10 seconds'), src`, windowSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	a := tr.(*Aggregation)
	kv := map[string][]byte{}
	put := func(k, v []byte) { kv[string(k)] = append([]byte(nil), v...) }
	del := func(k []byte) { delete(kv, string(k)) }
	load := func() *aggregate {
		st := a.NewAggregate(0).(*aggregate)
		st.lateness = 5e6
		for _, k := range slices.Sorted(maps.Keys(kv)) {
			if err := st.Load([]byte(k), kv[k]); err != nil {
				t.Fatal(err)
			}
		}
		return st
	}
	mem := a.NewAggregate(0).(*aggregate)
	mem.lateness = 5e6
	st := load()
	var gotMem, gotStore []string
	emitTo := func(rows *[]string) func(*engine.Row) error {
		return func(out *engine.Row) error {
			*rows = append(*rows, fmt.Sprintf("%d %s %d %d %d", out.Int(0)/1e6, out.Str(1), out.Int(2), out.Int(3), out.Int(4)))
			return nil
		}
	}
	in := engine.NewRow(3)
	rewrote := false
	for i := range 400 {
		in.Reset(3)
		in.SetInt(0, int64(i/4)*1e6)
		in.SetStr(1, fmt.Sprintf("src-%d", i%7))
		in.SetInt(2, int64(i%13))
		for _, s := range []*aggregate{mem, st} {
			if late, err := s.Add(in); late || err != nil {
				t.Fatalf("record %d: late %v, error %v", i, late, err)
			}
		}
		if err := mem.Fire(false, emitTo(&gotMem)); err != nil {
			t.Fatal(err)
		}
		if err := st.Fire(false, emitTo(&gotStore)); err != nil {
			t.Fatal(err)
		}
		if i%5 == 4 {
			if i == 199 {
				st.logBytes = 1 << 40 // a rewrite is due
			}
			before := len(st.logSeqs)
			st.Save(put, del)
			if i == 199 {
				rewrote = true
				if len(st.logSeqs) != 1 || before < 2 {
					t.Fatalf("rewrite: %d log entries before, %d after; want several, then 1", before, len(st.logSeqs))
				}
				if n := len(kv); n != 2 { // the rewritten entry and the watermark
					t.Fatalf("after the rewrite the store holds %d entries, want 2: %q", n, slices.Sorted(maps.Keys(kv)))
				}
			}
			st = load()
		}
	}
	if !rewrote {
		t.Fatal("no rewrite")
	}
	if err := mem.Fire(true, emitTo(&gotMem)); err != nil {
		t.Fatal(err)
	}
	if err := st.Fire(true, emitTo(&gotStore)); err != nil {
		t.Fatal(err)
	}
	if len(gotMem) < 50 {
		t.Fatalf("only %d rows", len(gotMem))
	}
	if diff := cmp.Diff(gotMem, gotStore); diff != "" {
		t.Errorf("rows of the reloaded state (-in memory +reloaded):\n%s", diff)
	}
}

// TestWindowStateManyWindows: a group with more open windows than a
// one-byte count holds (hopping windows 200 times their slide) is saved,
// patched, loaded and emitted as the state that never left memory.
func TestWindowStateManyWindows(t *testing.T) {
	tr, err := CompileTransform(`SELECT window_start, src, COUNT(*) AS c, SUM(n) AS s
		FROM input GROUP BY HOP(ts, '1 second', '200 seconds'), src`, windowSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	a := tr.(*Aggregation)
	kv := map[string][]byte{}
	put := func(k, v []byte) { kv[string(k)] = append([]byte(nil), v...) }
	del := func(k []byte) { delete(kv, string(k)) }
	mem := a.NewAggregate(time.Hour).(*aggregate)
	st := a.NewAggregate(time.Hour).(*aggregate)
	in := engine.NewRow(3)
	for i := range 60 {
		in.Reset(3)
		in.SetInt(0, int64(i)*1e6)
		in.SetStr(1, fmt.Sprintf("src-%d", i%2))
		in.SetInt(2, int64(i))
		for _, s := range []*aggregate{mem, st} {
			if late, err := s.Add(in); late || err != nil {
				t.Fatalf("record %d: late %v, error %v", i, late, err)
			}
		}
		if i%20 == 19 {
			st.Save(put, del)
			st = a.NewAggregate(time.Hour).(*aggregate)
			for _, k := range slices.Sorted(maps.Keys(kv)) {
				if err := st.Load([]byte(k), kv[k]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	rows := func(s *aggregate) []string {
		var out []string
		if err := s.Fire(true, func(r *engine.Row) error {
			out = append(out, fmt.Sprintf("%d %s %d %d", r.Int(0)/1e6, r.Str(1), r.Int(2), r.Int(3)))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want, got := rows(mem), rows(st)
	if len(want) < 2*200 {
		t.Fatalf("only %d rows", len(want))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows of the reloaded state (-in memory +reloaded):\n%s", diff)
	}
}

// TestWindowStateReplay: a task that crashes at random points resumes from
// the state of its last Save and replays the records after it; the rows it
// emits, in order, are those of the run without crashes. Keys come and go
// (their groups are deleted and made again), and the log is rewritten
// along the way.
func TestWindowStateReplay(t *testing.T) {
	tr, err := CompileTransform(`SELECT window_start, src, COUNT(*) AS c, SUM(n) AS s
		FROM input GROUP BY TUMBLE(ts, '10 seconds'), src`, windowSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	a := tr.(*Aggregation)
	r := rand.New(rand.NewPCG(3, 4))
	type rec struct {
		ts  int64
		src string
		n   int64
	}
	var recs []rec
	for i := range 20000 {
		// Keys live a while, then others take over; some records are
		// a little out of order.
		k := (i/2000)*7 + r.IntN(20)
		recs = append(recs, rec{ts: int64(i)*1e5 - int64(r.IntN(3))*1e6, src: fmt.Sprintf("src-%d", k), n: int64(r.IntN(100))})
	}
	run := func(crash func(i int) bool) []string {
		kv := map[string][]byte{}
		put := func(k, v []byte) { kv[string(k)] = append([]byte(nil), v...) }
		del := func(k []byte) { delete(kv, string(k)) }
		var out []string
		emit := func(o *engine.Row) error {
			out = append(out, fmt.Sprintf("%d %s %d %d", o.Int(0)/1e6, o.Str(1), o.Int(2), o.Int(3)))
			return nil
		}
		st := a.NewAggregate(2 * time.Second).(*aggregate)
		snap, snapOut, snapAt := maps.Clone(kv), 0, 0
		in := engine.NewRow(3)
		saves := 0
		for i := 0; i < len(recs); {
			in.Reset(3)
			in.SetInt(0, recs[i].ts)
			in.SetStr(1, recs[i].src)
			in.SetInt(2, recs[i].n)
			if _, err := st.Add(in); err != nil {
				t.Fatal(err)
			}
			if err := st.Fire(false, emit); err != nil {
				t.Fatal(err)
			}
			i++
			if i%97 == 0 {
				saves++
				if saves%40 == 0 {
					st.logBytes = 1 << 40 // a rewrite is due
				}
				st.Save(put, del)
				snap, snapOut, snapAt = maps.Clone(kv), len(out), i
			}
			if crash(i) {
				kv, out, i = maps.Clone(snap), out[:snapOut], snapAt
				st = a.NewAggregate(2 * time.Second).(*aggregate)
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
		return out
	}
	want := run(func(int) bool { return false })
	crashes := 0
	got := run(func(i int) bool {
		if r.IntN(300) == 0 && crashes < 200 {
			crashes++
			return true
		}
		return false
	})
	if len(want) < 1000 || crashes < 20 {
		t.Fatalf("%d rows, %d crashes: the test does not test", len(want), crashes)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows with %d crashes (-without +with):\n%s", crashes, diff)
	}
}

// TestWindowStateEarlierLayout: a log written in the layout before group
// numbers (each change under 'l' with its key) is read, and the first Save
// replaces it with the present layout.
func TestWindowStateEarlierLayout(t *testing.T) {
	tr, err := CompileTransform(`SELECT window_start, src, COUNT(*) AS c, SUM(n) AS s
		FROM input GROUP BY TUMBLE(ts, '10 seconds'), src`, windowSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	a := tr.(*Aggregation)
	mem := a.NewAggregate(time.Hour).(*aggregate)
	in := engine.NewRow(3)
	for i := range 300 {
		in.Reset(3)
		in.SetInt(0, int64(i)*1e5)
		in.SetStr(1, fmt.Sprintf("src-%d", i%11))
		in.SetInt(2, int64(i))
		if _, err := mem.Add(in); err != nil {
			t.Fatal(err)
		}
	}
	// The earlier layout: uvarint len(key), key, uvarint len(value),
	// value; here every group in full, over two entries, and a group
	// that the second entry deletes.
	kv := map[string][]byte{}
	var entries [2][]byte
	add := func(e int, key string, val []byte) {
		b := binary.AppendUvarint(entries[e], uint64(len(key)))
		b = append(b, key...)
		b = binary.AppendUvarint(b, uint64(len(val)))
		entries[e] = append(b, val...)
	}
	n := 0
	var gone string
	mem.groups.each(func(g *group) {
		if n == 0 {
			gone = strings.Replace(g.key, "src", "old", 1)
			add(0, gone, append([]byte{logFull}, mem.encodeGroup(nil, g)...))
			add(1, gone, nil)
		}
		add(n%2, g.key, append([]byte{logFull}, mem.encodeGroup(nil, g)...))
		n++
	})
	for e, b := range entries {
		kv[string(binary.BigEndian.AppendUint64([]byte{'l'}, uint64(e)))] = b
	}
	kv["m"] = binary.AppendVarint(nil, mem.wm)
	load := func() *aggregate {
		st := a.NewAggregate(time.Hour).(*aggregate)
		for _, k := range slices.Sorted(maps.Keys(kv)) {
			if err := st.Load([]byte(k), kv[k]); err != nil {
				t.Fatal(err)
			}
		}
		return st
	}
	st := load()
	st.Save(func(k, v []byte) { kv[string(k)] = append([]byte(nil), v...) }, func(k []byte) { delete(kv, string(k)) })
	for k := range kv {
		if k[0] == 'l' {
			t.Errorf("the Save left the earlier layout's entry %q", k)
		}
	}
	rows := func(s *aggregate) []string {
		var out []string
		if err := s.Fire(true, func(r *engine.Row) error {
			out = append(out, fmt.Sprintf("%d %s %d %d", r.Int(0)/1e6, r.Str(1), r.Int(2), r.Int(3)))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := rows(mem)
	if len(want) < 11*3 {
		t.Fatalf("only %d rows", len(want))
	}
	if diff := cmp.Diff(want, rows(load())); diff != "" {
		t.Errorf("rows of the state loaded from the earlier layout and saved again (-want +got):\n%s", diff)
	}
}
