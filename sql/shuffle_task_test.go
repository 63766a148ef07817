package sql_test

import (
	"bytes"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sql"
)

// shuffleLink runs the two task halves of a shuffled aggregation as the
// runtime and the repartition sink do: a producer task's Seal rows, given
// a producer name and epoch, are fed to a merging task's Add.
type shuffleLink struct {
	t     *testing.T
	prod  engine.Aggregate
	merge engine.Aggregate
	row   *engine.Row
	out   []string
	name  string
	outS  *engine.Schema
	agg   *sql.Aggregation
}

func newShuffleLink(t *testing.T, query string) *shuffleLink {
	t.Helper()
	tr, err := sql.CompileTransform(query, trafficSchema)
	if err != nil {
		t.Fatal(err)
	}
	a := tr.(*sql.Aggregation)
	return &shuffleLink{t: t, prod: a.Producer().NewAggregate(0), merge: a.Merger(1).NewAggregate(0), row: engine.NewRow(sql.ShuffleSchema.Width()), name: "in/0", outS: a.Output(), agg: a}
}

// add folds records of (ts seconds, src) into the producer.
func (l *shuffleLink) add(recs ...genRec) {
	row := engine.NewRow(trafficSchema.Width())
	for _, r := range recs {
		if err := (genDecoder{}).Decode(&engine.Record{Value: encodeRec(r)}, row); err != nil {
			l.t.Fatal(err)
		}
		if late, err := l.prod.Add(row); late || err != nil {
			l.t.Fatalf("add %+v: late %v, %v", r, late, err)
		}
	}
}

// seal ends the producer's bundle [from, to) and returns its messages,
// stamped with epoch, as the repartition topic holds them.
func (l *shuffleLink) seal(epoch, from, to int64) []*engine.Row {
	var msgs []*engine.Row
	err := l.prod.(engine.Sealer).Seal(from, to, func(out *engine.Row) error {
		m := engine.NewRow(sql.ShuffleSchema.Width())
		copy(m.Slots, out.Slots)
		m.SetInt(sql.ShuffleEpoch, epoch)
		m.SetStr(sql.ShuffleProducerName, l.name)
		m.SetStr(sql.ShuffleKey, string(bytes.Clone([]byte(out.Str(sql.ShuffleKey)))))
		m.SetStr(sql.ShuffleValue, string(bytes.Clone([]byte(out.Str(sql.ShuffleValue)))))
		msgs = append(msgs, m)
		return nil
	})
	if err != nil {
		l.t.Fatal(err)
	}
	return msgs
}

// control feeds a start or commit message.
func (l *shuffleLink) control(kind, epoch, to int64) {
	m := engine.NewRow(sql.ShuffleSchema.Width())
	m.SetInt(sql.ShuffleKind, kind)
	m.SetInt(sql.ShuffleEpoch, epoch)
	m.SetInt(sql.ShuffleTo, to)
	m.SetStr(sql.ShuffleProducerName, l.name)
	l.feed(m)
}

func (l *shuffleLink) feed(msgs ...*engine.Row) {
	for _, m := range msgs {
		if _, err := l.merge.Add(m); err != nil {
			l.t.Fatal(err)
		}
		err := l.merge.Fire(false, func(out *engine.Row) error {
			l.out = append(l.out, formatRow(l.outS, out, 0))
			return nil
		})
		if err != nil {
			l.t.Fatal(err)
		}
	}
}

func rec(sec int64, src string) genRec {
	return genRec{ts: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(sec) * time.Second).UnixMicro(), bytes: 1, src: src, action: "ALLOW"}
}

// TestShuffleTaskRestart: a producer whose bundle's flush failed after
// some of its partials reached the topic starts again (a new epoch) from
// the bundle's start: the merging task drops what it had of that bundle
// and keeps the earlier bundle (complete, not yet committed) pending. The
// producer then crashes before any commit, and its next owner starts from
// the committed offset 0: nothing was merged, so it replays everything,
// and every record counts once.
func TestShuffleTaskRestart(t *testing.T) {
	l := newShuffleLink(t, "SELECT src_ip, COUNT(*) AS n FROM input GROUP BY TUMBLE(ts, '1 minute'), src_ip")
	l.control(sql.ShuffleStart, 1, 0)
	l.add(rec(1, "a"), rec(2, "a"))
	l.feed(l.seal(1, 0, 2)...)
	// The second bundle's flush fails after its first partial was sent.
	l.add(rec(3, "a"), rec(4, "b"))
	failed := l.seal(1, 2, 4)
	l.feed(failed[0])
	// The runtime reloads the state (the bundle's records refold) and the
	// new writer starts epoch 2 at offset 2.
	l.control(sql.ShuffleStart, 2, 2)
	l.add(rec(3, "a"), rec(4, "b"))
	l.feed(l.seal(2, 2, 4)...)
	// A crash before any commit: the next owner starts at 0 and replays.
	l.prod = l.agg.Producer().NewAggregate(0)
	l.control(sql.ShuffleStart, 3, 0)
	l.add(rec(1, "a"), rec(2, "a"), rec(3, "a"), rec(4, "b"))
	l.feed(l.seal(3, 0, 4)...)
	l.control(sql.ShuffleCommit, 3, 4)
	// A record of the next minute closes the first.
	l.add(rec(70, "a"))
	l.feed(l.seal(3, 4, 5)...)
	l.control(sql.ShuffleCommit, 3, 5)
	want := []string{"p=0 src_ip=a n=3", "p=0 src_ip=b n=1"}
	if diff := cmp.Diff(want, l.out); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

// TestShuffleTaskIdleProgress: a producer whose input is idle advances its
// watermark at the offset it has committed; the merging task takes it at
// once (no commit follows, since the offset does not move) and emits the
// windows it closes.
func TestShuffleTaskIdleProgress(t *testing.T) {
	l := newShuffleLink(t, "SELECT src_ip, COUNT(*) AS n FROM input GROUP BY TUMBLE(ts, '1 minute'), src_ip")
	l.control(sql.ShuffleStart, 1, 0)
	l.add(rec(1, "a"))
	l.feed(l.seal(1, 0, 1)...)
	l.control(sql.ShuffleCommit, 1, 1)
	if len(l.out) != 0 {
		t.Fatalf("rows before the window closed: %v", l.out)
	}
	l.prod.Advance(l.prod.Watermark() + int64(2*time.Minute/time.Microsecond))
	l.feed(l.seal(1, 1, 1)...)
	if want := []string{"p=0 src_ip=a n=1"}; !cmp.Equal(want, l.out) {
		t.Errorf("rows after the idle advance: %v, want %v", l.out, want)
	}
	l.prod.Fire(true, nil)
	msgs := l.seal(1, 1, 1)
	if wm := msgs[len(msgs)-1].Int(sql.ShuffleWatermark); wm != math.MaxInt64 {
		t.Errorf("progress at the end of the input: watermark %d, want math.MaxInt64", wm)
	}
}

// TestShuffleMergeIdleProducer: of a merging task's two producers, one
// never receives a record. Until it says so the task's watermark waits
// for it; once its idle mark is in, the watermark is the other producer's
// and the windows it closes are emitted (even across a reload of the
// state). When the idle producer then sends records, it is back in the
// watermark: its partial of a window already emitted is late (counted,
// not merged), its partial of an open window is merged, and the next
// window waits for its commit.
func TestShuffleMergeIdleProducer(t *testing.T) {
	l := newShuffleLink(t, "SELECT src_ip, COUNT(*) AS n FROM input GROUP BY TUMBLE(ts, '1 minute'), src_ip")
	merger := l.agg.Merger(2)
	late := 0
	merger.CountLate(func(n int) { late += n })
	l.merge = merger.NewAggregate(0)
	state := memState{}
	busy, empty := l.prod, l.agg.Producer().NewAggregate(0)
	as := func(name string, prod engine.Aggregate) { l.name, l.prod = name, prod }

	as("in/0", busy)
	l.control(sql.ShuffleStart, 1, 0)
	l.add(rec(1, "a"), rec(2, "a"), rec(70, "a"))
	l.feed(l.seal(1, 0, 3)...)
	l.control(sql.ShuffleCommit, 1, 3)
	as("in/1", empty)
	l.control(sql.ShuffleStart, 1, 0)
	if len(l.out) != 0 {
		t.Fatalf("rows while a producer has neither a watermark nor an idle mark: %v", l.out)
	}

	// The empty producer's idle timeout: an idle mark at the offset it
	// stands at, which no commit needs to cover. The state is saved and
	// reloaded in between: the mark holds across a restart.
	if !empty.(engine.Idler).Idle() {
		t.Fatal("Idle of a producer without a watermark: false, want true")
	}
	idle := l.seal(1, 0, 0)
	if k := idle[len(idle)-1].Int(sql.ShuffleKind); k != sql.ShuffleIdle {
		t.Fatalf("last message of the idle bundle: kind %d, want ShuffleIdle", k)
	}
	if empty.(engine.Idler).Idle() {
		t.Error("Idle again with the idle mark sent: true, want false (nothing new to send)")
	}
	l.feed(idle...)
	if want := []string{"p=0 src_ip=a n=2"}; !cmp.Equal(want, l.out) {
		t.Fatalf("rows once the empty producer is idle: %v, want %v", l.out, want)
	}
	state.save(l.merge.Save)
	l.merge = merger.NewAggregate(0)
	state.load(t, l.merge.Load)

	// The idle producer receives records: one of the window emitted
	// (late at the merge), two of the open one.
	as("in/1", empty)
	l.add(rec(5, "b"), rec(65, "a"), rec(125, "c"))
	l.feed(l.seal(1, 0, 3)...)
	as("in/0", busy)
	l.add(rec(130, "a"))
	l.feed(l.seal(1, 3, 4)...)
	l.control(sql.ShuffleCommit, 1, 4)
	if len(l.out) != 1 {
		t.Fatalf("rows before the woken producer's commit: %v (its watermark is back in the task's)", l.out[1:])
	}
	as("in/1", empty)
	l.control(sql.ShuffleCommit, 1, 3)
	want := []string{"p=0 src_ip=a n=2", "p=0 src_ip=a n=2"}
	if diff := cmp.Diff(want, l.out); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	state.save(l.merge.Save)
	if late != 1 {
		t.Errorf("late partial windows reported: %d, want 1", late)
	}
}

// TestShuffleMergeAllIdle: while every producer is idle the watermark
// stands (it is not the end of the input).
func TestShuffleMergeAllIdle(t *testing.T) {
	l := newShuffleLink(t, "SELECT src_ip, COUNT(*) AS n FROM input GROUP BY TUMBLE(ts, '1 minute'), src_ip")
	l.control(sql.ShuffleStart, 1, 0)
	l.prod.(engine.Idler).Idle()
	l.feed(l.seal(1, 0, 0)...)
	if wm := l.merge.Watermark(); wm != math.MinInt64 {
		t.Errorf("watermark with every producer idle: %d, want math.MinInt64", wm)
	}
}

// TestShuffleProducerIdleEmptyPartition: a producer task of a partition
// that never receives a record sends, once idle for the idle timeout, one
// idle mark; the task of the partition with records sends its partials and
// progress, and no idle mark.
func TestShuffleProducerIdleEmptyPartition(t *testing.T) {
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).UnixMicro()
	recs := [][]genRec{{}, {}}
	for i := range 10 {
		recs[0] = append(recs[0], genRec{ts: base + int64(i)*1e6, offset: int64(i), bytes: 1, src: "a", action: "x"})
	}
	dir := t.TempDir()
	store, err := checkpoint.NewDir(filepath.Join(dir, "ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	states, err := checkpoint.NewTaskStates(checkpoint.NewState(store), filepath.Join(dir, "state"), "idle")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := sql.CompileTransform("SELECT window_start, COUNT(*) AS c FROM input GROUP BY TUMBLE(ts, '1 minute')", trafficSchema)
	if err != nil {
		t.Fatal(err)
	}
	sink := &rowSink{schema: sql.ShuffleSchema}
	src := newMember(&groupLog{offsets: map[int32]int64{}, metas: map[int32]string{}}, recs, 0, 1)
	const idle = 200 * time.Millisecond
	rt, err := engine.New(&engine.Job{
		Name: "idle", Pod: "p", Source: src, Store: checkpoint.New(store), State: states, Interval: 50 * time.Millisecond,
		Pipelines: []*engine.Pipeline{{Name: "w", Reads: func(string) bool { return true }, Decoder: genDecoder{}, Transform: tr.(*sql.Aggregation).Producer(),
			Sinks: []engine.NamedSink{{Name: "repartition", Sink: sink}}, IdleTimeout: idle}},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rt.Run(t.Context()) }()
	src.feed(1)
	rows := func(prefix string) int {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		n := 0
		for _, r := range sink.rows {
			if strings.HasPrefix(r, prefix) {
				n++
			}
		}
		return n
	}
	idleMark := "p=1 kind=" + itoa(sql.ShuffleIdle) + " "
	for deadline := time.Now().Add(time.Minute); rows(idleMark) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no idle mark from the empty partition within a minute; rows: %v", sink.rows)
		}
	}
	// Several more idle timeouts: the mark is not repeated.
	time.Sleep(5 * idle)
	rt.Drain()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := rows(idleMark); n != 1 {
		t.Errorf("idle marks of the empty partition: %d, want 1", n)
	}
	if n := rows("p=0 kind=" + itoa(sql.ShuffleIdle) + " "); n != 0 {
		t.Errorf("idle marks of the partition with records: %d, want 0", n)
	}
	if n := rows("p=0 kind=" + itoa(sql.ShufflePartial) + " "); n == 0 {
		t.Errorf("no partial from the partition with records; rows: %v", sink.rows)
	}
}

// TestShuffleMergeIdleMarkPending: an idle mark at an offset not yet
// committed waits, like a progress, for the commit that covers it (the
// producer's partials below it are merged first), across a reload of the
// state.
func TestShuffleMergeIdleMarkPending(t *testing.T) {
	l := newShuffleLink(t, "SELECT src_ip, COUNT(*) AS n FROM input GROUP BY TUMBLE(ts, '1 minute'), src_ip")
	merger := l.agg.Merger(2)
	l.merge = merger.NewAggregate(0)
	l.name = "in/0"
	l.control(sql.ShuffleStart, 1, 0)
	l.add(rec(1, "a"), rec(70, "a"))
	l.feed(l.seal(1, 0, 2)...)
	l.control(sql.ShuffleCommit, 1, 2)
	// in/1's new owner stands at its committed offset 5, which the
	// merging task has not seen committed yet.
	l.name, l.prod = "in/1", l.agg.Producer().NewAggregate(0)
	l.control(sql.ShuffleStart, 1, 5)
	l.prod.(engine.Idler).Idle()
	l.feed(l.seal(1, 5, 5)...)
	if len(l.out) != 0 {
		t.Fatalf("rows before the idle mark is committed: %v", l.out)
	}
	state := memState{}
	state.save(l.merge.Save)
	l.merge = merger.NewAggregate(0)
	state.load(t, l.merge.Load)
	l.control(sql.ShuffleCommit, 1, 5)
	if want := []string{"p=0 src_ip=a n=1"}; !cmp.Equal(want, l.out) {
		t.Errorf("rows once the idle mark is committed: %v, want %v", l.out, want)
	}
}

// TestShuffleMergeAnnouncedProducers: a merging task waits for the
// producer count the start records announce, not for the count its
// process was started with, so that its replay after a restart that
// counts more partitions (some were added) waits for the producers its
// first run waited for, until a restarted producer's start record says
// more; the count announced is in the state.
func TestShuffleMergeAnnouncedProducers(t *testing.T) {
	l := newShuffleLink(t, "SELECT src_ip, COUNT(*) AS n FROM input GROUP BY TUMBLE(ts, '1 minute'), src_ip")
	start := func(name string, epoch, offset, producers int64) {
		m := engine.NewRow(sql.ShuffleSchema.Width())
		m.SetInt(sql.ShuffleKind, sql.ShuffleStart)
		m.SetInt(sql.ShuffleEpoch, epoch)
		m.SetInt(sql.ShuffleFrom, producers)
		m.SetInt(sql.ShuffleTo, offset)
		m.SetStr(sql.ShuffleProducerName, name)
		l.feed(m)
	}
	// The first run: one producer, announced.
	l.merge = l.agg.Merger(1).NewAggregate(0)
	start("in/0", 1, 0, 1)
	state := memState{}
	state.save(l.merge.Save)
	// A restart that counts 2 source partitions replays from the saved
	// state: the window closes as it did in the first run.
	l.merge = l.agg.Merger(2).NewAggregate(0)
	state.load(t, l.merge.Load)
	l.name = "in/0"
	l.add(rec(1, "a"), rec(70, "a"))
	l.feed(l.seal(1, 0, 2)...)
	l.control(sql.ShuffleCommit, 1, 2)
	if want := []string{"p=0 src_ip=a n=1"}; !cmp.Equal(want, l.out) {
		t.Fatalf("rows of the replay: %v, want %v (as the first run emitted)", l.out, want)
	}
	// The restarted producer announces 2: the next window waits for in/1.
	start("in/0", 2, 2, 2)
	l.add(rec(130, "a"))
	l.feed(l.seal(2, 2, 3)...)
	l.control(sql.ShuffleCommit, 2, 3)
	if len(l.out) != 1 {
		t.Fatalf("rows before the second producer showed itself: %v", l.out[1:])
	}
	start("in/1", 1, 0, 2)
	idle := l.agg.Producer().NewAggregate(0)
	idle.(engine.Idler).Idle()
	l.name, l.prod = "in/1", idle
	l.feed(l.seal(1, 0, 0)...)
	if want := []string{"p=0 src_ip=a n=1", "p=0 src_ip=a n=1"}; !cmp.Equal(want, l.out) {
		t.Errorf("rows once the second producer is idle: %v, want %v", l.out, want)
	}
}
