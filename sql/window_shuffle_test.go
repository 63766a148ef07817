package sql_test

import (
	"bytes"
	dbsql "database/sql"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sql"
)

// shuffleKind is the kind of a record of the simulated repartition topic.
type shuffleKind uint8

const (
	msgStart shuffleKind = iota
	msgPartial
	msgProgress
	msgCommit
)

// shuffleMsg is a record of the simulated repartition topic.
type shuffleMsg struct {
	kind       shuffleKind
	producer   string
	epoch      int64
	from, to   int64 // msgPartial: source offsets; msgProgress, msgCommit, msgStart: to
	wm         int64
	key, value []byte
}

// memState is a task's state store as the runtime keeps it: what Save
// passed, loaded back into a fresh state on a restart.
type memState map[string][]byte

func (m memState) save(save func(put func(k, v []byte), del func(k []byte))) {
	save(func(k, v []byte) { m[string(k)] = bytes.Clone(v) }, func(k []byte) { delete(m, string(k)) })
}

func (m memState) load(t *testing.T, load func(k, v []byte) error) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if err := load([]byte(k), m[k]); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWindowShuffleDifferentialSQLite runs the queries of
// TestWindowDifferentialSQLite as a shuffle, through the shuffle protocol
// of the package doc: 6 source tasks, whose records' partitions are
// independent of the group keys, pre-aggregate bundles of random sizes
// (sql.Partial) and send their partials by group key to the 4 partitions
// of a repartition topic (in memory here), each bundle followed by the
// task's progress (offset and watermark) to every partition, and a commit
// to every partition at their checkpoints. The source tasks crash and
// restart from their last checkpoint, replaying in bundles of other
// bounds, while their zombies go on sending; the merging tasks
// (sql.ShuffleMerge) restart from their saved state. The rows of the 4
// merging tasks together must equal what SQLite computes over all the
// records (no longer per partition), without the records late at their
// source task, which must be exactly those the Partials reported late.
func TestWindowShuffleDifferentialSQLite(t *testing.T) {
	n := windowRecords(t) / 2
	const (
		parts  = 6
		merges = 4
	)
	all, byPart := windowInput(n, parts)
	db, err := dbsql.Open("sqlite", filepath.Join(t.TempDir(), "diff.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range windowQueries {
		t.Run(q.name, func(t *testing.T) {
			tr, err := sql.CompileTransform(q.sql, trafficSchema)
			if err != nil {
				t.Fatal(err)
			}
			agg := tr.(*sql.Aggregation)
			rng := rand.New(rand.NewPCG(3, 4))
			var topic [merges][]shuffleMsg
			toAll := func(m shuffleMsg) {
				for i := range topic {
					topic[i] = append(topic[i], m)
				}
			}

			// Source tasks, taking turns at random as in a worker.
			type source struct {
				name            string
				pre             *sql.Partial
				state, ckpt     memState
				epoch           int64
				next, committed int64
				last            []shuffleMsg // its last bundle, which its zombie sends again
			}
			srcs := make([]*source, parts)
			for p := range srcs {
				s := &source{name: fmt.Sprintf("traffic/%d", p), pre: agg.NewPartial(diffLateness), state: memState{}, ckpt: memState{}, epoch: 1}
				srcs[p] = s
				toAll(shuffleMsg{kind: msgStart, producer: s.name, epoch: s.epoch})
			}
			lateSeen := map[string]bool{}
			row := engine.NewRow(trafficSchema.Width())
			partials, crashes := 0, 0
			for {
				var live []int
				for p, s := range srcs {
					if s.committed < int64(len(byPart[p])) {
						live = append(live, p)
					}
				}
				if len(live) == 0 {
					break
				}
				p := live[rng.IntN(len(live))]
				s, recs := srcs[p], byPart[p]
				if s.next > s.committed && rng.IntN(15) == 0 {
					// A crash: the task restarts from its checkpoint in a
					// new epoch; its zombie sends its last bundle again.
					crashes++
					s.epoch++
					s.state = maps.Clone(s.ckpt)
					s.pre = agg.NewPartial(diffLateness)
					s.state.load(t, s.pre.Load)
					s.next = s.committed
					toAll(shuffleMsg{kind: msgStart, producer: s.name, epoch: s.epoch, to: s.committed})
					for _, m := range s.last {
						if m.kind == msgProgress {
							toAll(m)
						} else {
							topic[route(m.key)] = append(topic[route(m.key)], m)
						}
					}
					continue
				}
				from := s.next
				end := min(from+1+rng.Int64N(3000), int64(len(recs)))
				for _, r := range recs[from:end] {
					if err := (genDecoder{}).Decode(&engine.Record{Value: encodeRec(r)}, row); err != nil {
						t.Fatal(err)
					}
					late, err := s.pre.Add(row)
					if err != nil {
						t.Fatal(err)
					}
					if late {
						lateSeen[fmt.Sprintf("late %d/%d", p, r.offset)] = true
					}
				}
				s.next = end
				s.last = s.last[:0]
				err := s.pre.Flush(func(key, value []byte) error {
					m := shuffleMsg{kind: msgPartial, producer: s.name, epoch: s.epoch, from: from, to: end, key: bytes.Clone(key), value: bytes.Clone(value)}
					topic[route(key)] = append(topic[route(key)], m)
					s.last = append(s.last, m)
					partials++
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				wm := s.pre.Watermark()
				if end == int64(len(recs)) {
					wm = math.MaxInt64 // the end of its input
				}
				progress := shuffleMsg{kind: msgProgress, producer: s.name, epoch: s.epoch, to: end, wm: wm}
				toAll(progress)
				s.last = append(s.last, progress)
				s.state.save(s.pre.Save)
				if end == int64(len(recs)) || rng.IntN(4) == 0 {
					// A checkpoint: the state and offset are durable and
					// committed, then the commit goes to every partition.
					s.ckpt, s.committed = maps.Clone(s.state), end
					toAll(shuffleMsg{kind: msgCommit, producer: s.name, epoch: s.epoch, to: end})
				}
			}
			late, lateSet := lateRecords(q, byPart)
			gotLate := slices.Sorted(maps.Keys(lateSeen))
			if diff := cmp.Diff(late, gotLate); diff != "" {
				t.Errorf("late records (-want +got):\n%s", diff)
			}
			if len(late) == 0 {
				t.Error("no record was late: the test does not exercise lateness")
			}

			// Merging tasks: each reads its partition in order, saving its
			// state at some commits and sometimes restarting from it.
			var got []string
			emit := func(out *engine.Row) error {
				got = append(got, formatRow(tr.Output(), out, 0))
				return nil
			}
			for i, msgs := range topic {
				merge := agg.NewShuffleMerge(diffLateness, parts)
				state := memState{}
				for _, m := range msgs {
					switch m.kind {
					case msgStart:
						err = merge.Start(m.producer, m.epoch, m.to)
					case msgPartial:
						merge.Partial(m.producer, m.epoch, m.from, m.to, m.key, m.value)
					case msgProgress:
						merge.Progress(m.producer, m.epoch, m.to, m.wm)
					case msgCommit:
						err = merge.Commit(m.producer, m.epoch, m.to)
					}
					if err != nil {
						t.Fatalf("merge task %d: %v", i, err)
					}
					if m.kind != msgCommit {
						continue
					}
					if err := merge.Fire(false, emit); err != nil {
						t.Fatal(err)
					}
					if rng.IntN(4) == 0 {
						state.save(merge.Save)
						if rng.IntN(len(msgs)/200+1) == 0 {
							merge = agg.NewShuffleMerge(diffLateness, parts)
							state.load(t, merge.Load)
						}
					}
				}
				if merge.Late() != 0 {
					t.Errorf("merge task %d: %d partial windows behind the watermark", i, merge.Late())
				}
				if merge.Watermark() != math.MaxInt64 {
					t.Errorf("merge task %d: watermark %d at the end of the input", i, merge.Watermark())
				}
				state.save(merge.Save)
				for k := range state {
					if k[0] == 'g' || k[0] == 'q' {
						t.Errorf("merge task %d: state entry %q left at the end of the input", i, k)
						break
					}
				}
			}
			slices.Sort(got)
			want := sqliteRows(t, db, all, lateSet, q.global, tr.Output().Fields())
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%d rows emitted, SQLite has %d (-sqlite +sluice):\n%s", len(got), len(want), truncate(diff, 4000))
			}
			t.Logf("%d rows from %d partials, %d late records, %d source crashes", len(got), partials, len(late), crashes)
		})
	}
}

// route is the repartition partition of a group key.
func route(key []byte) int {
	h := fnv.New32a()
	h.Write(key)
	return int(h.Sum32() % 4)
}

// FuzzShuffleMerge feeds arbitrary partials and state entries, as a
// repartition topic or a state store could hold after a fault, to a
// merging task of each query: nothing may panic. Seeds: real partials.
func FuzzShuffleMerge(f *testing.F) {
	var aggs []*sql.Aggregation
	for _, q := range windowQueries {
		tr, err := sql.CompileTransform(q.sql, trafficSchema)
		if err != nil {
			f.Fatal(err)
		}
		aggs = append(aggs, tr.(*sql.Aggregation))
	}
	_, byPart := windowInput(200, 1)
	row := engine.NewRow(trafficSchema.Width())
	for _, a := range aggs {
		pre := a.NewPartial(diffLateness)
		for _, r := range byPart[0][:50] {
			if err := (genDecoder{}).Decode(&engine.Record{Value: encodeRec(r)}, row); err != nil {
				f.Fatal(err)
			}
			if _, err := pre.Add(row); err != nil {
				f.Fatal(err)
			}
		}
		_ = pre.Flush(func(key, value []byte) error {
			f.Add(bytes.Clone(key), bytes.Clone(value))
			return nil
		})
	}
	f.Fuzz(func(t *testing.T, key, value []byte) {
		for _, a := range aggs {
			m := a.NewShuffleMerge(diffLateness, 1)
			if err := m.Start("p", 1, 0); err != nil {
				t.Fatal(err)
			}
			m.Partial("p", 1, 0, 1, key, value)
			_ = m.Commit("p", 1, 1)
			_ = m.Load(key, value)
			_ = m.Load(append([]byte{'q'}, key...), value)
			_ = m.Load(append([]byte{'p'}, key...), value)
			m.Advance(math.MaxInt64)
			_ = m.Fire(true, func(*engine.Row) error { return nil })
		}
	})
}

// TestShuffleMergeStartBelowMerged: a producer that starts below the
// offsets a merging task already merged would count them again; the task
// says so instead.
func TestShuffleMergeStartBelowMerged(t *testing.T) {
	tr, err := sql.CompileTransform(windowQueries[0].sql, trafficSchema)
	if err != nil {
		t.Fatal(err)
	}
	m := tr.(*sql.Aggregation).NewShuffleMerge(diffLateness, 1)
	if err := m.Start("traffic/0", 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Commit("traffic/0", 1, 100); err != nil {
		t.Fatal(err)
	}
	if err := m.Start("traffic/0", 1, 50); err != nil {
		t.Errorf("a zombie's start (same epoch): %v, want it ignored", err)
	}
	if err := m.Start("traffic/0", 2, 50); err == nil {
		t.Error("a start at 50 after offsets up to 100 were merged: no error")
	}
	if err := m.Start("traffic/0", 3, 100); err != nil {
		t.Errorf("a start at the merged offset: %v", err)
	}
}
