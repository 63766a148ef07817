package sql_test

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sql"
)

// TestWindowIdleTimeout: a partition whose input stops still emits its
// last window once it has been idle for the idle timeout, without an end
// of input.
func TestWindowIdleTimeout(t *testing.T) {
	// Ten seconds of records ending 0.1 s before the window's end: once
	// idle, the watermark follows the wall clock past it.
	base := time.Date(2026, 11, 30, 12, 0, 50, 0, time.UTC).UnixMicro()
	recs := [][]genRec{{}}
	for i := range 100 {
		recs[0] = append(recs[0], genRec{ts: base + int64(i)*100_000, offset: int64(i), bytes: 1, src: "a", action: "x"})
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
	sink := &rowSink{schema: tr.Output()}
	src := newMember(&groupLog{offsets: map[int32]int64{}, metas: map[int32]string{}}, recs, 0)
	rt, err := engine.New(&engine.Job{
		Name: "idle", Pod: "p", Source: src, Store: checkpoint.New(store), State: states, Interval: 50 * time.Millisecond,
		Pipelines: []*engine.Pipeline{{Name: "w", Reads: func(string) bool { return true }, Decoder: genDecoder{}, Transform: tr,
			Sinks: []engine.NamedSink{{Name: "out", Sink: sink}}, IdleTimeout: 200 * time.Millisecond}},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rt.Run(t.Context()) }()
	src.feed(1)
	deadline := time.Now().Add(time.Minute)
	for {
		sink.mu.Lock()
		n := len(sink.rows)
		sink.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle partition's window was not emitted within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rt.Drain()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := "p=0 window_start=" + itoa(base/60e6*60e6) + " c=100"; sink.rows[0] != want {
		t.Errorf("row %q, want %q", sink.rows[0], want)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
