package sql_test

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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
